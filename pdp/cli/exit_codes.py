"""Exit codes, documented in README.md: scripts branch on them."""

ALLOW = 0
"""`pdp check`: the request is allowed. Other commands: success."""
DENY = 1
"""`pdp check`: the request is denied. `pdp lint`: the policies have errors."""
ERROR = 2
"""Bad usage, an unreadable request, or a policy set that does not load."""

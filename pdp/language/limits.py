"""Limits on policy input, written once. docs/language.md lists them for authors.

They keep hostile or broken input (a huge file, deep nesting, an absurd literal) from costing
more than a clean error.
"""

MAX_FILE_BYTES = 1024 * 1024
"""A single `.policy` file."""

MAX_SET_BYTES = 64 * 1024 * 1024
"""All files of a policy set together, data files included."""

MAX_FILES = 10_000
"""Policy and data files in one set."""

MAX_DATA_FILE_BYTES = 16 * 1024 * 1024
"""A single JSON data file."""

MAX_EXPRESSION_DEPTH = 64
"""Nesting of one expression's operators and calls (parentheses add none by themselves)."""

MAX_TOKENS_PER_DECLARATION = 10_000
"""Tokens in one rule or constant. Real rules have tens; the limit stops a hostile file from
costing seconds of parsing before the depth limit can be checked."""

MAX_BRACKET_DEPTH = MAX_EXPRESSION_DEPTH
"""Nesting of `(`, `[` and `{` (a rule's own braces count), checked before parsing."""

MAX_SYNTAX_ERRORS_PER_FILE = 20
"""After this many syntax errors a file is not parsed further."""

MAX_REGEX_LENGTH = 1000
"""Characters in a `matches` pattern."""

MAX_REGEX_MEMORY = 1 << 20
"""Bytes re2 may use to compile one `matches` pattern."""

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
"""Integers are 64-bit: literals outside are rejected; arithmetic that leaves the range errors."""

MAX_DECIMAL_DIGITS = 38
"""Significant digits of a decimal literal."""

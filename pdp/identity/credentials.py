"""What a caller presents, before verification. Secrets are kept out of repr()."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BearerToken:
    """A JWT, as sent (without the "Bearer " prefix)."""

    # SECURITY: a token is a credential; it must never reach a log, a message or a repr().
    token: str = field(repr=False)

    kind = "jwt"


Credential = BearerToken

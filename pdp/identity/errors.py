"""Why a credential was not accepted. Each failure is a DENY with an `authn.*` reason code."""

from __future__ import annotations

# Reason codes, documented in docs/api.md.
MISSING = "authn.missing"
MALFORMED = "authn.malformed"
UNKNOWN_ISSUER = "authn.unknown_issuer"
ALGORITHM = "authn.algorithm"
UNKNOWN_KID = "authn.unknown_kid"
BAD_SIGNATURE = "authn.bad_signature"
EXPIRED = "authn.token_expired"
NOT_YET_VALID = "authn.not_yet_valid"
AUDIENCE = "authn.audience"
MISSING_CLAIM = "authn.missing_claim"
LIFETIME = "authn.lifetime"
INVALID = "authn.invalid"


class AuthenticationError(Exception):
    """A credential that cannot be accepted.

    `message` says exactly why ("token expired at 2026-11-23T10:00:00Z"). SECURITY: it never
    contains the credential itself or key material; it goes to the caller and the audit log.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

"""Why a credential was not accepted. Each failure is a DENY with an `authn.*` reason code."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

Verified = TypeVar("Verified")
_log = logging.getLogger("pdp.identity")

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
# Signed requests (HMAC)
UNKNOWN_KEY = "authn.unknown_key"
"""No such key id (HMAC), or no such API key."""
REVOKED = "authn.revoked"
"""The key was retired (HMAC) or revoked (API key)."""
TIMESTAMP = "authn.timestamp"
"""A signed request's timestamp is outside the window (too old or too far ahead)."""
REPLAY = "authn.replay"
"""The same signature or nonce was already seen inside the window."""
# Passwords (Basic)
PASSWORD = "authn.password"  # noqa: S105 - a reason code, not a password
"""Unknown user or wrong password: one code for both, so user names do not leak."""
# Certificates (forwarded mTLS client certificates)
UNTRUSTED = "authn.untrusted"
"""The certificate chain does not lead to a configured CA."""
CERTIFICATE_EXPIRED = "authn.certificate_expired"
"""The certificate (or one in its chain) is not valid at this time."""
CERTIFICATE_USAGE = "authn.certificate_usage"
"""The certificate may not be used for client authentication (key usage)."""


class AuthenticationError(Exception):
    """A credential that cannot be accepted.

    `message` says exactly why ("token expired at 2026-11-23T10:00:00Z"). SECURITY: it never
    contains the credential itself or key material; it goes to the caller and the audit log.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fail_closed(what: str, attempt: Callable[[], Verified]) -> Verified:
    """`attempt()`, where any failure becomes an AuthenticationError and nothing else: an
    unexpected exception is `authn.invalid` "<what> could not be verified", logged by type.

    SECURITY: only the exception's type is logged, since the text of a library exception may
    quote its input; and the error is raised outside the except blocks, so it carries no
    __context__ (a traceback in a log could otherwise show the credential or a key).
    """
    try:
        return attempt()
    except AuthenticationError as error:
        code, message = error.code, error.message
    except Exception as error:
        _log.warning("%s verification failed unexpectedly: %s", what, type(error).__name__)
        code, message = INVALID, f"{what} could not be verified"
    raise AuthenticationError(code, message)

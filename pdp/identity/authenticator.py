"""Credential in, verified Subject out: one entry point for every credential kind."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pdp.config import IssuerSettings
from pdp.identity.credentials import BearerToken, Credential
from pdp.identity.errors import INVALID, MISSING, UNKNOWN_ISSUER, AuthenticationError
from pdp.identity.subject import Subject
from pdp.identity.tokens import TokenVerifier


class Authenticator:
    def __init__(self, issuers: Sequence[IssuerSettings]) -> None:
        self.tokens = TokenVerifier(issuers) if issuers else None

    def authenticate(self, credential: Credential | None, now: datetime) -> Subject:
        """The verified subject, or AuthenticationError saying exactly why not."""
        if credential is None:
            raise AuthenticationError(MISSING, "no credentials were presented")
        if isinstance(credential, BearerToken):
            if self.tokens is None:
                raise AuthenticationError(UNKNOWN_ISSUER, "no token issuers are configured")
            return self.tokens.verify(credential.token, now)
        raise AuthenticationError(INVALID, "this kind of credential is not supported")

"""Credential in, verified Subject out: one entry point for every credential kind.

Each kind has its own module (tokens, hmac_signing, api_keys, basic, certificates); this one
only routes. A kind that is not configured is refused like any other failure, with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pdp.config import Config, IssuerSettings
from pdp.identity.api_keys import ApiKeyVerifier
from pdp.identity.basic import BasicVerifier, UserStore
from pdp.identity.certificates import CertificateVerifier
from pdp.identity.credentials import (
    ApiKey,
    BasicAuthorization,
    BearerToken,
    ClientCertificate,
    Credential,
    HmacSignature,
)
from pdp.identity.errors import INVALID, MISSING, UNKNOWN_ISSUER, UNTRUSTED, AuthenticationError
from pdp.identity.hmac_signing import HmacVerifier
from pdp.identity.keystore import KeyStore
from pdp.identity.subject import Subject
from pdp.identity.tokens import TokenVerifier
from pdp.state import MemoryState, StateStore


class Authenticator:
    def __init__(
        self,
        issuers: Sequence[IssuerSettings] = (),
        *,
        hmac: HmacVerifier | None = None,
        api_keys: ApiKeyVerifier | None = None,
        basic: BasicVerifier | None = None,
        certificates: CertificateVerifier | None = None,
    ) -> None:
        self.tokens = TokenVerifier(issuers) if issuers else None
        self.hmac = hmac
        self.api_keys = api_keys
        self.basic = basic
        self.certificates = certificates

    @classmethod
    def from_config(cls, config: Config, state: StateStore | None = None) -> Authenticator:
        credentials = config.credentials
        keys = KeyStore(credentials.keys_file, credentials.master_key_file)
        state = state if state is not None else MemoryState()
        return cls(
            config.issuers,
            hmac=HmacVerifier(keys, state, credentials.hmac_window_seconds),
            api_keys=ApiKeyVerifier(keys),
            basic=BasicVerifier(UserStore(credentials.users_file)),
            certificates=(
                CertificateVerifier(credentials.client_ca)
                if credentials.client_ca is not None
                else None
            ),
        )

    def authenticate(self, credential: Credential | None, now: datetime) -> Subject:
        """The verified subject, or AuthenticationError saying exactly why not."""
        if credential is None:
            raise AuthenticationError(MISSING, "no credentials were presented")
        if isinstance(credential, BearerToken):
            if self.tokens is None:
                raise AuthenticationError(UNKNOWN_ISSUER, "no token issuers are configured")
            return self.tokens.verify(credential.token, now)
        if isinstance(credential, HmacSignature) and self.hmac is not None:
            return self.hmac.verify(credential, now)
        if isinstance(credential, ApiKey) and self.api_keys is not None:
            return self.api_keys.verify(credential)
        if isinstance(credential, BasicAuthorization) and self.basic is not None:
            return self.basic.verify(credential)
        if isinstance(credential, ClientCertificate):
            if self.certificates is None:
                raise AuthenticationError(UNTRUSTED, "no CA is configured for client certificates")
            return self.certificates.verify(credential, now)
        raise AuthenticationError(INVALID, "this kind of credential is not accepted here")

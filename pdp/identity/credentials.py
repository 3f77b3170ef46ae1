"""What a caller presents, before verification. Secrets are kept out of repr()."""

from __future__ import annotations

from dataclasses import dataclass, field

from pdp.signing import SignedRequest


@dataclass(frozen=True, slots=True)
class BearerToken:
    """A JWT, as sent (without the "Bearer " prefix)."""

    # SECURITY: a token is a credential; it must never reach a log, a message or a repr().
    token: str = field(repr=False)

    kind = "jwt"


class HmacSignature(SignedRequest):
    """A signed HTTP request, as a credential: the fields a client's sign_request() made."""

    __slots__ = ()
    kind = "hmac"


@dataclass(frozen=True, slots=True)
class ApiKey:
    key: str = field(repr=False)

    kind = "api_key"


@dataclass(frozen=True, slots=True)
class BasicAuthorization:
    """The value of an HTTP Authorization header: "Basic <base64 of user:password>"."""

    header: str = field(repr=False)

    kind = "basic"


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """An end client's certificate chain (PEM, leaf first), forwarded by a service."""

    pem: str

    kind = "mtls"


Credential = BearerToken | HmacSignature | ApiKey | BasicAuthorization | ClientCertificate

"""Real keys (cryptography) and real tokens (pyjwt) for tests, reusable by the service tests.

The short way, one issuer with one key in a JWKS file:

    from tests.identity.keys import AUDIENCE, ISSUER, make_issuer

    settings, sign = make_issuer(tmp_path, "RS256")   # or "PS256", "ES256", "EdDSA"
    verifier = TokenVerifier([settings])
    token = sign()                                   # valid at tests.helpers.NOW
    token = sign(sub="bob", roles=["admin"])         # claims added or replaced
    token = sign(exp=NOW - timedelta(hours=2))       # datetimes become seconds since 1970
    token = sign(omit=("sub",))                      # a claim left out
    token = sign(headers={"kid": "other"})           # header members added or replaced

Defaults: iss ISSUER, aud AUDIENCE, sub "alice", iat NOW - 1 minute, exp NOW + 10 minutes,
header kid "key-1". `make_issuer(tmp_path, algorithm, issuer=..., audiences=..., kid=...,
**fields)` sets any other IssuerSettings field (leeway_seconds=0, jwks_url=..., ...). Several
issuers can share one tmp_path (each gets its own JWKS file).

For more control: `SigningKey.generate(algorithm, kid, label)` (keys are cached per algorithm
family, kid and label, so tests stay fast; a different label gives a different key, e.g. an
attacker's), `SigningKey.public_jwk()`, `jwks(...)`, `write_jwks(...)`, `claims(...)` and
`forge(header, payload, signature)` for tokens pyjwt would refuse to make (alg none, duplicates).
"""

from __future__ import annotations

import base64
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from pdp.config import IssuerSettings
from tests.helpers import NOW

ISSUER = "https://issuer.example"
AUDIENCE = "pdp"
SUBJECT = "alice"

_EC = {
    "ES256": (ec.SECP256R1, "P-256", 32),
    "ES384": (ec.SECP384R1, "P-384", 48),
    "ES512": (ec.SECP521R1, "P-521", 66),
}
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_b64(number: int, size: int | None = None) -> str:
    return b64(number.to_bytes(size or (number.bit_length() + 7) // 8, "big"))


@functools.cache
def _private_key(kind: str, kid: str | None, label: str) -> Any:
    del kid, label  # part of the cache key only: a different kid or label, a different key
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind in _EC:
        return ec.generate_private_key(_EC[kind][0]())
    if kind == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"no test keys for {kind}")


@dataclass(frozen=True)
class SigningKey:
    """A private key with the algorithm and kid its tokens carry."""

    algorithm: str
    kid: str | None
    private_key: Any

    @classmethod
    def generate(cls, algorithm: str, kid: str | None = "key-1", label: str = "") -> SigningKey:
        """RSA 2048 for RS*/PS*, the matching NIST curve for ES*, Ed25519 for EdDSA."""
        kind = "RSA" if algorithm in _RSA else algorithm
        return cls(algorithm, kid, _private_key(kind, kid, label))

    @property
    def public_key(self) -> Any:
        return self.private_key.public_key()

    def public_jwk(self, **members: Any) -> dict[str, Any]:
        """The public JWK with kid, `use: sig` and `alg`; `members` add or replace (None drops)."""
        jwk: dict[str, Any] = {"kid": self.kid, "use": "sig", "alg": self.algorithm}
        public = self.public_key
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            jwk |= {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
        elif isinstance(public, ec.EllipticCurvePublicKey):
            _, crv, size = next(v for v in _EC.values() if v[0] is type(public.curve))
            point = public.public_numbers()
            jwk |= {
                "kty": "EC",
                "crv": crv,
                "x": _int_b64(point.x, size),
                "y": _int_b64(point.y, size),
            }
        else:
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            jwk |= {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}
        jwk |= members
        return {name: value for name, value in jwk.items() if value is not None}

    def private_jwk(self) -> dict[str, Any]:
        """The JWK with its private members (`d`, and for RSA p, q, dp, dq, qi)."""
        jwk = self.public_jwk()
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            n = key.private_numbers()
            jwk |= {
                "d": _int_b64(n.d),
                "p": _int_b64(n.p),
                "q": _int_b64(n.q),
                "dp": _int_b64(n.dmp1),
                "dq": _int_b64(n.dmq1),
                "qi": _int_b64(n.iqmp),
            }
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            jwk["d"] = _int_b64(key.private_numbers().private_value, _EC[self.algorithm][2])
        else:
            raw = key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            jwk["d"] = b64(raw)
        return jwk

    def public_pem(self) -> bytes:
        return bytes(
            self.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def private_pem(self) -> bytes:
        return bytes(
            self.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )

    def sign(
        self,
        payload: Mapping[str, Any],
        headers: Mapping[str, Any] | None = None,
        algorithm: str | None = None,
    ) -> str:
        """A token signed by pyjwt; header kid is this key's unless `headers` says otherwise."""
        header = {"kid": self.kid, **(headers or {})}
        return jwt.encode(
            dict(payload),
            self.private_key,
            algorithm=algorithm or self.algorithm,
            headers={name: value for name, value in header.items() if value is not None},
        )

    def sign_raw(self, payload: bytes, headers: Mapping[str, Any] | None = None) -> str:
        """A token over exactly these payload bytes (duplicate members, odd numbers, ...)."""
        header = {"kid": self.kid, **(headers or {})}
        return jwt.api_jws.PyJWS().encode(
            payload,
            self.private_key,
            algorithm=self.algorithm,
            headers={name: value for name, value in header.items() if value is not None},
        )

    def secrets(self) -> list[str]:
        """Every piece of key material that must never appear in a message or a log line."""
        found = [
            value
            for name, value in self.private_jwk().items()
            if name in ("n", "x", "y", "d", "p", "q", "dp", "dq", "qi")
        ]
        for pem in (self.public_pem(), self.private_pem()):
            found += [line for line in pem.decode().splitlines() if not line.startswith("-----")]
        return found


def claims(now: datetime = NOW, omit: Iterable[str] = (), **overrides: Any) -> dict[str, Any]:
    """Standard claims valid at `now`, with `overrides` (None values are kept as JSON null)."""
    result: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": SUBJECT,
        "iat": now - timedelta(minutes=1),
        "exp": now + timedelta(minutes=10),
    }
    result |= overrides
    for name in omit:
        result.pop(name, None)
    return {
        name: int(value.timestamp()) if isinstance(value, datetime) else value
        for name, value in result.items()
    }


def jwks(*keys: Mapping[str, Any]) -> bytes:
    """A JWKS document with these JWKs."""
    return json.dumps({"keys": list(keys)}).encode()


def write_jwks(path: Path, *keys: Mapping[str, Any]) -> Path:
    path.write_bytes(jwks(*keys))
    return path


def forge(
    header: Mapping[str, Any] | bytes, payload: Mapping[str, Any] | bytes, signature: bytes = b""
) -> str:
    """A compact token from raw parts, unsigned unless `signature` is given."""
    parts = [
        part if isinstance(part, bytes) else json.dumps(part).encode() for part in (header, payload)
    ]
    return ".".join(b64(part) for part in (*parts, signature))


def assert_no_secrets(
    error: BaseException, tokens: Iterable[str], keys: Iterable[SigningKey], log_text: str = ""
) -> None:
    """Neither the error (message, args, repr, chained exceptions) nor the log text contains a
    token, one of its parts, or key material of `keys`."""
    assert error.__cause__ is None
    assert error.__context__ is None
    texts = [str(error), repr(error), *(str(arg) for arg in error.args), log_text]
    texts.append(str(getattr(error, "message", "")))
    secrets: list[str] = []
    for token in tokens:
        secrets.append(token)
        secrets += [part for part in token.split(".") if len(part) >= 8]
    for key in keys:
        secrets += key.secrets()
    for secret in (s for s in secrets if len(s) >= 8):  # shorter ones match by chance
        for text in texts:
            assert secret not in text, "a token or key material leaked into a message or log"


def make_issuer(
    tmp_path: Path,
    algorithm: str = "RS256",
    *,
    issuer: str = ISSUER,
    audiences: tuple[str, ...] = (AUDIENCE,),
    kid: str | None = "key-1",
    **fields: Any,
) -> tuple[IssuerSettings, Callable[..., str]]:
    """Settings of an issuer whose JWKS file holds one key, and a signer for its tokens.

    The key is `SigningKey.generate(algorithm, kid, label=issuer)` (ask for it to get at it).

    `sign(*, omit=(), headers=None, now=NOW, **claims) -> str`: see the module docstring.
    """
    key = SigningKey.generate(algorithm, kid, label=issuer)
    slug = re.sub(r"[^A-Za-z0-9]+", "-", f"{issuer}-{algorithm}-{kid}")
    path = write_jwks(tmp_path / f"jwks-{slug}.json", key.public_jwk())
    settings = IssuerSettings(
        issuer=issuer,
        audiences=audiences,
        algorithms=(algorithm,),
        jwks_file=path,
        **fields,
    )

    def sign(
        *,
        omit: Iterable[str] = (),
        headers: Mapping[str, Any] | None = None,
        now: datetime = NOW,
        **overrides: Any,
    ) -> str:
        payload = claims(now, omit, **{"iss": issuer, "aud": audiences[0], **overrides})
        return key.sign(payload, headers)

    return settings, sign

"""A development token issuer for `make run` and `pdp token`: a key pair and its JWKS, made on
first use in a git-ignored folder. Never for production: the private key sits on local disk."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

PRIVATE_KEY = "issuer-private.pem"
JWKS = "jwks.json"
ALGORITHM = "RS256"


@dataclass(frozen=True, slots=True)
class DevIssuer:
    private_key_path: Path
    jwks_path: Path
    kid: str

    def mint(
        self,
        *,
        issuer: str,
        audience: str,
        subject: str,
        claims: dict[str, Any],
        now: datetime,
        ttl: timedelta,
    ) -> str:
        payload = {
            **claims,
            "iss": issuer,
            "aud": audience,
            "sub": subject,
            "iat": int(now.timestamp()),
            "exp": int((now + ttl).timestamp()),
        }
        key = self.private_key_path.read_bytes()
        return jwt.encode(payload, key, algorithm=ALGORITHM, headers={"kid": self.kid})


def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def ensure_dev_issuer(directory: Path) -> tuple[DevIssuer, bool]:
    """The development issuer in `directory`, created if missing. True when it was created."""
    private_path, jwks_path = directory / PRIVATE_KEY, directory / JWKS
    created = False
    if not private_path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # SECURITY: owner-only, created that way rather than tightened afterwards.
        descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        created = True
    private_key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError(f"{private_path} is not an RSA private key")
    numbers = private_key.public_key().public_numbers()
    public = {"e": _b64(numbers.e), "kty": "RSA", "n": _b64(numbers.n)}
    # RFC 7638 thumbprint: a kid that changes exactly when the key does.
    canonical = json.dumps(public, separators=(",", ":"), sort_keys=True).encode()
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    jwks = {"keys": [{**public, "kid": kid, "alg": ALGORITHM, "use": "sig"}]}
    if created or not jwks_path.exists():
        jwks_path.write_text(json.dumps(jwks, indent=2) + "\n")
    return DevIssuer(private_path, jwks_path, kid), created

"""A real pdp server on a free 127.0.0.1 port, with real issuers whose tokens are really signed.

`service` starts the server on a copy of the shop policies with two trusted issuers (RS256 and
ES256) and gives a real client; `pdp_service(...)` builds variants.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pdp.client import DecisionClient
from pdp.config import Config, parse_config
from pdp.server.app import RunningServer, create_server

ROOT = Path(__file__).resolve().parents[2]
AUDIENCE = "shop-api"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int(number: int, size: int = 0) -> str:
    # EC coordinates have a fixed size (RFC 7518, 6.2.1.2); RSA numbers use the minimum.
    return _b64(number.to_bytes(size or (number.bit_length() + 7) // 8, "big"))


@dataclass
class Issuer:
    """A token issuer for tests: a real key pair, its JWK, and a signer."""

    name: str
    algorithm: str
    kid: str
    private_key: Any = field(repr=False)

    def jwk(self) -> dict[str, str]:
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            numbers = public.public_numbers()
            fields = {"kty": "RSA", "n": _int(numbers.n), "e": _int(numbers.e)}
        else:
            point = public.public_numbers()
            x, y = _int(point.x, 32), _int(point.y, 32)
            fields = {"kty": "EC", "crv": "P-256", "x": x, "y": y}
        return {**fields, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "iss": self.name,
            "aud": AUDIENCE,
            "sub": "u-1",
            "iat": now,
            "exp": now + 600,
            "account": "acct-1",
            "age": 30,
            "country": "SE",
            "role": "customer",
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        return jwt.encode(
            self.claims(**claims),
            self.private_key,
            algorithm=self.algorithm,
            headers={"kid": self.kid, **(headers or {})},
        )


def rsa_issuer(name: str = "https://id.example.test", kid: str = "rsa-1") -> Issuer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Issuer(name, "RS256", kid, key)


def ec_issuer(name: str = "https://ec.example.test", kid: str = "ec-1") -> Issuer:
    return Issuer(name, "ES256", kid, ec.generate_private_key(ec.SECP256R1()))


@dataclass
class Service:
    running: RunningServer
    client: DecisionClient
    config: Config
    issuers: list[Issuer]
    folder: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.running.port}"

    @property
    def policies(self) -> Path:
        return self.config.policies.dir

    def audit_records(self) -> list[dict[str, Any]]:
        text = self.config.audit.path.read_text("utf-8")
        return [json.loads(line) for line in text.splitlines()]

    def token(self, **claims: Any) -> str:
        return self.issuers[0].sign(**claims)


ServiceFactory = Callable[..., Service]


@pytest.fixture
def pdp_service(tmp_path: Path) -> Iterator[ServiceFactory]:
    started: list[Service] = []

    def start(
        issuers: list[Issuer] | None = None,
        policy_folder: Path = ROOT / "policies" / "shop",
        **sections: dict[str, Any],
    ) -> Service:
        issuers = issuers or [rsa_issuer(), ec_issuer()]
        folder = tmp_path / f"service-{len(started)}"
        shutil.copytree(policy_folder, folder / "policies")
        document: dict[str, Any] = {
            "server": {"listen": "127.0.0.1:0", "shutdown_grace_seconds": 5},
            "policies": {"dir": "policies", "poll_seconds": 0.05},
            "audit": {"path": "audit/decisions.jsonl"},
            "issuers": [],
        }
        for number, issuer in enumerate(issuers):
            jwks = folder / f"jwks-{number}.json"
            jwks.write_text(json.dumps({"keys": [issuer.jwk()]}))
            document["issuers"].append(
                {
                    "issuer": issuer.name,
                    "audiences": [AUDIENCE],
                    "algorithms": [issuer.algorithm],
                    "jwks_file": jwks.name,
                }
            )
        for name, values in sections.items():
            document.setdefault(name, {}).update(values)
        config = parse_config(document, base=folder)
        running = create_server(config)
        service = Service(
            running, DecisionClient(f"127.0.0.1:{running.port}"), config, issuers, folder
        )
        started.append(service)
        return service

    yield start
    for service in started:
        service.client.close()
        service.running.stop(0)


@pytest.fixture
def service(pdp_service: ServiceFactory) -> Service:
    return pdp_service()

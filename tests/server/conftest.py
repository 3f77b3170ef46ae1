"""A real pdp server on a free 127.0.0.1 port, with real issuers whose tokens are really signed.

`service` starts the server on a copy of the shop policies with two trusted issuers (RS256 and
ES256) and gives a real client; `pdp_service(...)` builds variants.

For the credential tests (test_credentials_*.py): `credential_policies` is a policy folder with one
rule per credential kind, `clock` a settable clock for the server (and for API key metering),
`restart` starts a stopped service again on the same files, and `assert_no_secrets` looks for
secrets in a service's audit log and in the captured log.
"""

from __future__ import annotations

import base64
import json
import shutil
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pdp.client import DecisionClient, Result
from pdp.config import Config, parse_config
from pdp.decision_point import utc_now
from pdp.server.app import RunningServer, create_server
from tests.helpers import NOW

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
        *,
        clock: Callable[[], datetime] = utc_now,
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
        running = create_server(config, clock=clock)
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


# --- credential tests ----------------------------------------------------------------------------

CREDENTIAL_POLICY = """\
# One rule per credential kind, each reading what that kind gives policies: flip the attribute
# and the same request is denied (default.deny).

# Any verified subject reads documents: shows that a request got through to the policies.
permit read-document {
    action   read
    resource Document
    when     subject has sub
    reason   "{subject.sub} reads {resource.id} via {subject.auth.method}"
}

# Mutual TLS: only the reporting service, as its certificate proves, reads reports.
permit reports-via-reporting-service {
    action   read
    resource Report
    when     caller has spiffe_id and caller.spiffe_id == "spiffe://example.org/reports"
    reason   "{caller.spiffe_id} reads report {resource.id} for {subject.sub}"
}

# Forwarded end-client certificates: devices upload telemetry.
permit telemetry-devices {
    action   upload
    resource Telemetry
    when     subject.auth.method == "mtls"
             and subject has spiffe_id
             and subject.spiffe_id starts with "spiffe://example.org/device/"
    reason   "device {subject.spiffe_id}"
}

# API keys: every plan reads the catalogue, only the pro plan exports it.
permit catalogue-read-api {
    action   read
    resource Catalogue
    when     subject.auth.method == "api_key"
    reason   "app {subject.app} on plan {subject.plan}"
}

permit catalogue-export-pro {
    action   export
    resource Catalogue
    when     subject.auth.method == "api_key" and subject.plan ?? "" == "pro"
    reason   "app {subject.app} exports on plan {subject.plan}"
}

# HMAC: a webhook is delivered by the application that owns it, with a signed request.
permit webhook-deliver-signed {
    action   deliver
    resource Webhook
    when     subject.auth.method == "hmac"
             and subject has app
             and subject.app == resource.owner_app
    reason   "{subject.app} delivers webhook {resource.id}"
}

# Basic: the console is for users with the ops role.
permit console-ops {
    action   view
    resource Console
    when     subject.auth.method == "basic"
             and subject has roles
             and "ops" in subject.roles
    reason   "{subject.username} has the ops role"
}
"""


NO_PERMIT = ("default.deny", "no permit rule matched")
"""The one reason of a request that no rule of CREDENTIAL_POLICY allows."""


def refusal(result: Result) -> tuple[str, str]:
    """The code and message of a deny's one reason."""
    assert not result.allowed, result
    [reason] = result.reasons
    return reason.code, reason.message


@pytest.fixture
def credential_policies(tmp_path: Path) -> Path:
    folder = tmp_path / "credential-policies"
    folder.mkdir()
    (folder / "credentials.policy").write_text(CREDENTIAL_POLICY, "utf-8")
    return folder


class Clock:
    """A clock the test moves: `now` for the server (create_server(clock=...)) and `monotonic`
    for API key rate limits (Metering.monotonic). Both move together."""

    def __init__(self, start: datetime = NOW) -> None:
        self.current = start
        self.seconds = 1_000.0

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return self.seconds

    def timestamp(self) -> int:
        return int(self.current.timestamp())

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        self.seconds += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


Restart = Callable[..., Service]


@pytest.fixture
def restart() -> Iterator[Restart]:
    """restart(service, clock=...) stops the service (as on SIGTERM: the audit log and the usage
    file are flushed) and starts a new server on the same configuration and files."""
    started: list[Service] = []

    def again(service: Service, clock: Callable[[], datetime] = utc_now) -> Service:
        service.client.close()
        service.running.stop(service.config.server.shutdown_grace_seconds)
        running = create_server(service.config, clock=clock)
        fresh = Service(
            running,
            DecisionClient(f"127.0.0.1:{running.port}"),
            service.config,
            service.issuers,
            service.folder,
        )
        started.append(fresh)
        return fresh

    yield again
    for service in started:
        service.client.close()
        service.running.stop(0)


def audit_text(service: Service) -> str:
    """Everything in the service's audit folder: the log and any rotated files."""
    folder = service.config.audit.path.parent
    return "".join(path.read_text("utf-8") for path in sorted(folder.iterdir()) if path.is_file())


def assert_no_secrets(
    service: Service, logged: str, secrets: Iterable[str | bytes], *, also: Iterable[Path] = ()
) -> None:
    """None of `secrets` (nor, for a PEM private key, any line of its body) is in the audit log,
    in `logged` (caplog.text) or in the files of `also`."""
    places = {"audit log": audit_text(service), "log": logged}
    places.update({str(path): path.read_text("utf-8") for path in also})
    needles: list[str] = []
    for secret in secrets:
        text = secret.decode("ascii") if isinstance(secret, bytes) else secret
        assert text, "an empty secret would match anything"
        needles.append(text)
        if "PRIVATE KEY-----" in text:
            needles.extend(line for line in text.splitlines() if line and "-----" not in line)
    for where, content in places.items():
        for needle in needles:
            assert needle not in content, f"a secret is in the {where}"

"""Forwarded end-client certificates (Credentials.client_certificate) on the real server: a
service that terminated a device's TLS passes the device's chain on, and pdp verifies it against
[credentials] client_ca.

The server's clock is tests.helpers.NOW, around which the test PKI (tests/identity/pki.py) is
valid: a forwarded chain is checked against pdp's clock, not the TLS stack's.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import pytest

from pdp.client import Result, client_certificate
from pdp.identity.dev_pki import IssuedCertificate
from tests.identity.pki import client_certificate as issue_client
from tests.identity.pki import spiffe, standard_pki, write_pem
from tests.server.conftest import (
    NO_PERMIT,
    Clock,
    Service,
    ServiceFactory,
    assert_no_secrets,
    refusal,
)

SENSOR = spiffe("device/sensor-7")
GATEWAY_SENSOR = spiffe("device/sensor-9")


@functools.cache
def devices() -> dict[str, IssuedCertificate]:
    pki = standard_pki()
    return {
        "sensor-7": issue_client(pki.root, "sensor-7", uris=(SENSOR,)),
        # Issued by the intermediate: the forwarded chain carries it.
        "sensor-9": issue_client(pki.intermediate, "sensor-9", uris=(GATEWAY_SENSOR,)),
    }


@pytest.fixture
def service(
    pdp_service: ServiceFactory, credential_policies: Path, clock: Clock, tmp_path: Path
) -> Service:
    ca_file = write_pem(tmp_path / "device-ca.pem", standard_pki().root)
    return pdp_service(
        policy_folder=credential_policies,
        clock=clock.now,
        credentials={"client_ca": str(ca_file)},
    )


def upload(service: Service, pem: str) -> Result:
    return service.client.check(client_certificate(pem), "upload", "Telemetry", "batch-1")


@pytest.mark.parametrize(
    ("device", "spiffe_id", "issuer"),
    [
        ("sensor-7", SENSOR, "CN=Test Root CA"),
        ("sensor-9", GATEWAY_SENSOR, "CN=Test Intermediate CA"),
    ],
)
def test_trusted_device_certificate_is_the_subject(
    service: Service, device: str, spiffe_id: str, issuer: str
) -> None:
    result = upload(service, devices()[device].chain_pem())

    assert result.allowed
    assert result.rules == ("telemetry-devices",)
    assert result.reasons[0].message == f"device {spiffe_id}"
    [record] = service.audit_records()
    assert record["decision"] == "allow"
    assert record["credential"] == "mtls"
    assert record["caller"] is None  # a forwarded certificate is the subject, not the caller
    subject = record["subject"]
    assert (subject["id"], subject["method"], subject["issuer"]) == (spiffe_id, "mtls", issuer)
    assert subject["claims"]["spiffe_id"] == spiffe_id
    assert subject["claims"]["auth"] == {"method": "mtls", "issuer": issuer}


def test_trusted_certificate_without_a_device_identity_is_denied(service: Service) -> None:
    alice = standard_pki().client  # CN alice, spiffe://example.org/alice

    telemetry = upload(service, alice.chain_pem())
    document = service.client.check(client_certificate(alice.chain_pem()), "read", "Document", "d")

    assert refusal(telemetry) == NO_PERMIT
    assert document.allowed
    assert document.reasons[0].message == f"{spiffe('alice')} reads d via mtls"


def _refusals() -> dict[str, tuple[str, str, str]]:
    """name -> (PEM, code, message)."""
    pki = standard_pki()
    return {
        "untrusted CA": (
            pki.untrusted_client.chain_pem(),
            "authn.untrusted",
            "client certificate (issuer `CN=Untrusted Root CA`) does not chain to a trusted CA",
        ),
        "expired": (
            pki.expired_client.chain_pem(),
            "authn.certificate_expired",
            "client certificate expired at 2026-11-23T11:00:00Z",
        ),
        "not yet valid": (
            pki.not_yet_valid_client.chain_pem(),
            "authn.certificate_expired",
            "client certificate is not valid before 2026-11-23T13:00:00Z",
        ),
        "serverAuth only": (
            pki.server_only.chain_pem(),
            "authn.certificate_usage",
            "client certificate extended key usage does not include clientAuth (it has serverAuth)",
        ),
        "intermediate left out": (
            devices()["sensor-9"].certificate_pem(),
            "authn.untrusted",
            "client certificate (issuer `CN=Test Intermediate CA`) does not chain to a trusted CA",
        ),
        "garbage": (
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
            "authn.malformed",
            "client certificate is not a PEM certificate chain",
        ),
        "not PEM": (
            "hello",
            "authn.malformed",
            "client certificate is not a PEM certificate chain",
        ),
        "with its private key": (
            pki.client.chain_pem() + pki.client.private_key_pem().decode("ascii"),
            "authn.malformed",
            "client certificate contains a private key; send certificates only",
        ),
    }


@pytest.mark.parametrize("case", list(_refusals()))
def test_refused_certificate_is_denied_with_its_code(service: Service, case: str) -> None:
    pem, code, message = _refusals()[case]

    result = upload(service, pem)

    assert refusal(result) == (code, message)
    [record] = service.audit_records()
    assert record["decision"] == "deny"
    assert record["credential"] == "mtls"
    assert record["subject"] is None
    assert record["reasons"] == [{"code": code, "message": message}]
    # The server is unharmed: a good chain is still accepted.
    assert upload(service, devices()["sensor-7"].chain_pem()).allowed


def test_forwarded_certificate_without_a_configured_ca_is_untrusted(
    pdp_service: ServiceFactory, credential_policies: Path, clock: Clock
) -> None:
    service = pdp_service(policy_folder=credential_policies, clock=clock.now)

    result = upload(service, devices()["sensor-7"].chain_pem())

    assert refusal(result) == ("authn.untrusted", "no CA is configured for client certificates")


def test_certificate_expiring_while_the_server_runs_is_refused_from_then_on(
    service: Service, clock: Clock
) -> None:
    chain = devices()["sensor-7"]
    assert upload(service, chain.chain_pem()).allowed  # verified, and remembered

    clock.advance((chain.certificate.not_valid_after_utc - clock.now()).total_seconds() + 1)

    assert refusal(upload(service, chain.chain_pem())) == (
        "authn.certificate_expired",
        "client certificate expired at 2026-12-23T12:00:00Z",
    )


def test_no_private_key_reaches_the_audit_log_or_the_log(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for pem, _, _ in _refusals().values():
        upload(service, pem)
    upload(service, devices()["sensor-7"].chain_pem())
    upload(service, devices()["sensor-9"].chain_pem())

    pki = standard_pki()
    keys = [issued.private_key_pem() for issued in (*devices().values(), pki.client, pki.root)]
    assert len(service.audit_records()) == len(_refusals()) + 2
    assert_no_secrets(service, caplog.text, keys)

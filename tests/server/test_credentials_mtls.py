"""Mutual TLS on the real server: the calling service's certificate is checked in the handshake
and becomes `caller.*`; certificate files replaced on disk are used for new connections.

The certificates are made for the real clock (the TLS stack checks dates against it), by the
test PKI helpers; the server's own clock is irrelevant here. Subjects sign in with a JWT from the
fixture's issuer: mTLS says who the caller is, not who the subject is.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from pdp.client import DecisionClient, Result, TlsOptions
from pdp.identity.dev_pki import SERVER_AUTH, IssuedCertificate
from tests.identity.pki import client_certificate, root_ca, server_certificate, spiffe, write_pem
from tests.server.conftest import NO_PERMIT, Service, ServiceFactory, assert_no_secrets, refusal

REPORTS = spiffe("reports")
ORDERS = spiffe("orders")

MtlsFactory = Callable[..., Service]
"""mtls_service(require_client_cert=True, separate_listener=False): a server with [server.tls]."""


@dataclass(frozen=True)
class MtlsPki:
    server_ca: IssuedCertificate
    server: IssuedCertificate
    """localhost / 127.0.0.1, issued by server_ca."""
    new_server_ca: IssuedCertificate
    new_server: IssuedCertificate
    """The replacement server certificate, issued by new_server_ca."""
    client_ca: IssuedCertificate
    """The CA in server.tls.client_ca at start."""
    new_client_ca: IssuedCertificate
    """The CA that replaces it."""
    clients: dict[str, IssuedCertificate]


@functools.cache
def mtls_pki() -> MtlsPki:
    now = datetime.now(UTC)
    begin, end = now - timedelta(days=1), now + timedelta(days=30)

    def ca(name: str) -> IssuedCertificate:
        return root_ca(name, not_before=begin, not_after=now + timedelta(days=365))

    def service(issuer: IssuedCertificate, name: str, uri: str) -> IssuedCertificate:
        return client_certificate(issuer, name, uris=(uri,), not_before=begin, not_after=end)

    # Names of different lengths: a replaced file never has the size of the one it replaces.
    server_ca, new_server_ca = ca("Server CA"), ca("Replacement Server CA")
    client_ca, new_client_ca = ca("Client CA"), ca("Replacement Client CA")
    clients = {
        "reports": service(client_ca, "reports", REPORTS),
        "orders": service(client_ca, "orders", ORDERS),
        # Claims the reporting service's identity, from a CA the server does not trust.
        "rogue": service(ca("Rogue CA"), "reports", REPORTS),
        "expired": client_certificate(
            client_ca,
            "reports",
            uris=(REPORTS,),
            not_before=now - timedelta(days=30),
            not_after=now - timedelta(hours=1),
        ),
        "reports-new-ca": service(new_client_ca, "reports", REPORTS),
        # A server certificate offered as a client certificate (serverAuth only).
        "server-only": client_certificate(
            client_ca,
            "reports",
            uris=(REPORTS,),
            not_before=begin,
            not_after=end,
            extended_key_usages=(SERVER_AUTH,),
        ),
    }
    return MtlsPki(
        server_ca=server_ca,
        server=server_certificate(server_ca, not_before=begin, not_after=end),
        new_server_ca=new_server_ca,
        new_server=server_certificate(new_server_ca, not_before=begin, not_after=end),
        client_ca=client_ca,
        new_client_ca=new_client_ca,
        clients=clients,
    )


@dataclass(frozen=True)
class TlsFolder:
    folder: Path
    server_cert: Path
    server_key: Path
    client_ca: Path
    server_ca: Path
    """What clients trust for the server."""
    new_server_ca: Path

    def client(self, name: str, *, ca: Path | None = None) -> TlsOptions:
        return TlsOptions(
            ca or self.server_ca,
            self.folder / f"{name}.pem",
            self.folder / f"{name}-key.pem",
        )

    def without_certificate(self) -> TlsOptions:
        return TlsOptions(self.server_ca)


def write_key_pair(cert: Path, key: Path, issued: IssuedCertificate) -> None:
    cert.write_text(issued.chain_pem(), "ascii")
    key.write_bytes(issued.private_key_pem())


@pytest.fixture
def tls(tmp_path: Path) -> TlsFolder:
    pki = mtls_pki()
    folder = tmp_path / "tls"
    folder.mkdir()
    files = TlsFolder(
        folder=folder,
        server_cert=folder / "server.pem",
        server_key=folder / "server-key.pem",
        client_ca=write_pem(folder / "client-ca.pem", pki.client_ca),
        server_ca=write_pem(folder / "server-ca.pem", pki.server_ca),
        new_server_ca=write_pem(folder / "new-server-ca.pem", pki.new_server_ca),
    )
    write_key_pair(files.server_cert, files.server_key, pki.server)
    for name, issued in pki.clients.items():
        write_key_pair(folder / f"{name}.pem", folder / f"{name}-key.pem", issued)
    return files


@pytest.fixture
def mtls_service(
    pdp_service: ServiceFactory, credential_policies: Path, tls: TlsFolder
) -> MtlsFactory:
    def start(*, require_client_cert: bool = True, separate_listener: bool = False) -> Service:
        settings: dict[str, Any] = {
            "cert": str(tls.server_cert),
            "key": str(tls.server_key),
            "require_client_cert": require_client_cert,
        }
        if require_client_cert:  # without, client certificates are not asked for at all
            settings["client_ca"] = str(tls.client_ca)
        if separate_listener:
            settings["listen"] = "127.0.0.1:0"
        return pdp_service(policy_folder=credential_policies, server={"tls": settings})

    return start


def check(
    service: Service,
    options: TlsOptions | None,
    resource_type: str = "Report",
    port: int | None = None,
) -> Result:
    """One call on a new connection (a new channel: a new handshake), as subject u-1."""
    target = f"127.0.0.1:{port or service.running.tls_port}"
    with DecisionClient(target, tls=options) as client:
        return client.check(service.token(), "read", resource_type, "r-1")


def refused_in_handshake(service: Service, options: TlsOptions | None) -> grpc.RpcError:
    """The call fails before any decision: no answer, no audit record."""
    before = len(service.audit_records())
    with pytest.raises(grpc.RpcError) as caught:
        check(service, options)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(service.audit_records()) == before
    return caught.value


def expected_caller(issued: IssuedCertificate) -> dict[str, Any]:
    """caller.* for a certificate, computed here from the certificate itself."""
    certificate = issued.certificate
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    [uri] = names.get_values_for_type(x509.UniformResourceIdentifier)
    [cn] = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return {
        "cn": str(cn.value),
        "uri": [uri],
        "spiffe_id": uri,
        "fingerprint": hashlib.sha256(issued.certificate_der()).hexdigest(),
        "serial": format(certificate.serial_number, "x"),
        "issuer": certificate.issuer.rfc4514_string(),
        "subject": certificate.subject.rfc4514_string(),
        "not_after": certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def served_certificate(port: int, options: TlsOptions) -> x509.Certificate:
    """The certificate the server presents in a TLS handshake (read with Python's own TLS
    stack, not grpc's)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we want to see it, whoever issued it
    context.set_alpn_protocols(["h2"])
    assert options.cert is not None and options.key is not None
    context.load_cert_chain(options.cert, options.key)
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as connection,
    ):
        der = connection.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


# --- the handshake decides who may call ----------------------------------------------------------


@pytest.mark.parametrize("separate_listener", [False, True], ids=["one-listener", "tls-listener"])
def test_trusted_service_is_allowed_and_is_the_caller(
    mtls_service: MtlsFactory, tls: TlsFolder, separate_listener: bool
) -> None:
    service = mtls_service(separate_listener=separate_listener)
    assert (service.running.tls_port != service.running.port) is separate_listener

    result = check(service, tls.client("reports"))

    assert result.allowed
    assert result.rules == ("reports-via-reporting-service",)
    assert result.reasons[0].code == "rule.permit"
    assert result.reasons[0].message == f"{REPORTS} reads report r-1 for u-1"
    [record] = service.audit_records()
    assert record["decision"] == "allow"
    assert record["caller"] == expected_caller(mtls_pki().clients["reports"])
    assert record["subject"]["id"] == "u-1"


def test_a_policy_on_caller_denies_another_trusted_service(
    mtls_service: MtlsFactory, tls: TlsFolder
) -> None:
    service = mtls_service()

    result = check(service, tls.client("orders"))

    assert refusal(result) == NO_PERMIT
    # The orders service is still a trusted caller: what it may do is the policy's business.
    assert check(service, tls.client("orders"), "Document").allowed
    records = service.audit_records()
    assert [record["decision"] for record in records] == ["deny", "allow"]
    assert records[0]["caller"] == expected_caller(mtls_pki().clients["orders"])


def test_a_malformed_request_over_mutual_tls_is_recorded_with_its_caller(
    mtls_service: MtlsFactory, tls: TlsFolder
) -> None:
    service = mtls_service()
    target = f"127.0.0.1:{service.running.tls_port}"
    with (
        DecisionClient(target, tls=tls.client("orders")) as client,
        pytest.raises(grpc.RpcError) as caught,
    ):
        client.check(service.token(), "", "Report", "r-1")  # no action
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    [record] = service.audit_records()
    assert record["decision"] == "rejected"
    assert record["caller"] == expected_caller(mtls_pki().clients["orders"])


@pytest.mark.parametrize("client", ["rogue", "expired"])
def test_untrusted_or_expired_client_certificate_fails_the_handshake(
    mtls_service: MtlsFactory, tls: TlsFolder, client: str
) -> None:
    service = mtls_service()

    refused_in_handshake(service, tls.client(client))

    # The server is unharmed: the trusted service still gets its answer.
    assert check(service, tls.client("reports")).allowed


def test_client_certificate_without_client_auth_usage_fails_the_handshake(
    mtls_service: MtlsFactory, tls: TlsFolder
) -> None:
    service = mtls_service()

    refused_in_handshake(service, tls.client("server-only"))


def test_no_client_certificate_fails_the_handshake_when_required(
    mtls_service: MtlsFactory, tls: TlsFolder
) -> None:
    service = mtls_service(require_client_cert=True)

    refused_in_handshake(service, tls.without_certificate())


def test_no_client_certificate_is_accepted_when_not_required_with_no_caller(
    mtls_service: MtlsFactory, tls: TlsFolder
) -> None:
    service = mtls_service(require_client_cert=False)

    document = check(service, tls.without_certificate(), "Document")
    report = check(service, tls.without_certificate(), "Report")
    # The server does not ask for a certificate: one the client has is not sent, no caller.
    with_certificate = check(service, tls.client("reports"), "Report")

    assert document.allowed
    assert document.reasons[0].message == "u-1 reads r-1 via jwt"
    assert refusal(report) == NO_PERMIT
    assert refusal(with_certificate) == NO_PERMIT
    assert [record["caller"] for record in service.audit_records()] == [None, None, None]


def test_plaintext_listener_beside_the_tls_listener_has_no_caller(
    mtls_service: MtlsFactory, tls: TlsFolder
) -> None:
    service = mtls_service(separate_listener=True)

    plaintext = check(service, None, port=service.running.port)
    over_tls = check(service, tls.client("reports"))

    assert refusal(plaintext) == NO_PERMIT
    assert over_tls.allowed
    assert [record["caller"] is None for record in service.audit_records()] == [True, False]


def test_plaintext_client_cannot_call_the_tls_listener(mtls_service: MtlsFactory) -> None:
    service = mtls_service()

    refused_in_handshake(service, None)


# --- certificate files replaced while running ----------------------------------------------------


def test_replaced_client_ca_is_used_for_new_connections(
    mtls_service: MtlsFactory, tls: TlsFolder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pdp")
    service = mtls_service()
    assert check(service, tls.client("reports")).allowed
    refused_in_handshake(service, tls.client("reports-new-ca"))

    write_pem(tls.client_ca, mtls_pki().new_client_ca)

    refused_in_handshake(service, tls.client("reports"))
    result = check(service, tls.client("reports-new-ca"))
    assert result.allowed
    assert result.rules == ("reports-via-reporting-service",)
    assert service.audit_records()[-1]["caller"] == expected_caller(
        mtls_pki().clients["reports-new-ca"]
    )
    assert "TLS certificate, key or client CAs reloaded" in caplog.text


def test_unusable_client_ca_file_keeps_the_previous_one(
    mtls_service: MtlsFactory, tls: TlsFolder, caplog: pytest.LogCaptureFixture
) -> None:
    service = mtls_service()
    assert check(service, tls.client("reports")).allowed

    # Half written, or a mistake: grpc is never given it, the CAs read before stay.
    tls.client_ca.write_text("-----BEGIN CERTIFICATE-----\nnot yet\n", "ascii")

    assert check(service, tls.client("reports")).allowed
    refused_in_handshake(service, tls.client("reports-new-ca"))
    assert f"TLS files changed but cannot be used yet: {tls.client_ca}" in caplog.text

    write_pem(tls.client_ca, mtls_pki().new_client_ca)

    assert check(service, tls.client("reports-new-ca")).allowed
    refused_in_handshake(service, tls.client("reports"))


def test_replaced_server_certificate_is_presented_in_new_handshakes(
    mtls_service: MtlsFactory, tls: TlsFolder
) -> None:
    pki = mtls_pki()
    service = mtls_service()
    port = service.running.tls_port
    assert served_certificate(port, tls.client("reports")) == pki.server.certificate

    write_key_pair(tls.server_cert, tls.server_key, pki.new_server)

    assert served_certificate(port, tls.client("reports")) == pki.new_server.certificate
    # Clients that trust the new server CA connect; those that only trust the old one do not.
    assert check(service, tls.client("reports", ca=tls.new_server_ca)).allowed
    refused_in_handshake(service, tls.client("reports"))


def test_server_certificate_written_before_its_key_does_not_break_the_server(
    mtls_service: MtlsFactory, tls: TlsFolder
) -> None:
    pki = mtls_pki()
    service = mtls_service()
    port = service.running.tls_port

    # A deploy that writes the certificate, then the key: between the two, the new certificate
    # does not match the key, and the server goes on with the pair it has.
    tls.server_cert.write_text(pki.new_server.chain_pem(), "ascii")
    assert check(service, tls.client("reports")).allowed
    assert served_certificate(port, tls.client("reports")) == pki.server.certificate

    tls.server_key.write_bytes(pki.new_server.private_key_pem())
    assert served_certificate(port, tls.client("reports")) == pki.new_server.certificate
    assert check(service, tls.client("reports", ca=tls.new_server_ca)).allowed


# --- secrets -------------------------------------------------------------------------------------


def test_no_private_key_reaches_the_audit_log_or_the_log(
    mtls_service: MtlsFactory, tls: TlsFolder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pki = mtls_pki()
    service = mtls_service()
    check(service, tls.client("reports"))
    check(service, tls.client("orders"))
    refused_in_handshake(service, tls.client("rogue"))
    refused_in_handshake(service, tls.client("expired"))
    tls.client_ca.write_text("not a certificate", "ascii")
    check(service, tls.client("reports"))
    write_pem(tls.client_ca, pki.new_client_ca)
    write_key_pair(tls.server_cert, tls.server_key, pki.new_server)
    check(service, tls.client("reports-new-ca", ca=tls.new_server_ca))

    keys: list[str | bytes] = [pki.server.private_key_pem(), pki.new_server.private_key_pem()]
    keys += [issued.private_key_pem() for issued in pki.clients.values()]
    assert len(service.audit_records()) == 4
    assert_no_secrets(service, caplog.text, keys)

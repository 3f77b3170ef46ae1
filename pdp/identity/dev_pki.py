"""Development X.509 certificates for mutual TLS: a CA, a server certificate and client
certificates, made with `cryptography`. Never for production: the private keys sit on local disk
and the CA can issue anything.

Two layers:

- `issue_certificate(...)` makes one certificate (a CA or an end entity) with chosen names,
  validity window, key usage and extended key usages, signed by a given CA or self-signed. The
  certificates satisfy the CA/Browser Forum profile that `cryptography.x509.verification` (and so
  pdp.identity.certificates) enforces: X.509 v3, ECDSA P-256 with SHA-256, positive serials,
  critical basicConstraints on CAs, subject and authority key identifiers, a SAN on every end
  entity. tests/identity/pki.py builds its test PKI on it.
- `ensure_dev_pki(directory)` writes a development PKI to a folder (see FILES), unless a
  complete, currently valid one is already there. `write_dev_pki(directory, now)` always writes
  a new one.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH

# Key usages: a CA signs certificates (and CRLs); an end entity signs handshakes (TLS 1.3 and
# ECDHE suites only ever need digitalSignature from an ECDSA key).
CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)
END_ENTITY_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


class _Default:
    """Marks "use the default for this kind of certificate" (None means "leave it out")."""


DEFAULT = _Default()
KeyUsageChoice = x509.KeyUsage | _Default | None
"""A key usage, DEFAULT (the usual one for the kind of certificate), or None (no extension)."""


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    """A certificate, its private key, and the CA certificates above it (nearest first, the
    self-signed root last; empty for a root)."""

    certificate: x509.Certificate
    private_key: ec.EllipticCurvePrivateKey
    issuers: tuple[x509.Certificate, ...] = ()

    @property
    def is_root(self) -> bool:
        return not self.issuers

    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def certificate_der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    def chain_pem(self) -> str:
        """This certificate and its intermediate CAs (not the root), leaf first: what a TLS peer
        sends and what Credentials.client_certificate carries."""
        intermediates = self.issuers[:-1]
        return "".join(
            certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
            for certificate in (self.certificate, *intermediates)
        )

    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def issue_certificate(
    common_name: str | None,
    *,
    issuer: IssuedCertificate | None = None,
    is_ca: bool = False,
    path_length: int | None = None,
    dns_names: Sequence[str] = (),
    uris: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    not_before: datetime,
    not_after: datetime,
    key_usage: KeyUsageChoice = DEFAULT,
    extended_key_usages: Sequence[x509.ObjectIdentifier] | None = None,
    private_key: ec.EllipticCurvePrivateKey | None = None,
) -> IssuedCertificate:
    """One certificate signed by `issuer` (self-signed without one).

    `key_usage`: DEFAULT gives CA_KEY_USAGE or END_ENTITY_KEY_USAGE; None leaves the extension
    out. `extended_key_usages`: None leaves the extension out (CAs usually do); an end entity
    should name CLIENT_AUTH and/or SERVER_AUTH. `common_name` None gives an empty subject (then
    the SAN is marked critical, as RFC 5280 requires). A new P-256 key unless `private_key`.
    """
    key = private_key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [] if common_name is None else [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    signer_key = issuer.private_key if issuer is not None else key
    issuer_name = issuer.certificate.subject if issuer is not None else subject
    if not issuer_name:
        raise ValueError("a self-signed certificate needs a common name (its issuer name)")
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    if isinstance(key_usage, _Default):
        key_usage = CA_KEY_USAGE if is_ca else END_ENTITY_KEY_USAGE
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    if extended_key_usages is not None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(list(extended_key_usages)), critical=False
        )
    names: list[x509.GeneralName] = [
        *(x509.DNSName(name) for name in dns_names),
        *(x509.UniformResourceIdentifier(uri) for uri in uris),
        *(x509.IPAddress(ipaddress.ip_address(address)) for address in ip_addresses),
    ]
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=common_name is None
        )
    certificate = builder.sign(signer_key, hashes.SHA256())
    chain = () if issuer is None else (issuer.certificate, *issuer.issuers)
    return IssuedCertificate(certificate, key, chain)


# --- the development PKI -------------------------------------------------------------------------

DEV_TRUST_DOMAIN = "example.test"
DEV_CLIENTS = {
    "reports": "spiffe://example.test/reports",
    "orders": "spiffe://example.test/orders",
    "sensor-7": "spiffe://example.test/device/sensor-7",
}
"""Client certificates (CN -> SPIFFE ID), named after the example policies in
policies/platform: the reporting service may read reports, the orders service may not, and
sensor-7 is a device whose certificate the ingest gateway forwards."""
FILES = {
    "ca": "ca.pem",
    "ca_key": "ca-key.pem",
    "server": "server.pem",
    "server_key": "server-key.pem",
    **{name: f"{name}.pem" for name in DEV_CLIENTS},
    **{f"{name}_key": f"{name}-key.pem" for name in DEV_CLIENTS},
}
"""What `write_dev_pki` writes: certificates (PEM chains, leaf first) and their keys (PKCS #8,
owner-only). ca.pem is what [server.tls] client_ca and [credentials] client_ca point at."""
CA_LIFETIME = timedelta(days=3650)
LEAF_LIFETIME = timedelta(days=365)
CLOCK_SKEW = timedelta(minutes=5)
"""Certificates start this long before they are made, so a slightly slow clock accepts them."""


@dataclass(frozen=True, slots=True)
class DevPki:
    directory: Path
    ca: IssuedCertificate
    server: IssuedCertificate
    clients: dict[str, IssuedCertificate]
    """By name (DEV_CLIENTS)."""

    def path(self, name: str) -> Path:
        """The file for a key of FILES ("ca", "server_key", "client_2", ...)."""
        return self.directory / FILES[name]


def write_dev_pki(directory: Path, now: datetime | None = None) -> DevPki:
    """A new development CA, a server certificate for localhost / 127.0.0.1 / ::1, and the
    client certificates of DEV_CLIENTS (CN the name, a SPIFFE ID URI), written to `directory`
    (see FILES). Replaces what is there."""
    now = now or datetime.now(UTC)
    start = now - CLOCK_SKEW
    ca = issue_certificate(
        "pdp development CA",
        is_ca=True,
        path_length=0,
        not_before=start,
        not_after=now + CA_LIFETIME,
    )
    server = issue_certificate(
        "localhost",
        issuer=ca,
        dns_names=("localhost",),
        ip_addresses=("127.0.0.1", "::1"),
        not_before=start,
        not_after=now + LEAF_LIFETIME,
        extended_key_usages=(SERVER_AUTH,),
    )
    clients = {
        name: issue_certificate(
            name,
            issuer=ca,
            uris=(spiffe_id,),
            not_before=start,
            not_after=now + LEAF_LIFETIME,
            extended_key_usages=(CLIENT_AUTH,),
        )
        for name, spiffe_id in DEV_CLIENTS.items()
    }
    pki = DevPki(directory, ca, server, clients)
    directory.mkdir(parents=True, exist_ok=True)
    for name, issued in {"ca": ca, "server": server, **clients}.items():
        _write_private(pki.path(f"{name}_key"), issued.private_key_pem())
        pki.path(name).write_text(issued.chain_pem(), "ascii")
    return pki


def ensure_dev_pki(directory: Path, now: datetime | None = None) -> tuple[DevPki, bool]:
    """The development PKI in `directory`, (re)made when a file is missing or unreadable, or a
    certificate is not valid at `now` or within a day of expiring. True when it was made."""
    now = now or datetime.now(UTC)
    existing = _read_dev_pki(directory, now)
    if existing is not None:
        return existing, False
    return write_dev_pki(directory, now), True


def _read_dev_pki(directory: Path, now: datetime) -> DevPki | None:
    loaded: dict[str, IssuedCertificate] = {}
    try:
        ca_certificate = x509.load_pem_x509_certificate((directory / FILES["ca"]).read_bytes())
        for name in ("ca", "server", *DEV_CLIENTS):
            certificate = x509.load_pem_x509_certificate((directory / FILES[name]).read_bytes())
            key = serialization.load_pem_private_key(
                (directory / FILES[f"{name}_key"]).read_bytes(), password=None
            )
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                return None
            if not (
                certificate.not_valid_before_utc <= now
                and now + timedelta(days=1) < certificate.not_valid_after_utc
            ):
                return None
            issuers = () if name == "ca" else (ca_certificate,)
            loaded[name] = IssuedCertificate(certificate, key, issuers)
    except (OSError, ValueError):
        return None
    clients = {name: loaded[name] for name in DEV_CLIENTS}
    return DevPki(directory, loaded["ca"], loaded["server"], clients)


def _write_private(path: Path, data: bytes) -> None:
    # SECURITY: owner-only from the start, never tightened afterwards; an old file is removed so
    # that O_EXCL guarantees the mode.
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)

"""Real X.509 test PKI (cryptography), reusable by the certificate, server and CLI tests.

Everything is built with pdp.identity.dev_pki.issue_certificate (ECDSA P-256, SHA-256, the
CA/Browser Forum profile that cryptography's verifier enforces) and is valid around
tests.helpers.NOW unless asked otherwise.

The short way, a ready-made set of certificates (made once per test session):

    from tests.identity.pki import standard_pki, write_pem

    pki = standard_pki()
    ca_file = write_pem(tmp_path / "ca.pem", pki.root)     # the trusted CA bundle
    pki.client.chain_pem()                  # CN alice, spiffe://example.org/alice, clientAuth
    pki.client_via_intermediate.chain_pem() # CN bob, DNS bob.example.org, leaf + intermediate
    pki.server                              # CN localhost, DNS localhost, IP 127.0.0.1, serverAuth
    pki.server_only                         # a leaf with extendedKeyUsage serverAuth only
    pki.untrusted_client                    # issued by pki.untrusted_root, not in the bundle
    pki.expired_client, pki.not_yet_valid_client

Each is a pdp.identity.dev_pki.IssuedCertificate: `.certificate`, `.private_key`, `.issuers`,
`.certificate_pem()`, `.certificate_der()`, `.chain_pem()` (leaf and intermediates, no root),
`.private_key_pem()`.

For anything else: `root_ca(name)`, `intermediate_ca(issuer, name)`,
`client_certificate(issuer, cn, dns=..., uris=..., not_before=..., not_after=...,
extended_key_usages=..., key_usage=...)`, `server_certificate(issuer, cn, dns=..., ips=...)`,
and `write_pem(path, *issued)` for CA bundles and chains. Times default to NOW - 1 day ..
NOW + 30 days for leaves and NOW - 1 year .. NOW + 5 years for CAs. For the server tests,
`write_tls_files(folder)` writes a CA, a server chain and key, and a client chain and key.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from pdp.identity.dev_pki import (
    CLIENT_AUTH,
    DEFAULT,
    SERVER_AUTH,
    IssuedCertificate,
    KeyUsageChoice,
    issue_certificate,
)
from tests.helpers import NOW

LEAF_NOT_BEFORE = NOW - timedelta(days=1)
LEAF_NOT_AFTER = NOW + timedelta(days=30)
CA_NOT_BEFORE = NOW - timedelta(days=365)
CA_NOT_AFTER = NOW + timedelta(days=5 * 365)
TRUST_DOMAIN = "example.org"


def root_ca(
    name: str = "Test Root CA",
    *,
    not_before: datetime = CA_NOT_BEFORE,
    not_after: datetime = CA_NOT_AFTER,
    path_length: int | None = None,
    extended_key_usages: Sequence[x509.ObjectIdentifier] | None = None,
) -> IssuedCertificate:
    """A self-signed CA (basicConstraints critical, keyCertSign)."""
    return issue_certificate(
        name,
        is_ca=True,
        path_length=path_length,
        not_before=not_before,
        not_after=not_after,
        extended_key_usages=extended_key_usages,
    )


def intermediate_ca(
    issuer: IssuedCertificate,
    name: str = "Test Intermediate CA",
    *,
    not_before: datetime = CA_NOT_BEFORE,
    not_after: datetime = CA_NOT_AFTER,
    path_length: int | None = 0,
    extended_key_usages: Sequence[x509.ObjectIdentifier] | None = None,
) -> IssuedCertificate:
    """A CA issued by `issuer`; by default it may only issue leaves (path length 0)."""
    return issue_certificate(
        name,
        issuer=issuer,
        is_ca=True,
        path_length=path_length,
        not_before=not_before,
        not_after=not_after,
        extended_key_usages=extended_key_usages,
    )


def client_certificate(
    issuer: IssuedCertificate,
    cn: str | None = "alice",
    *,
    dns: Sequence[str] = (),
    uris: Sequence[str] = (),
    ips: Sequence[str] = (),
    not_before: datetime = LEAF_NOT_BEFORE,
    not_after: datetime = LEAF_NOT_AFTER,
    extended_key_usages: Sequence[x509.ObjectIdentifier] | None = (CLIENT_AUTH,),
    key_usage: KeyUsageChoice = DEFAULT,
    is_ca: bool = False,
) -> IssuedCertificate:
    """An end-entity certificate for client authentication (digitalSignature, clientAuth).
    `extended_key_usages=None` leaves the extension out; `key_usage=None` likewise."""
    return issue_certificate(
        cn,
        issuer=issuer,
        is_ca=is_ca,
        dns_names=dns,
        uris=uris,
        ip_addresses=ips,
        not_before=not_before,
        not_after=not_after,
        extended_key_usages=extended_key_usages,
        key_usage=key_usage,
    )


def server_certificate(
    issuer: IssuedCertificate,
    cn: str = "localhost",
    *,
    dns: Sequence[str] = ("localhost",),
    ips: Sequence[str] = ("127.0.0.1",),
    not_before: datetime = LEAF_NOT_BEFORE,
    not_after: datetime = LEAF_NOT_AFTER,
) -> IssuedCertificate:
    """A TLS server certificate (serverAuth only)."""
    return issue_certificate(
        cn,
        issuer=issuer,
        dns_names=dns,
        ip_addresses=ips,
        not_before=not_before,
        not_after=not_after,
        extended_key_usages=(SERVER_AUTH,),
    )


def spiffe(path: str, trust_domain: str = TRUST_DOMAIN) -> str:
    return f"spiffe://{trust_domain}/{path}"


def write_pem(path: Path, *issued: IssuedCertificate) -> Path:
    """A PEM bundle of these certificates (each one alone, not its chain)."""
    path.write_text("".join(item.certificate_pem() for item in issued), "ascii")
    return path


@dataclass(frozen=True)
class StandardPki:
    root: IssuedCertificate
    """The trusted root: put it in the CA file."""
    intermediate: IssuedCertificate
    """Issued by root, path length 0."""
    untrusted_root: IssuedCertificate
    """A root that is never in the CA file."""
    client: IssuedCertificate
    """CN alice, URI SAN spiffe://example.org/alice, issued by root."""
    client_via_intermediate: IssuedCertificate
    """CN bob, DNS SAN bob.example.org, URI SAN https://example.org/bob, issued by
    intermediate (chain_pem() carries the intermediate)."""
    server: IssuedCertificate
    """CN localhost, DNS localhost, IP 127.0.0.1, serverAuth only, issued by root."""
    server_only: IssuedCertificate
    """CN carol, clientAuth missing (serverAuth only), issued by root."""
    untrusted_client: IssuedCertificate
    """CN mallory, issued by untrusted_root."""
    expired_client: IssuedCertificate
    """CN dave, expired an hour before NOW, issued by root."""
    not_yet_valid_client: IssuedCertificate
    """CN erin, valid from an hour after NOW, issued by root."""


@functools.cache
def standard_pki() -> StandardPki:
    """One set per test session: certificates are immutable, and keys take time to make."""
    root = root_ca()
    intermediate = intermediate_ca(root)
    untrusted_root = root_ca("Untrusted Root CA")
    return StandardPki(
        root=root,
        intermediate=intermediate,
        untrusted_root=untrusted_root,
        client=client_certificate(root, "alice", uris=(spiffe("alice"),)),
        client_via_intermediate=client_certificate(
            intermediate, "bob", dns=("bob.example.org",), uris=("https://example.org/bob",)
        ),
        server=server_certificate(root),
        server_only=client_certificate(root, "carol", extended_key_usages=(SERVER_AUTH,)),
        untrusted_client=client_certificate(untrusted_root, "mallory"),
        expired_client=client_certificate(
            root, "dave", not_before=NOW - timedelta(days=30), not_after=NOW - timedelta(hours=1)
        ),
        not_yet_valid_client=client_certificate(
            root, "erin", not_before=NOW + timedelta(hours=1), not_after=NOW + timedelta(days=30)
        ),
    )


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_chain: Path
    server_key: Path
    client_chain: Path
    client_key: Path


def write_tls_files(folder: Path, *, now: datetime | None = None) -> TlsFiles:
    """Files for a mutual-TLS server test: a CA, a server certificate for localhost / 127.0.0.1
    and a client certificate (CN alice, spiffe://example.org/alice), valid around `now` (the
    real clock's now for a real handshake: TLS libraries check dates against the system
    clock)."""
    moment = now or NOW
    window = {"not_before": moment - timedelta(days=1), "not_after": moment + timedelta(days=30)}
    root = root_ca(not_before=moment - timedelta(days=1), not_after=moment + timedelta(days=365))
    server = server_certificate(root, **window)
    client = client_certificate(root, "alice", uris=(spiffe("alice"),), **window)
    folder.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(
        ca=write_pem(folder / "ca.pem", root),
        server_chain=folder / "server.pem",
        server_key=folder / "server-key.pem",
        client_chain=folder / "client.pem",
        client_key=folder / "client-key.pem",
    )
    files.server_chain.write_text(server.chain_pem(), "ascii")
    files.server_key.write_bytes(server.private_key_pem())
    files.client_chain.write_text(client.chain_pem(), "ascii")
    files.client_key.write_bytes(client.private_key_pem())
    return files

"""Client certificate verification and identity, with real certificates (tests/identity/pki.py)."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import ssl
import stat
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from pdp.identity import errors
from pdp.identity.certificates import (
    MAX_CHAIN_CERTIFICATES,
    MAX_PEM_BYTES,
    CertificateStoreError,
    CertificateVerifier,
    identity,
    is_spiffe_id,
)
from pdp.identity.credentials import ClientCertificate
from pdp.identity.dev_pki import (
    CLIENT_AUTH,
    DEV_CLIENTS,
    FILES,
    SERVER_AUTH,
    IssuedCertificate,
    ensure_dev_pki,
    issue_certificate,
    write_dev_pki,
)
from pdp.identity.errors import AuthenticationError
from tests.helpers import NOW
from tests.identity.pki import (
    StandardPki,
    client_certificate,
    intermediate_ca,
    root_ca,
    spiffe,
    standard_pki,
    write_pem,
    write_tls_files,
)


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pki() -> StandardPki:
    return standard_pki()


@pytest.fixture
def ca_file(tmp_path: Path, pki: StandardPki) -> Path:
    return write_pem(tmp_path / "ca.pem", pki.root)


@pytest.fixture
def verifier(ca_file: Path) -> CertificateVerifier:
    return CertificateVerifier(ca_file)


def pem_body_lines(*issued: IssuedCertificate) -> list[str]:
    lines: list[str] = []
    for item in issued:
        for pem in (item.chain_pem(), item.private_key_pem().decode()):
            lines += [line for line in pem.splitlines() if not line.startswith("-----")]
    return lines


def refused(verifier: CertificateVerifier, pem: object, now: datetime = NOW) -> AuthenticationError:
    """The error verify() raises, checked for leaks: no PEM line, no chained exception."""
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(ClientCertificate(pem), now)  # type: ignore[arg-type]
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None
    if isinstance(pem, str):
        texts = (str(error), repr(error), error.message, *map(str, error.args))
        for line in pem.splitlines():
            if len(line) >= 16 and not line.startswith("-----"):
                assert all(line not in text for text in texts), "PEM text leaked into a message"
    return error


def sha256_hex(issued: IssuedCertificate) -> str:
    return hashlib.sha256(issued.certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def test_cryptography_has_custom_extension_policies():
    # PolicyBuilder.extension_policies arrived in cryptography 45; pyproject.toml says >= 43.
    import cryptography

    major = int(cryptography.__version__.split(".")[0])
    assert major >= 45, f"cryptography {cryptography.__version__} is too old for certificates.py"


# --- trusted certificates ------------------------------------------------------------------------


def test_a_client_issued_by_the_ca_becomes_a_subject_named_by_its_spiffe_id(pki, verifier):
    subject = verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW)

    certificate = pki.client.certificate
    assert subject.method == "mtls"
    assert subject.id == "spiffe://example.org/alice"
    assert subject.issuer == "CN=Test Root CA"
    assert subject.expires == certificate.not_valid_after_utc
    assert subject.attributes == {
        "sub": "spiffe://example.org/alice",
        "cn": "alice",
        "uri": ["spiffe://example.org/alice"],
        "spiffe_id": "spiffe://example.org/alice",
        "fingerprint": sha256_hex(pki.client),
        "serial": format(certificate.serial_number, "x"),
        "issuer": "CN=Test Root CA",
        "subject": "CN=alice",
        "not_after": certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "auth": {"method": "mtls", "issuer": "CN=Test Root CA"},
    }


def test_a_client_issued_by_an_intermediate_is_trusted_when_the_chain_carries_it(pki, verifier):
    subject = verifier.verify(ClientCertificate(pki.client_via_intermediate.chain_pem()), NOW)

    # No SPIFFE URI: the CN names the subject.
    assert subject.id == "bob"
    assert subject.issuer == "CN=Test Intermediate CA"
    assert subject.attributes["cn"] == "bob"
    assert subject.attributes["dns"] == ["bob.example.org"]
    assert subject.attributes["uri"] == ["https://example.org/bob"]
    assert "spiffe_id" not in subject.attributes
    assert subject.attributes["fingerprint"] == sha256_hex(pki.client_via_intermediate)
    assert subject.attributes["auth"] == {"method": "mtls", "issuer": "CN=Test Intermediate CA"}


def test_an_intermediate_in_the_ca_file_is_a_trust_anchor_by_itself(pki, tmp_path):
    verifier = CertificateVerifier(write_pem(tmp_path / "ca.pem", pki.intermediate))
    leaf_only = pki.client_via_intermediate.certificate_pem()

    assert verifier.verify(ClientCertificate(leaf_only), NOW).id == "bob"


def test_a_chain_that_also_carries_the_root_is_accepted(pki, verifier):
    pem = pki.client_via_intermediate.chain_pem() + pki.root.certificate_pem()

    assert verifier.verify(ClientCertificate(pem), NOW).id == "bob"


def test_a_certificate_with_a_cn_and_no_alternative_names_is_accepted(pki, verifier):
    # cryptography's client profile requires a subjectAltName; pdp lifts that (see the module).
    plain = client_certificate(pki.root, "service-a")

    subject = verifier.verify(ClientCertificate(plain.chain_pem()), NOW)

    assert subject.id == "service-a"
    assert "dns" not in subject.attributes
    assert "uri" not in subject.attributes


def test_without_cn_or_spiffe_id_the_fingerprint_names_the_subject(pki, verifier):
    nameless = client_certificate(pki.root, None, dns=("device.example.org",))

    subject = verifier.verify(ClientCertificate(nameless.chain_pem()), NOW)

    assert subject.id == sha256_hex(nameless)
    assert subject.attributes["sub"] == sha256_hex(nameless)
    assert "cn" not in subject.attributes
    assert "subject" not in subject.attributes  # empty subject name: left out


def test_a_leaf_without_extended_key_usage_is_accepted(pki, verifier):
    # RFC 5280 and cryptography read a missing extendedKeyUsage as "any usage".
    unrestricted = client_certificate(pki.root, "legacy", extended_key_usages=None)

    assert verifier.verify(ClientCertificate(unrestricted.chain_pem()), NOW).id == "legacy"


def test_a_leaf_for_both_server_and_client_auth_is_accepted(pki, verifier):
    both = client_certificate(pki.root, "both", extended_key_usages=(SERVER_AUTH, CLIENT_AUTH))

    assert verifier.verify(ClientCertificate(both.chain_pem()), NOW).id == "both"


def test_the_validity_bounds_are_inclusive_to_the_second(pki, verifier):
    pem = pki.client.chain_pem()
    not_after = pki.client.certificate.not_valid_after_utc

    assert verifier.verify(ClientCertificate(pem), not_after).id.endswith("alice")
    # The library works in whole seconds: half a second past not_after is still that second.
    assert verifier.verify(ClientCertificate(pem), not_after + timedelta(milliseconds=500))
    error = refused(verifier, pem, not_after + timedelta(seconds=1))
    assert error.code == errors.CERTIFICATE_EXPIRED


def test_the_diagnosis_works_in_whole_seconds_too(pki, verifier):
    # Half a second past not_after the library still sees a valid date, so the reason it refuses
    # is another one (here: serverAuth only), and that is what must be reported.
    not_after = pki.server_only.certificate.not_valid_after_utc

    error = refused(verifier, pki.server_only.chain_pem(), not_after + timedelta(milliseconds=500))

    assert error.code == errors.CERTIFICATE_USAGE


def test_now_in_another_time_zone_is_the_same_instant(pki, verifier):
    expired = pki.expired_client.chain_pem()
    plus_two = timezone(timedelta(hours=2))

    assert verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW.astimezone(plus_two))
    error = refused(verifier, expired, NOW.astimezone(plus_two))
    assert error.code == errors.CERTIFICATE_EXPIRED


def test_the_subject_attributes_are_what_a_policy_reads(pki, verifier):
    from pdp.engine.authorizer import authorize
    from pdp.engine.decision import Request
    from tests.helpers import policy_set

    subject = verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW)
    rules = policy_set(
        "permit svc {\n"
        "  action read\n  resource Document\n"
        '  when subject.auth.method == "mtls" and subject.spiffe_id == '
        '"spiffe://example.org/alice" and subject.auth.issuer == "CN=Test Root CA"\n'
        "}\n"
    )
    # The attributes are strings, lists and records: they travel as JSON unchanged.
    request = Request.from_json(
        {
            "subject": dict(subject.attributes),
            "action": "read",
            "resource": {"type": "Document", "id": "d1"},
        }
    )

    assert authorize(rules, request, NOW).allowed


# --- untrusted -----------------------------------------------------------------------------------


def test_a_client_of_another_ca_is_untrusted(pki, verifier):
    error = refused(verifier, pki.untrusted_client.chain_pem())

    assert error.code == errors.UNTRUSTED
    assert error.message == (
        "client certificate (issuer `CN=Untrusted Root CA`) does not chain to a trusted CA"
    )


def test_an_expired_client_of_another_ca_is_reported_as_untrusted(pki, verifier):
    foreign_and_expired = client_certificate(
        pki.untrusted_root, "old", not_after=NOW - timedelta(days=1)
    )

    assert refused(verifier, foreign_and_expired.chain_pem()).code == errors.UNTRUSTED


def test_a_chain_without_its_intermediate_is_untrusted(pki, verifier):
    leaf_only = pki.client_via_intermediate.certificate_pem()

    error = refused(verifier, leaf_only)

    assert error.code == errors.UNTRUSTED
    assert "CN=Test Intermediate CA" in error.message


def test_a_self_signed_client_certificate_is_untrusted(verifier):
    self_signed = issue_certificate(
        "alice",
        uris=(spiffe("alice"),),
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=1),
        extended_key_usages=(CLIENT_AUTH,),
    )

    assert refused(verifier, self_signed.chain_pem()).code == errors.UNTRUSTED


def test_an_impostor_ca_with_the_trusted_name_is_untrusted(pki, verifier):
    impostor = root_ca("Test Root CA")  # same name, different key
    forged = client_certificate(impostor, "alice", uris=(spiffe("alice"),))

    error = refused(verifier, forged.chain_pem())

    assert error.code == errors.UNTRUSTED


def test_an_intermediate_cannot_issue_beyond_its_path_length(pki, verifier):
    # pki.intermediate has path length 0: it may issue leaves, not CAs.
    sub_ca = intermediate_ca(pki.intermediate, "Sub CA")
    leaf = client_certificate(sub_ca, "deep")

    error = refused(verifier, leaf.chain_pem())

    assert error.code == errors.UNTRUSTED
    assert error.message == (
        "client certificate chain is not acceptable: path length constraint violated"
    )


def test_a_leaf_posing_as_a_ca_cannot_issue(pki, verifier):
    leaf = pki.client
    child = issue_certificate(
        "child",
        issuer=leaf,
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=1),
        extended_key_usages=(CLIENT_AUTH,),
    )
    pem = child.chain_pem()  # child, then alice's certificate as its "intermediate"

    error = refused(verifier, pem)

    assert error.code == errors.UNTRUSTED
    assert error.message.startswith("client certificate chain is not acceptable: ")


def test_a_leaf_without_authority_key_identifier_is_refused_with_a_readable_reason(pki, verifier):
    # The library's profile (CA/B) requires it; pdp keeps that rule and names the extension.
    bare = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "uma")]))
        .issuer_name(pki.root.certificate.subject)
        .public_key(pki_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([CLIENT_AUTH]), critical=False)
        .sign(pki.root.private_key, hashes.SHA256())
    )

    error = refused(verifier, pem_of(bare))

    assert error.code == errors.UNTRUSTED
    assert error.message == (
        "client certificate chain is not acceptable: "
        "invalid authorityKeyIdentifier extension: Certificate is missing required extension"
    )


def test_an_ed25519_ca_is_refused_with_a_readable_reason(tmp_path):
    # CA/B allows RSA and ECDSA P-256/384/521 keys only.
    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Edwards Root")])
    root = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=10))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(key, None)
    )
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(pem_of(root))
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "victor")]))
        .issuer_name(name)
        .public_key(pki_key().public_key())
        .serial_number(2)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=10))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([CLIENT_AUTH]), critical=False)
        .sign(key, None)
    )

    error = refused(CertificateVerifier(ca_file), pem_of(leaf))

    assert error.code == errors.UNTRUSTED
    assert error.message == (
        "client certificate chain is not acceptable: Forbidden public key algorithm: Ed25519"
    )


# --- validity ------------------------------------------------------------------------------------


def test_an_expired_client_certificate_says_when_it_expired(pki, verifier):
    error = refused(verifier, pki.expired_client.chain_pem())

    assert error.code == errors.CERTIFICATE_EXPIRED
    expired_at = (NOW - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error.message == f"client certificate expired at {expired_at}"


def test_a_not_yet_valid_client_certificate_says_from_when(pki, verifier):
    error = refused(verifier, pki.not_yet_valid_client.chain_pem())

    assert error.code == errors.CERTIFICATE_EXPIRED
    valid_from = (NOW + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error.message == f"client certificate is not valid before {valid_from}"


def test_an_expired_intermediate_is_named(pki, verifier):
    old_intermediate = intermediate_ca(
        pki.root, "Old Intermediate CA", not_after=NOW - timedelta(minutes=5)
    )
    leaf = client_certificate(old_intermediate, "frank", not_before=NOW - timedelta(days=2))

    error = refused(verifier, leaf.chain_pem())

    assert error.code == errors.CERTIFICATE_EXPIRED
    expired_at = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert error.message == (
        f"CA certificate `CN=Old Intermediate CA` in the chain expired at {expired_at}"
    )


def test_an_expired_trusted_root_is_named(tmp_path):
    old_root = root_ca("Old Root CA", not_after=NOW - timedelta(days=1))
    verifier = CertificateVerifier(write_pem(tmp_path / "ca.pem", old_root))
    leaf = client_certificate(old_root, "grace", not_before=NOW - timedelta(days=10))

    error = refused(verifier, leaf.chain_pem())

    assert error.code == errors.CERTIFICATE_EXPIRED
    assert error.message.startswith("CA certificate `CN=Old Root CA` in the chain expired at ")


def test_a_renewed_intermediate_is_preferred_to_an_expired_one_of_the_same_name(pki, verifier):
    # Both intermediates share name and key: the expired one sent first must not decide.
    renewed = intermediate_ca(pki.root, "Rolling CA")
    expired = issue_certificate(
        "Rolling CA",
        issuer=pki.root,
        is_ca=True,
        path_length=0,
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=1),
        private_key=renewed.private_key,
    )
    leaf = client_certificate(renewed, "heidi")
    pem = leaf.certificate_pem() + expired.certificate_pem() + renewed.certificate_pem()

    assert verifier.verify(ClientCertificate(pem), NOW).id == "heidi"


def test_an_expired_duplicate_intermediate_does_not_hide_the_real_reason(pki, verifier):
    renewed = intermediate_ca(pki.root, "Rolling CA")
    expired = issue_certificate(
        "Rolling CA",
        issuer=pki.root,
        is_ca=True,
        path_length=0,
        not_before=NOW - timedelta(days=400),
        not_after=NOW - timedelta(days=1),
        private_key=renewed.private_key,
    )
    server_only = client_certificate(renewed, "olivia", extended_key_usages=(SERVER_AUTH,))
    pem = server_only.certificate_pem() + expired.certificate_pem() + renewed.certificate_pem()

    error = refused(verifier, pem)

    assert error.code == errors.CERTIFICATE_USAGE


# --- usage ---------------------------------------------------------------------------------------


def test_a_server_only_certificate_cannot_authenticate_a_client(pki, verifier):
    error = refused(verifier, pki.server_only.chain_pem())

    assert error.code == errors.CERTIFICATE_USAGE
    assert error.message == (
        "client certificate extended key usage does not include clientAuth (it has serverAuth)"
    )


def test_a_tls_server_certificate_cannot_authenticate_a_client(pki, verifier):
    assert refused(verifier, pki.server.chain_pem()).code == errors.CERTIFICATE_USAGE


def test_any_extended_key_usage_is_not_enough(pki, verifier):
    any_usage = client_certificate(
        pki.root, "ivan", extended_key_usages=(x509.ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,)
    )

    error = refused(verifier, any_usage.chain_pem())

    assert error.code == errors.CERTIFICATE_USAGE
    assert "(it has anyExtendedKeyUsage)" in error.message


def key_usage(*, digital_signature: bool, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def test_a_key_usage_without_digital_signature_cannot_authenticate_a_client(pki, verifier):
    no_signing = client_certificate(pki.root, "judy", key_usage=key_usage(digital_signature=False))

    error = refused(verifier, no_signing.chain_pem())

    assert error.code == errors.CERTIFICATE_USAGE
    assert error.message == "client certificate key usage does not include digitalSignature"


def test_a_leaf_with_key_cert_sign_is_refused(pki, verifier):
    signer = client_certificate(
        pki.root, "ken", key_usage=key_usage(digital_signature=True, key_cert_sign=True)
    )

    error = refused(verifier, signer.chain_pem())

    assert error.code == errors.CERTIFICATE_USAGE
    assert "keyCertSign" in error.message


def test_a_ca_certificate_cannot_be_a_client_certificate(pki, verifier):
    error = refused(verifier, pki.intermediate.chain_pem())

    assert error.code == errors.CERTIFICATE_USAGE
    assert error.message == "a CA certificate cannot be used as a client certificate"


def test_an_intermediate_restricted_to_server_auth_cannot_issue_client_certificates(pki, verifier):
    servers_only_ca = intermediate_ca(pki.root, "Servers CA", extended_key_usages=(SERVER_AUTH,))
    leaf = client_certificate(servers_only_ca, "leo")

    error = refused(verifier, leaf.chain_pem())

    assert error.code == errors.CERTIFICATE_USAGE
    assert error.message == (
        "CA certificate `CN=Servers CA` in the chain does not allow clientAuth "
        "(its extended key usage has serverAuth)"
    )


def test_an_intermediate_that_allows_client_auth_may_issue_client_certificates(pki, verifier):
    clients_ca = intermediate_ca(pki.root, "Clients CA", extended_key_usages=(CLIENT_AUTH,))
    leaf = client_certificate(clients_ca, "mia")

    assert verifier.verify(ClientCertificate(leaf.chain_pem()), NOW).id == "mia"


def build(
    issuer: IssuedCertificate, cn: str, extensions: list[tuple[x509.ExtensionType, bool]]
) -> x509.Certificate:
    """A leaf with exactly these (extension, critical) pairs, for shapes issue_certificate
    does not make."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer.certificate.subject)
        .public_key(pki_key().public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.private_key.public_key()),
            critical=False,
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer.private_key, hashes.SHA256())


def pki_key() -> ec.EllipticCurvePrivateKey:
    return standard_pki().client.private_key


def pem_of(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def test_a_critical_extended_key_usage_is_a_usage_problem(pki, verifier):
    # The CA/B profile wants extendedKeyUsage non-critical; pdp cannot name a finer reason.
    critical = build(pki.root, "pat", [(x509.ExtendedKeyUsage([CLIENT_AUTH]), True)])

    error = refused(verifier, pem_of(critical))

    assert error.code == errors.CERTIFICATE_USAGE
    assert error.message == "client certificate may not be used for client authentication"


def test_a_control_character_in_a_name_is_shown_escaped(pki, verifier):
    odd_root = root_ca("Evil\nCA\x1b[31m")
    leaf = client_certificate(odd_root, "quinn")

    error = refused(verifier, leaf.chain_pem())

    assert error.code == errors.UNTRUSTED
    assert error.message == (
        "client certificate (issuer `CN=Evil\\u000aCA\\u001b[31m`) does not chain to a trusted CA"
    )


# --- malformed -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("", "client certificate is empty"),
        ("  \n\t", "client certificate is empty"),
        ("garbage", "client certificate is not a PEM certificate chain"),
        (
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "client certificate is not a PEM certificate chain",
        ),
        (
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
            "client certificate is not a PEM certificate chain",
        ),
        ("é" * 10, "client certificate is not PEM text"),
        (b"bytes are not text", "client certificate is not PEM text"),
        (None, "client certificate is not PEM text"),
    ],
)
def test_garbage_is_malformed(verifier, pem, message):
    error = refused(verifier, pem)

    assert error.code == errors.MALFORMED
    assert error.message == message


def test_a_truncated_certificate_is_malformed(pki, verifier):
    pem = pki.client.certificate_pem()
    lines = pem.splitlines()
    truncated = "\n".join([*lines[:4], lines[-1]]) + "\n"

    error = refused(verifier, truncated)

    assert error.code == errors.MALFORMED


def test_a_pem_longer_than_the_cap_is_refused_before_parsing(pki, verifier):
    pem = pki.client.chain_pem()
    padded = pem + "#" * (MAX_PEM_BYTES - len(pem) + 1)

    error = refused(verifier, padded)

    assert error.code == errors.MALFORMED
    assert error.message == f"client certificate is longer than the limit of {MAX_PEM_BYTES} bytes"


def test_a_pem_at_the_cap_is_parsed(pki, verifier):
    pem = pki.client.chain_pem()
    padded = pem + "#" * (MAX_PEM_BYTES - len(pem))  # text after the last block is ignored

    assert verifier.verify(ClientCertificate(padded), NOW).id.endswith("alice")


def test_a_chain_longer_than_the_cap_is_malformed(pki, verifier):
    pem = pki.client.chain_pem() + pki.intermediate.certificate_pem() * MAX_CHAIN_CERTIFICATES

    error = refused(verifier, pem)

    assert error.code == errors.MALFORMED
    assert error.message == (
        f"client certificate chain has {MAX_CHAIN_CERTIFICATES + 1} certificates; "
        f"at most {MAX_CHAIN_CERTIFICATES} are accepted"
    )


def test_a_private_key_sent_along_is_refused_and_not_repeated(pki, verifier):
    pem = pki.client.private_key_pem().decode() + pki.client.chain_pem()

    error = refused(verifier, pem)

    assert error.code == errors.MALFORMED
    assert error.message == "client certificate contains a private key; send certificates only"
    for line in pem_body_lines(pki.client):
        assert line not in error.message


def duplicate_extension_certificate(pki: StandardPki) -> bytes:
    """DER of a certificate with two subjectKeyIdentifier extensions (its signature no longer
    matches; parsing fails first)."""
    key = pki.client.private_key.public_key()
    placeholder = x509.UnrecognizedExtension(
        x509.ObjectIdentifier("2.5.29.99"),
        x509.SubjectKeyIdentifier.from_public_key(key).public_bytes(),
    )
    certificate = build(
        pki.root,
        "rita",
        [(x509.SubjectKeyIdentifier.from_public_key(key), False), (placeholder, False)],
    )
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert der.count(b"\x06\x03\x55\x1d\x63") == 1
    return der.replace(b"\x06\x03\x55\x1d\x63", b"\x06\x03\x55\x1d\x0e")


def test_a_certificate_with_duplicate_extensions_is_malformed(pki, verifier):
    der = duplicate_extension_certificate(pki)
    pem = pem_of(x509.load_der_x509_certificate(der))

    error = refused(verifier, pem)

    assert error.code == errors.MALFORMED
    assert error.message == "client certificate chain has a certificate with malformed extensions"
    with pytest.raises(AuthenticationError) as caught:
        identity(der)
    assert caught.value.code == errors.MALFORMED


def test_a_chain_of_look_alike_cas_signed_by_one_key_is_untrusted(pki, verifier):
    # Seven CAs with one name and one key all sign each other: many paths, none to a trusted CA.
    key = root_ca("Loop CA").private_key
    loop = [
        issue_certificate(
            "Loop CA",
            is_ca=True,
            not_before=NOW - timedelta(days=1 + number),
            not_after=NOW + timedelta(days=1),
            private_key=key,
        )
        for number in range(MAX_CHAIN_CERTIFICATES - 1)
    ]
    leaf = client_certificate(loop[0], "sam")
    pem = leaf.certificate_pem() + "".join(ca.certificate_pem() for ca in loop)

    error = refused(verifier, pem)

    assert error.code == errors.UNTRUSTED


def test_a_naive_now_fails_closed(pki, verifier, caplog):
    with caplog.at_level(logging.ERROR, logger="pdp.identity"):
        error = refused(verifier, pki.client.chain_pem(), NOW.replace(tzinfo=None))

    assert error.code == errors.INVALID
    assert "timezone-aware" in caplog.text


def test_no_message_or_log_line_carries_the_pem(pki, verifier, caplog):
    cases = [pki.untrusted_client, pki.expired_client, pki.server_only]
    pems = [case.chain_pem() for case in cases]
    cases.append(pki.client_via_intermediate)
    pems.append(pki.client_via_intermediate.certificate_pem())  # the intermediate left out
    with caplog.at_level(logging.DEBUG, logger="pdp.identity"):
        messages = [refused(verifier, pem).message for pem in pems]
    for line in pem_body_lines(*cases):
        assert line not in caplog.text
        assert all(line not in message for message in messages)


# --- the CA file ---------------------------------------------------------------------------------


def test_a_replaced_ca_file_is_trusted_and_the_old_ca_no_longer(pki, tmp_path):
    ca_file = write_pem(tmp_path / "ca.pem", pki.root)
    clock = FakeClock()
    verifier = CertificateVerifier(ca_file, clock=clock)
    assert verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW)

    # A real replacement, as deploy tools do it: write a new file, rename it over the old one.
    replacement = write_pem(tmp_path / "ca.pem.new", pki.untrusted_root)
    os.replace(replacement, ca_file)

    # Within the same second the file is not looked at again.
    clock.now += 0.5
    assert verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW)
    assert verifier.reloads == 0

    clock.now += 0.5
    assert verifier.verify(ClientCertificate(pki.untrusted_client.chain_pem()), NOW).id == "mallory"
    assert refused(verifier, pki.client.chain_pem()).code == errors.UNTRUSTED
    assert verifier.reloads == 1


def test_a_ca_file_rewritten_in_place_is_reloaded(pki, tmp_path):
    ca_file = write_pem(tmp_path / "ca.pem", pki.root)
    clock = FakeClock()
    verifier = CertificateVerifier(ca_file, clock=clock)

    with ca_file.open("a", encoding="ascii") as handle:  # same inode, more CAs
        handle.write(pki.untrusted_root.certificate_pem())
    clock.now += 1

    assert verifier.verify(ClientCertificate(pki.untrusted_client.chain_pem()), NOW)
    assert verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW)


def test_an_unchanged_ca_file_is_not_read_again(pki, ca_file):
    clock = FakeClock()
    verifier = CertificateVerifier(ca_file, clock=clock)

    for _ in range(3):
        clock.now += 5
        verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW)

    assert verifier.reloads == 0


def test_a_broken_ca_file_after_start_refuses_everything_until_fixed(pki, tmp_path, caplog):
    ca_file = write_pem(tmp_path / "ca.pem", pki.root)
    clock = FakeClock()
    verifier = CertificateVerifier(ca_file, clock=clock)

    ca_file.write_text("not a certificate\n")
    clock.now += 1
    with caplog.at_level(logging.ERROR, logger="pdp.identity"):
        error = refused(verifier, pki.client.chain_pem())
    assert error.code == errors.UNTRUSTED
    assert error.message == "client certificates cannot be verified: the CA file is unusable"
    assert "client CA file unusable" in caplog.text

    ca_file.unlink()
    clock.now += 1
    assert refused(verifier, pki.client.chain_pem()).code == errors.UNTRUSTED

    write_pem(ca_file, pki.root)
    clock.now += 1
    assert verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW)


def test_a_missing_or_empty_ca_file_is_refused_at_start(tmp_path):
    with pytest.raises(CertificateStoreError, match=r"ca\.pem: cannot read"):
        CertificateVerifier(tmp_path / "ca.pem")
    (tmp_path / "empty.pem").write_text("")
    with pytest.raises(CertificateStoreError, match=r"empty\.pem: no PEM certificate in it"):
        CertificateVerifier(tmp_path / "empty.pem")


def test_a_ca_bundle_trusts_each_of_its_cas(pki, tmp_path):
    verifier = CertificateVerifier(write_pem(tmp_path / "ca.pem", pki.root, pki.untrusted_root))

    assert verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW)
    assert verifier.verify(ClientCertificate(pki.untrusted_client.chain_pem()), NOW)


def test_verifications_from_many_threads_during_reloads_agree(pki, tmp_path):
    ca_file = write_pem(tmp_path / "ca.pem", pki.root)
    clock = FakeClock()
    verifier = CertificateVerifier(ca_file, clock=clock)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(20):
                clock.now += 1
                verifier.verify(ClientCertificate(pki.client.chain_pem()), NOW)
        except BaseException as error:  # collected, asserted below
            failures.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(10):
        write_pem(tmp_path / "next.pem", pki.root, pki.untrusted_root)
        os.replace(tmp_path / "next.pem", ca_file)
    for thread in threads:
        thread.join()

    assert failures == []


# --- the cache -----------------------------------------------------------------------------------


def test_a_chain_verified_before_is_answered_from_the_cache(pki, verifier):
    credential = ClientCertificate(pki.client.chain_pem())

    first = verifier.verify(credential, NOW)
    second = verifier.verify(credential, NOW + timedelta(minutes=5))

    assert second == first
    assert verifier.cache_hits == 1


def test_a_cached_chain_is_checked_against_the_validity_of_every_certificate(pki, verifier):
    short_intermediate = intermediate_ca(pki.root, "Short CA", not_after=NOW + timedelta(days=2))
    leaf = client_certificate(short_intermediate, "tina", not_after=NOW + timedelta(days=20))
    credential = ClientCertificate(leaf.chain_pem())
    assert verifier.verify(credential, NOW).id == "tina"

    error = refused(verifier, credential.pem, NOW + timedelta(days=3))

    assert error.code == errors.CERTIFICATE_EXPIRED
    assert error.message.startswith("CA certificate `CN=Short CA` in the chain expired at ")
    assert verifier.cache_hits == 0


def test_a_refused_chain_is_not_cached(pki, verifier):
    for _ in range(2):
        assert refused(verifier, pki.server_only.chain_pem()).code == errors.CERTIFICATE_USAGE

    assert verifier.cache_hits == 0


def test_identity_returns_a_fresh_copy_each_time(pki):
    pem = pki.client_via_intermediate.certificate_pem().encode()
    first = identity(pem)
    first["dns"].append("evil.example.org")
    first["cn"] = "mallory"

    again = identity(pem)

    assert again["dns"] == ["bob.example.org"]
    assert again["cn"] == "bob"


# --- identity() ----------------------------------------------------------------------------------


def test_identity_leaves_spiffe_id_out_when_there_are_two_spiffe_uris(pki):
    two = client_certificate(pki.root, "nick", uris=(spiffe("a"), spiffe("b")))

    claims = identity(two.certificate_pem())

    assert claims["uri"] == ["spiffe://example.org/a", "spiffe://example.org/b"]
    assert "spiffe_id" not in claims
    assert claims["cn"] == "nick"


def test_identity_leaves_spiffe_id_out_next_to_another_uri(pki):
    # gRPC's rule for peer_spiffe_id (and the SPIFFE X509-SVID spec): exactly one URI SAN.
    mixed = client_certificate(pki.root, "olga", uris=(spiffe("olga"), "https://example.org/o"))

    assert "spiffe_id" not in identity(mixed.certificate_pem())


def test_identity_of_pem_text_pem_bytes_and_der_agree(pki):
    certificate = pki.client_via_intermediate
    from_text = identity(certificate.chain_pem())  # a chain: the first certificate counts
    from_bytes = identity(certificate.certificate_pem().encode())
    from_der = identity(certificate.certificate_der())
    from_object = identity(certificate.certificate)

    assert from_text == from_bytes == from_der == from_object
    assert from_text == {
        "cn": "bob",
        "dns": ["bob.example.org"],
        "uri": ["https://example.org/bob"],
        "fingerprint": sha256_hex(certificate),
        "serial": format(certificate.certificate.serial_number, "x"),
        "issuer": "CN=Test Intermediate CA",
        "subject": "CN=bob",
        "not_after": certificate.certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_identity_of_a_server_certificate_has_no_ip_field_and_its_dns_names(pki):
    claims = identity(pki.server.certificate_pem())

    assert claims["dns"] == ["localhost"]
    assert set(claims) == {"cn", "dns", "fingerprint", "serial", "issuer", "subject", "not_after"}


def test_identity_leaves_cn_out_when_the_subject_has_two(pki):
    subject = x509.Name(
        [
            x509.NameAttribute(x509.NameOID.COMMON_NAME, "first"),
            x509.NameAttribute(x509.NameOID.COMMON_NAME, "second"),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(pki.root.certificate.subject)
        .public_key(pki.client.private_key.public_key())
        .serial_number(12345)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
    )
    certificate = builder.sign(pki.root.private_key, hashes.SHA256())

    claims = identity(certificate)

    assert "cn" not in claims
    assert claims["subject"] == "CN=second,CN=first"  # RFC 4514 order: last RDN first
    assert claims["serial"] == "3039"


@pytest.mark.parametrize("data", [b"", b"garbage", "garbage", "-----BEGIN CERTIFICATE-----\n"])
def test_identity_of_garbage_is_malformed(data):
    with pytest.raises(AuthenticationError) as caught:
        identity(data)
    assert caught.value.code == errors.MALFORMED


@pytest.mark.parametrize(
    ("uri", "valid"),
    [
        ("spiffe://example.org/workload", True),
        ("spiffe://example.org/ns/default/sa/api", True),
        ("spiffe://example.org", False),  # no workload path
        ("spiffe://example.org/", False),  # empty workload path
        ("spiffe:///workload", False),  # empty trust domain
        ("SPIFFE://example.org/workload", False),  # gRPC compares the scheme exactly
        ("https://example.org/workload", False),
        ("spiffe://" + "d" * 256 + "/w", False),  # trust domain over 255 characters
        ("spiffe://example.org/" + "w" * 2100, False),  # over 2048 bytes
    ],
)
def test_is_spiffe_id_follows_grpc(uri, valid):
    assert is_spiffe_id(uri) is valid


# --- the development PKI -------------------------------------------------------------------------


def test_the_dev_pki_is_complete_and_its_keys_are_private(tmp_path):
    pki = write_dev_pki(tmp_path / "dev", now=NOW)

    for name in FILES:
        assert pki.path(name).is_file(), name
    for name in ("ca_key", "server_key", "reports_key", "orders_key", "sensor-7_key"):
        assert stat.S_IMODE(pki.path(name).stat().st_mode) == 0o600, name
    server = x509.load_pem_x509_certificate(pki.path("server").read_bytes())
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}


def test_dev_client_certificates_verify_against_the_dev_ca(tmp_path):
    pki = write_dev_pki(tmp_path / "dev", now=NOW)
    verifier = CertificateVerifier(pki.path("ca"))

    subjects = {
        name: verifier.verify(ClientCertificate(pki.path(name).read_text()), NOW)
        for name in DEV_CLIENTS
    }
    server = refused(verifier, pki.path("server").read_text())

    assert {name: subject.id for name, subject in subjects.items()} == {
        "reports": "spiffe://example.test/reports",
        "orders": "spiffe://example.test/orders",
        "sensor-7": "spiffe://example.test/device/sensor-7",
    }
    assert subjects["reports"].attributes["cn"] == "reports"
    assert server.code == errors.CERTIFICATE_USAGE


def test_ensure_dev_pki_keeps_a_valid_one_and_replaces_an_expiring_one(tmp_path):
    directory = tmp_path / "dev"
    made, created = ensure_dev_pki(directory, now=NOW)
    kept, created_again = ensure_dev_pki(directory, now=NOW + timedelta(days=30))
    renewed, renewed_created = ensure_dev_pki(directory, now=NOW + timedelta(days=365))

    assert created and not created_again and renewed_created
    assert kept.ca.certificate == made.ca.certificate
    assert renewed.ca.certificate != made.ca.certificate


def test_ensure_dev_pki_remakes_a_damaged_one(tmp_path):
    directory = tmp_path / "dev"
    made, _ = ensure_dev_pki(directory, now=NOW)
    (directory / FILES["orders_key"]).write_text("damaged")

    remade, created = ensure_dev_pki(directory, now=NOW)

    assert created
    assert remade.ca.certificate != made.ca.certificate


def mutual_tls_handshake(
    ca: Path, server_chain: Path, server_key: Path, client_chain: Path, client_key: Path
) -> bytes:
    """A real TLS 1.3 handshake (Python's ssl, OpenSSL) over a socket pair, each side checking
    the other against `ca`; the client checks the server's name `localhost`. Returns the DER of
    the client certificate the server saw."""
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(server_chain, server_key)
    server_context.load_verify_locations(ca)
    server_context.verify_mode = ssl.CERT_REQUIRED
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.load_cert_chain(client_chain, client_key)
    client_context.load_verify_locations(ca)

    server_socket, client_socket = socket.socketpair()
    for end in (server_socket, client_socket):
        end.settimeout(10)  # a failed handshake on one side must not hang the other
    peer: list[bytes] = []
    failures: list[BaseException] = []

    def serve() -> None:
        try:
            with server_context.wrap_socket(server_socket, server_side=True) as tls:
                der = tls.getpeercert(binary_form=True)
                assert der is not None
                peer.append(der)
                tls.sendall(b"ok")
        except BaseException as error:  # asserted below
            failures.append(error)
            server_socket.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_context.wrap_socket(client_socket, server_hostname="localhost") as tls:
            assert tls.recv(2) == b"ok"
    finally:
        thread.join()
    assert failures == []
    return peer[0]


def test_the_dev_pki_completes_a_real_mutual_tls_handshake(tmp_path):
    pki = write_dev_pki(tmp_path / "dev")  # the real clock: OpenSSL checks dates against it

    der = mutual_tls_handshake(
        pki.path("ca"),
        pki.path("server"),
        pki.path("server_key"),
        pki.path("reports"),
        pki.path("reports_key"),
    )

    claims = identity(der)
    assert claims["spiffe_id"] == "spiffe://example.test/reports"
    assert claims["cn"] == "reports"
    assert datetime.fromisoformat(claims["not_after"]) > datetime.now(UTC)


def test_the_test_tls_files_complete_a_real_mutual_tls_handshake(tmp_path):
    files = write_tls_files(tmp_path / "tls", now=datetime.now(UTC))

    der = mutual_tls_handshake(
        files.ca, files.server_chain, files.server_key, files.client_chain, files.client_key
    )

    assert identity(der)["spiffe_id"] == "spiffe://example.org/alice"

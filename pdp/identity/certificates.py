"""X.509 client certificates: who a certificate names, and whether a forwarded chain is trusted.

Two uses:

1. `identity(certificate)` reads what policies see of a certificate (subject.* for a forwarded
   end-client certificate, caller.* for the peer of pdp's own mutual-TLS server, whose transport
   has already verified it): cn, dns, uri, spiffe_id, fingerprint, serial, issuer, subject,
   not_after.
2. `CertificateVerifier.verify(ClientCertificate, now)` verifies a forwarded PEM chain (leaf
   first) against the CAs of a PEM bundle and returns the Subject, or raises AuthenticationError.

Verification is done by `cryptography.x509.verification` (client verifiers since 43, custom
extension policies since 45; pyproject.toml asks for >= 43, so it needs raising to >= 45; the
venv has 50; the API is documented as not yet stable, so the tests pin the behaviour relied on):
chain building, signatures, validity of every certificate at `now`, basicConstraints / keyUsage
on CAs, path length, name constraints and the clientAuth extended key usage. Its profile is the
CA/Browser Forum one: X.509 v3, RSA >= 2048 bits or ECDSA P-256/384/521 with SHA-2 (no Ed25519,
no SHA-1), an authority key identifier on the leaf. pdp changes two things in the leaf's profile:

- a subjectAltName is optional (the library requires one from client certificates; many client
  certificates only have a CN, which pdp can use as the subject);
- a keyUsage, when present, must include digitalSignature (what a TLS client signs with) and
  must not include keyCertSign (the library's own rule, kept).

An extendedKeyUsage, when present, must list clientAuth (anyExtendedKeyUsage is not enough); a
leaf without one is accepted, as RFC 5280 and the library allow.

Only the library decides whether a chain is accepted. When it refuses one, its error says little
("candidates exhausted: cert is not valid at validation time" does not say which certificate),
so pdp looks at the certificates itself to choose the reason, in this order:

1. authn.untrusted when no chain of issuer names and signatures leads from the leaf to a
   configured CA (time and extensions ignored), so an expired certificate from an unknown CA is
   reported as untrusted;
2. authn.certificate_expired when the leaf, or a CA on that chain, is not valid at `now` (the
   message says which and when);
3. authn.certificate_usage when the leaf is a CA certificate, or when the library accepts the
   chain once keyUsage / extendedKeyUsage checks are lifted (the message names the extension);
4. authn.untrusted otherwise, with the library's reason (path length, name constraints, a
   forbidden algorithm, ...).

What stays ambiguous: when several chains are possible, pdp reports the first problem of one of
them (preferring a chain whose certificates are all within their validity), which may not be the
one the library tried last; and a chain refused for two reasons at once (say a CA both expired
and restricted to serverAuth) is reported by the first in the order above.

The CA bundle is re-read when its file changes (modification time, size or inode, checked at
most once a second), so CAs are added and removed without a restart. A CA file that cannot be
read or holds no certificate at start raises CertificateStoreError; after start it makes every
verification fail (authn.untrusted) until the file is fixed: a CA removed from the file must not
stay trusted because the new file has a typo. Both are logged.

Verified chains are cached (by SHA-256 of the PEM, bounded, least recently used out). A hit is
answered only for the same CA set and while every certificate of the verified chain is valid at
`now`: the library's answer depends on nothing else. Refusals are not cached. identity() results
are cached by input bytes (the mTLS server asks about the same few peers on every call).

SECURITY: messages never contain the PEM or any part of it; names from certificates are shown
printable and shortened. Unexpected exceptions become authn.invalid, with the type only in the
log.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from pdp.engine.values import InputError, from_json
from pdp.identity.credentials import ClientCertificate
from pdp.identity.errors import (
    CERTIFICATE_EXPIRED,
    CERTIFICATE_USAGE,
    INVALID,
    MALFORMED,
    UNTRUSTED,
    AuthenticationError,
    fail_closed,
)
from pdp.identity.jwks import shown
from pdp.identity.subject import Subject

_log = logging.getLogger("pdp.identity")

MAX_PEM_BYTES = 64 * 1024
"""Longer forwarded chains are refused before parsing."""
MAX_CHAIN_CERTIFICATES = 8
"""Most certificates in a forwarded chain (the leaf and its intermediates)."""
MAX_CHAIN_DEPTH = MAX_CHAIN_CERTIFICATES - 1
"""Most intermediate CAs between a leaf and a configured CA."""
CACHE_SIZE = 4096
"""Verified chains remembered (LRU), by SHA-256 of the PEM."""
IDENTITY_CACHE_SIZE = 1024
"""identity() results remembered (LRU), by the exact input bytes."""
RELOAD_INTERVAL_SECONDS = 1.0
"""The CA file is checked for changes at most this often."""
MAX_SPIFFE_ID_BYTES = 2048
MAX_NAME_SHOWN = 128
_DIAGNOSIS_SIGNATURE_BUDGET = 64
"""Signature checks pdp may spend looking for a chain to explain a refusal (hostile chains with
many look-alike names must not cost more)."""

_EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
    ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
    ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
    ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage",
}


class CertificateStoreError(ValueError):
    """The CA file cannot be used (unreadable, or no certificate in it). Names the file."""


# --- identity ------------------------------------------------------------------------------------


def identity(pem_or_der_certificate: str | bytes | x509.Certificate) -> dict[str, Any]:
    """What a certificate says about its holder, as JSON values; absent fields are left out.

    Accepts PEM (text or bytes; the first certificate of a chain is used), DER bytes, or a parsed
    certificate. Keys: `cn` (only when the subject has exactly one CN), `dns` and `uri` (subject
    alternative names, in certificate order), `spiffe_id` (only when the certificate has exactly
    one URI SAN and it is a SPIFFE ID: the rule gRPC applies for peer_spiffe_id), `fingerprint`
    (SHA-256 of the DER, lower-case hex), `serial` (lower-case hex), `issuer` and `subject`
    (RFC 4514 strings; `subject` left out when empty), `not_after` (RFC 3339, UTC).

    Raises AuthenticationError(authn.malformed) when the input is not a certificate. It does not
    verify anything: use it on certificates a verifier or the TLS transport has accepted.
    """
    if isinstance(pem_or_der_certificate, x509.Certificate):
        return _identity_or_malformed(pem_or_der_certificate)
    if isinstance(pem_or_der_certificate, str):
        if not pem_or_der_certificate.isascii():
            raise AuthenticationError(MALFORMED, "certificate is not PEM text")
        pem_or_der_certificate = pem_or_der_certificate.encode("ascii")
    if not isinstance(pem_or_der_certificate, bytes):
        raise AuthenticationError(MALFORMED, "certificate must be PEM text or DER bytes")
    # A fresh copy each time: callers may change what they get.
    return {
        name: list(value) if isinstance(value, list) else value
        for name, value in _cached_identity(pem_or_der_certificate).items()
    }


@functools.lru_cache(maxsize=IDENTITY_CACHE_SIZE)
def _cached_identity(data: bytes) -> dict[str, Any]:
    # The mTLS server asks for the same few peers' identities on every call.
    return _identity_or_malformed(_load_one(data))


def _identity_or_malformed(certificate: x509.Certificate) -> dict[str, Any]:
    try:
        return _identity(certificate)
    except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
        raise AuthenticationError(MALFORMED, "certificate has malformed extensions") from None


def _load_one(data: bytes) -> x509.Certificate:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificates(data)[0]
        return x509.load_der_x509_certificate(data)
    except ValueError:
        raise AuthenticationError(MALFORMED, "certificate cannot be parsed") from None


def _identity(certificate: x509.Certificate) -> dict[str, Any]:
    result: dict[str, Any] = {}
    common_names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    # Two CNs are ambiguous (some libraries read the first, others the last): use neither.
    if len(common_names) == 1 and isinstance(common_names[0].value, str):
        result["cn"] = common_names[0].value
    try:
        alternative_names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value
    except x509.ExtensionNotFound:
        alternative_names = None
    if alternative_names is not None:
        dns = alternative_names.get_values_for_type(x509.DNSName)
        uris = alternative_names.get_values_for_type(x509.UniformResourceIdentifier)
        if dns:
            result["dns"] = dns
        if uris:
            result["uri"] = uris
        if len(uris) == 1 and is_spiffe_id(uris[0]):
            result["spiffe_id"] = uris[0]
    der = certificate.public_bytes(serialization.Encoding.DER)
    result["fingerprint"] = hashlib.sha256(der).hexdigest()
    result["serial"] = format(certificate.serial_number, "x")
    result["issuer"] = certificate.issuer.rfc4514_string()
    subject = certificate.subject.rfc4514_string()
    if subject:
        result["subject"] = subject
    result["not_after"] = _rfc3339(certificate.not_valid_after_utc)
    return result


def is_spiffe_id(uri: str) -> bool:
    """gRPC's test for a SPIFFE ID (src/core/lib/security/security_connector/ssl_utils.cc):
    `spiffe://`, at most 2048 bytes, a trust domain of at most 255 characters and a non-empty
    first path segment. pdp also requires a non-empty trust domain."""
    if not uri.startswith("spiffe://") or len(uri.encode("utf-8")) > MAX_SPIFFE_ID_BYTES:
        return False
    parts = uri.split("/")
    return len(parts) >= 4 and 0 < len(parts[2]) <= 255 and parts[3] != ""


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the trust store -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TrustStore:
    store: Store | None
    """None when the CA file became unusable after start: every verification fails."""
    anchors: dict[x509.Name, list[x509.Certificate]]
    """The configured CAs by subject, to explain refusals."""
    signature: tuple[int, int, int] | None
    """(mtime_ns, size, inode) of the file this was read from."""


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size, status.st_ino)


def _read_trust_store(path: Path) -> _TrustStore:
    """The CAs of a PEM bundle. Raises CertificateStoreError."""
    signature = _file_signature(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CertificateStoreError(
            f"{path}: cannot read: {error.strerror or type(error).__name__}"
        ) from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertificateStoreError(f"{path}: no PEM certificate in it") from None
    anchors: dict[x509.Name, list[x509.Certificate]] = {}
    for certificate in certificates:
        anchors.setdefault(certificate.subject, []).append(certificate)
    return _TrustStore(Store(certificates), anchors, signature)


@dataclass(frozen=True, slots=True)
class _Verified:
    subject: Subject
    trust: _TrustStore
    """The CAs it was verified against."""
    valid_from: datetime
    valid_until: datetime
    """When every certificate of the verified chain is valid."""


# --- the verifier --------------------------------------------------------------------------------


class CertificateVerifier:
    """Verifies forwarded client certificate chains against the CAs in `ca_file` (a PEM bundle),
    re-read when the file changes. Thread-safe.

    Raises CertificateStoreError when the file cannot be used at construction. `clock` (seconds,
    monotonic) decides when the file is checked again; tests inject one.
    """

    def __init__(self, ca_file: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self._ca_file = Path(ca_file)
        self._clock = clock
        self._lock = threading.Lock()
        self._trust = _read_trust_store(self._ca_file)
        self._checked_at = clock()
        self.reloads = 0
        """Times the CA file was read again after a change (for tests and metrics)."""
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()
        self.cache_hits = 0
        """Verifications answered from the cache (for tests and metrics)."""

    @property
    def ca_file(self) -> Path:
        return self._ca_file

    def verify(self, credential: ClientCertificate, now: datetime) -> Subject:
        """The subject the certificate chain vouches for at `now` (timezone-aware).

        Raises AuthenticationError, and nothing else.
        """
        return fail_closed("client certificate", lambda: self._verify(credential, now))

    def _verify(self, credential: ClientCertificate, now: datetime) -> Subject:
        if now.utcoffset() is None:
            # A naive `now` would be read as local time: fail closed, and say why in the log.
            _log.error("CertificateVerifier.verify needs a timezone-aware `now`")
            raise AuthenticationError(INVALID, "client certificate could not be verified")
        if not isinstance(credential, ClientCertificate):
            raise AuthenticationError(MALFORMED, "credential is not a client certificate")
        # The library works in whole seconds (it drops microseconds); so do the diagnostics.
        instant = now.astimezone(UTC).replace(microsecond=0)
        pem = _checked_text(credential.pem)
        trust = self._current_trust()
        if trust.store is None:
            raise AuthenticationError(
                UNTRUSTED, "client certificates cannot be verified: the CA file is unusable"
            )
        digest = hashlib.sha256(pem.encode("ascii")).digest()
        cached = self._cached(digest, trust, instant)
        if cached is not None:
            return cached
        leaf, intermediates = _parse_chain(pem)
        try:
            verified = _verifier(trust.store, instant, strict=True).verify(leaf, intermediates)
        except VerificationError as error:
            code, message = _diagnose(
                leaf,
                intermediates,
                store=trust.store,
                anchors=trust.anchors,
                instant=instant,
                library_reason=str(error),
            )
            raise AuthenticationError(code, message) from None
        subject = _subject(leaf)
        self._remember(
            digest,
            _Verified(
                subject,
                trust,
                valid_from=max(c.not_valid_before_utc for c in verified.chain),
                valid_until=min(c.not_valid_after_utc for c in verified.chain),
            ),
        )
        return subject

    # --- cache -----------------------------------------------------------------------------------

    def _cached(self, digest: bytes, trust: _TrustStore, instant: datetime) -> Subject | None:
        """A chain verified before, against the same CAs, whose certificates are all valid at
        `instant`: the library's answer depends on nothing else, so it would accept it again."""
        with self._lock:
            entry = self._cache.get(digest)
            if entry is None:
                return None
            if entry.trust is not trust:
                del self._cache[digest]  # the CA file changed: verify again
                return None
            if not entry.valid_from <= instant <= entry.valid_until:
                return None  # verify again, for the exact reason
            self._cache.move_to_end(digest)
            self.cache_hits += 1
            return entry.subject

    def _remember(self, digest: bytes, verified: _Verified) -> None:
        with self._lock:
            self._cache[digest] = verified
            self._cache.move_to_end(digest)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)

    # --- reloading -------------------------------------------------------------------------------

    def _current_trust(self) -> _TrustStore:
        moment = self._clock()
        with self._lock:
            if moment - self._checked_at < RELOAD_INTERVAL_SECONDS:
                return self._trust
            self._checked_at = moment
            signature = _file_signature(self._ca_file)
            if signature is not None and signature == self._trust.signature:
                return self._trust
            try:
                self._trust = _read_trust_store(self._ca_file)
            except CertificateStoreError as error:
                # Fail closed: the old CAs may be exactly what the change meant to remove.
                _log.error("client CA file unusable, refusing client certificates: %s", error)
                self._trust = _TrustStore(None, {}, signature)
            else:
                _log.info("client CA file reloaded: %s", self._ca_file)
            self.reloads += 1
            return self._trust


# --- parsing -------------------------------------------------------------------------------------


def _checked_text(pem: object) -> str:
    if not isinstance(pem, str):
        raise AuthenticationError(MALFORMED, "client certificate is not PEM text")
    if len(pem) > MAX_PEM_BYTES:
        raise AuthenticationError(
            MALFORMED, f"client certificate is longer than the limit of {MAX_PEM_BYTES} bytes"
        )
    if not pem.strip():
        raise AuthenticationError(MALFORMED, "client certificate is empty")
    if not pem.isascii():
        raise AuthenticationError(MALFORMED, "client certificate is not PEM text")
    if "PRIVATE KEY-----" in pem:
        # The parser would skip it silently; a key sent to pdp is a key leaked, so say so.
        raise AuthenticationError(
            MALFORMED, "client certificate contains a private key; send certificates only"
        )
    return pem


def _parse_chain(pem: str) -> tuple[x509.Certificate, list[x509.Certificate]]:
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("ascii"))
    except ValueError:
        raise AuthenticationError(
            MALFORMED, "client certificate is not a PEM certificate chain"
        ) from None
    if len(certificates) > MAX_CHAIN_CERTIFICATES:
        raise AuthenticationError(
            MALFORMED,
            f"client certificate chain has {len(certificates)} certificates; "
            f"at most {MAX_CHAIN_CERTIFICATES} are accepted",
        )
    for certificate in certificates:
        try:
            certificate.extensions  # noqa: B018 - parsed lazily; malformed ones raise here
        except (ValueError, x509.DuplicateExtension):
            raise AuthenticationError(
                MALFORMED, "client certificate chain has a certificate with malformed extensions"
            ) from None
    return certificates[0], certificates[1:]


# --- the library's verifier ----------------------------------------------------------------------


def _leaf_key_usage(
    policy: Policy, certificate: x509.Certificate, usage: x509.KeyUsage | None
) -> None:
    """pdp's keyUsage rule for a client certificate (replaces the library's, which it keeps)."""
    del policy, certificate
    if usage is None:
        return
    if usage.key_cert_sign:
        raise ValueError("EE keyUsage must not assert keyCertSign")
    if not usage.digital_signature:
        raise ValueError("keyUsage does not include digitalSignature")


def _verifier(store: Store, instant: datetime, *, strict: bool) -> ClientVerifier:
    """A client verifier at `instant`. Not strict: keyUsage and extendedKeyUsage unchecked, to
    tell a usage problem from others. Policies are built anew each time: the library refuses to
    configure an extension twice on one policy object."""
    leaf_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
    )
    ca_policy = ExtensionPolicy.webpki_defaults_ca()
    if strict:
        leaf_policy = leaf_policy.may_be_present(
            x509.KeyUsage, Criticality.AGNOSTIC, _leaf_key_usage
        )
    else:
        leaf_policy = leaf_policy.may_be_present(
            x509.KeyUsage, Criticality.AGNOSTIC, None
        ).may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
        ca_policy = ca_policy.may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, None)
    return (
        PolicyBuilder()
        .store(store)
        .time(instant)
        .max_chain_depth(MAX_CHAIN_DEPTH)
        .extension_policies(ca_policy=ca_policy, ee_policy=leaf_policy)
        .build_client_verifier()
    )


# --- explaining a refusal ------------------------------------------------------------------------


def _diagnose(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    *,
    store: Store,
    anchors: dict[x509.Name, list[x509.Certificate]],
    instant: datetime,
    library_reason: str,
) -> tuple[str, str]:
    """The code and message for a chain the library refused (see the module docstring)."""
    path = _find_path(leaf, intermediates, anchors, instant)
    if path is None:
        issuer = shown(leaf.issuer.rfc4514_string(), MAX_NAME_SHOWN)
        return UNTRUSTED, f"client certificate (issuer `{issuer}`) does not chain to a trusted CA"
    for position, certificate in enumerate(path):
        problem = _validity_problem(certificate, instant)
        if problem is not None:
            if position == 0:
                return CERTIFICATE_EXPIRED, f"client certificate {problem}"
            name = shown(certificate.subject.rfc4514_string(), MAX_NAME_SHOWN)
            return CERTIFICATE_EXPIRED, f"CA certificate `{name}` in the chain {problem}"
    usage = _usage_problem(path)
    if usage is not None:
        return CERTIFICATE_USAGE, usage
    try:
        _verifier(store, instant, strict=False).verify(leaf, list(intermediates))
    except VerificationError:
        pass
    else:
        return CERTIFICATE_USAGE, "client certificate may not be used for client authentication"
    return UNTRUSTED, f"client certificate chain is not acceptable: {_plain(library_reason)}"


def _find_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: dict[x509.Name, list[x509.Certificate]],
    instant: datetime,
) -> list[x509.Certificate] | None:
    """A chain from the leaf to a configured CA by issuer names and signatures only, leaf first:
    one whose certificates are all valid at `instant` if there is one, else the first found.
    Only to explain a refusal: acceptance is the library's alone."""
    budget = [_DIAGNOSIS_SIGNATURE_BUDGET]
    first: list[list[x509.Certificate]] = []

    def issued_by(child: x509.Certificate, parent: x509.Certificate) -> bool:
        if budget[0] <= 0:
            return False
        budget[0] -= 1
        try:
            child.verify_directly_issued_by(parent)
        except Exception:  # InvalidSignature, ValueError, TypeError (unsupported key types)
            return False
        return True

    def walk(path: list[x509.Certificate]) -> list[x509.Certificate] | None:
        current = path[-1]
        if current in anchors.get(current.subject, ()):
            if all(_validity_problem(c, instant) is None for c in path):
                return path
            if not first:
                first.append(list(path))
            return None
        if len(path) > MAX_CHAIN_DEPTH + 1:
            return None
        candidates = [
            *anchors.get(current.issuer, ()),
            *(c for c in intermediates if c.subject == current.issuer),
        ]
        for candidate in candidates:
            if candidate in path or not issued_by(current, candidate):
                continue
            found = walk([*path, candidate])
            if found is not None:
                return found
        return None

    found = walk([leaf])
    if found is not None:
        return found
    return first[0] if first else None


def _validity_problem(certificate: x509.Certificate, instant: datetime) -> str | None:
    # Inclusive bounds, as in the library (and RFC 5280 4.1.2.5).
    if instant < certificate.not_valid_before_utc:
        return f"is not valid before {_rfc3339(certificate.not_valid_before_utc)}"
    if instant > certificate.not_valid_after_utc:
        return f"expired at {_rfc3339(certificate.not_valid_after_utc)}"
    return None


def _usage_problem(path: Sequence[x509.Certificate]) -> str | None:
    """Why the leaf (path[0]) or a CA above it may not be used for client authentication."""
    leaf = path[0]
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        return "a CA certificate cannot be used as a client certificate"
    usage = _extension(leaf, x509.KeyUsage)
    if usage is not None:
        if not usage.digital_signature:
            return "client certificate key usage does not include digitalSignature"
        if usage.key_cert_sign:
            return "client certificate key usage includes keyCertSign (a CA's usage)"
    extended = _extension(leaf, x509.ExtendedKeyUsage)
    if extended is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in extended:
        return (
            "client certificate extended key usage does not include clientAuth "
            f"(it has {_eku_names(extended)})"
        )
    for certificate in path[1:]:
        extended = _extension(certificate, x509.ExtendedKeyUsage)
        if extended is not None and not any(
            oid in extended
            for oid in (ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)
        ):
            name = shown(certificate.subject.rfc4514_string(), MAX_NAME_SHOWN)
            return (
                f"CA certificate `{name}` in the chain does not allow clientAuth "
                f"(its extended key usage has {_eku_names(extended)})"
            )
    return None


def _extension(certificate: x509.Certificate, kind: type[Any]) -> Any:
    try:
        return certificate.extensions.get_extension_for_class(kind).value
    except (x509.ExtensionNotFound, ValueError, x509.DuplicateExtension):
        return None


def _eku_names(extended: x509.ExtendedKeyUsage) -> str:
    names = [_EKU_NAMES.get(oid, oid.dotted_string) for oid in extended]
    return ", ".join(names) if names else "nothing"


def _plain(library_reason: str) -> str:
    """The library's reason without its prefixes and the certificate it names (the subject is
    already in pdp's own messages where it matters), with extension OIDs named and Rust debug
    output of algorithms cut to the algorithm's name; printable and shortened."""
    reason = library_reason.removeprefix("validation failed: ")
    reason = reason.removeprefix("candidates exhausted: ")
    reason = reason.split(" (encountered processing ", 1)[0]
    reason = _EXTENSION_OID.sub(
        lambda match: f"invalid {_EXTENSION_NAMES.get(match[1], match[1])} extension: ", reason
    )
    # "Forbidden public key algorithm: AlgorithmIdentifier { oid: ..., params: Ed25519 }"
    reason = _ALGORITHM_DEBUG.sub(lambda match: match[1], reason)
    return shown(reason, 160)


def _camel(constant: str) -> str:
    head, *rest = constant.lower().split("_")
    return head + "".join(word.capitalize() for word in rest)


_EXTENSION_NAMES = {
    value.dotted_string: _camel(name)
    for name, value in vars(ExtensionOID).items()
    if isinstance(value, x509.ObjectIdentifier)
}
_EXTENSION_OID = re.compile(r"invalid extension: ([0-9]+(?:\.[0-9]+)+): ")
_ALGORITHM_DEBUG = re.compile(r"AlgorithmIdentifier \{.*?params: ([A-Za-z0-9_]+).*\}")


# --- the subject ---------------------------------------------------------------------------------


def _subject(leaf: x509.Certificate) -> Subject:
    claims = identity(leaf)
    sub = claims.get("spiffe_id") or claims.get("cn") or claims["fingerprint"]
    issuer = claims["issuer"]
    try:
        attributes = from_json({**claims, "sub": sub, "auth": {"method": "mtls", "issuer": issuer}})
    except InputError as error:  # pragma: no cover - identity() gives strings and lists only
        raise AuthenticationError(
            MALFORMED, f"client certificate cannot be used: {error}"
        ) from None
    return Subject(
        attributes=attributes,
        method="mtls",
        id=sub,
        issuer=issuer,
        expires=leaf.not_valid_after_utc,
    )

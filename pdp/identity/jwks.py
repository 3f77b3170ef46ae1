"""The public keys of token issuers: JWKS files and URLs, parsed once into cryptography keys.

A `KeySet` holds the keys of one issuer, from its `jwks_file`, its `jwks_url` or both, and picks
the key for a token by `kid` and algorithm (`key_for`). Keys are parsed here with `cryptography`
(this module does not import jwt: pdp.identity.tokens is the only module that does), once per
load, so a verification costs a dictionary lookup.

What a JWKS may contain is strict, because a wrong key here is a forged token accepted later:
- symmetric (`oct`) keys are refused: with one, anyone who can read the JWKS can sign tokens;
- private keys (a JWK with `d`, or any other private member) are refused: they must not be
  published, and the message says so without repeating them;
- keys whose type does not fit the issuer's algorithm family (an EC key for an RS256 issuer),
  RSA keys under 2048 bits, EC points that are not on their curve, unknown curves, and a `kid`
  used twice are refused;
- keys marked for encryption (`use: "enc"`, or `key_ops` without "verify") are skipped: issuers
  such as Keycloak publish them beside their signing keys.
Refusing means a `JwksError` for a file (pdp does not start) and a failed fetch for a URL (the
keys from before stay in use, and the error is logged).

A JWKS URL is fetched when the KeySet is made and again when a token names an unknown `kid`, at
most once per `jwks_cooldown_seconds` and by one thread at a time, so tokens with made-up key
ids cannot make pdp hammer the issuer.

SECURITY: no message or log line here contains key material or the fetched document.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from pdp.config import ASYMMETRIC_FAMILIES, IssuerSettings
from pdp.identity.errors import ALGORITHM, UNKNOWN_KID, AuthenticationError

_log = logging.getLogger("pdp.identity")

MAX_JWKS_BYTES = 1024 * 1024
"""The largest JWKS document read from a file or a URL."""
MIN_RSA_BITS = 2048

VerifyingKey = (
    rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
)
"""What `KeySet.key_for` returns: a public key object that pyjwt accepts as it is."""

Fetch = Callable[[str, float], bytes]
"""Fetch a URL with a timeout in seconds and return the body (see `fetch_url`)."""

# Which signature algorithms each kind of key can verify.
_EC_CURVES: dict[str, tuple[type[ec.EllipticCurve], int, str]] = {
    # crv: (curve, coordinate bytes, the one algorithm that uses it)
    "P-256": (ec.SECP256R1, 32, "ES256"),
    "P-384": (ec.SECP384R1, 48, "ES384"),
    "P-521": (ec.SECP521R1, 66, "ES512"),
}
_OKP_CURVES = {"Ed25519": 32, "Ed448": 57}
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_FAMILY_NAMES = {"RSA": "RSA", "EC": "EC", "OKP": "OKP (Ed25519 or Ed448)"}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


FAILED_FETCH_RETRY = 10.0
"""Seconds before a failed JWKS fetch may be tried again (the cooldown, if shorter)."""


class JwksError(ValueError):
    """A JWKS that pdp refuses. The message names the source and the key, never key material."""


@dataclass(frozen=True, slots=True)
class PublicKey:
    """One verified-to-be-usable public key of a JWKS."""

    kid: str | None
    kty: str
    """"RSA", "EC" or "OKP"."""
    kind: str
    """For messages: "RSA", "EC P-256", "OKP Ed25519"."""
    alg: str | None
    """The JWK's own `alg`, if it states one: then it verifies only that algorithm."""
    algorithms: frozenset[str]
    """The signature algorithms this key can verify (its type, curve and own `alg` allow)."""
    key: VerifyingKey
    fingerprint: bytes
    """SHA-256 of the key's SubjectPublicKeyInfo: tells whether two entries are the same key."""

    def describe(self) -> str:
        return f"key `{self.kid}`" if self.kid is not None else "the key without a kid"


# --- parsing -------------------------------------------------------------------------------------


def parse_jwks(data: bytes, algorithms: Sequence[str], source: str) -> tuple[PublicKey, ...]:
    """The signing keys of a JWKS document, for an issuer that uses `algorithms`.

    `source` names the document in messages ("keys.json", "https://.../jwks"). Raises JwksError.
    """
    if len(data) > MAX_JWKS_BYTES:
        raise JwksError(f"{source}: larger than {MAX_JWKS_BYTES} bytes")
    try:
        document = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_unique_members,
            parse_constant=_no_constant,
        )
    except UnicodeDecodeError:
        raise JwksError(f"{source}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise JwksError(
            f"{source}: not JSON ({error.msg}, line {error.lineno} column {error.colno})"
        ) from None
    except (ValueError, RecursionError) as error:
        raise JwksError(f"{source}: not a usable JSON document ({_plain(error)})") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError(f'{source}: not a JWK Set (expected {{"keys": [...]}})')
    families = _families(algorithms)
    keys: list[PublicKey] = []
    seen_kids: set[str] = set()
    for number, item in enumerate(document["keys"]):
        key = _parse_key(item, families, f"{source}: key {number}")
        if key is None:
            continue
        if key.kid is not None:
            if key.kid in seen_kids:
                raise JwksError(f"{source}: key {number}: kid `{shown(key.kid)}` is used twice")
            seen_kids.add(key.kid)
        keys.append(key)
    if not keys:
        raise JwksError(f"{source}: has no signature keys")
    return tuple(keys)


def load_jwks_file(path: Path, algorithms: Sequence[str]) -> tuple[PublicKey, ...]:
    """The signing keys in a JWKS file (see parse_jwks). Raises JwksError."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_JWKS_BYTES + 1)
    except OSError as error:
        raise JwksError(f"{path}: cannot read: {error.strerror or type(error).__name__}") from None
    return parse_jwks(data, algorithms, str(path))


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise ValueError(f"duplicate member `{shown(name)}`")
        result[name] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"`{name}` is not a JSON number")


def _families(algorithms: Sequence[str]) -> dict[str, frozenset[str]]:
    """Key type -> the algorithms of `algorithms` that need that key type."""
    families: dict[str, frozenset[str]] = {}
    for kty, members in ASYMMETRIC_FAMILIES.items():
        wanted = frozenset(a for a in algorithms if a in members)
        if wanted:
            families[kty] = wanted
    return families


def _parse_key(item: Any, families: Mapping[str, frozenset[str]], where: str) -> PublicKey | None:
    """One JWK as a PublicKey; None for a key that is not for signatures."""
    if not isinstance(item, dict):
        raise JwksError(f"{where}: not a JSON object")
    kid = item.get("kid")
    if kid is not None:
        if not isinstance(kid, str) or not kid:
            raise JwksError(f"{where}: `kid` must be a non-empty string")
        where = f"{where} (`{shown(kid)}`)"
    kty = item.get("kty")
    if not isinstance(kty, str):
        raise JwksError(f"{where}: has no `kty`")
    # SECURITY: these two checks come first, so a dangerous key is refused even if it is marked
    # for encryption. The messages name the member, never its value.
    if kty == "oct":
        raise JwksError(
            f"{where}: is a symmetric (`oct`) key; token issuers must publish public keys only"
        )
    private = [name for name in _PRIVATE_MEMBERS if name in item]
    if private:
        raise JwksError(
            f"{where}: is a private key (it has `{private[0]}`); publish only the public key "
            "and treat this one as compromised"
        )
    use = item.get("use")
    key_ops = item.get("key_ops")
    if use == "enc" or (isinstance(key_ops, list) and "verify" not in key_ops):
        return None  # an encryption key published beside the signing keys
    if use is not None and use != "sig":
        raise JwksError(f'{where}: unknown `use` (expected "sig")')
    if kty not in families:
        wanted = " or ".join(_FAMILY_NAMES[k] for k in families) or "no"
        raise JwksError(
            f"{where}: has key type {shown(kty)}; the issuer's algorithms need {wanted} keys"
        )
    alg = item.get("alg")
    if alg is not None and (not isinstance(alg, str) or alg not in ASYMMETRIC_FAMILIES[kty]):
        raise JwksError(f"{where}: `alg` {shown(alg)} is not a signature algorithm for {kty} keys")
    key: VerifyingKey
    if kty == "RSA":
        key, algorithms = _rsa_key(item, where), frozenset(ASYMMETRIC_FAMILIES["RSA"])
    elif kty == "EC":
        key, algorithms = _ec_key(item, where)
    else:
        key, algorithms = _okp_key(item, where)
    if alg is not None:
        if alg not in algorithms:
            raise JwksError(f"{where}: `alg` {alg} does not fit the key's curve")
        algorithms = frozenset((alg,))
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kind = kty if kty == "RSA" else f"{kty} {item['crv']}"
    return PublicKey(kid, kty, kind, alg, algorithms, key, hashlib.sha256(der).digest())


def _rsa_key(item: Mapping[str, Any], where: str) -> rsa.RSAPublicKey:
    modulus = int.from_bytes(_member_bytes(item, "n", where), "big")
    exponent = int.from_bytes(_member_bytes(item, "e", where), "big")
    if modulus.bit_length() < MIN_RSA_BITS:
        raise JwksError(
            f"{where}: RSA key of {modulus.bit_length()} bits; at least {MIN_RSA_BITS} are needed"
        )
    if modulus % 2 == 0:
        raise JwksError(f"{where}: not a valid RSA public key")
    try:
        return rsa.RSAPublicNumbers(exponent, modulus).public_key()
    except ValueError:
        raise JwksError(f"{where}: not a valid RSA public key") from None


def _ec_key(
    item: Mapping[str, Any], where: str
) -> tuple[ec.EllipticCurvePublicKey, frozenset[str]]:
    crv = item.get("crv")
    if not isinstance(crv, str) or crv not in _EC_CURVES:
        raise JwksError(f"{where}: EC curve {shown(crv)} is not supported (P-256, P-384, P-521)")
    curve, size, algorithm = _EC_CURVES[crv]
    x, y = _member_bytes(item, "x", where), _member_bytes(item, "y", where)
    if len(x) != size or len(y) != size:
        raise JwksError(f"{where}: {crv} coordinates must be {size} bytes")
    try:
        # public_key() checks that the point is on the curve (no invalid-curve attacks).
        key = ec.EllipticCurvePublicNumbers(
            int.from_bytes(x, "big"), int.from_bytes(y, "big"), curve()
        ).public_key()
    except ValueError:
        raise JwksError(f"{where}: not a valid {crv} public key") from None
    return key, frozenset((algorithm,))


def _okp_key(
    item: Mapping[str, Any], where: str
) -> tuple[ed25519.Ed25519PublicKey | ed448.Ed448PublicKey, frozenset[str]]:
    crv = item.get("crv")
    if not isinstance(crv, str) or crv not in _OKP_CURVES:
        raise JwksError(
            f"{where}: OKP curve {shown(crv)} is not a signature curve (Ed25519, Ed448)"
        )
    x = _member_bytes(item, "x", where)
    if len(x) != _OKP_CURVES[crv]:
        raise JwksError(f"{where}: {crv} keys are {_OKP_CURVES[crv]} bytes")
    try:
        if crv == "Ed25519":
            return ed25519.Ed25519PublicKey.from_public_bytes(x), frozenset(("EdDSA",))
        return ed448.Ed448PublicKey.from_public_bytes(x), frozenset(("EdDSA",))
    except ValueError:
        raise JwksError(f"{where}: not a valid {crv} public key") from None


def _member_bytes(item: Mapping[str, Any], name: str, where: str) -> bytes:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise JwksError(f"{where}: `{name}` is missing")
    decoded = base64url_decode(value)
    if decoded is None:
        raise JwksError(f"{where}: `{name}` is not valid base64url")
    return decoded


def base64url_decode(text: str) -> bytes | None:
    """Strict base64url (RFC 7515 section 2): None unless `text` is the canonical encoding.

    Padding (`=`) is tolerated as pyjwt tolerates it; other characters, impossible lengths and
    non-zero trailing bits are not, so one byte string has exactly one accepted spelling.
    """
    stripped = text.rstrip("=")
    padding = len(text) - len(stripped)
    if padding > 2 or (padding and len(text) % 4) or len(stripped) % 4 == 1:
        return None
    if not _BASE64URL.fullmatch(stripped):
        return None
    try:
        decoded = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        return None
    if base64.urlsafe_b64encode(decoded).decode("ascii").rstrip("=") != stripped:
        return None
    return decoded


def shown(value: object, limit: int = 64) -> str:
    """Untrusted text for a message: printable, and cut at `limit` characters."""
    if not isinstance(value, str):
        return "null" if value is None else f"<{type(value).__name__}>"
    text = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in value[: limit + 1])
    return text if len(text) <= limit else text[:limit] + "..."


def _plain(error: BaseException) -> str:
    return "nested too deeply" if isinstance(error, RecursionError) else str(error)


# --- fetching ------------------------------------------------------------------------------------


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib would also follow ftp:)."""

    def redirect_request(  # noqa: PLR0917 (urllib's signature)
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Any,
        newurl: str,
    ) -> urllib.request.Request | None:
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise JwksError("redirect to a non-HTTP URL refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects())


def fetch_url(url: str, timeout: float) -> bytes:
    """GET `url` (http or https) within `timeout` seconds in total; at most MAX_JWKS_BYTES."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise JwksError(f"{display_url(url)}: only http and https URLs are fetched")
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(  # noqa: S310 (the scheme is checked above)
        url, headers={"Accept": "application/json, application/jwk-set+json", "User-Agent": "pdp"}
    )
    chunks: list[bytes] = []
    size = 0
    with _OPENER.open(request, timeout=timeout) as response:
        # A per-read timeout alone lets a server that drips bytes hold the fetch (and the
        # KeySet's lock) for ever; the deadline bounds the whole download.
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError("the download took longer than the timeout")
            chunk = response.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_JWKS_BYTES:
                raise JwksError(f"{display_url(url)}: larger than {MAX_JWKS_BYTES} bytes")
            chunks.append(chunk)
    return b"".join(chunks)


def display_url(url: str) -> str:
    """The URL without user info, query or fragment, which may carry secrets."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def describe_fetch_error(error: BaseException) -> str:
    """A short, secret-free description of why a fetch failed."""
    if isinstance(error, JwksError):
        return str(error)
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        if isinstance(reason, TimeoutError):
            return "timed out"
        if isinstance(reason, OSError):
            return reason.strerror or type(reason).__name__
        return shown(str(reason), 120)
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, OSError):
        return error.strerror or type(error).__name__
    return type(error).__name__


# --- the key set of one issuer -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Index:
    """An immutable view of the usable keys; replaced as a whole, so readers need no lock."""

    by_kid: Mapping[str, PublicKey]
    by_algorithm: Mapping[str, tuple[PublicKey, ...]]
    """Algorithm -> every key that can verify it (with or without kid): for tokens without kid."""

    @staticmethod
    def build(keys: Iterable[PublicKey]) -> _Index:
        by_kid: dict[str, PublicKey] = {}
        by_algorithm: dict[str, list[PublicKey]] = {}
        for key in keys:
            if key.kid is not None:
                by_kid[key.kid] = key
            for algorithm in key.algorithms:
                by_algorithm.setdefault(algorithm, []).append(key)
        return _Index(by_kid, {a: tuple(k) for a, k in by_algorithm.items()})


class KeySet:
    """The public keys of one issuer, from its jwks_file and/or jwks_url.

    A broken jwks_file raises JwksError here (a configuration error). A jwks_url is fetched now;
    if that fails the error is logged and remembered, and tokens are denied with
    authn.unknown_kid until a later fetch (after the cooldown) works.
    """

    def __init__(
        self,
        settings: IssuerSettings,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._issuer_shown = shown(settings.issuer)
        self._fetch = fetch if fetch is not None else fetch_url
        self._clock = clock
        self._lock = threading.Lock()
        self._file_keys: tuple[PublicKey, ...] = ()
        if settings.jwks_file is not None:
            self._file_keys = load_jwks_file(settings.jwks_file, settings.algorithms)
        self._url_keys: tuple[PublicKey, ...] = ()
        self._last_fetch: float | None = None
        self._wait = float(settings.jwks_cooldown_seconds)
        """Time before the next fetch may happen: the cooldown, or less after a failure."""
        self.fetch_error: str | None = None
        """Why the last fetch of jwks_url failed; None after a fetch that worked."""
        self.version = 0
        """Goes up whenever the usable keys change (a verified-token cache keys on it)."""
        self._index = _Index.build(self._merged())
        if settings.jwks_url is not None:
            self.refresh()

    def key_for(self, kid: str | None, algorithm: str) -> VerifyingKey:
        """The key that verifies a token with this `kid` and header `alg`.

        Raises AuthenticationError: authn.algorithm when the issuer does not use `algorithm` or
        the key cannot verify it, authn.unknown_kid when no key fits.
        """
        issuer = self._issuer_shown
        if algorithm not in self.settings.algorithms:
            raise AuthenticationError(
                ALGORITHM, f"algorithm `{shown(algorithm)}` is not accepted for issuer `{issuer}`"
            )
        found = self._find(kid, algorithm)
        if found is None:
            # Whether this thread fetched or waited for another thread's fetch, look again.
            self.refresh()
            found = self._find(kid, algorithm)
        if found is None:
            if kid is None:
                message = f"issuer `{issuer}` has no key for {algorithm}"
            else:
                message = f"unknown key id `{shown(kid)}` for issuer `{issuer}`"
            if self.fetch_error is not None:
                message += "; its key set could not be fetched"
            raise AuthenticationError(UNKNOWN_KID, message)
        if algorithm not in found.algorithms:
            if found.alg is not None:
                reason = f"is for {found.alg}, not {algorithm}"
            else:
                reason = f"is an {found.kind} key, which cannot verify {algorithm}"
            raise AuthenticationError(
                ALGORITHM, f"{found.describe()} of issuer `{issuer}` {reason}"
            )
        return found.key

    def _find(self, kid: str | None, algorithm: str) -> PublicKey | None:
        index = self._index
        if kid is not None:
            return index.by_kid.get(kid)
        candidates = index.by_algorithm.get(algorithm, ())
        if len(candidates) > 1:
            raise AuthenticationError(
                UNKNOWN_KID,
                f"token has no `kid` and issuer `{self._issuer_shown}` has "
                f"{len(candidates)} keys for {algorithm}",
            )
        return candidates[0] if candidates else None

    def refresh(self) -> bool:
        """Fetch jwks_url now if the cooldown allows; True if the usable keys changed.

        Single-flight: one thread fetches while the others wait for it and then return False
        (the cooldown has restarted), so a burst of unknown kids costs one fetch.
        """
        url = self.settings.jwks_url
        if url is None:
            return False
        with self._lock:
            now = self._clock()
            if self._last_fetch is not None and now - self._last_fetch < self._wait:
                return False
            self._last_fetch = now
            source = display_url(url)
            try:
                data = self._fetch(url, self.settings.jwks_timeout_seconds)
                if len(data) > MAX_JWKS_BYTES:
                    raise JwksError(f"{source}: larger than {MAX_JWKS_BYTES} bytes")
                keys = parse_jwks(data, self.settings.algorithms, source)
            except Exception as error:  # any failure keeps the keys we have
                if isinstance(error, urllib.error.HTTPError):
                    error.close()  # it holds the response
                # Try again sooner than the cooldown, or an issuer that was briefly down when
                # pdp started would have every token denied for the whole cooldown; still at
                # most one fetch per interval, so the issuer is never hammered.
                self._wait = min(float(self.settings.jwks_cooldown_seconds), FAILED_FETCH_RETRY)
                self.fetch_error = describe_fetch_error(error)
                _log.warning(
                    "issuer %s: could not fetch its JWKS from %s: %s",
                    self._issuer_shown,
                    source,
                    self.fetch_error,
                )
                return False
            self.fetch_error = None
            self._wait = float(self.settings.jwks_cooldown_seconds)
            if _same_keys(keys, self._url_keys):
                return False
            self._url_keys = keys
            self._index = _Index.build(self._merged())
            self.version += 1
            _log.info("issuer %s: %d keys from %s", self._issuer_shown, len(keys), source)
            return True

    def _merged(self) -> list[PublicKey]:
        """File keys, then fetched keys that are not already there (the file wins on a kid)."""
        merged = list(self._file_keys)
        file_kids = {key.kid: key for key in self._file_keys if key.kid is not None}
        seen = {(key.kid, key.fingerprint) for key in self._file_keys}
        for key in self._url_keys:
            if (key.kid, key.fingerprint) in seen:
                continue  # the file holds a copy of this key
            if key.kid is not None and key.kid in file_kids:
                _log.warning(
                    "issuer %s: the JWKS URL has a different key under kid %s than jwks_file; "
                    "the file's key is used",
                    self._issuer_shown,
                    shown(key.kid),
                )
                continue
            seen.add((key.kid, key.fingerprint))
            merged.append(key)
        return merged


def _same_keys(a: Sequence[PublicKey], b: Sequence[PublicKey]) -> bool:
    def summary(keys: Sequence[PublicKey]) -> set[tuple[str | None, str | None, bytes]]:
        return {(key.kid, key.alg, key.fingerprint) for key in keys}

    return summary(a) == summary(b)

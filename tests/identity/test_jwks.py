"""JWKS parsing and KeySet: which keys are accepted, how a key is chosen, and the JWKS URL's
cooldown (injected fetch and clock; tests/identity/test_jwks_http.py uses a real HTTP server)."""

from __future__ import annotations

import json
import logging
import random
import string
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, x25519

from pdp.config import IssuerSettings
from pdp.identity import errors
from pdp.identity.errors import AuthenticationError
from pdp.identity.jwks import (
    FAILED_FETCH_RETRY,
    MAX_JWKS_BYTES,
    JwksError,
    KeySet,
    base64url_decode,
    display_url,
    load_jwks_file,
    parse_jwks,
)
from pdp.identity.tokens import TokenVerifier
from tests.helpers import NOW
from tests.identity.keys import (
    AUDIENCE,
    ISSUER,
    SigningKey,
    assert_no_secrets,
    b64,
    claims,
    jwks,
    write_jwks,
)

URL = "https://issuer.example/.well-known/jwks.json"
RS256 = ("RS256",)


def settings(
    algorithms: tuple[str, ...] = RS256,
    jwks_file: Path | None = None,
    jwks_url: str | None = None,
    **fields: Any,
) -> IssuerSettings:
    return IssuerSettings(
        ISSUER, (AUDIENCE,), algorithms, jwks_file=jwks_file, jwks_url=jwks_url, **fields
    )


def refusal(data: bytes, algorithms: tuple[str, ...] = RS256) -> str:
    with pytest.raises(JwksError) as caught:
        parse_jwks(data, algorithms, "keys.json")
    return str(caught.value)


class Issuer:
    """A JWKS URL as a function: counts fetches, serves what `document` says or raises."""

    def __init__(self, document: bytes | Exception) -> None:
        self.document = document
        self.fetches: list[tuple[str, float]] = []
        self._lock = threading.Lock()

    def fetch(self, url: str, timeout: float) -> bytes:
        with self._lock:
            self.fetches.append((url, timeout))
        if isinstance(self.document, Exception):
            raise self.document
        return self.document


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# --- parsing -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "kty"),
    [("RS256", "RSA"), ("PS512", "RSA"), ("ES256", "EC"), ("ES512", "EC"), ("EdDSA", "OKP")],
)
def test_public_keys_of_every_family_are_loaded(algorithm: str, kty: str) -> None:
    key = SigningKey.generate(algorithm)
    (loaded,) = parse_jwks(jwks(key.public_jwk()), (algorithm,), "keys.json")
    assert (loaded.kid, loaded.kty, loaded.alg) == ("key-1", kty, algorithm)
    assert loaded.algorithms == {algorithm}
    assert loaded.key.public_bytes(*_spki()) == key.public_key.public_bytes(*_spki())


def _spki() -> tuple[Any, Any]:
    return serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


def test_an_rsa_key_without_alg_verifies_every_rsa_algorithm() -> None:
    key = SigningKey.generate("RS256")
    (loaded,) = parse_jwks(jwks(key.public_jwk(alg=None)), RS256, "keys.json")
    assert loaded.algorithms == {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}


def test_encryption_keys_are_skipped() -> None:
    signing = SigningKey.generate("RS256", "sig")
    encryption = SigningKey.generate("RS256", "enc")
    document = jwks(
        encryption.public_jwk(use="enc", alg="RSA-OAEP"),
        encryption.public_jwk(kid="ops", use=None, alg=None, key_ops=["encrypt"]),
        signing.public_jwk(),
    )
    assert [key.kid for key in parse_jwks(document, RS256, "keys.json")] == ["sig"]
    only_encryption = jwks(encryption.public_jwk(use="enc", alg="RSA-OAEP"))
    assert refusal(only_encryption) == "keys.json: has no signature keys"


def test_a_symmetric_key_is_refused_without_repeating_it(caplog: pytest.LogCaptureFixture) -> None:
    secret = b64(b"a very secret hmac key that nobody may see")
    message = refusal(jwks({"kty": "oct", "kid": "hmac", "k": secret, "alg": "HS256"}))
    assert message == (
        "keys.json: key 0 (`hmac`): is a symmetric (`oct`) key; token issuers must publish "
        "public keys only"
    )
    assert secret not in message


@pytest.mark.parametrize("algorithm", ["RS256", "ES256", "EdDSA"])
def test_a_private_key_is_refused_without_repeating_it(
    algorithm: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = SigningKey.generate(algorithm)
    with pytest.raises(JwksError) as caught:
        parse_jwks(jwks(key.private_jwk()), (algorithm,), "keys.json")
    assert str(caught.value) == (
        "keys.json: key 0 (`key-1`): is a private key (it has `d`); publish only the public key "
        "and treat this one as compromised"
    )
    assert_no_secrets(caught.value, [], [key], caplog.text)


def test_a_private_key_from_a_url_is_refused_and_never_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = SigningKey.generate("RS256")
    issuer = Issuer(jwks(key.private_jwk()))
    keys = KeySet(settings(jwks_url=URL), fetch=issuer.fetch)
    assert keys.fetch_error == (
        "https://issuer.example/.well-known/jwks.json: key 0 (`key-1`): is a private key (it has "
        "`d`); publish only the public key and treat this one as compromised"
    )
    with pytest.raises(AuthenticationError) as caught:
        keys.key_for("key-1", "RS256")
    assert (caught.value.code, caught.value.message) == (
        errors.UNKNOWN_KID,
        f"unknown key id `key-1` for issuer `{ISSUER}`; its key set could not be fetched",
    )
    assert "is a private key" in caplog.text
    assert_no_secrets(caught.value, [], [key], caplog.text)


def _rsa_1024() -> dict[str, Any]:
    numbers = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    n = numbers.public_numbers().n
    return {"kty": "RSA", "kid": "small", "n": b64(n.to_bytes(128, "big")), "e": "AQAB"}


def _off_curve() -> dict[str, Any]:
    jwk = SigningKey.generate("ES256").public_jwk()
    y = bytearray(base64url_decode(jwk["y"]) or b"")
    y[-1] ^= 1
    return {**jwk, "y": b64(bytes(y))}


def _x25519() -> dict[str, Any]:
    raw = (
        x25519.X25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return {"kty": "OKP", "crv": "X25519", "kid": "dh", "x": b64(raw)}


RSA = SigningKey.generate("RS256")
REFUSALS: list[tuple[str, Callable[[], bytes], tuple[str, ...], str]] = [
    (
        "not JSON",
        lambda: b"{keys: []}",
        RS256,
        "keys.json: not JSON (Expecting property name enclosed in double quotes, line 1 column 2)",
    ),
    ("not UTF-8", lambda: b'{"keys": ["\xff"]}', RS256, "keys.json: not UTF-8 text"),
    (
        "a JWK, not a set",
        lambda: json.dumps(RSA.public_jwk()).encode(),
        RS256,
        'keys.json: not a JWK Set (expected {"keys": [...]})',
    ),
    (
        "keys not a list",
        lambda: b'{"keys": {}}',
        RS256,
        'keys.json: not a JWK Set (expected {"keys": [...]})',
    ),
    ("empty", jwks, RS256, "keys.json: has no signature keys"),
    ("too big", lambda: b" " * (MAX_JWKS_BYTES + 1), RS256, "keys.json: larger than 1048576 bytes"),
    (
        "duplicate member",
        lambda: b'{"keys": [], "keys": []}',
        RS256,
        "keys.json: not a usable JSON document (duplicate member `keys`)",
    ),
    (
        "key not an object",
        lambda: b'{"keys": ["RSA"]}',
        RS256,
        "keys.json: key 0: not a JSON object",
    ),
    (
        "no kty",
        lambda: jwks({"kid": "a", "n": "AQAB"}),
        RS256,
        "keys.json: key 0 (`a`): has no `kty`",
    ),
    (
        "kid a number",
        lambda: jwks(RSA.public_jwk(kid=7)),
        RS256,
        "keys.json: key 0: `kid` must be a non-empty string",
    ),
    (
        "EC key, RSA issuer",
        lambda: jwks(SigningKey.generate("ES256").public_jwk()),
        RS256,
        "keys.json: key 0 (`key-1`): has key type EC; the issuer's algorithms need RSA keys",
    ),
    (
        "RSA key, EdDSA issuer",
        lambda: jwks(RSA.public_jwk(alg=None)),
        ("EdDSA",),
        "keys.json: key 0 (`key-1`): has key type RSA; the issuer's algorithms need "
        "OKP (Ed25519 or Ed448) keys",
    ),
    (
        "unknown kty",
        lambda: jwks({"kty": "PQC", "kid": "q"}),
        RS256,
        "keys.json: key 0 (`q`): has key type PQC; the issuer's algorithms need RSA keys",
    ),
    (
        "alg of another family",
        lambda: jwks(RSA.public_jwk(alg="ES256")),
        RS256,
        "keys.json: key 0 (`key-1`): `alg` ES256 is not a signature algorithm for RSA keys",
    ),
    (
        "alg HS256 on an RSA key",
        lambda: jwks(RSA.public_jwk(alg="HS256")),
        RS256,
        "keys.json: key 0 (`key-1`): `alg` HS256 is not a signature algorithm for RSA keys",
    ),
    (
        "alg for another curve",
        lambda: jwks(SigningKey.generate("ES384").public_jwk(alg="ES256")),
        ("ES256",),
        "keys.json: key 0 (`key-1`): `alg` ES256 does not fit the key's curve",
    ),
    (
        "unknown use",
        lambda: jwks(RSA.public_jwk(use="sign")),
        RS256,
        'keys.json: key 0 (`key-1`): unknown `use` (expected "sig")',
    ),
    (
        "RSA 1024",
        lambda: jwks(_rsa_1024()),
        RS256,
        "keys.json: key 0 (`small`): RSA key of 1024 bits; at least 2048 are needed",
    ),
    (
        "RSA even modulus",
        lambda: jwks(RSA.public_jwk(n=b64((2**2048).to_bytes(257, "big")))),
        RS256,
        "keys.json: key 0 (`key-1`): not a valid RSA public key",
    ),
    (
        "RSA exponent 1",
        lambda: jwks(RSA.public_jwk(e="AQ")),
        RS256,
        "keys.json: key 0 (`key-1`): not a valid RSA public key",
    ),
    (
        "RSA no n",
        lambda: jwks(RSA.public_jwk(n=None)),
        RS256,
        "keys.json: key 0 (`key-1`): `n` is missing",
    ),
    (
        "RSA n not base64url",
        lambda: jwks(RSA.public_jwk(n="not+base64/")),
        RS256,
        "keys.json: key 0 (`key-1`): `n` is not valid base64url",
    ),
    (
        "EC point off the curve",
        lambda: jwks(_off_curve()),
        ("ES256",),
        "keys.json: key 0 (`key-1`): not a valid P-256 public key",
    ),
    (
        "EC short coordinate",
        lambda: jwks(SigningKey.generate("ES256").public_jwk(x="AQAB")),
        ("ES256",),
        "keys.json: key 0 (`key-1`): P-256 coordinates must be 32 bytes",
    ),
    (
        "EC secp256k1",
        lambda: jwks(SigningKey.generate("ES256").public_jwk(crv="secp256k1")),
        ("ES256",),
        "keys.json: key 0 (`key-1`): EC curve secp256k1 is not supported (P-256, P-384, P-521)",
    ),
    (
        "OKP X25519",
        lambda: jwks(_x25519()),
        ("EdDSA",),
        "keys.json: key 0 (`dh`): OKP curve X25519 is not a signature curve (Ed25519, Ed448)",
    ),
    (
        "OKP wrong size",
        lambda: jwks(SigningKey.generate("EdDSA").public_jwk(x="AQAB")),
        ("EdDSA",),
        "keys.json: key 0 (`key-1`): Ed25519 keys are 32 bytes",
    ),
    (
        "duplicate kid",
        lambda: jwks(RSA.public_jwk(), SigningKey.generate("RS256", "key-1", "other").public_jwk()),
        RS256,
        "keys.json: key 1: kid `key-1` is used twice",
    ),
]


@pytest.mark.parametrize(
    ("build", "algorithms", "message"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refused_jwks(
    build: Callable[[], bytes], algorithms: tuple[str, ...], message: str
) -> None:
    document = build()
    refused = refusal(document, algorithms)
    assert refused == message
    # No key material from the document is repeated (kids and short names may be).
    for value in _long_strings(document):
        assert value not in refused


def _long_strings(document: bytes) -> list[str]:
    try:
        parsed = json.loads(document)
    except ValueError:
        return []
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and len(value) >= 16:
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(parsed)
    return found


def test_an_unreadable_file_is_refused_by_name(tmp_path: Path) -> None:
    missing = tmp_path / "missing.json"
    with pytest.raises(JwksError) as caught:
        load_jwks_file(missing, RS256)
    assert str(caught.value) == f"{missing}: cannot read: No such file or directory"
    with pytest.raises(JwksError):  # a broken jwks_file stops pdp from starting
        KeySet(settings(jwks_file=missing))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", b""),
        ("AQAB", b"\x01\x00\x01"),
        ("_-8", b"\xff\xef"),
        ("ZQ", b"e"),
        ("ZQ==", b"e"),  # padding, as pyjwt tolerates it
        ("ZR", None),  # the same byte with non-zero trailing bits: not canonical
        ("ZQ=", None),
        ("Z", None),
        ("Z===", None),
        ("ab+/", None),  # the standard alphabet, not the URL one
        ("ab cd", None),
        ("YWJj\n", None),
    ],
)
def test_base64url_is_strict(text: str, expected: bytes | None) -> None:
    assert base64url_decode(text) == expected


def test_display_url_drops_what_may_be_secret() -> None:
    assert display_url("https://user:pw@idp.example:8443/jwks?token=abc#x") == (
        "https://idp.example:8443/jwks"
    )


# --- choosing a key ------------------------------------------------------------------------------


def test_keys_are_chosen_by_kid(tmp_path: Path) -> None:
    one, two = SigningKey.generate("ES256", "one"), SigningKey.generate("ES256", "two")
    path = write_jwks(tmp_path / "jwks.json", one.public_jwk(), two.public_jwk())
    keys = KeySet(settings(("ES256",), jwks_file=path))
    assert keys.key_for("two", "ES256").public_numbers() == two.public_key.public_numbers()
    assert keys.key_for("one", "ES256").public_numbers() == one.public_key.public_numbers()
    with pytest.raises(AuthenticationError) as caught:
        keys.key_for("three", "ES256")
    assert (caught.value.code, caught.value.message) == (
        errors.UNKNOWN_KID,
        f"unknown key id `three` for issuer `{ISSUER}`",
    )
    with pytest.raises(AuthenticationError) as caught:
        keys.key_for(None, "ES256")
    assert (caught.value.code, caught.value.message) == (
        errors.UNKNOWN_KID,
        f"token has no `kid` and issuer `{ISSUER}` has 2 keys for ES256",
    )


def test_a_key_that_cannot_verify_the_algorithm_is_refused(tmp_path: Path) -> None:
    p384 = SigningKey.generate("ES384", "p384")
    path = write_jwks(tmp_path / "jwks.json", p384.public_jwk(alg=None))
    keys = KeySet(settings(("ES256", "ES384"), jwks_file=path))
    with pytest.raises(AuthenticationError) as caught:
        keys.key_for("p384", "ES256")
    assert (caught.value.code, caught.value.message) == (
        errors.ALGORITHM,
        f"key `p384` of issuer `{ISSUER}` is an EC P-384 key, which cannot verify ES256",
    )
    with pytest.raises(AuthenticationError) as caught:
        keys.key_for(None, "ES256")
    assert (caught.value.code, caught.value.message) == (
        errors.UNKNOWN_KID,
        f"issuer `{ISSUER}` has no key for ES256",
    )
    assert isinstance(keys.key_for(None, "ES384"), ec.EllipticCurvePublicKey)


def test_an_algorithm_the_issuer_does_not_use_is_refused_before_any_key(tmp_path: Path) -> None:
    path = write_jwks(tmp_path / "jwks.json", RSA.public_jwk(alg=None))
    keys = KeySet(settings(RS256, jwks_file=path))
    for algorithm in ("PS256", "HS256", "none", "x" * 200):
        with pytest.raises(AuthenticationError) as caught:
            keys.key_for("key-1", algorithm)
        assert caught.value.code == errors.ALGORITHM
    assert caught.value.message == (
        f"algorithm `{'x' * 64}...` is not accepted for issuer `{ISSUER}`"
    )


# --- the JWKS URL --------------------------------------------------------------------------------


def test_the_url_is_fetched_at_start_with_the_timeout() -> None:
    issuer = Issuer(jwks(RSA.public_jwk()))
    keys = KeySet(settings(jwks_url=URL, jwks_timeout_seconds=1.5), fetch=issuer.fetch)
    assert issuer.fetches == [(URL, 1.5)]
    assert keys.key_for("key-1", "RS256").public_numbers() == RSA.public_key.public_numbers()
    assert keys.fetch_error is None


def test_a_failed_start_fetch_falls_back_to_the_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write_jwks(tmp_path / "jwks.json", RSA.public_jwk())
    issuer = Issuer(ConnectionRefusedError(111, "Connection refused"))
    keys = KeySet(settings(jwks_file=path, jwks_url=URL), fetch=issuer.fetch)
    assert keys.fetch_error == "Connection refused"
    assert f"issuer {ISSUER}: could not fetch its JWKS from {URL}: Connection refused" in (
        caplog.text
    )
    assert keys.key_for("key-1", "RS256").public_numbers() == RSA.public_key.public_numbers()


def test_without_keys_tokens_are_refused_until_a_fetch_works() -> None:
    issuer = Issuer(TimeoutError())
    clock = Clock()
    keys = KeySet(settings(jwks_url=URL, jwks_cooldown_seconds=60), issuer.fetch, clock)
    assert keys.fetch_error == "timed out"
    for _ in range(3):
        with pytest.raises(AuthenticationError) as caught:
            keys.key_for("key-1", "RS256")
        assert (caught.value.code, caught.value.message) == (
            errors.UNKNOWN_KID,
            f"unknown key id `key-1` for issuer `{ISSUER}`; its key set could not be fetched",
        )
    assert len(issuer.fetches) == 1  # within the cooldown: no new attempt
    issuer.document = jwks(RSA.public_jwk())
    clock.now = 60.0
    assert keys.key_for("key-1", "RS256").public_numbers() == RSA.public_key.public_numbers()
    assert len(issuer.fetches) == 2
    assert keys.fetch_error is None


def test_a_failed_fetch_is_retried_sooner_than_the_cooldown() -> None:
    # An issuer that was down when pdp started must not cost a whole cooldown of denials, yet
    # failures are still retried at most once per FAILED_FETCH_RETRY.
    issuer = Issuer(TimeoutError())
    clock = Clock()
    keys = KeySet(settings(jwks_url=URL, jwks_cooldown_seconds=300), issuer.fetch, clock)
    clock.now = FAILED_FETCH_RETRY - 1
    assert not keys.refresh()
    assert len(issuer.fetches) == 1
    issuer.document = jwks(RSA.public_jwk())
    clock.now = FAILED_FETCH_RETRY
    assert keys.key_for("key-1", "RS256").public_numbers() == RSA.public_key.public_numbers()
    assert len(issuer.fetches) == 2
    # After a success the full cooldown applies again.
    clock.now = FAILED_FETCH_RETRY + 299
    assert not keys.refresh()
    assert len(issuer.fetches) == 2


def test_refresh_reports_whether_the_keys_changed(tmp_path: Path) -> None:
    issuer = Issuer(jwks(RSA.public_jwk()))
    clock = Clock()
    keys = KeySet(settings(jwks_url=URL, jwks_cooldown_seconds=10), issuer.fetch, clock)
    assert keys.version == 1
    assert keys.refresh() is False  # cooldown
    clock.now = 10.0
    assert keys.refresh() is False  # fetched, the same keys
    assert len(issuer.fetches) == 2
    issuer.document = jwks(RSA.public_jwk(), SigningKey.generate("RS256", "key-2").public_jwk())
    clock.now = 20.0
    assert keys.refresh() is True
    assert keys.version == 2
    issuer.document = b"not json"
    clock.now = 30.0
    assert keys.refresh() is False  # a broken document keeps the keys we have
    assert keys.key_for("key-2", "RS256") is not None
    assert keys.fetch_error is not None
    path = write_jwks(tmp_path / "jwks.json", RSA.public_jwk())
    assert KeySet(settings(jwks_file=path)).refresh() is False  # no URL: nothing to fetch


def test_the_file_wins_when_the_url_has_another_key_under_the_same_kid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    impostor = SigningKey.generate("RS256", "key-1", label="impostor")
    path = write_jwks(tmp_path / "jwks.json", RSA.public_jwk())
    issuer = Issuer(jwks(impostor.public_jwk(), RSA.public_jwk(kid="copy")))
    keys = KeySet(settings(jwks_file=path, jwks_url=URL), fetch=issuer.fetch)
    assert keys.key_for("key-1", "RS256").public_numbers() == RSA.public_key.public_numbers()
    assert keys.key_for("copy", "RS256").public_numbers() == RSA.public_key.public_numbers()
    assert "different key under kid key-1" in caplog.text


def test_a_burst_of_unknown_kids_costs_one_fetch_per_cooldown() -> None:
    old = SigningKey.generate("EdDSA", "old")
    new = SigningKey.generate("EdDSA", "new")
    issuer = Issuer(jwks(old.public_jwk()))
    clock = Clock()
    cooldown = 300
    verifier = TokenVerifier(
        [settings(("EdDSA",), jwks_url=URL, jwks_cooldown_seconds=cooldown)],
        fetch=issuer.fetch,
        clock=clock,
    )
    assert len(issuer.fetches) == 1  # at start
    clock.now = 1000.0  # long after: the first unknown kid may fetch, once
    rng = random.Random(7)
    kids = ["".join(rng.choices(string.ascii_letters, k=12)) for _ in range(1000)]
    forged = [old.sign(claims(), headers={"kid": kid}) for kid in kids]

    def attempt(token: str) -> str:
        try:
            verifier.verify(token, NOW)
        except AuthenticationError as error:
            return error.code
        return "accepted"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(attempt, forged))
    assert set(outcomes) == {errors.UNKNOWN_KID}
    assert len(issuer.fetches) == 2  # one for the whole burst
    # The issuer rotates; within the cooldown the new key is not fetched yet...
    issuer.document = jwks(new.public_jwk())
    clock.now = 1000.0 + cooldown - 1
    assert attempt(new.sign(claims())) == errors.UNKNOWN_KID
    assert len(issuer.fetches) == 2
    # ...and after it, the first token that names it fetches it.
    clock.now = 1000.0 + cooldown
    assert verifier.verify(new.sign(claims()), NOW).id == "alice"
    assert len(issuer.fetches) == 3


def test_one_thread_fetches_while_the_others_wait() -> None:
    fetching = threading.Event()
    release = threading.Event()
    fetches = []

    def slow_fetch(url: str, timeout: float) -> bytes:
        fetches.append(url)
        if len(fetches) == 1:  # the start fetch returns at once, without the key "late"
            return jwks(RSA.public_jwk())
        fetching.set()
        release.wait(timeout=30)
        return jwks(RSA.public_jwk(), SigningKey.generate("RS256", "late").public_jwk())

    clock = Clock()
    keys = KeySet(settings(jwks_url=URL), slow_fetch, clock)
    clock.now = 1000.0
    results: list[Any] = []

    def lookup() -> None:
        try:
            results.append(keys.key_for("late", "RS256"))
        except AuthenticationError as error:
            results.append(error)

    first = threading.Thread(target=lookup)
    first.start()
    assert fetching.wait(timeout=30)
    others = [threading.Thread(target=lookup) for _ in range(8)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(timeout=30)
    assert len(fetches) == 2
    assert len(results) == 9
    assert all(isinstance(result, rsa.RSAPublicKey) for result in results)

"""TokenVerifier: real keys, real tokens, and every way a token can be refused, with its exact
reason code and message, and proof that no message or log line carries the token or a key."""

from __future__ import annotations

import ast
import base64
import hashlib
import hmac
import json
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

import pdp
from pdp.config import IssuerSettings
from pdp.identity import errors, tokens
from pdp.identity.errors import AuthenticationError
from pdp.identity.jwks import KeySet
from pdp.identity.tokens import TokenVerifier
from tests.helpers import NOW
from tests.identity.keys import (
    AUDIENCE,
    ISSUER,
    SigningKey,
    assert_no_secrets,
    b64,
    claims,
    forge,
    jwks,
    make_issuer,
    write_jwks,
)


@dataclass
class Setup:
    settings: IssuerSettings
    sign: Callable[..., str]
    key: SigningKey
    attacker: SigningKey
    verifier: TokenVerifier

    def header(self, **members: Any) -> dict[str, Any]:
        return {"alg": "RS256", "typ": "JWT", "kid": "key-1", **members}


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    settings, sign = make_issuer(tmp_path, "RS256", audiences=(AUDIENCE, "pdp-admin"))
    return Setup(
        settings=settings,
        sign=sign,
        key=SigningKey.generate("RS256", "key-1", label=ISSUER),
        attacker=SigningKey.generate("RS256", "key-1", label="attacker"),
        verifier=TokenVerifier([settings]),
    )


def refused(verifier: TokenVerifier, token: Any, now: datetime = NOW) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(token, now)
    return caught.value


# --- the versions and the module boundary --------------------------------------------------------


def test_pyjwt_is_at_least_2_15_1() -> None:
    # The machine image has 2.6.0, without years of security fixes; the venv must not use it.
    numbers = re.findall(r"\d+", jwt.__version__)[:3]
    version = tuple(int(number) for number in numbers)
    assert version >= (2, 15, 1), jwt.__version__


def test_jwt_is_used_in_two_known_places_and_verifies_in_one() -> None:
    # tokens.py verifies; dev_issuer.py only signs development tokens (pdp token, make run).
    root = Path(pdp.__file__).parent
    importers, decoders = [], []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text("utf-8")
        for node in ast.walk(ast.parse(text)):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            if any(name == "jwt" or name.startswith("jwt.") for name in names):
                importers.append(path.relative_to(root).as_posix())
        if "jwt.decode" in text or "PyJWT(" in text or "PyJWS(" in text:
            decoders.append(path.relative_to(root).as_posix())
    assert sorted(set(importers)) == ["identity/dev_issuer.py", "identity/tokens.py"]
    assert decoders == ["identity/tokens.py"]


# --- accepted tokens -----------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["RS256", "PS256", "ES256", "ES384", "ES512", "EdDSA"])
def test_a_valid_token_gives_its_subject(tmp_path: Path, algorithm: str) -> None:
    settings, sign = make_issuer(tmp_path, algorithm)
    exp = NOW + timedelta(minutes=10)
    subject = TokenVerifier([settings]).verify(sign(roles=["editor"], exp=exp), NOW)
    assert subject.method == "jwt"
    assert subject.id == "alice"
    assert subject.issuer == ISSUER
    assert subject.expires == exp
    assert subject.expires.tzinfo is not None
    assert subject.expires.utcoffset() == timedelta(0)
    assert subject.attributes["roles"] == ["editor"]
    assert subject.attributes["sub"] == "alice"


def test_claims_become_engine_values_and_auth_is_pdps_own(setup: Setup) -> None:
    token = setup.sign(
        auth={"method": "mtls", "issuer": "someone else"},
        score=12.5,
        whole=3.0,
        address={"country": "NL", "city": None},
    )
    attributes = setup.verifier.verify(token, NOW).attributes
    assert attributes["auth"] == {"method": "jwt", "issuer": ISSUER}
    assert attributes["score"] == Decimal("12.5")
    assert type(attributes["whole"]) is int
    assert attributes["address"] == {"country": "NL"}  # null means absent
    assert attributes["aud"] == AUDIENCE
    assert attributes["exp"] == int((NOW + timedelta(minutes=10)).timestamp())


def test_audience_may_be_a_list_naming_one_accepted_audience(setup: Setup) -> None:
    token = setup.sign(aud=["other", "pdp-admin"])
    assert setup.verifier.verify(token, NOW).id == "alice"


def test_leeway_accepts_a_token_that_expired_moments_ago(setup: Setup) -> None:
    token = setup.sign(exp=NOW - timedelta(seconds=29), iat=NOW - timedelta(minutes=5))
    assert setup.verifier.verify(token, NOW).id == "alice"
    token = setup.sign(nbf=NOW + timedelta(seconds=30), iat=NOW + timedelta(seconds=30))
    assert setup.verifier.verify(token, NOW).id == "alice"


def test_a_token_without_kid_uses_the_issuers_only_key(setup: Setup) -> None:
    token = setup.sign(headers={"kid": None})
    assert "kid" not in jwt.get_unverified_header(token)
    assert setup.verifier.verify(token, NOW).id == "alice"


def test_a_token_without_kid_is_refused_when_the_issuer_has_two_keys(tmp_path: Path) -> None:
    one = SigningKey.generate("RS256", "one")
    two = SigningKey.generate("RS256", "two")
    settings = IssuerSettings(
        ISSUER,
        (AUDIENCE,),
        ("RS256",),
        jwks_file=write_jwks(tmp_path / "jwks.json", one.public_jwk(), two.public_jwk()),
    )
    verifier = TokenVerifier([settings])
    error = refused(verifier, one.sign(claims(), headers={"kid": None}))
    assert (error.code, error.message) == (
        errors.UNKNOWN_KID,
        f"token has no `kid` and issuer `{ISSUER}` has 2 keys for RS256",
    )
    assert verifier.verify(one.sign(claims()), NOW).id == "alice"  # with its kid it is fine


def test_tokens_are_routed_by_issuer_and_keys_are_never_shared(tmp_path: Path) -> None:
    first, sign_first = make_issuer(tmp_path, "RS256", issuer="https://one.example")
    second, sign_second = make_issuer(tmp_path, "RS256", issuer="https://two.example")
    verifier = TokenVerifier([first, second])
    assert verifier.verify(sign_first(), NOW).issuer == "https://one.example"
    assert verifier.verify(sign_second(), NOW).issuer == "https://two.example"
    # Both keys are called "key-1": a token claiming issuer one, signed by issuer two's key,
    # is checked against issuer one's key only.
    forged = SigningKey.generate("RS256", "key-1", label="https://two.example").sign(
        claims(iss="https://one.example")
    )
    error = refused(verifier, forged)
    assert (error.code, error.message) == (errors.BAD_SIGNATURE, "token signature is not valid")


def test_decode_gets_exactly_the_header_algorithm_and_the_chosen_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = SigningKey.generate("PS256", "key-1")
    settings = IssuerSettings(
        ISSUER,
        (AUDIENCE,),
        ("RS256", "PS256"),
        jwks_file=write_jwks(tmp_path / "jwks.json", key.public_jwk(alg=None)),
    )
    calls: list[tuple[Any, Any]] = []
    real_decode = jwt.decode

    def spy(token: str, key: Any, *, algorithms: Any, options: Any) -> Any:
        calls.append((key, algorithms))
        return real_decode(token, key, algorithms=algorithms, options=options)

    monkeypatch.setattr(tokens.jwt, "decode", spy)
    verifier = TokenVerifier([settings])
    verifier.verify(key.sign(claims()), NOW)
    verifier.verify(key.sign(claims(sub="bob"), algorithm="RS256"), NOW)
    assert [algorithms for _, algorithms in calls] == [["PS256"], ["RS256"]]
    for chosen, _ in calls:
        assert chosen.public_numbers() == key.public_key.public_numbers()


# --- refused tokens: every failure mode, its code, its message, and no leaks ---------------------


def _tampered(s: Setup) -> str:
    header, _, signature = s.sign().split(".")
    payload = b64(json.dumps(claims(sub="admin")).encode())
    return f"{header}.{payload}.{signature}"


def _hs256_with_public_key(s: Setup) -> str:
    # The classic algorithm confusion: the verifier's public key used as an HMAC secret.
    header = b64(json.dumps(s.header(alg="HS256")).encode())
    payload = b64(json.dumps(claims()).encode())
    signing_input = f"{header}.{payload}".encode()
    signature = hmac.new(s.key.public_pem(), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(signature)}"


def _attacker_certificate(attacker: SigningKey) -> str:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer.example")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(attacker.public_key)
        .serial_number(1)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .sign(attacker.private_key, hashes.SHA256())
    )
    return base64.b64encode(certificate.public_bytes(serialization.Encoding.DER)).decode()


def _embedded_attacker_key(s: Setup) -> str:
    return s.attacker.sign(
        claims(),
        headers={
            "jwk": s.attacker.public_jwk(),
            "jku": "http://127.0.0.1:9/attacker-jwks.json",
            "x5u": "http://127.0.0.1:9/attacker.pem",
            "x5c": [_attacker_certificate(s.attacker)],
        },
    )


def _too_deep(s: Setup) -> str:
    nested: Any = "bottom"
    for _ in range(40):
        nested = [nested]
    return s.sign(deep=nested)


Case = tuple[str, Callable[[Setup], Any], str, str]
M, ISS = errors.MALFORMED, ISSUER
CASES: list[Case] = [
    # size, before any decoding
    ("oversized garbage", lambda s: "a" * 8193, M, "token is longer than the limit of 8192 bytes"),
    (
        "oversized token",
        lambda s: s.sign(pad="x" * 9000),
        M,
        "token is longer than the limit of 8192 bytes",
    ),
    # structure
    ("not text", lambda s: b"abc.def.ghi", M, "token is not text"),
    ("empty", lambda s: "", M, "token is empty"),
    ("non-ascii", lambda s: s.sign() + "é", M, "token contains characters that a JWT cannot have"),
    (
        "one part",
        lambda s: "abcdef",
        M,
        "token is not a JWT (expected three parts: header.payload.signature)",
    ),
    (
        "two parts",
        lambda s: s.sign().rsplit(".", 1)[0],
        M,
        "token is not a JWT (expected three parts: header.payload.signature)",
    ),
    (
        "four parts",
        lambda s: s.sign() + ".abc",
        M,
        "token is not a JWT (expected three parts: header.payload.signature)",
    ),
    ("JWE", lambda s: "a.b.c.d.e", M, "encrypted tokens (JWE) are not accepted"),
    (
        "header base64",
        lambda s: "!!!!" + s.sign()[s.sign().index(".") :],
        M,
        "token header is not valid base64url",
    ),
    (
        "payload base64",
        lambda s: s.sign().split(".")[0] + ".a*b." + s.sign().split(".")[2],
        M,
        "token payload is not valid base64url",
    ),
    ("signature base64", lambda s: s.sign() + "+", M, "token signature is not valid base64url"),
    (
        "padding",
        lambda s: s.sign().split(".")[0] + "===." + "e30.",
        M,
        "token header is not valid base64url",
    ),
    ("header not JSON", lambda s: forge(b"{alg: RS256}", claims()), M, "token header is not JSON"),
    (
        "header not object",
        lambda s: forge(b'["RS256"]', claims()),
        M,
        "token header is not a JSON object",
    ),
    (
        "header not UTF-8",
        lambda s: forge(b'{"alg":"\xff"}', claims()),
        M,
        "token header is not UTF-8 text",
    ),
    ("payload not JSON", lambda s: forge(s.header(), b"sub=alice"), M, "token payload is not JSON"),
    (
        "payload not object",
        lambda s: forge(s.header(), b'"alice"'),
        M,
        "token payload is not a JSON object",
    ),
    (
        "duplicate header member",
        lambda s: forge(b'{"alg":"RS256","alg":"none"}', claims()),
        M,
        "token header has a duplicate `alg` member",
    ),
    (
        "duplicate claim, signed",
        lambda s: s.key.sign_raw(b'{"iss":"%s","sub":"alice","sub":"admin"}' % ISS.encode()),
        M,
        "token payload has a duplicate `sub` member",
    ),
    (
        "NaN",
        lambda s: s.key.sign_raw(b'{"iss":"%s","exp":NaN}' % ISS.encode()),
        M,
        "token payload has an unusable number",
    ),
    (
        "nested too deep for JSON",
        lambda s: forge(s.header(), b"[" * 2000 + b"]" * 2000),
        M,
        "token payload is nested too deeply",
    ),
    (
        "nested too deep for pdp",
        _too_deep,
        M,
        "token claims cannot be used: input is nested more than 32 levels deep",
    ),
    (
        "null in a list",
        lambda s: s.sign(groups=["a", None]),
        M,
        "token claims cannot be used: lists cannot contain null",
    ),
    # algorithms
    (
        "no alg",
        lambda s: forge({"typ": "JWT", "kid": "key-1"}, claims()),
        errors.ALGORITHM,
        "token header has no `alg`",
    ),
    (
        "alg none",
        lambda s: forge(s.header(alg="none"), claims()),
        errors.ALGORITHM,
        "algorithm `none` is never accepted",
    ),
    (
        "alg None",
        lambda s: forge(s.header(alg="None"), claims()),
        errors.ALGORITHM,
        "algorithm `none` is never accepted",
    ),
    (
        "alg NONE, signed-looking",
        lambda s: forge(s.header(alg="NONE"), claims(), b"x" * 32),
        errors.ALGORITHM,
        "algorithm `none` is never accepted",
    ),
    (
        "HS256 with the public key as secret",
        _hs256_with_public_key,
        errors.ALGORITHM,
        f"algorithm `HS256` is not accepted for issuer `{ISS}`",
    ),
    (
        "ES256 for an RS256 issuer",
        lambda s: SigningKey.generate("ES256").sign(claims()),
        errors.ALGORITHM,
        f"algorithm `ES256` is not accepted for issuer `{ISS}`",
    ),
    (
        "PS256 for an RS256 issuer",
        lambda s: s.key.sign(claims(), algorithm="PS256"),
        errors.ALGORITHM,
        f"algorithm `PS256` is not accepted for issuer `{ISS}`",
    ),
    # issuer
    ("no iss", lambda s: s.sign(omit=("iss",)), errors.MISSING_CLAIM, "token has no `iss` claim"),
    (
        "iss not a string",
        lambda s: s.key.sign_raw(json.dumps(claims(iss=["x"])).encode()),
        M,
        "token `iss` claim must be a string",
    ),
    (
        "unknown iss",
        lambda s: s.sign(iss="https://evil.example"),
        errors.UNKNOWN_ISSUER,
        "token issuer `https://evil.example` is not known",
    ),
    (
        "iss with a suffix",
        lambda s: s.sign(iss=ISS + ".evil"),
        errors.UNKNOWN_ISSUER,
        f"token issuer `{ISS}.evil` is not known",
    ),
    (
        "iss with a slash",
        lambda s: s.sign(iss=ISS + "/"),
        errors.UNKNOWN_ISSUER,
        f"token issuer `{ISS}/` is not known",
    ),
    (
        "iss prefix",
        lambda s: s.sign(iss=ISS[:-1]),
        errors.UNKNOWN_ISSUER,
        f"token issuer `{ISS[:-1]}` is not known",
    ),
    (
        "iss in capitals",
        lambda s: s.sign(iss=ISS.upper()),
        errors.UNKNOWN_ISSUER,
        f"token issuer `{ISS.upper()}` is not known",
    ),
    # keys and signatures
    (
        "unknown kid",
        lambda s: s.sign(headers={"kid": "nope"}),
        errors.UNKNOWN_KID,
        f"unknown key id `nope` for issuer `{ISS}`",
    ),
    (
        "kid not a string",
        lambda s: forge(s.header(kid=5), claims()),
        M,
        "token header `kid` must be a non-empty string",
    ),
    (
        "empty kid",
        lambda s: forge(s.header(kid=""), claims()),
        M,
        "token header `kid` must be a non-empty string",
    ),
    ("tampered payload", _tampered, errors.BAD_SIGNATURE, "token signature is not valid"),
    (
        "signature cut short",
        lambda s: s.sign()[:-2],
        errors.BAD_SIGNATURE,
        "token signature is not valid",
    ),
    (
        "no signature",
        lambda s: s.sign().rsplit(".", 1)[0] + ".",
        errors.BAD_SIGNATURE,
        "token signature is not valid",
    ),
    (
        "another key, same kid",
        lambda s: s.attacker.sign(claims()),
        errors.BAD_SIGNATURE,
        "token signature is not valid",
    ),
    (
        "embedded jwk, jku, x5u, x5c",
        _embedded_attacker_key,
        errors.BAD_SIGNATURE,
        "token signature is not valid",
    ),
    (
        "crit",
        lambda s: forge(s.header(crit=["exp"], exp=1), claims(), b"x" * 32),
        errors.INVALID,
        "token header has critical extensions (`crit`), which pdp does not support",
    ),
    (
        "b64 false",
        lambda s: forge(s.header(b64=False), claims(), b"x" * 32),
        errors.INVALID,
        "token header `b64` is not supported",
    ),
    # claims
    ("no sub", lambda s: s.sign(omit=("sub",)), errors.MISSING_CLAIM, "token has no `sub` claim"),
    ("sub null", lambda s: s.sign(sub=None), errors.MISSING_CLAIM, "token has no `sub` claim"),
    ("no exp", lambda s: s.sign(omit=("exp",)), errors.MISSING_CLAIM, "token has no `exp` claim"),
    ("no iat", lambda s: s.sign(omit=("iat",)), errors.MISSING_CLAIM, "token has no `iat` claim"),
    ("no aud", lambda s: s.sign(omit=("aud",)), errors.MISSING_CLAIM, "token has no `aud` claim"),
    ("sub a number", lambda s: s.sign(sub=42), M, "token `sub` claim must be a non-empty string"),
    ("sub empty", lambda s: s.sign(sub=""), M, "token `sub` claim must be a non-empty string"),
    (
        "wrong aud",
        lambda s: s.sign(aud="other"),
        errors.AUDIENCE,
        "token audience `other` is not accepted",
    ),
    (
        "aud prefix",
        lambda s: s.sign(aud="pd"),
        errors.AUDIENCE,
        "token audience `pd` is not accepted",
    ),
    (
        "wrong auds",
        lambda s: s.sign(aud=["a", "b"]),
        errors.AUDIENCE,
        "token audiences `a`, `b` are not accepted",
    ),
    ("empty aud list", lambda s: s.sign(aud=[]), errors.AUDIENCE, "token audience list is empty"),
    (
        "aud a number",
        lambda s: s.sign(aud=7),
        M,
        "token `aud` claim must be a string or a list of strings",
    ),
    (
        "aud list of numbers",
        lambda s: s.sign(aud=["pdp", 7]),
        M,
        "token `aud` claim must be a string or a list of strings",
    ),
    # time
    (
        "expired",
        lambda s: s.sign(
            iat=datetime(2026, 11, 23, 9, 55, tzinfo=UTC),
            exp=datetime(2026, 11, 23, 10, tzinfo=UTC),
        ),
        errors.EXPIRED,
        "token expired at 2026-11-23T10:00:00Z",
    ),
    (
        "expired beyond leeway",
        lambda s: s.sign(exp=NOW - timedelta(seconds=30)),
        errors.EXPIRED,
        "token expired at 2026-11-23T11:59:30Z",
    ),
    (
        "expired, fractional",
        lambda s: s.sign(exp=NOW.timestamp() - 60.25, iat=NOW - timedelta(minutes=2)),
        errors.EXPIRED,
        "token expired at 2026-11-23T11:58:59.750000Z",
    ),
    (
        "nbf in the future",
        lambda s: s.sign(nbf=NOW + timedelta(hours=1)),
        errors.NOT_YET_VALID,
        "token is not valid before 2026-11-23T13:00:00Z",
    ),
    (
        "nbf beyond leeway",
        lambda s: s.sign(nbf=NOW + timedelta(seconds=31)),
        errors.NOT_YET_VALID,
        "token is not valid before 2026-11-23T12:00:31Z",
    ),
    (
        "iat in the future",
        lambda s: s.sign(iat=NOW + timedelta(minutes=1)),
        errors.NOT_YET_VALID,
        "token is not valid before 2026-11-23T12:01:00Z (it says it was issued then)",
    ),
    (
        "lifetime",
        lambda s: s.sign(exp=NOW - timedelta(minutes=1) + timedelta(seconds=86_401)),
        errors.LIFETIME,
        "token lifetime of 86401 seconds is longer than the limit of 86400 seconds",
    ),
    (
        "exp before iat",
        lambda s: s.sign(iat=NOW, exp=NOW - timedelta(seconds=1)),
        errors.INVALID,
        "token `exp` is earlier than its `iat`",
    ),
    ("exp 10**50", lambda s: s.sign(exp=10**50), M, "token `exp` claim is out of range"),
    (
        "exp 1e400",
        lambda s: s.key.sign_raw(
            b'{"iss":"%s","aud":"pdp","sub":"a","iat":1,"exp":1e400}' % ISS.encode()
        ),
        M,
        "token `exp` claim is out of range",
    ),
    ("exp negative", lambda s: s.sign(exp=-1), M, "token `exp` claim is out of range"),
    (
        "exp a string",
        lambda s: s.sign(exp="tomorrow"),
        M,
        "token `exp` claim must be a number (seconds since 1970)",
    ),
    (
        "exp numeric string",
        lambda s: s.sign(exp=str(int(NOW.timestamp()) + 60)),
        M,
        "token `exp` claim must be a number (seconds since 1970)",
    ),
    (
        "exp true",
        lambda s: s.sign(exp=True),
        M,
        "token `exp` claim must be a number (seconds since 1970)",
    ),
    (
        "iat a list",
        lambda s: s.sign(iat=[1]),
        M,
        "token `iat` claim must be a number (seconds since 1970)",
    ),
    (
        "nbf a string",
        lambda s: s.sign(nbf="now"),
        M,
        "token `nbf` claim must be a number (seconds since 1970)",
    ),
    ("nbf 10**50", lambda s: s.sign(nbf=10**50), M, "token `nbf` claim is out of range"),
]


@pytest.mark.parametrize(
    ("build", "code", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_refused_tokens_have_an_exact_reason_and_leak_nothing(
    setup: Setup,
    build: Callable[[Setup], Any],
    code: str,
    message: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    token = build(setup)
    error = refused(setup.verifier, token)
    assert (error.code, error.message) == (code, message)
    assert type(error) is AuthenticationError
    texts = [token] if isinstance(token, str) else []
    assert_no_secrets(error, texts, [setup.key, setup.attacker], caplog.text)


def test_the_cases_cover_every_reason_code() -> None:
    codes = {value for name, value in vars(errors).items() if name.isupper()}
    covered = {code for _, _, code, _ in CASES}
    # No credential at all is the caller's case; the rest belong to the other credential kinds
    # and are covered by their own tests (test_hmac, test_api_keys, test_basic, test_certificates).
    not_for_tokens = {
        errors.MISSING,
        errors.UNKNOWN_KEY,
        errors.REVOKED,
        errors.TIMESTAMP,
        errors.REPLAY,
        errors.PASSWORD,
        errors.UNTRUSTED,
        errors.CERTIFICATE_EXPIRED,
        errors.CERTIFICATE_USAGE,
    }
    assert codes - covered == not_for_tokens


def test_embedded_keys_and_key_urls_are_never_followed(tmp_path: Path) -> None:
    # An issuer with a JWKS URL: the only URL ever fetched is the configured one, whatever the
    # token's jku / x5u say, and the attacker's embedded key is never used.
    key = SigningKey.generate("RS256", "key-1", label=ISSUER)
    attacker = SigningKey.generate("RS256", "evil", label="attacker")
    fetched: list[str] = []

    def fetch(url: str, timeout: float) -> bytes:
        fetched.append(url)
        return (
            jwks(attacker.public_jwk())
            if url != "https://issuer.example/jwks"
            else jwks(key.public_jwk())
        )

    clock = [0.0]
    settings = IssuerSettings(
        ISSUER, (AUDIENCE,), ("RS256",), jwks_url="https://issuer.example/jwks"
    )
    verifier = TokenVerifier([settings], fetch=fetch, clock=lambda: clock[0])
    headers = {
        "jwk": attacker.public_jwk(),
        "jku": "https://attacker.example/jwks",
        "x5u": "https://attacker.example/cert.pem",
        "x5c": [_attacker_certificate(attacker)],
    }
    clock[0] = 1000.0  # past the cooldown: an unknown kid may trigger one fetch
    error = refused(verifier, attacker.sign(claims(), headers=headers))
    assert (error.code, error.message) == (
        errors.UNKNOWN_KID,
        f"unknown key id `evil` for issuer `{ISSUER}`",
    )
    error = refused(verifier, attacker.sign(claims(), headers={**headers, "kid": "key-1"}))
    assert error.code == errors.BAD_SIGNATURE
    assert fetched == ["https://issuer.example/jwks"] * 2
    assert verifier.verify(key.sign(claims()), NOW).id == "alice"


def test_a_smaller_issuer_cap_applies_once_the_issuer_is_known(tmp_path: Path) -> None:
    big, sign_big = make_issuer(tmp_path, "RS256", issuer="https://big.example")
    small, sign_small = make_issuer(
        tmp_path, "RS256", issuer="https://small.example", max_token_bytes=1024
    )
    verifier = TokenVerifier([big, small])
    padded = "x" * 1200
    assert verifier.verify(sign_big(pad=padded), NOW).id == "alice"
    error = refused(verifier, sign_small(pad=padded))
    assert (error.code, error.message) == (
        errors.MALFORMED,
        "token is longer than the limit of 1024 bytes",
    )


def test_without_iat_the_lifetime_counts_from_now(tmp_path: Path) -> None:
    settings, sign = make_issuer(
        tmp_path, "ES256", required_claims=("exp", "iss", "aud", "sub"), max_lifetime_seconds=3600
    )
    verifier = TokenVerifier([settings])
    assert verifier.verify(sign(omit=("iat",), exp=NOW + timedelta(hours=1)), NOW).id == "alice"
    error = refused(verifier, sign(omit=("iat",), exp=NOW + timedelta(hours=1, seconds=1)))
    assert (error.code, error.message) == (
        errors.LIFETIME,
        "token expires 3601 seconds from now, later than the limit of 3600 seconds",
    )


def test_a_token_that_names_a_key_for_another_algorithm_is_refused(tmp_path: Path) -> None:
    key = SigningKey.generate("RS256", "key-1")
    settings = IssuerSettings(
        ISSUER,
        (AUDIENCE,),
        ("RS256", "PS256"),
        jwks_file=write_jwks(tmp_path / "jwks.json", key.public_jwk(alg="PS256")),
    )
    verifier = TokenVerifier([settings])
    error = refused(verifier, key.sign(claims()))
    assert (error.code, error.message) == (
        errors.ALGORITHM,
        f"key `key-1` of issuer `{ISSUER}` is for PS256, not RS256",
    )
    assert verifier.verify(key.sign(claims(), algorithm="PS256"), NOW).id == "alice"


# --- the boundary: nothing but AuthenticationError ------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "wrong_key"),
    [
        ("RS256", lambda: SigningKey.generate("EdDSA").public_key),  # TypeError in pyjwt
        ("ES256", lambda: SigningKey.generate("ES384").public_key),  # InvalidKeyError in pyjwt
    ],
)
def test_unexpected_failures_become_invalid_without_detail(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    algorithm: str,
    wrong_key: Callable[[], Any],
) -> None:
    # Fault injection: KeySet hands pyjwt a key of the wrong type, as a bug might.
    settings, sign = make_issuer(tmp_path, algorithm)
    verifier = TokenVerifier([settings])
    monkeypatch.setattr(KeySet, "key_for", lambda self, kid, alg: wrong_key())
    token = sign()
    error = refused(verifier, token)
    assert (error.code, error.message) == (errors.INVALID, "token could not be verified")
    assert_no_secrets(error, [token], [SigningKey.generate(algorithm, "key-1", ISSUER)])
    assert [r.getMessage() for r in caplog.records] in (
        ["token verification failed unexpectedly: TypeError"],
        ["token verification failed unexpectedly: InvalidKeyError"],
    )


def test_a_naive_now_fails_closed(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    error = refused(setup.verifier, setup.sign(), NOW.replace(tzinfo=None))
    assert (error.code, error.message) == (errors.INVALID, "token could not be verified")
    assert "timezone-aware" in caplog.text


def test_random_damage_only_ever_raises_authentication_errors(setup: Setup) -> None:
    rng = random.Random(20261123)
    original = setup.sign(roles=["a", "b"], score=1.5)
    expected = setup.verifier.verify(original, NOW)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/!é\x00"
    outcomes = set()
    for _ in range(600):
        token = list(original)
        for _ in range(rng.randint(1, 4)):
            if not token:
                break
            action = rng.choice(("replace", "delete", "insert", "truncate"))
            at = rng.randrange(len(token))
            if action == "replace":
                token[at] = rng.choice(alphabet)
            elif action == "delete":
                del token[at]
            elif action == "insert":
                token.insert(at, rng.choice(alphabet))
            else:
                del token[at:]
        damaged = "".join(token)
        if damaged == original:
            continue
        try:
            subject = setup.verifier.verify(damaged, NOW)
        except AuthenticationError as error:
            outcomes.add(error.code)
            assert error.code != errors.INVALID or error.message != "token could not be verified"
        else:  # only a change that keeps the meaning (such as padding) may pass
            assert subject.attributes == expected.attributes
            outcomes.add("accepted")
    assert {errors.MALFORMED, errors.BAD_SIGNATURE} <= outcomes


# --- the cache ----------------------------------------------------------------------------------


def test_a_cached_token_is_checked_against_now_on_every_hit(setup: Setup) -> None:
    token = setup.sign(nbf=NOW - timedelta(seconds=10))
    first = setup.verifier.verify(token, NOW)
    assert setup.verifier.verify(token, NOW) is first
    assert setup.verifier.cache_hits == 1
    later = NOW + timedelta(minutes=11)
    error = refused(setup.verifier, token, later)
    assert (error.code, error.message) == (errors.EXPIRED, "token expired at 2026-11-23T12:10:00Z")
    earlier = NOW - timedelta(minutes=5)
    error = refused(setup.verifier, token, earlier)
    assert (error.code, error.message) == (
        errors.NOT_YET_VALID,
        "token is not valid before 2026-11-23T11:59:50Z",
    )
    assert setup.verifier.cache_hits == 3  # both refusals came from the cached entry


def test_the_cache_is_bounded(setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "CACHE_SIZE", 4)
    issued = [setup.sign(sub=f"user-{number}") for number in range(6)]
    for token in issued:
        setup.verifier.verify(token, NOW)
    setup.verifier.verify(issued[-1], NOW)
    assert setup.verifier.cache_hits == 1
    assert setup.verifier.verify(issued[0], NOW).id == "user-0"  # evicted: verified again
    assert setup.verifier.cache_hits == 1


def test_the_cache_is_dropped_when_the_keys_change(tmp_path: Path) -> None:
    old = SigningKey.generate("ES256", "old")
    new = SigningKey.generate("ES256", "new")
    served = [jwks(old.public_jwk())]
    clock = [0.0]
    settings = IssuerSettings(
        ISSUER, (AUDIENCE,), ("ES256",), jwks_url="https://issuer.example/jwks"
    )
    verifier = TokenVerifier(
        [settings], fetch=lambda url, timeout: served[0], clock=lambda: clock[0]
    )
    token = old.sign(claims())
    verifier.verify(token, NOW)
    verifier.verify(token, NOW)
    assert verifier.cache_hits == 1
    # The issuer rotates: the old key is withdrawn. A token with the new kid triggers a fetch
    # (the cooldown has passed), and the cached verification by the old key no longer counts.
    served[0] = jwks(new.public_jwk())
    clock[0] = 301.0
    assert verifier.verify(new.sign(claims()), NOW).id == "alice"
    error = refused(verifier, token)
    assert (error.code, error.message) == (
        errors.UNKNOWN_KID,
        f"unknown key id `old` for issuer `{ISSUER}`",
    )
    assert verifier.cache_hits == 1

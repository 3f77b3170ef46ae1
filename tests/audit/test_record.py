"""Decision records: contents, faithful values, enough input to decide again, and no secrets."""

from __future__ import annotations

import json
import random
import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from ipaddress import ip_address, ip_network
from types import MappingProxyType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from pdp.audit.record import RECORD_VERSION, decision_record, encode, format_time, rejected_record
from pdp.engine.authorizer import authorize
from pdp.engine.decision import Decision, Reason, Request
from pdp.identity.subject import Subject
from pdp.language.literals import parse_datetime
from tests.audit.builders import NOW, record_for, rejected, shop, subject_attributes

AUTH = {"method": "jwt", "issuer": "https://id.example.test"}


def decoded(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    data = encode(records)
    return [json.loads(line) for line in data.decode("utf-8").split("\n")[:-1]]


def strictly_equal(a: object, b: object) -> bool:
    """Equal with the same types all the way down (Decimal("1") is not 1, 0.10 is not 0.1)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        assert isinstance(b, list | tuple)
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Decimal):
        return str(a) == str(b)
    return a == b


# --- contents ------------------------------------------------------------------------------------


def test_an_allow_record_holds_every_field() -> None:
    policies = shop()
    record = record_for(
        policies,
        7,
        resource={"type": "Product", "id": "p-7", "category": "alcohol", "price": 12.5},
    )
    data = encode([record])
    # Compact, in this field order, one line.
    assert data.startswith(
        b'{"v":1,"time":"2026-11-23T10:00:07.123456Z","decision_id":"d-000007","policy_revision":'
    )
    assert data.count(b"\n") == 1
    assert data.endswith(b"}\n")
    assert json.loads(data) == {
        "v": RECORD_VERSION,
        "time": "2026-11-23T10:00:07.123456Z",
        "decision_id": "d-000007",
        "policy_revision": policies.revision,
        "decision": "allow",
        "credential": "jwt",
        "subject": {
            "id": "alice",
            "issuer": "https://id.example.test",
            "method": "jwt",
            # The policies read sub, age and refund_limit; `auth` is always kept.
            "claims": {"sub": "alice", "age": 30, "auth": AUTH},
        },
        "caller": None,
        "action": "purchase",
        "resource": {"type": "Product", "id": "p-7", "category": "alcohol", "price": 12.5},
        "context": {"country": "SE"},
        "reasons": [{"code": "rule.permit", "rule": "purchase-alcohol"}],
        "errors": [],
        "latency_us": 47,
    }


def test_a_default_deny_has_a_reason_without_a_rule() -> None:
    [record] = decoded([record_for(shop(), 1, age=16)])
    assert record["decision"] == "deny"
    assert record["reasons"] == [{"code": "default.deny", "message": "no permit rule matched"}]


def test_a_forbid_that_fails_records_its_error_and_source() -> None:
    # broken-limit reads subject.refund_limit, which alice does not have: a failed forbid denies.
    [record] = decoded(
        [record_for(shop(), 1, action="refund", resource={"type": "Order", "id": "o-1"})]
    )
    assert record["decision"] == "deny"
    assert record["reasons"] == [{"code": "error.evaluation", "rule": "broken-limit"}]
    [error] = record["errors"]
    assert set(error) == {"rule", "message", "source"}
    assert error["rule"] == "broken-limit"
    assert error["source"].startswith("shop.policy:")
    assert error["message"]


def test_only_the_claims_policies_read_are_kept_and_auth_always() -> None:
    subject = Subject(subject_attributes(tier="gold"), "jwt", "alice", "https://id.example.test")
    request = Request(subject.attributes, "read", {"type": "Document", "id": "d1"})
    decision = Decision(False, (Reason("default.deny"),))

    def claims(claims_read: frozenset[str] | None) -> dict[str, Any]:
        [record] = decoded(
            [
                decision_record(
                    time=NOW,
                    decision_id="d-1",
                    policy_revision="rev",
                    subject=subject,
                    credential_kind="jwt",
                    request=request,
                    decision=decision,
                    latency_us=1,
                    claims_read=claims_read,
                )
            ]
        )
        result: dict[str, Any] = record["subject"]["claims"]
        return result

    assert claims(frozenset({"tier", "missing"})) == {"tier": "gold", "auth": AUTH}
    assert claims(frozenset()) == {"auth": AUTH}
    assert claims(None) == {
        "sub": "alice",
        "iss": "https://id.example.test",
        "aud": "shop-api",
        "age": 30,
        "email": "alice@example.test",
        "tier": "gold",
        "auth": AUTH,
    }


def test_the_key_that_made_a_call_is_kept_whatever_policies_read() -> None:
    attributes = {"sub": "shop", "app": "shop", "plan": "pro", "key_id": "kYZUxtWyerFU",
                  "auth": {"method": "api_key"}}  # fmt: skip
    subject = Subject(attributes, "api_key", "shop")
    request = Request(attributes, "read", {"type": "Catalogue", "id": "main"})
    [record] = decoded(
        [
            decision_record(
                time=NOW,
                decision_id="d-1",
                policy_revision="rev",
                subject=subject,
                credential_kind="api_key",
                request=request,
                decision=Decision(True, (Reason("rule.permit", "r"),)),
                latency_us=1,
                claims_read=frozenset({"plan"}),
            )
        ]
    )
    assert record["subject"]["claims"] == {
        "plan": "pro",
        "key_id": "kYZUxtWyerFU",
        "auth": {"method": "api_key"},
    }


def test_a_rejected_request_on_a_mutual_tls_connection_names_the_caller() -> None:
    caller = {"cn": "orders", "spiffe_id": "spiffe://example.test/orders"}
    record = rejected_record(
        time=NOW,
        decision_id="r-1",
        policy_revision="rev",
        credential_kind="jwt",
        error="`action` is required",
        latency_us=3,
        caller=caller,
    )
    assert decoded([record])[0]["caller"] == caller


def test_without_a_verified_subject_the_subject_is_null() -> None:
    [record] = decoded([record_for(shop(), 1, sub=None)])
    assert record["subject"] is None
    assert record["credential"] == "none"


def test_a_rejected_request_is_recorded() -> None:
    assert decoded([rejected(3)]) == [
        {
            "v": RECORD_VERSION,
            "time": "2026-11-23T10:00:03.123456Z",
            "decision_id": "r-000003",
            "policy_revision": "rev-1",
            "decision": "rejected",
            "credential": "jwt",
            "subject": None,
            "caller": None,
            "action": None,
            "resource": None,
            "context": None,
            "reasons": [],
            "errors": [],
            "error": "`resource.type` must be a non-empty string",
            "latency_us": 12,
        }
    ]


def test_a_rejected_request_keeps_what_could_be_read_of_it() -> None:
    request = Request({"sub": "alice"}, "read", {"type": "Document", "id": "d1"}, {"ip": "1.2.3.4"})
    record = rejected_record(
        time=NOW,
        decision_id="r-1",
        policy_revision="rev",
        credential_kind="none",
        error="too many values",
        latency_us=3,
        request=request,
    )
    [back] = decoded([record])
    assert back["action"] == "read"
    assert back["resource"] == {"type": "Document", "id": "d1"}
    assert back["context"] == {"ip": "1.2.3.4"}
    assert back["subject"] is None  # not decided, so no claim was read


# --- time ----------------------------------------------------------------------------------------


def test_times_are_utc_with_microseconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 11, 23, 12, 0, 0, 5, tzinfo=plus_two)) == (
        "2026-11-23T10:00:00.000005Z"
    )
    assert format_time(datetime(2026, 11, 23, 10, 0, tzinfo=UTC)) == "2026-11-23T10:00:00.000000Z"
    assert parse_datetime(format_time(NOW)) == NOW


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 11, 23, 10, 0))  # no zone: the point of the test


# --- values --------------------------------------------------------------------------------------


def test_request_decimals_read_back_as_the_same_decimals() -> None:
    generator = random.Random(20261123)
    floats = [
        0.1,
        0.1 + 0.2,
        12.5,
        -7.25,
        1e-7,
        1e20,
        2.0**60,  # whole but past 2**53: stays a decimal
        1.7976931348623157e308,
        5e-324,
        123456789.123456789,
        *(generator.uniform(-1e6, 1e6) for _ in range(300)),
        *(generator.random() * 10.0 ** generator.randint(-30, 30) for _ in range(300)),
    ]
    request = Request.from_json(
        {
            "subject": {},
            "action": "buy",
            "resource": {
                "type": "Basket",
                "id": "b-1",
                "prices": floats,
                "lines": [{"price": value, "tags": ["x", value]} for value in floats[:20]],
            },
            "context": {"amount": 0.1, "count": 3},
        }
    )
    assert sum(isinstance(value, Decimal) for value in request.resource["prices"]) > 500
    record = decision_record(
        time=NOW,
        decision_id="d-1",
        policy_revision="rev",
        subject=None,
        credential_kind="none",
        request=request,
        decision=Decision(False, (Reason("default.deny"),)),
        latency_us=1,
        claims_read=frozenset(),
    )
    data = encode([record])
    assert b'"context":{"amount":0.1,"count":3}' in data  # a JSON number, not a string
    back = json.loads(data)
    replayed = Request.from_json(
        {"action": back["action"], "resource": back["resource"], "context": back["context"]}
    )
    assert strictly_equal(replayed.resource, request.resource)
    assert strictly_equal(replayed.context, request.context)


def test_other_engine_values_are_written_as_their_text() -> None:
    class Secretive:
        def __repr__(self) -> str:
            return "hunter2-secret"

        __str__ = __repr__

    context = {
        "when": datetime(2026, 11, 23, 12, 0, tzinfo=timezone(timedelta(hours=2))),
        "day": date(2026, 11, 23),
        "ttl": timedelta(hours=1, minutes=30),
        "ip": ip_address("10.0.0.1"),
        "net": ip_network("2001:db8::/32"),
        "pair": ("a", 1),
        "frozen": MappingProxyType({"k": Decimal("2.5")}),
        "huge": Decimal("1E+400"),  # no float holds it: kept exact, as text
        "odd": Secretive(),
    }
    request = Request({}, "read", {"type": "Document", "id": "d1"}, context)
    record = rejected_record(
        time=NOW,
        decision_id="r-1",
        policy_revision="rev",
        credential_kind="none",
        error="e",
        latency_us=1,
        request=request,
    )
    data = encode([record])

    def no_constants(name: str) -> None:
        raise AssertionError(f"not JSON: {name}")

    assert json.loads(data, parse_constant=no_constants)["context"] == {
        "when": "2026-11-23T10:00:00.000000Z",
        "day": "2026-11-23",
        "ttl": "1h30m",
        "ip": "10.0.0.1",
        "net": "2001:db8::/32",
        "pair": ["a", 1],
        "frozen": {"k": 2.5},
        "huge": "1E+400",
        "odd": "<Secretive>",
    }
    assert b"hunter2" not in data  # an unknown object is never str()-ed into the log


# --- encoding ------------------------------------------------------------------------------------


def test_encode_writes_one_line_per_record_whatever_the_strings_hold() -> None:
    awkward = 'line\nbreak\r\u2028\u2029\x00\x1b[2J "quoted" Zo\u00eb \U0001f600'
    records = [
        rejected_record(
            time=NOW,
            decision_id=f"r-{number}",
            policy_revision="rev",
            credential_kind="none",
            error=awkward,
            latency_us=1,
        )
        for number in range(3)
    ]
    data = encode(records)
    assert data.count(b"\n") == 3
    assert "Zo\u00eb".encode() in data  # UTF-8, not \u escapes
    assert [json.loads(line)["error"] for line in data.split(b"\n")[:-1]] == [awkward] * 3
    assert encode([]) == b""


def test_a_lone_surrogate_is_kept_exactly() -> None:
    # json.loads("\"\\ud800\"") yields a string that has no UTF-8 form.
    lonely = json.loads('"a\\ud800b"')
    plain = rejected(1)
    odd = {**rejected(2), "error": lonely}
    data = encode([plain, odd, plain])
    lines = data.split(b"\n")
    assert len(lines) == 4
    assert json.loads(lines[1])["error"] == lonely
    assert lines[0] == lines[2] == encode([plain])[:-1]


# --- enough to decide again ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "resource", "context", "age", "outcome"),
    [
        ("purchase", {"type": "Product", "id": "p", "category": "alcohol"}, {}, 30, "allow"),
        ("purchase", {"type": "Product", "id": "p", "category": "alcohol"}, {}, 16, "deny"),
        ("purchase", {"type": "Product", "id": "p", "price": 10.25}, {}, 16, "allow"),
        ("purchase", {"type": "Product", "id": "p", "price": 10.75}, {}, 16, "deny"),
        ("purchase", {"type": "Product", "id": "p", "price": 1.5}, {"country": "KP"}, 30, "deny"),
        ("refund", {"type": "Order", "id": "o", "amount": 99.99}, {}, 30, "deny"),
        ("read", {"type": "Document", "id": "d", "owner": "alice"}, {}, 30, "allow"),
    ],
)
def test_a_record_holds_enough_to_decide_again(
    action: str, resource: dict[str, Any], context: dict[str, Any], age: int, outcome: str
) -> None:
    policies = shop()
    original = record_for(policies, 1, age=age, action=action, resource=resource, context=context)
    [record] = decoded([original])
    assert record["decision"] == outcome
    replayed_request = Request.from_json(
        {
            "subject": record["subject"]["claims"],
            "action": record["action"],
            "resource": record["resource"],
            "context": record["context"],
        }
    )
    decision = authorize(policies, replayed_request, parse_datetime(record["time"]))
    assert decision.outcome == record["decision"]
    reasons = [
        {"code": r.code, "rule": r.rule} if r.rule else {"code": r.code, "message": r.message}
        for r in decision.reasons
    ]
    assert reasons == record["reasons"]
    assert [
        {"rule": e.rule, "message": e.message, "source": e.source} for e in decision.errors
    ] == record["errors"]


# --- secrets -------------------------------------------------------------------------------------


def test_no_token_key_password_or_signature_reaches_the_log() -> None:
    password = b"correct horse battery staple 4521"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        Encoding.PEM, PrivateFormat.PKCS8, BestAvailableEncryption(password)
    )
    public_pem = key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signing_key = load_pem_private_key(private_pem, password)  # as a service would load it
    issued = int(time.time())
    claims = {
        "iss": "https://id.example.test",
        "aud": "shop-api",
        "sub": "alice",
        "iat": issued,
        "exp": issued + 300,
        "age": 30,
        "email": "alice@example.test",
    }
    token = jwt.encode(claims, signing_key, algorithm="RS256", headers={"kid": "key-1"})
    verified = jwt.decode(
        token,
        key.public_key(),
        algorithms=["RS256"],
        audience="shop-api",
        issuer="https://id.example.test",
        options={"require": ["exp", "iat", "iss", "aud", "sub"]},
    )
    subject = Subject({**verified, "auth": AUTH}, "jwt", verified["sub"], verified["iss"])
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(jwt.InvalidSignatureError) as refused:
        jwt.decode(token, other_key.public_key(), algorithms=["RS256"], audience="shop-api")

    policies = shop()
    request = Request(
        subject.attributes,
        "purchase",
        {"type": "Product", "id": "p-1", "category": "alcohol"},
        {"country": "SE"},
    )
    decision = authorize(policies, request, NOW)
    common: dict[str, Any] = {
        "time": NOW,
        "policy_revision": policies.revision,
        "credential_kind": "jwt",
        "latency_us": 10,
    }
    records = [
        decision_record(
            **common,
            decision_id="d-1",
            subject=subject,
            request=request,
            decision=decision,
            claims_read=None,  # everything the subject holds: the worst case
        ),
        decision_record(
            **common,
            decision_id="d-2",
            subject=None,
            request=Request({}, request.action, request.resource, request.context),
            decision=Decision(False, (Reason("authn.bad_signature", "", str(refused.value)),)),
            claims_read=None,
        ),
        rejected_record(
            **common, decision_id="r-3", error=f"bad signature: {refused.value}", request=request
        ),
    ]
    data = encode(records)

    assert decision.allowed
    assert b'"email":"alice@example.test"' in data  # the verified claims are there...
    header, payload, signature = token.split(".")
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    numbers = key.private_numbers()
    never = [
        token,
        header,
        payload,
        signature,
        signature[:24],
        password.decode(),
        *(jwk[name] for name in ("n", "d", "p", "q", "dp", "dq", "qi")),
        *(str(n) for n in (numbers.d, numbers.p, numbers.q, numbers.public_numbers.n)),
        *(format(n, "x") for n in (numbers.d, numbers.p, numbers.q, numbers.public_numbers.n)),
        *private_pem.decode().splitlines()[1:-1],
        *public_pem.decode().splitlines()[1:-1],
    ]
    for secret in never:
        assert secret.encode() not in data, secret[:16]  # ...and nothing of the credential


def test_a_credential_object_that_reaches_a_record_is_never_spelled_out() -> None:
    # orjson writes dataclasses field by field unless told not to; a BearerToken that slipped
    # into a context by mistake must show up as its type name only.
    from pdp.identity.credentials import BearerToken

    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJl"
    data = encode([{"context": {"credential": BearerToken(token)}}])
    assert data == b'{"context":{"credential":"<BearerToken>"}}\n'

"""The decision service end to end: a real server, a real client, really signed tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from google.protobuf.struct_pb2 import Struct
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pdp.client import Item
from pdp.v1 import decision_pb2 as pb
from tests.server.conftest import Service, ServiceFactory, rsa_issuer

ADULT_PURCHASE = {
    "action": "purchase",
    "resource_type": "Product",
    "resource_id": "p-1",
    "attributes": {"category": "alcohol"},
}


def allowed(service: Service, token: str) -> bool:
    return service.client.check(token, **ADULT_PURCHASE).allowed  # type: ignore[arg-type]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    encoded = [b64(json.dumps(part).encode()) for part in (header, payload)]
    return ".".join([*encoded, b64(signature)])


# --- tokens ------------------------------------------------------------------------------------


def test_rs256_and_es256_tokens_are_accepted(service: Service) -> None:
    for issuer in service.issuers:
        result = service.client.check(issuer.sign(), **ADULT_PURCHASE)  # type: ignore[arg-type]
        assert result.allowed, result
        assert result.rules == ("purchase-alcohol",)
        assert result.reasons[0].code == "rule.permit"
        assert result.policy_revision == service.running.store.current.revision
        assert result.decision_id


def _failures(service: Service) -> dict[str, tuple[str, str]]:
    """name -> (token, expected reason code)."""
    rsa = service.issuers[0]
    now = int(time.time())
    public_pem = rsa.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = rsa.claims()
    hs256_signing_input = ".".join(
        b64(json.dumps(part).encode())
        for part in ({"alg": "HS256", "typ": "JWT", "kid": rsa.kid}, claims)
    )
    hs256_signature = hmac.new(public_pem, hs256_signing_input.encode(), hashlib.sha256).digest()
    valid = rsa.sign()
    header, payload, signature = valid.split(".")
    tampered_claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered_claims["role"] = "admin"
    return {
        "expired": (rsa.sign(iat=now - 3600, exp=now - 600), "authn.token_expired"),
        "not yet valid": (rsa.sign(nbf=now + 3600), "authn.not_yet_valid"),
        "wrong audience": (rsa.sign(aud="billing-api"), "authn.audience"),
        "wrong issuer": (rsa.sign(iss="https://evil.example.test"), "authn.unknown_issuer"),
        "alg none": (forge({"alg": "none", "typ": "JWT"}, claims), "authn.algorithm"),
        "HS256 with the RSA public key": (
            f"{hs256_signing_input}.{b64(hs256_signature)}",
            "authn.algorithm",
        ),
        "unknown kid": (rsa.sign(headers={"kid": "no-such-key"}), "authn.unknown_kid"),
        "tampered payload": (
            f"{header}.{b64(json.dumps(tampered_claims).encode())}.{signature}",
            "authn.bad_signature",
        ),
        "oversized": (rsa.sign(padding="x" * 20_000), "authn.malformed"),
        "garbage": ("not-a-token", "authn.malformed"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "not yet valid",
        "wrong audience",
        "wrong issuer",
        "alg none",
        "HS256 with the RSA public key",
        "unknown kid",
        "tampered payload",
        "oversized",
        "garbage",
    ],
)
def test_bad_tokens_are_denied_with_their_code(service: Service, case: str) -> None:
    token, code = _failures(service)[case]
    result = service.client.check(token, **ADULT_PURCHASE)  # type: ignore[arg-type]
    assert not result.allowed
    assert [reason.code for reason in result.reasons] == [code]
    message = result.reasons[0].message
    assert message and token not in message
    assert all(part not in message for part in token.split(".") if len(part) > 8)
    # The server is unharmed: the next valid request is answered, and allowed.
    assert allowed(service, service.token())


def test_no_credentials_is_a_deny(service: Service) -> None:
    result = service.client.check(None, **ADULT_PURCHASE)  # type: ignore[arg-type]
    assert not result.allowed
    assert [r.code for r in result.reasons] == ["authn.missing"]


def test_only_verified_claims_reach_policies(service: Service) -> None:
    # Claims come from the token; nothing in the request can set subject attributes.
    token = service.token(age=16)
    result = service.client.check(
        token,
        "purchase",
        "Product",
        "p-1",
        attributes={"category": "alcohol", "subject": {"age": 40}},
        context={"subject": {"age": 40}, "age": 40},
        explain=True,
    )
    assert not result.allowed
    assert "purchase-alcohol: subject.age >= 18 was false (subject.age = 16)" in result.explanations


# --- answers -----------------------------------------------------------------------------------


def test_deny_with_reasons_and_explanations(service: Service) -> None:
    result = service.client.check(
        service.token(role="customer"), "delete", "Order", "o-1", explain=True
    )
    assert not result.allowed
    assert [(r.code, r.message) for r in result.reasons] == [
        ("default.deny", "no permit rule matched")
    ]
    assert 'delete-admin: subject.role == "admin" was false (subject.role = "customer")' in (
        result.explanations
    )


def test_batch_answers_each_item_in_order(service: Service) -> None:
    items = [
        Item("purchase", "Product", "p-1", {"category": "alcohol"}),
        Item("delete", "Order", "o-1"),
        Item("read", "Order", "o-2", {"account": "acct-1"}),
        Item("read", "Order", "o-3", {"account": "acct-2"}),
    ]
    results = service.client.check_batch(service.token(), items)
    assert [r.decision for r in results] == ["allow", "deny", "allow", "deny"]
    assert [r.rules for r in results] == [("purchase-alcohol",), (), ("read-order-owner",), ()]
    assert len({r.decision_id for r in results}) == 4
    records = service.audit_records()
    assert [r["decision_id"] for r in records[-4:]] == [r.decision_id for r in results]


def test_a_batch_with_a_bad_token_denies_every_item(service: Service) -> None:
    items = [Item("read", "Order", "o-1", {"account": "acct-1"})] * 3
    results = service.client.check_batch("garbage", items)
    assert [r.reasons[0].code for r in results] == ["authn.malformed"] * 3


# --- malformed requests ------------------------------------------------------------------------


def _invalid(service: Service, request: pb.CheckRequest | bytes, method: str = "Check") -> str:
    channel = grpc.insecure_channel(service.address)
    call = channel.unary_unary(f"/pdp.v1.DecisionService/{method}")
    payload = request if isinstance(request, bytes) else request.SerializeToString()
    with pytest.raises(grpc.RpcError) as caught:
        call(payload, timeout=5)
    channel.close()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details: str = caught.value.details()
    return details


def _request(**fields: Any) -> pb.CheckRequest:
    base = {"action": "read", "resource": pb.Resource(type="Order", id="o-1")}
    base.update(fields)
    return pb.CheckRequest(**base)


def _deep_struct(depth: int) -> Struct:
    struct = Struct()
    inner = struct
    for _ in range(depth):
        inner = inner.get_or_create_struct("x")
    inner["leaf"] = 1
    return struct


def _huge_nesting_bytes(depth: int) -> bytes:
    """A CheckRequest whose context nests `depth` Structs deep, serialised by hand, since the
    protobuf library itself refuses to build something that deep."""
    leaf = b""
    for _ in range(depth):
        value = b"\x2a" + _varint(len(leaf)) + leaf  # Value.struct_value (field 5)
        entry = b"\x0a\x01x" + b"\x12" + _varint(len(value)) + value  # map entry key/value
        leaf = b"\x0a" + _varint(len(entry)) + entry  # Struct.fields (field 1)
    resource = pb.Resource(type="Order", id="o-1").SerializeToString()
    return (
        b"\x12\x04read" + b"\x1a" + _varint(len(resource)) + resource
        + b"\x22" + _varint(len(leaf)) + leaf
    )  # fmt: skip


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte = number & 0x7F
        number >>= 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_request(action=""), "action is required"),
        (_request(resource=pb.Resource(id="o-1")), "resource.type is required"),
        (pb.CheckRequest(action="read"), "resource.type is required"),
        (_request(action="a" * 5000), "action is longer than 4096 bytes"),
        (
            _request(resource=pb.Resource(type="Order", id="x" * 5000)),
            "resource.id is longer than 4096 bytes",
        ),
        (_request(context=_deep_struct(12)), "is nested more than 8 levels deep"),
        (b"\xff\xff\xff\xff garbage", "the request is not a valid CheckRequest"),
        (_huge_nesting_bytes(200), "the request is not a valid CheckRequest"),
    ],
    ids=[
        "empty action",
        "missing resource type",
        "missing resource",
        "oversize action",
        "oversize id",
        "deep context",
        "garbage bytes",
        "nesting beyond protobuf",
    ],
)
def test_malformed_requests_are_invalid_argument(
    service: Service, request_: pb.CheckRequest | bytes, message: str
) -> None:
    assert message in _invalid(service, request_)
    assert allowed(service, service.token())  # and the next request is answered
    rejected = [r for r in service.audit_records() if r["decision"] == "rejected"]
    assert rejected and message in json.dumps(rejected[-1])


def test_null_in_a_list_and_infinity_are_refused(service: Service) -> None:
    context = Struct()
    context.update({"tags": ["a", None]})
    assert "contains null" in _invalid(service, _request(context=context))
    context = Struct()
    context["risk"] = float("inf")
    assert "is not a finite number" in _invalid(service, _request(context=context))


def test_oversized_batches_are_refused(service: Service) -> None:
    items = [pb.CheckItem(action="read", resource=pb.Resource(type="Order"))] * 101
    request = pb.CheckBatchRequest(items=items)
    assert "a batch holds at most 100 items, not 101" in _invalid(
        service, request.SerializeToString(), "CheckBatch"
    )
    assert "at least one item" in _invalid(
        service, pb.CheckBatchRequest().SerializeToString(), "CheckBatch"
    )


def test_oversized_messages_are_refused_by_the_transport(pdp_service: ServiceFactory) -> None:
    service = pdp_service(server={"max_message_bytes": 10_000})
    context = Struct()
    context["blob"] = "x" * 20_000
    with pytest.raises(grpc.RpcError) as caught:
        service.client.check(
            service.token(), "read", "Order", "o-1", context={"blob": "x" * 20_000}
        )
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert allowed(service, service.token())


# --- health and reflection ---------------------------------------------------------------------


def test_health_is_serving(service: Service) -> None:
    channel = grpc.insecure_channel(service.address)
    stub = health_pb2_grpc.HealthStub(channel)
    for name in ("", "pdp.v1.DecisionService"):
        answer = stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    channel.close()


def test_reflection_lists_the_services(service: Service) -> None:
    channel = grpc.insecure_channel(service.address)
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
    names = {s.name for s in response.list_services_response.service}
    assert {"pdp.v1.DecisionService", "grpc.health.v1.Health"} <= names
    channel.close()


# --- audit ---------------------------------------------------------------------------------------


def test_audit_records_every_decision_without_secrets(service: Service) -> None:
    tokens = [service.token(), service.issuers[1].sign(), "garbage.token.text"]
    answers = [service.client.check(t, **ADULT_PURCHASE) for t in tokens]  # type: ignore[arg-type]
    records = service.audit_records()
    assert [r["decision_id"] for r in records] == [a.decision_id for a in answers]
    text = service.config.audit.path.read_text()
    for token in tokens:
        assert token not in text
        assert all(part not in text for part in token.split(".") if len(part) > 8)
    first = records[0]
    assert first["decision"] == "allow"
    assert first["policy_revision"] == service.running.store.current.revision
    assert first["action"] == "purchase"
    assert first["resource"] == {"type": "Product", "id": "p-1", "category": "alcohol"}
    assert first["subject"]["id"] == "u-1"
    assert first["subject"]["claims"]["age"] == 30
    assert first["reasons"] == [{"code": "rule.permit", "rule": "purchase-alcohol"}]
    assert first["time"].endswith("Z") and "." in first["time"]
    assert records[2]["subject"] is None
    assert records[2]["reasons"][0]["code"] == "authn.malformed"


def test_an_audit_failure_is_a_deny_and_the_server_keeps_serving(
    pdp_service: ServiceFactory,
) -> None:
    # /dev/full accepts open() and fails every write with ENOSPC: a real disk-full.
    service = pdp_service(audit={"path": "/dev/full"})
    for _ in range(3):
        result = service.client.check(service.token(), **ADULT_PURCHASE)  # type: ignore[arg-type]
        assert not result.allowed
        assert [r.code for r in result.reasons] == ["error.audit"]


# --- reload ---------------------------------------------------------------------------------------


def _wait_for(predicate: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.05)


def test_editing_a_policy_changes_answers_and_revision(service: Service) -> None:
    before = service.client.check(service.token(role="support"), "delete", "Order", "o-1")
    assert not before.allowed
    policy = service.policies / "shop.policy"
    policy.write_text(
        policy.read_text().replace(
            'subject.role == "admin"', 'subject.role in ["admin", "support"]'
        )
    )
    _wait_for(lambda: service.running.store.current.revision != before.policy_revision)
    after = service.client.check(service.token(role="support"), "delete", "Order", "o-1")
    assert after.allowed
    assert after.policy_revision != before.policy_revision
    assert service.audit_records()[-1]["policy_revision"] == after.policy_revision


def test_a_broken_edit_keeps_the_last_good_set(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    good = service.running.store.current.revision
    policy = service.policies / "shop.policy"
    text = policy.read_text()
    policy.write_text(text.replace('subject.role == "admin"', "subject.role == "))
    _wait_for(lambda: "policy reload failed" in caplog.text)
    assert service.running.store.current.revision == good
    assert allowed(service, service.token())
    lines = text.splitlines()
    line = next(n for n, content in enumerate(lines, 1) if 'subject.role == "admin"' in content)
    # The condition now ends at `==`, so `reason` reads as a name and the parser stops at the
    # string after it, on the next line.
    assert f'shop.policy:{line + 1}:14: error: unexpected `"admins may delete"`' in caplog.text
    assert "unexpected" in caplog.text
    # Reported once, not again on every poll while the file stays broken.
    time.sleep(0.5)  # ten polls
    assert caplog.text.count("policy reload failed") == 1
    # Fixing the file brings the server forward again.
    policy.write_text(text.replace("admins may delete", "admins may delete anything"))
    _wait_for(lambda: service.running.store.current.revision != good)


def test_sighup_style_reload_without_watching(pdp_service: ServiceFactory) -> None:
    service = pdp_service(policies={"watch": False})
    good = service.running.store.current.revision
    policy = service.policies / "shop.policy"
    policy.write_text(policy.read_text() + "\n# a comment changes the revision\n")
    time.sleep(0.2)
    assert service.running.store.current.revision == good  # not watching
    service.running.reload()  # what SIGHUP does
    assert service.running.store.current.revision != good


def test_a_new_issuer_key_is_not_trusted_until_configured(pdp_service: ServiceFactory) -> None:
    service = pdp_service()
    stranger = rsa_issuer(kid=service.issuers[0].kid)  # same issuer name and kid, other key
    result = service.client.check(stranger.sign(), **ADULT_PURCHASE)  # type: ignore[arg-type]
    assert [r.code for r in result.reasons] == ["authn.bad_signature"]


# --- request-time schema validation --------------------------------------------------------


def test_schema_reject_mode_denies_with_the_attribute_named(pdp_service: ServiceFactory) -> None:
    service = pdp_service(policies={"validate_requests": "reject"})
    result = service.client.check(service.token(age="30"), **ADULT_PURCHASE)  # type: ignore[arg-type]
    assert not result.allowed
    assert [(r.code, r.message) for r in result.reasons] == [
        ("error.schema", "`subject.age` must be an integer, not string")
    ]
    assert allowed(service, service.token())  # a request that matches is decided as usual


def test_schema_warn_mode_decides_and_logs(
    pdp_service: ServiceFactory, caplog: pytest.LogCaptureFixture
) -> None:
    service = pdp_service(policies={"validate_requests": "warn"})
    result = service.client.check(service.token(role="root"), "delete", "Order", "o-1")
    assert not result.allowed
    assert [r.code for r in result.reasons] == ["default.deny"]
    assert "request does not match the schema: `subject.role` must be one of" in caplog.text


def test_positions_in_answers_show_no_installation_path(service: Service) -> None:
    result = service.client.check(service.token(), **ADULT_PURCHASE)  # type: ignore[arg-type]
    assert result.reasons[0].source.startswith("policies/shop.policy:")
    assert str(service.folder) not in result.reasons[0].source

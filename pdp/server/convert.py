"""Protobuf messages <-> plain values (the convert steps of the call-time flow).

Incoming values are bounded (string length, nesting, count) and normalised the way the engine
expects: protobuf numbers are doubles, so whole numbers become integers and others decimals;
null means absent; a null inside a list, or a number that is not finite, is refused.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.struct_pb2 import ListValue, Struct, Value

from pdp.config import RequestLimits
from pdp.decision_point import Answer, Query
from pdp.engine.values import InputError, from_double
from pdp.identity.credentials import (
    ApiKey,
    BasicAuthorization,
    BearerToken,
    ClientCertificate,
    Credential,
    HmacSignature,
)
from pdp.v1 import decision_pb2 as pb

_DECISIONS = {True: pb.DECISION_ALLOW, False: pb.DECISION_DENY}


class InvalidRequestError(ValueError):
    """A malformed request: answered with INVALID_ARGUMENT and this message."""


class _Reading:
    """The limits of one request, and how many more values it may hold."""

    __slots__ = ("left", "limits")

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits
        self.left = limits.max_values


def credential(message: pb.Credentials) -> Credential | None:
    """The credential a request carries, or None. Verification comes later (pdp.identity)."""
    kind = message.WhichOneof("kind")
    if kind == "bearer_token":
        return BearerToken(message.bearer_token) if message.bearer_token else None
    if kind == "hmac":
        signed = message.hmac
        return HmacSignature(
            key_id=signed.key_id,
            signature=signed.signature,
            timestamp=signed.timestamp,
            nonce=signed.nonce,
            method=signed.method,
            path=signed.path,
            query=signed.query,
            headers=dict(signed.headers),
            body_sha256=signed.body_sha256,
        )
    if kind == "api_key":
        return ApiKey(message.api_key) if message.api_key else None
    if kind == "basic":
        return BasicAuthorization(message.basic) if message.basic else None
    if kind == "client_certificate":
        pem = message.client_certificate
        return ClientCertificate(pem) if pem else None
    return None


def credential_kind(message: pb.Credentials) -> str:
    found = credential(message)
    return found.kind if found is not None else "none"


def check_request(request: pb.CheckRequest, limits: RequestLimits) -> tuple[Query, dict[str, Any]]:
    budget = _Reading(limits)
    query = _query(request, limits=limits, budget=budget, where="")
    context = _struct(request.context, budget, "context", 1)
    return query, context


def batch_request(
    request: pb.CheckBatchRequest, limits: RequestLimits, max_items: int
) -> tuple[list[Query], dict[str, Any]]:
    if not request.items:
        raise InvalidRequestError("a batch needs at least one item")
    if len(request.items) > max_items:
        raise InvalidRequestError(
            f"a batch holds at most {max_items} items, not {len(request.items)}"
        )
    budget = _Reading(limits)
    context = _struct(request.context, budget, "context", 1)
    queries = [
        _query(item, limits=limits, budget=budget, where=f"items[{n}].")
        for n, item in enumerate(request.items)
    ]
    return queries, context


def _query(
    item: pb.CheckRequest | pb.CheckItem, *, limits: RequestLimits, budget: _Reading, where: str
) -> Query:
    action, resource = item.action, item.resource
    if not action:
        raise InvalidRequestError(f"{where}action is required")
    _check_string(action, limits, f"{where}action")
    if not item.HasField("resource") or not resource.type:
        raise InvalidRequestError(f"{where}resource.type is required")
    _check_string(resource.type, limits, f"{where}resource.type")
    _check_string(resource.id, limits, f"{where}resource.id")
    attributes = _struct(resource.attributes, budget, f"{where}resource.attributes", 1)
    # The fields win over attributes of the same name: `type` is what targets match.
    attributes["type"] = resource.type
    attributes["id"] = resource.id
    return Query(action, attributes)


def _check_string(text: str, limits: RequestLimits, where: str) -> None:
    # len() counts characters; a character is at most 4 bytes, so most strings skip encoding.
    if len(text) * 4 > limits.max_string_bytes and len(text.encode()) > limits.max_string_bytes:
        raise InvalidRequestError(f"{where} is longer than {limits.max_string_bytes} bytes")


def _struct(struct: Struct, budget: _Reading, where: str, depth: int) -> dict[str, Any]:
    # The hot loop of every request: location texts are built only when something is wrong.
    limits = budget.limits
    if depth > limits.max_depth:
        raise InvalidRequestError(f"{where} is nested more than {limits.max_depth} levels deep")
    quick = limits.max_string_bytes // 4  # shorter strings cannot be too long, even in UTF-8
    out: dict[str, Any] = {}
    fields = struct.fields
    # Keys, then lookups: the map's items() is a pure-Python generator, a microsecond slower.
    for key in fields:
        value = fields[key]
        if len(key) > quick:
            _check_string(key, limits, f"{where} key")
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            budget.left -= 1
            text = value.string_value
            if len(text) > quick:
                _check_string(text, limits, f"{where}.{key}")
            out[key] = text
        elif kind is None or kind == "null_value":
            continue  # absent
        else:
            out[key] = _value(value, kind, budget, f"{where}.{key}", depth)
        if budget.left < 0:
            raise InvalidRequestError(f"the request has more than {limits.max_values} values")
    return out


def _list(items: ListValue, budget: _Reading, where: str, depth: int) -> list[Any]:
    limits = budget.limits
    if depth > limits.max_depth:
        raise InvalidRequestError(f"{where} is nested more than {limits.max_depth} levels deep")
    out = []
    for value in items.values:
        kind = value.WhichOneof("kind")
        if kind is None or kind == "null_value":
            raise InvalidRequestError(f"{where} contains null (lists cannot)")
        out.append(_value(value, kind, budget, f"{where}[]", depth))
        if budget.left < 0:
            raise InvalidRequestError(f"the request has more than {limits.max_values} values")
    return out


def _value(value: Value, kind: str, budget: _Reading, where: str, depth: int) -> Any:
    """A Value that is not null (the caller decides what null means where it is)."""
    limits = budget.limits
    budget.left -= 1
    if kind == "string_value":
        text = value.string_value
        _check_string(text, limits, where)
        return text
    if kind == "number_value":
        try:
            return from_double(value.number_value)
        except InputError:
            raise InvalidRequestError(f"{where} is not a finite number") from None
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct(value.struct_value, budget, where, depth + 1)
    return _list(value.list_value, budget, where, depth + 1)


def fill_response(message: pb.CheckResponse, answer: Answer) -> pb.CheckResponse:
    """Write `answer` into `message`. Filling messages in place (repeated `.add()`) costs half
    as much as building sub-messages and passing them in."""
    decision = answer.decision
    message.decision = _DECISIONS[decision.allowed]
    message.decision_id = answer.decision_id
    message.policy_revision = decision.policy_revision
    if answer.retry_after:
        message.retry_after_seconds = answer.retry_after
    reasons = message.reasons
    for r in decision.reasons:
        reasons.add(code=r.code, rule=r.rule, message=r.message, source=r.source)
    for e in decision.explanations:
        explanation = message.explanations.add(
            rule=e.rule,
            effect=e.effect,
            expression=e.expression,
            outcome=e.outcome,
            source=e.source,
            detail=e.detail,
            message=e.message,
        )
        for name, value in e.values:
            explanation.values.add(expression=name, value=value)
    for error in decision.errors:
        message.errors.add(
            rule=error.rule, effect=error.effect, message=error.message, source=error.source
        )
    return message

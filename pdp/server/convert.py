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
from pdp.identity.credentials import BearerToken, Credential
from pdp.v1 import decision_pb2 as pb

_DECISIONS = {True: pb.DECISION_ALLOW, False: pb.DECISION_DENY}


class InvalidRequestError(ValueError):
    """A malformed request: answered with INVALID_ARGUMENT and this message."""


class _Budget:
    __slots__ = ("left",)

    def __init__(self, values: int) -> None:
        self.left = values


def credential(message: pb.Credentials) -> Credential | None:
    kind = message.WhichOneof("kind")
    if kind == "bearer_token":
        token = message.bearer_token
        return BearerToken(token) if token else None
    return None


def credential_kind(message: pb.Credentials) -> str:
    found = credential(message)
    return found.kind if found is not None else "none"


def check_request(request: pb.CheckRequest, limits: RequestLimits) -> tuple[Query, dict[str, Any]]:
    budget = _Budget(limits.max_values)
    query = _query(request, limits=limits, budget=budget, where="")
    context = _struct(request.context, limits, budget, "context", 1)
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
    budget = _Budget(limits.max_values)
    context = _struct(request.context, limits, budget, "context", 1)
    queries = [
        _query(item, limits=limits, budget=budget, where=f"items[{n}].")
        for n, item in enumerate(request.items)
    ]
    return queries, context


def _query(
    item: pb.CheckRequest | pb.CheckItem, *, limits: RequestLimits, budget: _Budget, where: str
) -> Query:
    action, resource = item.action, item.resource
    if not action:
        raise InvalidRequestError(f"{where}action is required")
    _check_string(action, limits, f"{where}action")
    if not item.HasField("resource") or not resource.type:
        raise InvalidRequestError(f"{where}resource.type is required")
    _check_string(resource.type, limits, f"{where}resource.type")
    _check_string(resource.id, limits, f"{where}resource.id")
    attributes = _struct(resource.attributes, limits, budget, f"{where}resource.attributes", 1)
    # The fields win over attributes of the same name: `type` is what targets match.
    attributes["type"] = resource.type
    attributes["id"] = resource.id
    return Query(action, attributes)


def _check_string(text: str, limits: RequestLimits, where: str) -> None:
    # len() counts characters; a character is at most 4 bytes, so most strings skip encoding.
    if len(text) * 4 > limits.max_string_bytes and len(text.encode()) > limits.max_string_bytes:
        raise InvalidRequestError(f"{where} is longer than {limits.max_string_bytes} bytes")


def _struct(
    struct: Struct, limits: RequestLimits, budget: _Budget, where: str, depth: int
) -> dict[str, Any]:
    if depth > limits.max_depth:
        raise InvalidRequestError(f"{where} is nested more than {limits.max_depth} levels deep")
    out: dict[str, Any] = {}
    for key, value in struct.fields.items():
        _check_string(key, limits, f"{where} key")
        converted = _value(value, limits, budget, f"{where}.{key}", depth)
        if converted is not None:
            out[key] = converted
    return out


def _list(
    items: ListValue, limits: RequestLimits, budget: _Budget, where: str, depth: int
) -> list[Any]:
    if depth > limits.max_depth:
        raise InvalidRequestError(f"{where} is nested more than {limits.max_depth} levels deep")
    out = []
    for value in items.values:
        converted = _value(value, limits, budget, f"{where}[]", depth)
        if converted is None:
            raise InvalidRequestError(f"{where} contains null (lists cannot)")
        out.append(converted)
    return out


def _value(value: Value, limits: RequestLimits, budget: _Budget, where: str, depth: int) -> Any:
    budget.left -= 1
    if budget.left < 0:
        raise InvalidRequestError(f"the request has more than {limits.max_values} values")
    kind = value.WhichOneof("kind")
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
        return _struct(value.struct_value, limits, budget, where, depth + 1)
    if kind == "list_value":
        return _list(value.list_value, limits, budget, where, depth + 1)
    return None  # null, or no kind at all: absent


def response(answer: Answer) -> pb.CheckResponse:
    decision = answer.decision
    return pb.CheckResponse(
        decision=_DECISIONS[decision.allowed],
        reasons=[
            pb.Reason(code=r.code, rule=r.rule, message=r.message, source=r.source)
            for r in decision.reasons
        ],
        decision_id=answer.decision_id,
        policy_revision=decision.policy_revision,
        explanations=[
            pb.Explanation(
                rule=e.rule,
                effect=e.effect,
                expression=e.expression,
                outcome=e.outcome,
                values=[pb.Explanation.Value(expression=n, value=v) for n, v in e.values],
                source=e.source,
                detail=e.detail,
                message=e.message,
            )
            for e in decision.explanations
        ],
        errors=[
            pb.RuleError(rule=e.rule, effect=e.effect, message=e.message, source=e.source)
            for e in decision.errors
        ],
    )

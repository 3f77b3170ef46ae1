"""Requests in, decisions out: the engine's public data, immutable and free of Python objects
that a caller could not serialise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pdp.engine.values import InputError, from_json

# Reason codes (docs/api.md lists every code pdp can return).
PERMIT = "rule.permit"
FORBID = "rule.forbid"
DEFAULT_DENY = "default.deny"
FORBID_ERROR = "error.evaluation"


class RequestError(ValueError):
    """A request that cannot be evaluated at all (not a deny: the input itself is malformed)."""


@dataclass(frozen=True, slots=True)
class Request:
    """What is asked: may `subject` do `action` on `resource`, given `context`?

    `resource` holds `type` and `id` beside its attributes. Values are engine values
    (see pdp.engine.values); use `from_json` for parsed JSON.
    """

    subject: Mapping[str, Any]
    action: str
    resource: Mapping[str, Any]
    context: Mapping[str, Any] = field(default_factory=dict)
    caller: Mapping[str, Any] = field(default_factory=dict)
    """The service that asked, from its mutual-TLS client certificate (see docs/api.md)."""

    @property
    def resource_type(self) -> str:
        value = self.resource.get("type", "")
        return value if isinstance(value, str) else ""

    @classmethod
    def from_json(cls, document: object) -> Request:
        """A request in the shop scenario's shape: {"subject", "action", "resource", "context"}."""
        if not isinstance(document, dict):
            raise RequestError("a request must be a JSON object")
        unknown = set(document) - {"subject", "action", "resource", "context", "caller"}
        if unknown:
            raise RequestError(f"unknown request field `{sorted(unknown)[0]}`")
        action = document.get("action")
        if not isinstance(action, str) or not action:
            raise RequestError("`action` must be a non-empty string")
        resource = _record(document, "resource", required=True)
        if not isinstance(resource.get("type"), str) or not resource["type"]:
            raise RequestError("`resource.type` must be a non-empty string")
        if not isinstance(resource.get("id", ""), str):
            raise RequestError("`resource.id` must be a string")
        # As the gRPC service does: a resource without an id has the id "", so a rule reading
        # resource.id behaves the same in pdp check, pdp test and production.
        resource.setdefault("id", "")
        return cls(
            subject=_record(document, "subject", required=False),
            action=action,
            resource=resource,
            context=_record(document, "context", required=False),
            caller=_record(document, "caller", required=False),
        )


def _record(document: Mapping[str, Any], key: str, required: bool) -> dict[str, Any]:
    value = document.get(key)
    if value is None:
        if required:
            raise RequestError(f"`{key}` is required")
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"`{key}` must be a JSON object")
    try:
        converted: dict[str, Any] = from_json(value)
    except InputError as error:
        raise RequestError(f"`{key}`: {error}") from None
    return converted


@dataclass(frozen=True, slots=True)
class Reason:
    """Why the decision came out as it did. `code` says which stage decided (see docs/api.md)."""

    code: str
    rule: str = ""
    message: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class RuleError:
    """A rule whose condition could not be evaluated, and where it failed."""

    rule: str
    effect: str
    message: str
    source: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """For a rule whose target matched but whose condition did not hold: the first
    sub-condition that failed, and the values it saw."""

    rule: str
    effect: str
    expression: str
    outcome: str
    """`false`, or `error` when the sub-condition could not be evaluated."""
    values: tuple[tuple[str, str], ...]
    """(operand, its value) pairs; the value is `missing` for an absent attribute."""
    source: str
    detail: str = ""
    """For an error: what went wrong."""

    @property
    def message(self) -> str:
        shown = ", ".join(f"{name} = {value}" for name, value in self.values)
        values = f" ({shown})" if shown else ""
        if self.outcome == "false":
            return f"{self.rule}: {self.expression} was false{values}"
        detail = f": {self.detail}" if self.detail and "missing" not in self.detail else ""
        return f"{self.rule}: {self.expression} could not be evaluated{values}{detail}"


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[Reason, ...]
    errors: tuple[RuleError, ...] = ()
    explanations: tuple[Explanation, ...] = ()
    policy_revision: str = ""

    @property
    def outcome(self) -> str:
        return "allow" if self.allowed else "deny"

    @property
    def rules(self) -> tuple[str, ...]:
        """The ids of the rules that decided: matched permits for an allow, matched (or failed)
        forbids for a deny; empty for a default deny."""
        return tuple(reason.rule for reason in self.reasons if reason.rule)

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.outcome,
            "rules": list(self.rules),
            "reasons": [_as_dict(reason) for reason in self.reasons],
            "errors": [_as_dict(error) for error in self.errors],
            "explanations": [
                {
                    **_as_dict(explanation),
                    "values": dict(explanation.values),
                    "message": explanation.message,
                }
                for explanation in self.explanations
            ],
            "policy_revision": self.policy_revision,
        }


def _as_dict(item: Reason | RuleError | Explanation) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__slots__}

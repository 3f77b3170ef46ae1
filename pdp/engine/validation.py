"""Request-time validation: do a request's attributes match what the schema declares?

Only declared sections are checked, and only declared attributes in them: a token usually
carries more claims than policies read. A required attribute that is absent, or a value of the
wrong type or format, is a violation naming the attribute.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pdp.engine.decision import Request
from pdp.engine.values import type_name
from pdp.language import literals
from pdp.language.schema import AttributeType, Schema

RESERVED_SUBJECT = frozenset({"auth"})
"""Subject attributes pdp sets itself, never checked against the schema."""


@dataclass(frozen=True, slots=True)
class Violation:
    attribute: str
    message: str


_TEXT_PARSERS = {
    "date": literals.parse_date,
    "datetime": literals.parse_datetime,
    "ip": literals.parse_ip,
}


def validate_request(schema: Schema, request: Request) -> list[Violation]:
    found: list[Violation] = []
    if schema.subject is not None:
        subject = {k: v for k, v in request.subject.items() if k not in RESERVED_SUBJECT}
        _check_record(schema.subject, subject, "subject", found)
    if schema.context is not None:
        _check_record(schema.context, request.context, "context", found)
    if schema.resources is not None:
        declared = schema.resources.get(request.resource_type)
        if declared is None:
            found.append(
                Violation(
                    "resource.type",
                    f"resource type `{request.resource_type}` is not declared in the schema",
                )
            )
        else:
            attributes = {k: v for k, v in request.resource.items() if k not in ("type", "id")}
            _check_record(declared.attributes, attributes, "resource", found)
    return found


def _check_record(
    declared: Mapping[str, AttributeType],
    values: Mapping[str, Any],
    where: str,
    found: list[Violation],
) -> None:
    for name, attribute in declared.items():
        path = f"{where}.{name}"
        if name not in values:
            if not attribute.optional:
                found.append(Violation(path, f"`{path}` is required by the schema"))
            continue
        problem = _check_value(attribute, values[name], path, found)
        if problem is not None:
            found.append(Violation(path, problem))


def _check_value(
    attribute: AttributeType, value: Any, path: str, found: list[Violation]
) -> str | None:
    """What is wrong with `value`, or None; nested problems go to `found` directly."""
    kind = attribute.kind
    actual = type(value)
    if kind in ("string", "enum", *_TEXT_PARSERS):
        if actual is not str:
            return f"`{path}` must be a string, not {type_name(value)}"
        if kind == "enum" and value not in attribute.values:
            allowed = ", ".join(f"`{v}`" for v in attribute.values)
            return f"`{path}` must be one of {allowed}"
        parser = _TEXT_PARSERS.get(kind)
        if parser is not None:
            try:
                parser(value)
            except ValueError:
                return f"`{path}` must be {'an' if kind == 'ip' else 'a'} {kind} in text form"
        return None
    if kind == "integer":
        return None if actual is int else f"`{path}` must be an integer, not {type_name(value)}"
    if kind == "decimal":
        ok = actual is int or actual is Decimal
        return None if ok else f"`{path}` must be a number, not {type_name(value)}"
    if kind == "boolean":
        return None if actual is bool else f"`{path}` must be a boolean, not {type_name(value)}"
    if kind == "list":
        if actual is not list and actual is not tuple:
            return f"`{path}` must be a list, not {type_name(value)}"
        if attribute.element is not None:
            for position, item in enumerate(value):
                item_path = f"{path}[{position}]"
                problem = _check_value(attribute.element, item, item_path, found)
                if problem is not None:
                    return problem
        return None
    if kind == "record":
        if actual is not dict:
            return f"`{path}` must be a record, not {type_name(value)}"
        if attribute.attributes is not None:
            _check_record(attribute.attributes, value, path, found)
        return None
    return None  # pragma: no cover - the schema admits only the kinds above

"""Test cases against the folder's schema: a case that sends an attribute the schema does not
declare (`contry = "SE"`) or a value of the wrong type tests nothing a real request could
carry, so it is a problem of the test file, reported at the case's line."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pdp.engine.validation import RESERVED_SUBJECT, validate_request
from pdp.language.checker import suggest
from pdp.language.schema import AttributeType, Schema
from pdp.policy_tests.cases import CaseProblem, PolicyCase


def schema_problems(schema: Schema, cases: Iterable[PolicyCase]) -> list[CaseProblem]:
    """Every case's attributes that the schema does not declare, and every value that does not
    match its declared type, in case order."""
    problems: list[CaseProblem] = []
    for case in cases:
        messages = _undeclared(schema, case) + [
            violation.message for violation in validate_request(schema, case.request)
        ]
        problems.extend(
            CaseProblem(case.file, case.line, f'case "{case.name}": {message}')
            for message in messages
        )
    return problems


def _undeclared(schema: Schema, case: PolicyCase) -> list[str]:
    request = case.request
    found: list[str] = []
    if schema.subject is not None:
        subject = {k: v for k, v in request.subject.items() if k not in RESERVED_SUBJECT}
        found += _unknown(schema.subject, subject, "subject")
    if schema.context is not None:
        found += _unknown(schema.context, request.context, "context")
    if schema.resources is not None:
        declared = schema.resources.get(request.resource_type)
        if declared is not None:
            attributes = {k: v for k, v in request.resource.items() if k not in ("type", "id")}
            found += _unknown(declared.attributes, attributes, "resource")
    return found


def _unknown(
    declared: Mapping[str, AttributeType], values: Mapping[str, Any], where: str
) -> list[str]:
    return [
        f"`{where}.{name}` is not in the schema{suggest(name, declared)}"
        for name in values
        if name not in declared
    ]

"""The `caller` root: the service that called pdp, from its mutual-TLS certificate."""

from __future__ import annotations

import pytest

from pdp.engine.authorizer import authorize
from pdp.engine.decision import Request
from pdp.engine.policy_set import PolicySetError, build_policy_set
from pdp.language.formatter import format_source
from pdp.language.schema import load_schema
from pdp.language.source import Source
from tests.helpers import NOW

POLICY = """\
permit reports-via-reporting {
    action   read
    resource Report
    when     caller has spiffe_id
             and caller.spiffe_id == "spiffe://example.test/reports"
             and datetime(caller.not_after ?? "1970-01-01T00:00:00Z") > now()
    reason   "{caller.spiffe_id} reads {resource.id}"
}
"""

SCHEMA = """
[resources.Report]
actions = ["read"]
"""

REPORTS = {
    "cn": "reports",
    "spiffe_id": "spiffe://example.test/reports",
    "uri": ["spiffe://example.test/reports"],
    "not_after": "2027-11-23T12:00:00+00:00",
}


def decide(caller: dict[str, object] | None) -> tuple[bool, list[str]]:
    policies = build_policy_set([Source("t.policy", POLICY)])
    request = Request.from_json(
        {
            "subject": {"sub": "u-1"},
            "action": "read",
            "resource": {"type": "Report", "id": "r-1"},
            **({"caller": caller} if caller is not None else {}),
        }
    )
    decision = authorize(policies, request, NOW)
    return decision.allowed, [f"{r.code} {r.rule}: {r.message}" for r in decision.reasons]


def test_a_rule_on_the_caller_allows_that_service() -> None:
    assert decide(REPORTS) == (
        True,
        ["rule.permit reports-via-reporting: spiffe://example.test/reports reads r-1"],
    )


def test_another_service_or_no_certificate_is_denied() -> None:
    other = {**REPORTS, "cn": "orders", "spiffe_id": "spiffe://example.test/orders"}
    assert decide(other)[0] is False
    assert decide({})[0] is False
    assert decide(None)[0] is False


def test_an_expired_caller_certificate_does_not_match() -> None:
    assert decide({**REPORTS, "not_after": "2026-11-23T11:59:59+00:00"})[0] is False


def headlines(policy: str) -> list[str]:
    schema, problems = load_schema([Source("schema.toml", SCHEMA)])
    assert problems == [] and schema is not None
    try:
        built = build_policy_set([Source("t.policy", policy)], schema=schema)
    except PolicySetError as error:
        return [d.headline() for d in error.diagnostics]
    return [d.headline() for d in built.warnings]


def rule(condition: str) -> str:
    return f"permit r {{ action read resource Report when {condition} }}"


def test_the_schema_knows_the_caller_attributes_without_declaring_them() -> None:
    assert headlines(POLICY) == []
    assert headlines(rule('caller has uri and "spiffe://x/y" in caller.uri')) == []


def test_caller_attributes_are_optional_as_a_plaintext_call_has_none() -> None:
    assert headlines(rule('caller.cn == "reports"')) == [
        "t.policy:1:45: warning: optional attribute `caller.cn` is read without a presence "
        "test; guard it with `caller has cn` or give a default with `??`"
    ]


def test_the_schema_refuses_an_unknown_caller_attribute() -> None:
    assert headlines(rule('caller.spiffe == "x"')) == [
        "t.policy:1:45: error: unknown attribute `caller.spiffe`; did you mean `spiffe_id`?"
    ]


def test_the_schema_checks_caller_attribute_types() -> None:
    assert headlines(rule("caller has cn and caller.cn > 3")) == [
        "t.policy:1:63: error: `>` needs two numbers, dates, datetimes or durations, "
        "not string and integer"
    ]


def test_a_caller_is_a_record_in_requests() -> None:
    resource = {"type": "Report", "id": "r"}
    with pytest.raises(ValueError, match="caller"):
        Request.from_json({"action": "read", "resource": resource, "caller": "reports"})


def test_fmt_keeps_caller_paths() -> None:
    assert format_source(Source("t.policy", POLICY)) == POLICY

"""The shop scenario: all 2,000 requests, against answers computed by an independent engine.

tests/data/shop holds a copy of the scenario (requests.jsonl, expected.jsonl, README.md), so the
repository stands on its own. Every decision and every deciding rule id must agree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pdp.engine.authorizer import authorize
from pdp.engine.decision import Request
from pdp.engine.policy_set import PolicySet
from pdp.policy_store import load_policy_set
from tests.helpers import NOW

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "shop"


def _lines(name: str) -> list[Any]:
    return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line]


REQUESTS = _lines("requests.jsonl")
EXPECTED = _lines("expected.jsonl")


def test_the_scenario_is_complete() -> None:
    assert len(REQUESTS) == len(EXPECTED) == 2000
    # Both kinds of answer, and every rule, occur: the comparison below cannot pass vacuously.
    assert {answer["decision"] for answer in EXPECTED} == {"allow", "deny"}
    rules = {rule for answer in EXPECTED for rule in answer["rules"]}
    assert len(rules) == 7


@pytest.mark.parametrize("folder", ["policies/shop", "policies"], ids=["shop alone", "all"])
def test_every_decision_and_rule_agrees(folder: str) -> None:
    # `policies` is what `make run` serves; other example sets in it must not change the shop.
    policy_set = load_policy_set(ROOT / folder)
    mismatches = _mismatches(policy_set)
    assert mismatches == [], f"{len(mismatches)} disagreements, first: {mismatches[:3]}"


def _mismatches(policy_set: PolicySet) -> list[tuple[int, dict[str, Any], dict[str, Any]]]:
    found = []
    for number, (line, expected) in enumerate(zip(REQUESTS, EXPECTED, strict=True), start=1):
        decision = authorize(policy_set, Request.from_json(line), NOW)
        got = {"decision": decision.outcome, "rules": list(decision.rules)}
        if got != expected:
            found.append((number, got, expected))
    return found


def test_explain_agrees_with_the_decision() -> None:
    # Explanations come from a separate walk; for every request, a rule is explained exactly
    # when it did not decide in its favour.
    policy_set = load_policy_set(ROOT / "policies" / "shop")
    for line in REQUESTS[:500]:
        decision = authorize(policy_set, Request.from_json(line), NOW, explain=True)
        explained = {explanation.rule for explanation in decision.explanations}
        assert not explained & set(decision.rules)
        matched_permits = {r.rule for r in decision.reasons if r.code == "rule.permit"}
        assert not explained & matched_permits

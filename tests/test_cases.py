"""Data-driven semantics: every `[[case]]` in tests/cases/*.toml is one test.

A case holds a policy (one file's text), optional `data`, a request (`subject`, `action`,
`resource`, `context`), an optional `now`, and what must come out: `expect` ("allow" or "deny"),
optionally `rules` (deciding rule ids, in order), `reason_codes`, `errors` (ids of rules whose
condition failed to evaluate) and `explain` (the exact explanation messages, in order).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from pdp.language.literals import parse_datetime
from tests.helpers import NOW, decide

CASES_DIR = Path(__file__).parent / "cases"
KNOWN_KEYS = {
    "name",
    "policy",
    "data",
    "subject",
    "action",
    "resource",
    "context",
    "now",
    "expect",
    "rules",
    "reason_codes",
    "errors",
    "explain",
}


def _load() -> list[Any]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.toml")):
        for case in tomllib.loads(path.read_text("utf-8")).get("case", []):
            cases.append(pytest.param(case, id=f"{path.stem}:{case['name']}"))
    return cases


CASES = _load()


def test_there_are_cases() -> None:
    assert len(CASES) >= 1


@pytest.mark.parametrize("case", CASES)
def test_case(case: dict[str, Any]) -> None:
    unknown = set(case) - KNOWN_KEYS
    assert not unknown, f"unknown keys in case: {unknown}"
    assert case["expect"] in ("allow", "deny")
    decision = decide(
        case["policy"],
        subject=case.get("subject", {}),
        action=case.get("action", "read"),
        resource=case.get("resource", {"type": "Document", "id": "d1"}),
        context=case.get("context", {}),
        data=case.get("data"),
        now=parse_datetime(case["now"]) if "now" in case else NOW,
        explain="explain" in case,
    )
    assert decision.outcome == case["expect"], decision
    if "rules" in case:
        assert list(decision.rules) == case["rules"]
    if "reason_codes" in case:
        assert [reason.code for reason in decision.reasons] == case["reason_codes"]
    if "errors" in case:
        assert [error.rule for error in decision.errors] == case["errors"]
    if "explain" in case:
        assert [e.message for e in decision.explanations] == case["explain"]

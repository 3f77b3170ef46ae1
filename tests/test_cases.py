"""Data-driven semantics: every `[[case]]` in tests/cases/*.toml is one test.

A case holds a policy (one file's text, named `test.policy`), optional `data` (read as a data
file would be), a request (`subject`, `action`, `resource`, `context`, or the whole request as
JSON text in `request_json`, which can express null), an optional `now`, and what must come out:
- `load_error`: the policy must fail to load, with exactly these diagnostic headlines; or
- `expect` ("allow" or "deny"), and optionally `rules` (deciding rule ids, in order),
  `reason_codes`, `reasons` (reason messages), `errors` (ids of rules whose condition failed),
  `error_sources` (where each of those failed, `file:line:col`) and `explain` (the exact
  explanation messages, in order).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pdp.engine.authorizer import authorize
from pdp.engine.decision import Request
from pdp.engine.policy_set import PolicySetError
from pdp.engine.values import from_json
from pdp.language.literals import parse_datetime
from tests.helpers import NOW, policy_set, request

CASES_DIR = Path(__file__).parent / "cases"
KNOWN_KEYS = {
    "name", "policy", "data", "subject", "action", "resource", "context", "request_json",
    "now", "expect", "load_error", "rules", "reason_codes", "reasons", "errors",
    "error_sources", "explain",
}  # fmt: skip


def _load() -> list[Any]:
    cases = []
    for path in sorted(CASES_DIR.glob("*.toml")):
        for case in tomllib.loads(path.read_text("utf-8")).get("case", []):
            cases.append(pytest.param(case, id=f"{path.stem}:{case['name']}"))
    return cases


CASES = _load()


def test_there_are_cases() -> None:
    assert len(CASES) >= 400


@pytest.mark.parametrize("case", CASES)
def test_case(case: dict[str, Any]) -> None:
    unknown = set(case) - KNOWN_KEYS
    assert not unknown, f"unknown keys in case: {unknown}"
    assert ("expect" in case) != ("load_error" in case), "a case has `expect` or `load_error`"
    data = from_json(case["data"]) if "data" in case else None
    if "load_error" in case:
        with pytest.raises(PolicySetError) as caught:
            policy_set(case["policy"], data)
        assert [d.headline() for d in caught.value.diagnostics] == case["load_error"]
        return
    assert case["expect"] in ("allow", "deny")
    if "request_json" in case:
        asked = Request.from_json(json.loads(case["request_json"]))
    else:
        asked = request(
            subject=case.get("subject", {}),
            action=case.get("action", "read"),
            resource=case.get("resource", {"type": "Document", "id": "d1"}),
            context=case.get("context", {}),
        )
    now = parse_datetime(case["now"]) if "now" in case else NOW
    decision = authorize(policy_set(case["policy"], data), asked, now, explain="explain" in case)
    assert decision.outcome == case["expect"], decision
    if "rules" in case:
        assert list(decision.rules) == case["rules"]
    if "reason_codes" in case:
        assert [reason.code for reason in decision.reasons] == case["reason_codes"]
    if "reasons" in case:
        assert [reason.message for reason in decision.reasons] == case["reasons"]
    if "errors" in case:
        assert [error.rule for error in decision.errors] == case["errors"]
    if "error_sources" in case:
        assert [error.source for error in decision.errors] == case["error_sources"]
    if "explain" in case:
        assert [e.message for e in decision.explanations] == case["explain"]

"""Coverage: which rules the cases made match, and which operands they saw true and false."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pdp.language import ast
from pdp.policy_tests.coverage import CoverageCollector, CoverageReport, RuleCoverage, operand_nodes
from pdp.policy_tests.runner import run_folder
from tests.helpers import NOW, policy_set, request

FIXTURES = Path(__file__).parent / "fixtures"


def coverage(
    text: str, *requests: dict[str, Any], data: dict[str, Any] | None = None
) -> CoverageReport:
    collector = CoverageCollector(policy_set(text, data))
    for asked in requests:
        collector.record(request(**asked), NOW)
    return collector.report()


def outcomes(rule: RuleCoverage) -> list[tuple[str, bool, bool]]:
    return [(operand.text, operand.seen_true, operand.seen_false) for operand in rule.operands]


def only_rule(report: CoverageReport) -> RuleCoverage:
    [rule] = report.rules
    return rule


def test_the_tiny_fixture_has_the_coverage_worked_out_by_hand() -> None:
    report = run_folder(FIXTURES / "tiny", coverage=True).coverage
    assert report is not None
    rules = {rule.id: rule for rule in report.rules}
    assert list(rules) == ["no-banned", "no-erase-by-interns", "read-doc", "list-docs"]
    # Both cases read a Doc, so both hit no-banned (any action); nothing asks to erase or list.
    assert [(r.cases, r.matched, r.errors, r.triggered) for r in rules.values()] == [
        (2, 0, 0, False),
        (0, 0, 0, False),
        (2, 1, 0, True),
        (0, 0, 0, False),
    ]
    assert outcomes(rules["no-banned"]) == [("subject.banned ?? false", False, True)]
    assert outcomes(rules["no-erase-by-interns"]) == [('subject.role == "intern"', False, False)]
    # Case 1: level 3, public, a viewer. Case 2: level 1, not public, an editor.
    assert outcomes(rules["read-doc"]) == [
        ("subject.level >= 2", True, True),
        ('resource.public or subject.role == "editor"', True, False),
        ("resource.public", True, True),
        ('subject.role == "editor"', True, True),
    ]
    assert rules["read-doc"].operands[0].source.endswith("tiny.policy:18:14")
    assert rules["list-docs"].operands == ()
    assert [rule.id for rule in report.untriggered_forbids] == [
        "no-banned",
        "no-erase-by-interns",
    ]
    # (8 outcomes seen + 1 rule matched) / (2 x 6 operands + 4 rules)
    assert (report.outcomes_seen, report.outcomes_total) == (8, 12)
    assert (report.rules_triggered, len(report.rules)) == (1, 4)
    assert report.percent == pytest.approx(100 * 9 / 16)
    assert report.percent_text == "56.2%"


def test_every_operand_is_evaluated_whatever_short_circuit_would_skip() -> None:
    report = coverage(
        "permit r { action read resource Document when subject.a == 1 and subject.b == 2 }",
        {"subject": {"a": 0, "b": 2}},
    )
    assert outcomes(only_rule(report)) == [
        ("subject.a == 1", False, True),
        ("subject.b == 2", True, False),
    ]


def test_an_evaluation_error_or_a_non_boolean_counts_as_neither_outcome() -> None:
    text = "permit r { action read resource Document when subject.a >= 1 or subject.flag }"
    report = coverage(text, {"subject": {"a": "one", "flag": "yes"}}, {"subject": {}})
    rule = only_rule(report)
    assert outcomes(rule) == [("subject.a >= 1", False, False), ("subject.flag", False, False)]
    assert (rule.cases, rule.matched, rule.errors, rule.triggered) == (2, 0, 2, False)


def test_a_forbid_that_fails_to_evaluate_denies_so_it_counts_as_triggered() -> None:
    text = "forbid f { action read resource Document when subject.age < 18 }"
    rule = only_rule(coverage(text, {"subject": {}}))
    assert (rule.matched, rule.errors, rule.triggered_by, rule.triggered) == (0, 1, 1, True)
    assert outcomes(rule) == [("subject.age < 18", False, False)]


def test_a_quantifier_body_is_evaluated_for_every_item() -> None:
    text = 'permit r { action read resource Document when any(tag in subject.tags: tag == "red") }'
    rule = only_rule(coverage(text, {"subject": {"tags": ["blue", "red", "green"]}}))
    assert outcomes(rule) == [
        ('any(tag in subject.tags: tag == "red")', True, False),
        ('tag == "red"', True, True),
    ]
    empty = only_rule(coverage(text, {"subject": {"tags": []}}, {"subject": {"tags": "red"}}))
    assert outcomes(empty) == [
        ('any(tag in subject.tags: tag == "red")', False, True),
        ('tag == "red"', False, False),
    ]


def test_nested_quantifiers_bind_each_variable() -> None:
    text = (
        "permit r { action read resource Document when "
        "all(row in subject.rows: any(cell in row: cell > 2)) }"
    )
    rule = only_rule(coverage(text, {"subject": {"rows": [[1, 3], [0]]}}))
    assert outcomes(rule) == [
        ("all(row in subject.rows: any(cell in row: cell > 2))", False, True),
        ("any(cell in row: cell > 2)", True, True),
        ("cell > 2", True, True),
    ]


def test_only_requests_that_hit_the_target_are_counted() -> None:
    text = 'permit r { action edit resource Document when subject.role == "editor" }'
    rule = only_rule(coverage(text, {"subject": {"role": "editor"}}))  # a read
    assert (rule.cases, rule.matched) == (0, 0)
    assert outcomes(rule) == [('subject.role == "editor"', False, False)]


def condition_of(text: str) -> ast.Expr:
    rule = policy_set(f"permit r {{ action read resource Document when {text} }}").rules[0].rule
    assert rule.condition is not None
    return rule.condition


@pytest.mark.parametrize(
    ("condition", "operands"),
    [
        pytest.param("subject.a == 1", ["Compare"], id="a comparison alone"),
        pytest.param("subject.flag", ["Attr"], id="a boolean leaf alone"),
        pytest.param(
            "subject.a == 1 and subject.b", ["Compare", "Attr"], id="and: its operands only"
        ),
        pytest.param(
            "subject.a == 1 or (subject.b and resource has owner)",
            ["Compare", "BoolOp", "Attr", "Has"],
            id="a nested connective is an operand",
        ),
        pytest.param(
            "not (subject.a == 1 and subject.b == 2)",
            ["Not", "Compare", "Compare"],
            id="not: itself, not the connective inside",
        ),
        pytest.param(
            "all(x in subject.flags: x) and subject.a in [1, 2]",
            ["Quantifier", "Name", "Compare"],
            id="a quantifier and a leaf body",
        ),
        pytest.param(
            "length([subject.a == 1]) == 1",
            ["Compare", "Compare"],
            id="a comparison anywhere",
        ),
    ],
)
def test_which_sub_expressions_are_operands(condition: str, operands: list[str]) -> None:
    found = operand_nodes(condition_of(condition))
    assert [type(node).__name__ for node in found] == operands


def test_a_set_without_rules_is_fully_covered() -> None:
    report = CoverageReport(())
    assert (report.percent, report.percent_text) == (100.0, "100.0%")

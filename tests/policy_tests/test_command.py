"""`pdp test`, run as the real command in a subprocess from the repository root."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pdp.policy_store import load_policy_set

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = "tests/policy_tests/fixtures"
TINY = f"{FIXTURES}/tiny"
FAILING = f"{FIXTURES}/failing"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed(, \d+ deselected)? in \d+\.\d\ds$")


def pdp_test(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp", "test", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def lines_and_summary(stdout: str) -> tuple[list[str], str]:
    *lines, summary = stdout.splitlines()
    assert SUMMARY.match(summary), summary
    return lines, summary


def test_passing_cases_print_one_line_each_and_exit_0() -> None:
    result = pdp_test(TINY)
    assert (result.returncode, result.stderr) == (0, "")
    lines, summary = lines_and_summary(result.stdout)
    assert lines == [
        f"{TINY}/tiny.test.toml::level 3 reads a public doc PASSED",
        f"{TINY}/tiny.test.toml::an editor below level 2 cannot read PASSED",
    ]
    assert summary.startswith("2 passed, 0 failed in ")


def test_a_failure_shows_the_diff_and_the_explanation_and_exits_1() -> None:
    revision = load_policy_set(ROOT / FAILING).revision
    result = pdp_test(FAILING)
    assert (result.returncode, result.stderr) == (1, "")
    lines, summary = lines_and_summary(result.stdout)
    assert lines == [
        f"{FAILING}/failing.test.toml::level 2 reads PASSED",
        f"{FAILING}/failing.test.toml::level 1 reads (wrongly expected) FAILED",
        f"    at {FAILING}/failing.test.toml:12",
        "    decision: expected allow, got deny",
        '    rules: expected ["read-doc"], got []',
        '    reason codes: expected ["rule.permit"], got ["default.deny"]',
        "    explanation:",
        f"      DENY  (policy revision {revision})",
        "      reasons:",
        "        default.deny: no permit rule matched",
        "      explanation:",
        "        read-doc: subject.level >= 2 was false (subject.level = 1)  "
        f"[{FAILING}/failing.policy:4:14]",
        f"{FAILING}/failing.test.toml::level 5 reads, but the expected rule is wrong FAILED",
        f"    at {FAILING}/failing.test.toml:21",
        '    rules: expected ["read-anything"], got ["read-doc"]',
        "    explanation:",
        f"      ALLOW  (policy revision {revision})",
        "      reasons:",
        "        rule.permit read-doc: permitted by rule `read-doc`  "
        f"[{FAILING}/failing.policy:1:1]",
    ]
    assert summary.startswith("1 passed, 2 failed in ")


def test_k_runs_the_matching_cases_only() -> None:
    result = pdp_test(FAILING, "-k", "level 2")
    assert result.returncode == 0, result.stdout
    lines, summary = lines_and_summary(result.stdout)
    assert lines == [f"{FAILING}/failing.test.toml::level 2 reads PASSED"]
    assert summary.startswith("1 passed, 0 failed, 2 deselected in ")
    nothing = pdp_test(FAILING, "-k", "no such case")
    assert nothing.returncode == 2
    assert nothing.stderr == "pdp test: no case matches -k 'no such case' (3 cases in " + (
        f"{FAILING})\n"
    )


def test_coverage_lists_untriggered_forbids_first_then_every_operand() -> None:
    result = pdp_test(TINY, "--coverage")
    assert result.returncode == 0, result.stderr
    lines, _ = lines_and_summary(result.stdout)
    policy = f"{TINY}/tiny.policy"
    assert lines[2:] == [
        "",
        "coverage",
        "forbid rules that no case triggers:",
        f"  no-banned  {policy}:3:1",
        f"  no-erase-by-interns  {policy}:9:1",
        "rules:",
        f"  forbid no-banned  {policy}:3:1  denied in 0 of 2 cases ✗",
        f"    {policy}:6:14 subject.banned ?? false  true ✗ false ✓",
        f"  forbid no-erase-by-interns  {policy}:9:1  denied in 0 of 0 cases ✗",
        f'    {policy}:12:14 subject.role == "intern"  true ✗ false ✗',
        f"  permit read-doc  {policy}:15:1  matched in 1 of 2 cases ✓",
        f"    {policy}:18:14 subject.level >= 2  true ✓ false ✓",
        f'    {policy}:19:18 resource.public or subject.role == "editor"  true ✓ false ✗',
        f"    {policy}:19:19 resource.public  true ✓ false ✓",
        f'    {policy}:19:38 subject.role == "editor"  true ✓ false ✓',
        f"  permit list-docs  {policy}:22:1  matched in 0 of 0 cases ✗",
        "    (no condition)",
        "total 56.2%: 8/12 operand outcomes, 1/4 rules matched",
    ]


def test_min_coverage_fails_the_run_below_it_and_passes_at_or_above_it() -> None:
    below = pdp_test(TINY, "--min-coverage", "60")
    assert below.returncode == 1
    lines, _ = lines_and_summary(below.stdout)
    assert lines[-1] == "coverage 56.2% is below --min-coverage 60%"
    assert "forbid rules that no case triggers:" not in below.stdout  # only with --coverage

    reached = pdp_test(TINY, "--min-coverage", "56.25")
    assert reached.returncode == 0
    lines, _ = lines_and_summary(reached.stdout)
    assert lines[-1] == "coverage 56.2% reaches --min-coverage 56.25%"


def test_min_coverage_does_not_hide_failing_cases() -> None:
    result = pdp_test(FAILING, "--min-coverage", "100")
    assert result.returncode == 1
    assert "coverage 100.0% reaches --min-coverage 100%" in result.stdout


def test_min_coverage_must_be_a_percentage() -> None:
    result = pdp_test(TINY, "--min-coverage", "150")
    assert result.returncode == 2
    assert "must be between 0 and 100, not 150" in result.stderr


def test_json_report() -> None:
    result = pdp_test(FAILING, "--json", "--coverage", "--min-coverage", "90")
    assert (result.returncode, result.stderr) == (1, "")
    report = json.loads(result.stdout)
    assert report["folder"] == FAILING
    assert report["policy_revision"] == load_policy_set(ROOT / FAILING).revision
    assert {key: report["summary"][key] for key in ("passed", "failed", "deselected")} == {
        "passed": 1,
        "failed": 2,
        "deselected": 0,
    }
    assert [(case["name"], case["status"]) for case in report["cases"]] == [
        ("level 2 reads", "passed"),
        ("level 1 reads (wrongly expected)", "failed"),
        ("level 5 reads, but the expected rule is wrong", "failed"),
    ]
    failed = report["cases"][1]
    assert failed["id"] == f"{FAILING}/failing.test.toml::level 1 reads (wrongly expected)"
    assert failed["line"] == 12
    assert failed["mismatches"] == [
        {"what": "decision", "expected": "allow", "got": "deny"},
        {"what": "rules", "expected": ["read-doc"], "got": []},
        {"what": "reason codes", "expected": ["rule.permit"], "got": ["default.deny"]},
    ]
    assert failed["decision"]["decision"] == "deny"
    assert [e["message"] for e in failed["decision"]["explanations"]] == [
        "read-doc: subject.level >= 2 was false (subject.level = 1)"
    ]
    coverage = report["coverage"]
    assert (coverage["percent"], coverage["untriggered_forbids"]) == (100.0, [])
    assert coverage["by_rule"][0]["operands"] == [
        {
            "expression": "subject.level >= 2",
            "source": f"{FAILING}/failing.policy:4:14",
            "true": True,
            "false": True,
        }
    ]
    assert report["min_coverage"] == {"required": 90.0, "reached": True}


def test_json_without_coverage_says_so() -> None:
    report = json.loads(pdp_test(TINY, "--json").stdout)
    assert report["coverage"] is None
    assert "min_coverage" not in report


def test_malformed_test_files_are_refused_with_their_positions() -> None:
    result = pdp_test(f"{FIXTURES}/malformed")
    assert (result.returncode, result.stdout) == (2, "")
    file = f"{FIXTURES}/malformed/malformed.test.toml"
    assert result.stderr.splitlines() == [
        f'{file}:9: error: case "a typo in a key": `expect` is required ("allow" or "deny")',
        f'{file}:12: error: case "a typo in a key": unknown key `expected` (known: name, now, '
        "action, subject, resource, context, caller, expect, rules, reason_codes)",
        f'{file}:17: error: case "no resource type": `resource.type` is required',
        f'{file}:18: error: case "no resource type": `expect` must be "allow" or "deny", '
        'not "maybe"',
        "pdp test: 4 problems in the test files; no case was run",
    ]
    as_json = json.loads(pdp_test(f"{FIXTURES}/malformed", "--json").stdout)
    assert as_json["error"] == "4 problems in the test files; no case was run"
    assert [(p["line"], p["file"]) for p in as_json["problems"]] == [
        (9, file),
        (12, file),
        (17, file),
        (18, file),
    ]


def test_a_policy_set_that_does_not_load_is_refused_with_its_diagnostics() -> None:
    folder = f"{FIXTURES}/broken_policy"
    result = pdp_test(folder)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        f"{folder}/broken.policy:5:1: error: unexpected `}}`; expected an expression",
        "    5 | }",
        "      | ^",
        f"pdp test: {folder}: 1 error in the policy set; no case was run",
    ]
    as_json = json.loads(pdp_test(folder, "--json").stdout)
    assert as_json["error"] == f"{folder}: 1 error in the policy set; no case was run"
    assert [(d["file"], d["line"]) for d in as_json["diagnostics"]] == [
        (f"{folder}/broken.policy", 5)
    ]


def test_a_folder_without_test_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text("permit r { action read resource Doc }\n")
    result = pdp_test(str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == f"pdp test: no *.test.toml file under {tmp_path}\n"


@pytest.mark.parametrize("folder", ["policies", "policies/shop", "policies/media"])
def test_the_example_policies_are_fully_covered_by_their_tests(folder: str) -> None:
    result = pdp_test(folder, "--coverage", "--min-coverage", "100")
    assert result.returncode == 0, result.stdout + result.stderr
    lines, _ = lines_and_summary(result.stdout)
    assert " FAILED" not in result.stdout
    assert lines[lines.index("forbid rules that no case triggers:") + 1] == "  none"
    rules = len(load_policy_set(ROOT / folder).rules)
    assert re.fullmatch(
        rf"total 100\.0%: (\d+)/\1 operand outcomes, {rules}/{rules} rules matched", lines[-2]
    )
    assert lines[-1] == "coverage 100.0% reaches --min-coverage 100%"


def test_policy_warnings_are_counted_on_stderr_and_do_not_fail_the_run(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text(
        "const UNUSED = 1\npermit r {\n    action   read\n    resource Doc\n}\n"
    )
    (tmp_path / "p.test.toml").write_text(
        '[[case]]\nname = "read"\naction = "read"\nresource = { type = "Doc" }\nexpect = "allow"\n'
    )
    result = pdp_test(str(tmp_path))
    assert result.returncode == 0
    assert result.stderr == (
        f"pdp test: 1 warning in the policy set (`pdp lint {tmp_path}` shows them)\n"
    )
    assert result.stdout.splitlines()[0] == f"{tmp_path}/p.test.toml::read PASSED"
    report = json.loads(pdp_test(str(tmp_path), "--json").stdout)
    assert report["warnings"] == [
        f"{tmp_path}/p.policy:1:1: warning: constant `UNUSED` is never used"
    ]

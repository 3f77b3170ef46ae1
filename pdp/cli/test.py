"""`pdp test`: run the policy tests (`*.test.toml`) of a policy folder, optionally with coverage.

(The module is `test.py`, like the subcommand; pytest only collects `test_*.py` and `*_test.py`,
and only below tests/, so it is not mistaken for a test module.)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pdp.cli import exit_codes
from pdp.cli.check import format_decision
from pdp.cli.output import diagnostic_dict, print_diagnostics
from pdp.engine.policy_set import PolicySetError
from pdp.policy_tests.cases import DEFAULT_NOW, CaseFileError
from pdp.policy_tests.coverage import CoverageReport, RuleCoverage
from pdp.policy_tests.runner import CaseResult, NoCasesError, RunResult, run_folder

PASSED = "PASSED"
FAILED = "FAILED"
YES, NO = "✓", "✗"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "test",
        help="run the policy tests (*.test.toml) of a policy folder",
        description=(
            "Run every case of every *.test.toml file below DIR against the policy set of DIR. "
            "A case without `now` is decided at "
            f"{DEFAULT_NOW.isoformat().replace('+00:00', 'Z')}, never at the current time. "
            "Exit code: 0 all cases pass (and coverage reaches --min-coverage), 1 a case fails "
            "(or coverage is too low), 2 the policies or the test files do not load."
        ),
    )
    parser.add_argument("folder", metavar="DIR", help="the policy folder, with its test files")
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="report which rules the cases made match and which operands they saw true/false",
    )
    parser.add_argument(
        "--min-coverage",
        type=_percent,
        metavar="PERCENT",
        help="fail (exit 1) when the total coverage is below PERCENT",
    )
    parser.add_argument(
        "-k",
        dest="keyword",
        metavar="SUBSTRING",
        help="run only the cases whose `file::name` contains SUBSTRING (ignoring case)",
    )
    parser.set_defaults(run=run)


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, not {text}")
    return value


def run(args: argparse.Namespace) -> int:
    with_coverage = args.coverage or args.min_coverage is not None
    try:
        result = run_folder(args.folder, keyword=args.keyword, coverage=with_coverage)
    except PolicySetError as error:
        message = f"{args.folder}: {error}; no case was run"
        diagnostics = [diagnostic_dict(d) for d in error.diagnostics]
        if args.json:
            _print_json({"error": message, "diagnostics": diagnostics})
        else:
            print_diagnostics(error.diagnostics, sys.stderr)
            print(f"pdp test: {message}", file=sys.stderr)
        return exit_codes.ERROR
    except CaseFileError as error:
        message = f"{error}; no case was run"
        if args.json:
            problems = [
                {"file": p.file, "line": p.line, "column": p.column, "message": p.message}
                for p in error.problems
            ]
            _print_json({"error": message, "problems": problems})
        else:
            for problem in error.problems:
                print(problem, file=sys.stderr)
            print(f"pdp test: {message}", file=sys.stderr)
        return exit_codes.ERROR
    except NoCasesError as error:
        if args.json:
            _print_json({"error": str(error)})
        else:
            print(f"pdp test: {error}", file=sys.stderr)
        return exit_codes.ERROR

    coverage = result.coverage
    too_low = (
        coverage is not None
        and args.min_coverage is not None
        and coverage.percent < args.min_coverage
    )
    if args.json:
        report = result.to_dict()
        if args.min_coverage is not None:
            report["min_coverage"] = {"required": args.min_coverage, "reached": not too_low}
        _print_json(report)
    else:
        if result.warnings:
            # Counted, not listed: the report is about the cases, and `pdp lint` shows them.
            count = len(result.warnings)
            print(
                f"pdp test: {count} warning{'' if count == 1 else 's'} in the policy set "
                f"(`pdp lint {args.folder}` shows them)",
                file=sys.stderr,
            )
        print(format_run(result, show_coverage=args.coverage))
        if coverage is not None and args.min_coverage is not None:
            verdict = "is below" if too_low else "reaches"
            print(
                f"coverage {coverage.percent_text} {verdict} --min-coverage {args.min_coverage:g}%"
            )
        print(summary_line(result))
    return exit_codes.DENY if result.failed or too_low else exit_codes.ALLOW


def _print_json(document: dict[str, Any]) -> None:
    print(json.dumps(document, indent=2, ensure_ascii=False))


def format_run(result: RunResult, *, show_coverage: bool) -> str:
    """One line per case, each failure's diff and explanation under its line, then coverage."""
    lines: list[str] = []
    for case_result in result.results:
        lines.append(f"{case_result.case.id} {PASSED if case_result.passed else FAILED}")
        if not case_result.passed:
            lines.extend(_failure(case_result))
    if show_coverage and result.coverage is not None:
        lines.append("")
        lines.extend(format_coverage(result.coverage))
    return "\n".join(lines)


def _failure(result: CaseResult) -> list[str]:
    case = result.case
    lines = [f"    at {case.file}:{case.line}"]
    for mismatch in result.mismatches:
        lines.append(
            f"    {mismatch.what}: expected {_shown(mismatch.expected)}, got {_shown(mismatch.got)}"
        )
    lines.append("    explanation:")
    lines.extend(f"      {line}" for line in format_decision(result.decision).splitlines())
    return lines


def _shown(value: str | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else json.dumps(list(value), ensure_ascii=False)


def format_coverage(report: CoverageReport) -> list[str]:
    """Forbid rules that no case triggers first (the dangerous gaps), then every rule with its
    operands, then the total."""
    lines = ["coverage", "forbid rules that no case triggers:"]
    gaps = report.untriggered_forbids
    lines.extend(f"  {rule.id}  {rule.source}" for rule in gaps)
    if not gaps:
        lines.append("  none")
    lines.append("rules:")
    for rule in report.rules:
        lines.append(f"  {rule.effect} {rule.id}  {rule.source}  {_triggered(rule)}")
        if not rule.has_condition:
            lines.append("    (no condition)")
        for operand in rule.operands:
            lines.append(
                f"    {operand.source} {operand.text}  "
                f"true {_mark(operand.seen_true)} false {_mark(operand.seen_false)}"
            )
    lines.append(
        f"total {report.percent_text}: {report.outcomes_seen}/{report.outcomes_total} operand "
        f"outcomes, {report.rules_triggered}/{len(report.rules)} rules matched"
    )
    return lines


def _triggered(rule: RuleCoverage) -> str:
    verb = "denied" if rule.is_forbid else "matched"
    text = f"{verb} in {rule.triggered_by} of {rule.cases} cases"
    if rule.is_forbid and rule.errors:
        text += f" ({rule.errors} by an evaluation error)"
    return f"{text} {_mark(rule.triggered)}"


def _mark(seen: bool) -> str:
    return YES if seen else NO


def summary_line(result: RunResult) -> str:
    deselected = f", {result.deselected} deselected" if result.deselected else ""
    return f"{result.passed} passed, {result.failed} failed{deselected} in {result.seconds:.2f}s"

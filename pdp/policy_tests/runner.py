"""Running policy test cases: decide each case's request with the real authorizer and compare
the decision with what the case expects."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pdp.engine.authorizer import authorize
from pdp.engine.decision import Decision
from pdp.engine.policy_set import PolicySet
from pdp.language.source import Diagnostic
from pdp.policy_store import load_policy_set
from pdp.policy_tests.cases import CaseFileError, PolicyCase, find_case_files, load_cases
from pdp.policy_tests.coverage import CoverageCollector, CoverageReport
from pdp.policy_tests.schema_check import schema_problems


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One way a decision differs from a case's expectation."""

    what: str
    """`decision`, `rules` or `reason codes`."""
    expected: str | tuple[str, ...]
    got: str | tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "expected": _plain(self.expected), "got": _plain(self.got)}


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: PolicyCase
    decision: Decision
    """Decided in explain mode, so a failure can say why."""
    mismatches: tuple[Mismatch, ...]

    @property
    def passed(self) -> bool:
        return not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        case = self.case
        return {
            "id": case.id,
            "file": case.file,
            "line": case.line,
            "name": case.name,
            "status": "passed" if self.passed else "failed",
            "expected": {
                "decision": case.expect,
                "rules": None if case.rules is None else list(case.rules),
                "reason_codes": None if case.reason_codes is None else list(case.reason_codes),
            },
            "mismatches": [mismatch.to_dict() for mismatch in self.mismatches],
            "decision": self.decision.to_dict(),
        }


@dataclass(frozen=True, slots=True)
class RunResult:
    folder: str
    policy_revision: str
    results: tuple[CaseResult, ...]
    deselected: int
    coverage: CoverageReport | None
    seconds: float
    warnings: tuple[Diagnostic, ...] = ()
    """The policy set's warnings: it loaded, but something looks wrong."""

    @property
    def passed(self) -> int:
        return sum(1 for result in self.results if result.passed)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    def to_dict(self) -> dict[str, Any]:
        return {
            "folder": self.folder,
            "policy_revision": self.policy_revision,
            "summary": {
                "passed": self.passed,
                "failed": self.failed,
                "deselected": self.deselected,
                "seconds": round(self.seconds, 3),
            },
            "cases": [result.to_dict() for result in self.results],
            "coverage": None if self.coverage is None else self.coverage.to_dict(),
            "warnings": [warning.headline() for warning in self.warnings],
        }


class NoCasesError(Exception):
    """Nothing to run: no test file in the folder, or `-k` selected no case."""


def run_case(policy_set: PolicySet, case: PolicyCase) -> CaseResult:
    decision = authorize(policy_set, case.request, case.now, explain=True)
    mismatches = []
    if decision.outcome != case.expect:
        mismatches.append(Mismatch("decision", case.expect, decision.outcome))
    if case.rules is not None and tuple(decision.rules) != case.rules:
        mismatches.append(Mismatch("rules", case.rules, tuple(decision.rules)))
    codes = tuple(reason.code for reason in decision.reasons)
    if case.reason_codes is not None and codes != case.reason_codes:
        mismatches.append(Mismatch("reason codes", case.reason_codes, codes))
    return CaseResult(case, decision, tuple(mismatches))


def run_cases(
    policy_set: PolicySet,
    cases: Sequence[PolicyCase],
    coverage: CoverageCollector | None = None,
) -> tuple[CaseResult, ...]:
    results = []
    for case in cases:
        results.append(run_case(policy_set, case))
        if coverage is not None:
            coverage.record(case.request, case.now)
    return tuple(results)


def select(cases: Sequence[PolicyCase], keyword: str | None) -> list[PolicyCase]:
    """The cases whose id (`file::name`) contains `keyword`, ignoring case; all without one."""
    if not keyword:
        return list(cases)
    wanted = keyword.casefold()
    return [case for case in cases if wanted in case.id.casefold()]


def run_folder(
    folder: str | os.PathLike[str], *, keyword: str | None = None, coverage: bool = False
) -> RunResult:
    """Load the policy set and the cases of `folder` and run them.

    Raises PolicySetError (the policies do not load), CaseFileError (a test file is malformed,
    or a case sends what the folder's schema does not declare) or NoCasesError (nothing to
    run).
    """
    started = time.perf_counter()
    policy_set = load_policy_set(folder)
    if not find_case_files(folder):
        raise NoCasesError(f"no *.test.toml file under {folder}")
    cases = load_cases(folder)
    if policy_set.schema is not None:
        problems = schema_problems(policy_set.schema, cases)
        if problems:
            raise CaseFileError(problems)
    selected = select(cases, keyword)
    if not selected:
        raise NoCasesError(f"no case matches -k {keyword!r} ({len(cases)} cases in {folder})")
    collector = CoverageCollector(policy_set) if coverage else None
    results = run_cases(policy_set, selected, collector)
    return RunResult(
        folder=str(folder),
        policy_revision=policy_set.revision,
        results=results,
        deselected=len(cases) - len(selected),
        coverage=collector.report() if collector is not None else None,
        seconds=time.perf_counter() - started,
        warnings=policy_set.warnings,
    )


def _plain(value: str | tuple[str, ...]) -> str | list[str]:
    return value if isinstance(value, str) else list(value)

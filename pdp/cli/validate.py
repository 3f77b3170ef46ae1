"""`pdp validate`: type-check a policy folder against its schema.toml."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pdp.cli import exit_codes
from pdp.cli.output import diagnostic_dict, print_diagnostics
from pdp.engine.policy_set import PolicySetError
from pdp.language.schema import SCHEMA_FILE
from pdp.policy_store import load_policy_set


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="type-check a policy folder against its schema",
        description=f"Check every rule against the folder's {SCHEMA_FILE}: unknown attributes, "
        "types, optional attributes read without a presence test (a warning), undeclared "
        "targets, conditions that can never hold, permits a forbid always overrides. "
        "Exit code: 0 valid, 1 errors (or warnings with --strict), 2 no schema.",
    )
    parser.add_argument("folder", metavar="DIR", help="the policy folder")
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.add_argument("--json", action="store_true", help="print diagnostics as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not any(folder.rglob(SCHEMA_FILE)):
        print(f"pdp validate: {folder}: no {SCHEMA_FILE} to validate against", file=sys.stderr)
        return exit_codes.ERROR
    try:
        policy_set = load_policy_set(folder)
        diagnostics = policy_set.warnings
        errors = 0
    except PolicySetError as error:
        diagnostics = error.diagnostics
        errors = sum(1 for d in diagnostics if d.severity == "error")
    warnings = sum(1 for d in diagnostics if d.severity == "warning")
    if args.json:
        print(json.dumps([diagnostic_dict(d) for d in diagnostics], indent=2))
    else:
        print_diagnostics(diagnostics, sys.stdout)
        verdict = "valid" if not errors and not (warnings and args.strict) else "not valid"
        print(f"{folder}: {verdict}: {_count(errors, 'error')}, {_count(warnings, 'warning')}")
    failed = errors > 0 or (args.strict and warnings > 0)
    return exit_codes.DENY if failed else exit_codes.ALLOW


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"

"""`pdp lint`: every static error in a policy folder, as `file:line:col: message` with a caret."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pdp.cli import exit_codes
from pdp.cli.output import diagnostic_dict, print_diagnostics
from pdp.engine.policy_set import PolicySetError
from pdp.policy_store import load_policy_set


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "lint",
        help="report every static error in a policy folder",
        description="Parse and check a policy folder. Exit code: 0 clean, 1 errors.",
    )
    parser.add_argument("folder", metavar="DIR", help="the policy folder")
    parser.add_argument("--json", action="store_true", help="print diagnostics as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        policy_set = load_policy_set(args.folder)
        diagnostics = policy_set.warnings
        failed = False
    except PolicySetError as error:
        diagnostics = error.diagnostics
        failed = True
    if args.json:
        print(json.dumps([diagnostic_dict(d) for d in diagnostics], indent=2))
    else:
        print_diagnostics(diagnostics, sys.stdout)
        errors = sum(1 for d in diagnostics if d.severity == "error")
        warnings = len(diagnostics) - errors
        if failed or warnings:
            print(f"{_count(errors, 'error')}, {_count(warnings, 'warning')}")
        else:
            print(f"{args.folder}: {len(policy_set.rules)} rules, no problems")
    return exit_codes.DENY if failed else exit_codes.ALLOW


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"

"""`pdp check`: decide one request from a JSON file against a policy folder."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pdp.cli import exit_codes
from pdp.cli.output import print_diagnostics
from pdp.engine.authorizer import authorize
from pdp.engine.decision import Decision, Request, RequestError
from pdp.engine.policy_set import PolicySetError
from pdp.language import literals
from pdp.policy_store import load_policy_set


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "check",
        help="decide one request against a policy folder",
        description="Decide one request. Exit code: 0 allow, 1 deny, 2 error.",
    )
    parser.add_argument("--policies", required=True, metavar="DIR", help="the policy folder")
    parser.add_argument(
        "--request",
        required=True,
        metavar="FILE",
        help='a JSON request: {"subject": {...}, "action": "...", "resource": {"type": "...", '
        '"id": "...", ...}, "context": {...}}; - reads standard input',
    )
    parser.add_argument(
        "--explain", action="store_true", help="show the first failing condition of each rule"
    )
    parser.add_argument("--json", action="store_true", help="print the decision as JSON")
    parser.add_argument(
        "--now",
        metavar="TIME",
        help="evaluate at this RFC 3339 time instead of the current time",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        now = literals.parse_datetime(args.now) if args.now else datetime.now(UTC)
    except ValueError as error:
        print(f"pdp check: --now: {error}", file=sys.stderr)
        return exit_codes.ERROR
    try:
        request = _read_request(args.request)
    except (OSError, ValueError) as error:
        print(f"pdp check: {args.request}: {error}", file=sys.stderr)
        return exit_codes.ERROR
    try:
        policy_set = load_policy_set(args.policies)
    except PolicySetError as error:
        print_diagnostics(error.diagnostics, sys.stderr)
        print(f"pdp check: {error}", file=sys.stderr)
        return exit_codes.ERROR
    decision = authorize(policy_set, request, now, explain=args.explain)
    if args.json:
        print(json.dumps(decision.to_dict(), indent=2))
    else:
        print(format_decision(decision))
    return exit_codes.ALLOW if decision.allowed else exit_codes.DENY


def _read_request(name: str) -> Request:
    text = sys.stdin.read() if name == "-" else Path(name).read_text("utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    except RecursionError:
        raise ValueError("invalid JSON: nested too deeply") from None
    try:
        return Request.from_json(document)
    except RequestError as error:
        raise ValueError(f"invalid request: {error}") from None


def format_decision(decision: Decision) -> str:
    lines = [f"{decision.outcome.upper()}  (policy revision {decision.policy_revision})"]
    lines.append("reasons:")
    for reason in decision.reasons:
        where = f"  [{reason.source}]" if reason.source else ""
        rule = f" {reason.rule}" if reason.rule else ""
        lines.append(f"  {reason.code}{rule}: {reason.message}{where}")
    if decision.errors:
        lines.append("errors:")
        for error in decision.errors:
            lines.append(f"  {error.rule} ({error.effect}): {error.message}  [{error.source}]")
    if decision.explanations:
        lines.append("explanation:")
        for explanation in decision.explanations:
            lines.append(f"  {explanation.message}  [{explanation.source}]")
    return "\n".join(lines)

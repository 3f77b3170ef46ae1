"""`pdp call`: send one Check to a running server and print the answer."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from pdp.cli import exit_codes
from pdp.cli.token import parse_claim
from pdp.client import DecisionClient, Result


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "call",
        help="ask a running server for one decision",
        description="Send a Check to a running pdp. Exit code: 0 allow, 1 deny, 2 error. The "
        "token comes from --token, --token-file or the PDP_TOKEN environment variable.",
    )
    parser.add_argument("--addr", default="127.0.0.1:50051", metavar="HOST:PORT")
    parser.add_argument(
        "--token",
        help="a bearer token (visible to other local users: prefer --token-file or PDP_TOKEN)",
    )
    parser.add_argument("--token-file", metavar="FILE")
    parser.add_argument("--action", required=True)
    parser.add_argument("--resource-type", required=True, metavar="TYPE")
    parser.add_argument("--resource-id", default="", metavar="ID")
    parser.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a resource attribute (VALUE read as JSON when it can be)",
    )
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a context attribute (VALUE read as JSON when it can be)",
    )
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--json", action="store_true", help="print the answer as JSON")
    parser.add_argument("--timeout", type=float, default=5.0, metavar="SECONDS")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        token = args.token or os.environ.get("PDP_TOKEN")
        if args.token_file:
            token = Path(args.token_file).read_text("utf-8").strip()
        attributes = dict(parse_claim(text, "--attr") for text in args.attr)
        context = dict(parse_claim(text, "--context") for text in args.context)
    except (OSError, ValueError) as error:
        print(f"pdp call: {error}", file=sys.stderr)
        return exit_codes.ERROR
    try:
        with DecisionClient(args.addr, timeout=args.timeout) as client:
            result = client.check(
                token,
                args.action,
                args.resource_type,
                args.resource_id,
                attributes=attributes,
                context=context,
                explain=args.explain,
            )
    except grpc.RpcError as error:
        code = error.code().name if hasattr(error, "code") else "UNKNOWN"
        details = error.details() if hasattr(error, "details") else str(error)
        print(f"pdp call: {code}: {details}", file=sys.stderr)
        return exit_codes.ERROR
    print(json.dumps(_as_dict(result), indent=2) if args.json else format_result(result))
    return exit_codes.ALLOW if result.allowed else exit_codes.DENY


def _as_dict(result: Result) -> dict[str, Any]:
    return {
        "decision": result.decision,
        "decision_id": result.decision_id,
        "policy_revision": result.policy_revision,
        "reasons": [
            {"code": r.code, "rule": r.rule, "message": r.message, "source": r.source}
            for r in result.reasons
        ],
        "errors": [
            {"rule": e.rule, "effect": e.effect, "message": e.message, "source": e.source}
            for e in result.errors
        ],
        "explanations": list(result.explanations),
    }


def format_result(result: Result) -> str:
    lines = [
        f"{result.decision.upper()}  (decision {result.decision_id}, "
        f"policy revision {result.policy_revision})",
        "reasons:",
    ]
    for reason in result.reasons:
        rule = f" {reason.rule}" if reason.rule else ""
        where = f"  [{reason.source}]" if reason.source else ""
        lines.append(f"  {reason.code}{rule}: {reason.message}{where}")
    if result.errors:
        lines.append("errors:")
        lines.extend(f"  {e.rule} ({e.effect}): {e.message}  [{e.source}]" for e in result.errors)
    if result.explanations:
        lines.append("explanation:")
        lines.extend(f"  {line}" for line in result.explanations)
    return "\n".join(lines)

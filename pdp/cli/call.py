"""`pdp call`: send one Check to a running server and print the answer."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

import grpc

from pdp.cli import exit_codes
from pdp.cli.token import parse_claim
from pdp.client import (
    CredentialsLike,
    DecisionClient,
    Result,
    TlsOptions,
    api_key,
    basic,
    client_certificate,
    hmac,
    sign_request,
)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "call",
        help="ask a running server for one decision",
        description="Send a Check to a running pdp, with one kind of credential. Exit code: 0 "
        "allow, 1 deny, 2 error. Secrets come from files or environment variables, never from "
        "the command line, where other local users could see them (--token is for testing).",
    )
    parser.add_argument("--addr", default="127.0.0.1:50051", metavar="HOST:PORT")
    credentials = parser.add_argument_group(
        "credentials (one of them; default: the PDP_TOKEN environment variable)"
    )
    credentials.add_argument(
        "--token", help="a JWT (visible to other local users: prefer --token-file or PDP_TOKEN)"
    )
    credentials.add_argument("--token-file", metavar="FILE", help="a file holding a JWT")
    credentials.add_argument(
        "--api-key-file", metavar="FILE", help="a file holding an API key (or PDP_API_KEY)"
    )
    credentials.add_argument(
        "--basic-user",
        metavar="NAME",
        help="a user name; the password comes from PDP_PASSWORD or is asked for",
    )
    credentials.add_argument(
        "--client-cert", metavar="PEM", help="forward this end client's certificate chain"
    )
    credentials.add_argument(
        "--hmac-key-id", metavar="ID", help="sign an HTTP request with this HMAC key"
    )
    credentials.add_argument(
        "--hmac-secret-file", metavar="FILE", help="the HMAC key's secret (or PDP_HMAC_SECRET)"
    )
    credentials.add_argument("--hmac-method", default="GET", metavar="METHOD")
    credentials.add_argument("--hmac-path", default="/", metavar="PATH")
    credentials.add_argument("--hmac-query", default="", metavar="QUERY")
    credentials.add_argument(
        "--hmac-header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a signed header (host is required)",
    )
    credentials.add_argument("--hmac-body-file", metavar="FILE")
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls-ca", metavar="PEM", help="connect with TLS; the server's CA")
    tls.add_argument("--tls-cert", metavar="PEM", help="this client's certificate (mutual TLS)")
    tls.add_argument("--tls-key", metavar="PEM", help="this client's private key")
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


def _secret(file: str | None, variable: str) -> str | None:
    if file:
        return Path(file).read_text("utf-8").strip()
    return os.environ.get(variable)


def credentials_from(args: argparse.Namespace) -> CredentialsLike:
    """The one credential the options name; without one, the one that PDP_TOKEN or PDP_API_KEY
    holds. Two named at once is an error rather than a silent choice."""
    given = [
        option
        for option, value in (
            ("--token", args.token),
            ("--token-file", args.token_file),
            ("--api-key-file", args.api_key_file),
            ("--basic-user", args.basic_user),
            ("--client-cert", args.client_cert),
            ("--hmac-key-id", args.hmac_key_id),
        )
        if value
    ]
    if len(given) > 1:
        raise ValueError(f"give one credential, not {' and '.join(given)}")
    chosen = given[0] if given else _from_environment()
    if chosen == "--hmac-key-id":
        return _signed(args)
    if chosen in ("--api-key-file", "PDP_API_KEY"):
        return api_key(_secret(args.api_key_file, "PDP_API_KEY") or "")
    if chosen == "--basic-user":
        password = os.environ.get("PDP_PASSWORD") or getpass.getpass(
            f"password for {args.basic_user}: "
        )
        return basic(args.basic_user, password)
    if chosen == "--client-cert":
        return client_certificate(Path(args.client_cert).read_text("utf-8"))
    return args.token or _secret(args.token_file, "PDP_TOKEN")


def _from_environment() -> str | None:
    found = [name for name in ("PDP_TOKEN", "PDP_API_KEY") if os.environ.get(name)]
    if len(found) > 1:
        raise ValueError("both PDP_TOKEN and PDP_API_KEY are set: choose one with an option")
    return found[0] if found else None


def _signed(args: argparse.Namespace) -> CredentialsLike:
    secret = _secret(args.hmac_secret_file, "PDP_HMAC_SECRET")
    if not secret:
        raise ValueError("--hmac-key-id needs --hmac-secret-file or PDP_HMAC_SECRET")
    body = Path(args.hmac_body_file).read_bytes() if args.hmac_body_file else b""
    headers = {}
    for text in args.hmac_header:
        # Taken as written: a header value is text, never JSON (`x=true` is signed as "true").
        name, separator, value = text.partition("=")
        if not separator or not name:
            raise ValueError(f"--hmac-header {text!r}: expected NAME=VALUE")
        headers[name] = value
    signed = sign_request(
        key_id=args.hmac_key_id,
        secret=secret,
        method=args.hmac_method,
        path=args.hmac_path,
        query=args.hmac_query,
        headers=headers,
        body=body,
    )
    return hmac(signed)


def run(args: argparse.Namespace) -> int:
    try:
        credentials = credentials_from(args)
        attributes = dict(parse_claim(text, "--attr") for text in args.attr)
        context = dict(parse_claim(text, "--context") for text in args.context)
        tls = None
        if args.tls_ca:
            cert = Path(args.tls_cert) if args.tls_cert else None
            key = Path(args.tls_key) if args.tls_key else None
            tls = TlsOptions(Path(args.tls_ca), cert, key)
    except (OSError, ValueError) as error:
        print(f"pdp call: {error}", file=sys.stderr)
        return exit_codes.ERROR
    try:
        with DecisionClient(args.addr, timeout=args.timeout, tls=tls) as client:
            result = client.check(
                credentials,
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
        "retry_after_seconds": result.retry_after,
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
    if result.retry_after:
        lines.append(f"retry after: {result.retry_after:.3f} s")
    if result.errors:
        lines.append("errors:")
        lines.extend(f"  {e.rule} ({e.effect}): {e.message}  [{e.source}]" for e in result.errors)
    if result.explanations:
        lines.append("explanation:")
        lines.extend(f"  {line}" for line in result.explanations)
    return "\n".join(lines)

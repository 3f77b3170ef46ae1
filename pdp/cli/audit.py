"""`pdp audit`: read the decision log: list the records that match filters, or count them."""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pdp.audit.reader import Filter, RecordStream, matching, read_records, rules_of, statistics
from pdp.audit.record import encode
from pdp.cli import exit_codes
from pdp.config import AuditSettings, ConfigError, load_config
from pdp.language import literals

DEFAULT_LOG = AuditSettings().path
DECISIONS = ("allow", "deny", "rejected")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit",
        help="list or count the decisions in the decision log",
        description="Read the decision log (docs/audit.md), rotated files included, oldest "
        "first. Filters combine (all must hold). Exit code: 0 success, 2 error.",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--log", metavar="PATH", help=f"the decision log (default {DEFAULT_LOG})")
    where.add_argument(
        "--config", metavar="FILE", help="read the log's path from this pdp.toml ([audit] path)"
    )
    parser.add_argument("--decision", choices=DECISIONS, help="only this outcome")
    parser.add_argument("--subject", metavar="ID", help="only this subject id")
    parser.add_argument("--action", metavar="A", help="only this action")
    parser.add_argument("--resource-type", metavar="T", help="only this resource type")
    parser.add_argument("--rule", metavar="ID", help="only decisions this rule decided")
    parser.add_argument(
        "--since", metavar="TIME", type=_time, help="from this RFC 3339 time (inclusive)"
    )
    parser.add_argument(
        "--until", metavar="TIME", type=_time, help="before this RFC 3339 time (exclusive)"
    )
    parser.add_argument(
        "--limit", metavar="N", type=_positive, help="only the N most recent matching records"
    )
    parser.add_argument(
        "--stats", action="store_true", help="count by decision, rule and reason code instead"
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON Lines (records) or a JSON object (stats)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.stats and args.limit is not None:
        return _fail("--limit cannot be combined with --stats")
    if args.since is not None and args.until is not None and args.since >= args.until:
        return _fail("--since must be before --until")
    try:
        path = load_config(args.config).audit.path if args.config else Path(args.log or DEFAULT_LOG)
    except ConfigError as error:
        return _fail(str(error))
    try:
        records = read_records(path)
    except FileNotFoundError:
        return _fail(f"no audit log at {path}")
    except OSError as error:
        return _fail(f"{path}: cannot read: {error.strerror or error}")
    selected = matching(
        records,
        Filter(
            decision=args.decision,
            subject=args.subject,
            action=args.action,
            resource_type=args.resource_type,
            rule=args.rule,
            since=args.since,
            until=args.until,
        ),
    )
    with records:
        try:
            if args.stats:
                _print_stats(selected, records, as_json=args.json)
            else:
                if args.limit is not None:
                    selected = iter(collections.deque(selected, maxlen=args.limit))
                _print_records(selected, as_json=args.json)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader stopped early (`| head`): not an error. Point stdout at /dev/null so
            # the interpreter's final flush does not complain again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return exit_codes.ALLOW
        except OSError as error:
            return _fail(f"{path}: cannot read: {error.strerror or error}")
    if records.skipped:
        shown = ", ".join(records.skipped_at)
        more = ", ..." if records.skipped > len(records.skipped_at) else ""
        print(
            f"pdp audit: skipped {records.skipped} damaged line(s) (cut short or not a JSON "
            f"object): {shown}{more}",
            file=sys.stderr,
        )
    return exit_codes.ALLOW


def _print_records(records: Iterable[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        out = sys.stdout.buffer
        for record in records:
            out.write(encode([record]))
        return
    for record in records:
        sys.stdout.write(format_record(record) + "\n")


def format_record(record: dict[str, Any]) -> str:
    """time, decision, subject id, action, resource type/id, and why (the deciding rules, else
    the first reason code; for a rejected request, the error)."""
    subject = record.get("subject")
    subject_id = subject.get("id") if isinstance(subject, dict) else None
    resource = record.get("resource")
    if isinstance(resource, dict):
        kind, id_ = resource.get("type"), resource.get("id")
        shown_resource = f"{_show(kind)}/{_show(id_)}" if id_ not in (None, "") else _show(kind)
    else:
        shown_resource = "-"
    if record.get("decision") == "rejected":
        why = f"error: {_show(record.get('error'))}"
    else:
        rules = rules_of(record)
        reasons = record.get("reasons")
        first = reasons[0] if isinstance(reasons, list) and reasons else None
        code = first.get("code") if isinstance(first, dict) else None
        why = ", ".join(_show(rule) for rule in rules) if rules else _show(code)
    return "  ".join(
        (
            _show(record.get("time")),
            f"{_show(record.get('decision')):<8}",
            _show(subject_id),
            _show(record.get("action")),
            shown_resource,
            why,
        )
    )


def _print_stats(records: Iterable[dict[str, Any]], stream: RecordStream, as_json: bool) -> None:
    stats = statistics(records)
    if as_json:
        document = {**stats.to_dict(), "skipped_lines": stream.skipped}
        print(json.dumps(document, indent=2))
        return
    span = f", {stats.first_time} .. {stats.last_time}" if stats.total else ""
    print(f"{stats.total} record{'' if stats.total == 1 else 's'}{span}")
    for title, counts in (
        ("by decision", stats.by_decision),
        ("by rule", stats.by_rule),
        ("by reason code", stats.by_reason),
    ):
        print(f"{title}:")
        if not counts:
            print("  (none)")
        width = max((len(_show(name)) for name in counts), default=0)
        for name, count in counts.most_common():
            print(f"  {_show(name):<{width}}  {count}")


def _show(value: object) -> str:
    """A log value for a terminal. The log holds caller-supplied text: escape control
    characters so a resource id cannot forge a line or send terminal escape sequences."""
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if text.isprintable():
        return text
    return json.dumps(text)[1:-1]  # \n, \u001b, ... (and ASCII for the rest of this value)


def _time(text: str) -> datetime:
    try:
        return literals.parse_datetime(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got `{text}`")
    return number


def _fail(message: str) -> int:
    print(f"pdp audit: {message}", file=sys.stderr)
    return exit_codes.ERROR

"""`pdp keys`: create, list and revoke application keys (API keys and HMAC keys), and report
their usage. Files and plans come from the configuration ([credentials], [plans.NAME]).

A new key is printed once, alone on standard output, so a shell can capture it:

    export PDP_API_KEY=$(pdp keys create --app checkout --plan basic)

What was made, and the warning that it will not be shown again, go to standard error. `--json`
prints everything about the new key (for an HMAC key: its id and secret) as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from pdp.cli import exit_codes
from pdp.cli.token import parse_claim
from pdp.config import Config, ConfigError, load_config
from pdp.identity.api_keys import (
    API_KEY_KIND,
    API_KEY_PREFIX,
    KEY_ID_LENGTH,
    check_app_name,
    check_attributes,
    new_api_key,
    rfc3339,
)
from pdp.identity.keystore import KeyRecord, KeyStore, KeyStoreError
from pdp.state import OUTCOMES, MemoryState

HMAC_KIND = "hmac"
KIND_NAMES = {API_KEY_KIND: "API key", HMAC_KIND: "HMAC key"}
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="create, list and revoke API keys and HMAC keys; report API key usage",
        description="Manage application keys: API keys (with a plan) and HMAC signing keys. "
        "Secrets are shown once, when made, and never stored. Exit code: 0 success, 2 error.",
    )
    parser.set_defaults(run=run, keys_run=None)
    actions = parser.add_subparsers(dest="keys_command", metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default="pdp.toml",
        metavar="FILE",
        help="the configuration: key files ([credentials]) and plans (default pdp.toml)",
    )

    create = actions.add_parser(
        "create",
        parents=[common],
        help="make a key and print it once",
        description="Make an API key (--plan required) or an HMAC key (--kind hmac) for an "
        "application, creating the master key if there is none. The key (for HMAC: the "
        "secret) is printed alone on standard output and never shown again.",
    )
    create.add_argument(
        "--kind",
        choices=(API_KEY_KIND, HMAC_KIND),
        default=API_KEY_KIND,
        help="api_key (the default) or hmac",
    )
    create.add_argument("--app", required=True, metavar="NAME", help="the application")
    create.add_argument("--plan", metavar="PLAN", help="an API key's plan, from [plans]")
    create.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra subject attribute; VALUE is read as JSON when it can be (tier=2 is a "
        "number)",
    )
    create.add_argument(
        "--json", action="store_true", help="print the new key and its record as JSON"
    )
    create.set_defaults(keys_run=_create)

    listing = actions.add_parser("list", parents=[common], help="list keys (never their secrets)")
    listing.add_argument("--app", metavar="NAME", help="only this application's keys")
    listing.add_argument("--json", action="store_true", help="print a JSON array")
    listing.set_defaults(keys_run=_list)

    revoke = actions.add_parser(
        "revoke",
        parents=[common],
        help="revoke an API key or retire an HMAC key",
        description="Revoke an API key or retire an HMAC key: calls with it are denied from "
        "then on (a running server notices at its next request). To rotate, create the new key "
        "first, move the clients to it, then revoke the old one.",
    )
    revoke.add_argument(
        "key_id", metavar="KEY_ID", help="the key id (pdp keys list), or a whole API key"
    )
    revoke.set_defaults(keys_run=_revoke)

    usage = actions.add_parser(
        "usage",
        parents=[common],
        help="an application's decisions per key and day",
        description="Decisions per key and day (UTC) for one application: allowed, denied, "
        "throttled and totals, from the usage file ([credentials] usage_file).",
    )
    usage.add_argument("--app", required=True, metavar="NAME", help="the application")
    usage.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="from this day on")
    usage.add_argument("--json", action="store_true", help="print a JSON object")
    usage.set_defaults(keys_run=_usage)


def run(args: argparse.Namespace) -> int:
    if args.keys_run is None:
        return _fail("name an action: create, list, revoke or usage (pdp keys --help)")
    code: int = args.keys_run(args)
    return code


# --- create --------------------------------------------------------------------------------------


def _create(args: argparse.Namespace) -> int:
    try:
        attributes = _attributes(args.attr)
        # Checked before anything is written (the master key included).
        check_app_name(args.app)
        check_attributes(attributes)
    except ValueError as error:
        return _fail(str(error))
    try:
        config = load_config(args.config)
        store = KeyStore(config.credentials.keys_file, config.credentials.master_key_file)
    except (ConfigError, KeyStoreError) as error:
        return _fail(str(error))
    if args.kind == API_KEY_KIND:
        problem = _plan_problem(config, args.plan)
    else:
        problem = "--plan applies to API keys only" if args.plan is not None else None
    if problem is not None:
        return _fail(problem)
    now = datetime.now(UTC)
    try:
        created_master = store.ensure_master_key()
        if args.kind == API_KEY_KIND:
            record, secret = new_api_key(store, args.app, args.plan, now, attributes)
        else:
            # Imported here: HMAC keys live in their own module, loaded only when needed.
            from pdp.identity.hmac_signing import new_hmac_key  # noqa: PLC0415

            record, secret = new_hmac_key(store, args.app, now, attributes)
    except OSError as error:
        return _fail(f"cannot write the keys: {error.strerror or error}")
    except ValueError as error:  # KeyStoreError included
        return _fail(str(error))
    # SECURITY: the one place a secret is ever shown, on standard output only.
    if args.json:
        shown = {**_record_dict(record), "key" if record.kind == API_KEY_KIND else "secret": secret}
        print(json.dumps(shown, indent=2))
    else:
        print(secret)
    sys.stdout.flush()
    if created_master:
        _note(
            f"created the master key {config.credentials.master_key_file} (keep it secret and "
            "back it up: every key depends on it)"
        )
    if record.kind == API_KEY_KIND:
        _note(f"created API key {record.key_id} for app `{record.app}`, plan `{record.plan}`")
        _note("the key is printed on standard output and will not be shown again")
    else:
        _note(f"created HMAC key {record.key_id} for app `{record.app}`")
        _note("its secret is printed on standard output and will not be shown again")
    return exit_codes.ALLOW


def _attributes(texts: Sequence[str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for text in texts:
        name, value = parse_claim(text, flag="--attr")
        if name in attributes:
            raise ValueError(f"--attr `{name}` is given twice")
        attributes[name] = value
    return attributes


def _plan_problem(config: Config, plan: str | None) -> str | None:
    names = [settings.name for settings in config.plans]
    known = f"plans: {', '.join(names)}" if names else f"no [plans.NAME] in {config.source}"
    if plan is None:
        return f"--plan is required for an API key ({known})"
    if plan not in names:
        return f"unknown plan `{plan}` ({known})"
    return None


# --- list ----------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    loaded = _open(args)
    if isinstance(loaded, int):
        return loaded
    _, store = loaded
    records = [r for r in store.records() if args.app is None or r.app == args.app]
    if args.json:
        print(json.dumps([_record_dict(record) for record in records], indent=2))
        return exit_codes.ALLOW
    if not records:
        print("no keys" if args.app is None else f"no keys for app `{args.app}`")
        return exit_codes.ALLOW
    rows: list[tuple[str, ...]] = [("KEY ID", "KIND", "APP", "PLAN", "CREATED", "STATE")]
    for record in records:
        state = "active" if record.active else f"retired at {record.retired}"
        rows.append(
            tuple(
                _show(value)
                for value in (
                    record.key_id,
                    record.kind,
                    record.app,
                    record.plan or "-",
                    record.created,
                    state,
                )
            )
        )
    _print_table(rows, numeric=())
    return exit_codes.ALLOW


def _record_dict(record: KeyRecord) -> dict[str, Any]:
    """What may be shown of a record: everything but the digest (useless to a reader)."""
    return {
        "key_id": record.key_id,
        "kind": record.kind,
        "app": record.app,
        "plan": record.plan or None,
        "created": record.created,
        "state": "active" if record.active else "retired",
        "retired": record.retired or None,
        "attributes": record.attributes,
    }


# --- revoke --------------------------------------------------------------------------------------


def _revoke(args: argparse.Namespace) -> int:
    key_id = _key_id_of(args.key_id)
    loaded = _open(args)
    if isinstance(loaded, int):
        return loaded
    _, store = loaded
    record = store.get(key_id)
    if record is None:
        return _fail(f"no key `{_show(key_id)}` (pdp keys list shows them)")
    name = KIND_NAMES.get(record.kind, record.kind)
    verb = "revoked" if record.kind == API_KEY_KIND else "retired"
    if not record.active:
        print(
            f"{name} {record.key_id} of app `{record.app}` was already {verb} at {record.retired}"
        )
        return exit_codes.ALLOW
    try:
        retired = store.retire(key_id, rfc3339(datetime.now(UTC)))
    except OSError as error:
        return _fail(f"cannot write the keys: {error.strerror or error}")
    except KeyStoreError as error:
        return _fail(str(error))
    print(f"{verb} {name} {retired.key_id} of app `{retired.app}` at {retired.retired}")
    return exit_codes.ALLOW


def _key_id_of(text: str) -> str:
    """The key id, also when a whole API key is given (revoking a leaked key by pasting it).
    Only the id is ever repeated in a message."""
    separator = len(API_KEY_PREFIX) + KEY_ID_LENGTH
    if text.startswith(API_KEY_PREFIX) and len(text) > separator and text[separator] == "_":
        return text[len(API_KEY_PREFIX) : separator]
    return text


# --- usage ---------------------------------------------------------------------------------------


def _usage(args: argparse.Namespace) -> int:
    loaded = _open(args)
    if isinstance(loaded, int):
        return loaded
    config, store = loaded
    records = [r for r in store.records() if r.app == args.app]
    if not records:
        return _fail(f"no keys for app `{args.app}` (pdp keys list shows them)")
    try:
        # The server's own reader, so the report and the server agree on the file's format.
        state = MemoryState(config.credentials.usage_file)
        report = _usage_report(state, records, args.since)
    except ValueError as error:
        return _fail(str(error))
    if args.json:
        print(json.dumps({"app": args.app, "since": args.since, **report}, indent=2))
        return exit_codes.ALLOW
    print(f"usage of app `{args.app}`" + (f" since {args.since}" if args.since else ""))
    rows = [("KEY ID", "DAY", *(outcome.upper() for outcome in OUTCOMES), "TOTAL")]
    for key in report["keys"]:
        for day in key["days"]:
            rows.append((_show(key["key_id"]), _show(day["day"]), *_counts_row(day)))
        rows.append((_show(key["key_id"]), "total", *_counts_row(key["total"])))
    rows.append(("all keys", "total", *_counts_row(report["total"])))
    _print_table(rows, numeric=range(2, len(rows[0])))
    return exit_codes.ALLOW


def _usage_report(
    state: MemoryState, records: Sequence[KeyRecord], since: str | None
) -> dict[str, Any]:
    keys = []
    grand_total = dict.fromkeys((*OUTCOMES, "total"), 0)
    for record in records:
        days = []
        key_total = dict.fromkeys((*OUTCOMES, "total"), 0)
        for day, counts in sorted(state.usage(record.key_id).items()):
            if since is not None and day < since:
                continue
            row = {outcome: _count(counts, outcome) for outcome in OUTCOMES}
            row["total"] = sum(row.values())
            days.append({"day": day, **row})
            for name, value in row.items():
                key_total[name] += value
                grand_total[name] += value
        keys.append(
            {"key_id": record.key_id, "kind": record.kind, "days": days, "total": key_total}
        )
    return {"keys": keys, "total": grand_total}


def _count(counts: Any, outcome: str) -> int:
    value = counts.get(outcome, 0) if isinstance(counts, dict) else None
    if type(value) is not int or value < 0:
        raise ValueError("the usage file is not valid (a count is not a whole number)")
    return value


def _counts_row(counts: dict[str, int]) -> tuple[str, ...]:
    return tuple(str(counts[name]) for name in (*OUTCOMES, "total"))


# --- shared --------------------------------------------------------------------------------------


def _open(args: argparse.Namespace) -> tuple[Config, KeyStore] | int:
    try:
        config = load_config(args.config)
        return config, KeyStore(config.credentials.keys_file, config.credentials.master_key_file)
    except (ConfigError, KeyStoreError) as error:
        return _fail(str(error))


def _print_table(rows: Sequence[tuple[str, ...]], numeric: Sequence[int] | range) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        cells = [
            cell.rjust(width) if column in numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def _show(value: object) -> str:
    """A value from the keys or usage file, safe for a terminal (control characters escaped)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if text.isprintable() else json.dumps(text)[1:-1]


def _day(text: str) -> str:
    if _DAY.fullmatch(text):
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got `{text}`")


def _note(message: str) -> None:
    print(f"pdp keys: {message}", file=sys.stderr)


def _fail(message: str) -> int:
    print(f"pdp keys: {message}", file=sys.stderr)
    return exit_codes.ERROR

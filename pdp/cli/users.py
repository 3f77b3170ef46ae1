"""`pdp users`: the users of Basic credentials (add, list, remove, passwd).

The users file comes from the configuration ([credentials] users_file). Passwords are asked for
twice without echo, or read as one line from standard input with --password-stdin; there is no
--password flag, because command lines are visible to every user of the machine (`ps`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path
from typing import Any

from pdp.cli import exit_codes
from pdp.cli.token import parse_claim
from pdp.config import ConfigError, load_config
from pdp.identity.basic import (
    UserStore,
    UserStoreError,
    check_attributes,
    check_password,
    check_user_name,
    hash_password,
    make_record,
)


class _UsageError(Exception):
    """A usage error with its message (exit code 2)."""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "users",
        help="manage the users of Basic credentials",
        description="Manage the users file ([credentials] users_file): user names, scrypt "
        "password hashes and subject attributes. Exit code: 0 done, 2 error.",
    )
    parser.add_argument("--config", default="pdp.toml", metavar="FILE", help="default: pdp.toml")
    parser.set_defaults(run=run, users_run=None)
    # --config is accepted before or after the action; SUPPRESS keeps the action's parser from
    # overwriting a value given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE")
    actions = parser.add_subparsers(dest="users_action", metavar="ACTION")

    add = actions.add_parser(
        "add", parents=[common], help="add a user", description="Add a user; asks for a password."
    )
    add.add_argument("name", help="the user name (no colon, no control characters)")
    add.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a subject attribute; VALUE is read as JSON when it can be "
        '(roles=\'["ops","billing"]\' is a list, level=3 a number)',
    )
    _password_stdin(add)
    add.set_defaults(users_run=_add)

    listing = actions.add_parser(
        "list", parents=[common], help="list users and their attributes (never hashes)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(users_run=_list)

    remove = actions.add_parser("remove", parents=[common], help="remove a user")
    remove.add_argument("name")
    remove.set_defaults(users_run=_remove)

    passwd = actions.add_parser("passwd", parents=[common], help="change a user's password")
    passwd.add_argument("name")
    _password_stdin(passwd)
    passwd.set_defaults(users_run=_passwd)


def _password_stdin(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password as one line from standard input (for scripts)",
    )


def run(args: argparse.Namespace) -> int:
    if args.users_run is None:
        print("pdp users: choose an action: add, list, remove or passwd", file=sys.stderr)
        return exit_codes.ERROR
    code: int = args.users_run(args)
    return code


# --- actions -------------------------------------------------------------------------------------


def _add(args: argparse.Namespace) -> int:
    def action(store: UserStore) -> str:
        check_user_name(args.name)
        attributes = _attributes(args.attr)
        if store.get(args.name) is not None:
            raise _UsageError(f"user `{args.name}` exists already (pdp users passwd changes it)")
        password = _password(args.password_stdin, args.name)
        store.add(make_record(args.name, hash_password(password), attributes))
        return f"added user `{args.name}`"

    return _run(args, action)


def _passwd(args: argparse.Namespace) -> int:
    def action(store: UserStore) -> str:
        record = store.get(args.name)
        if record is None:
            raise _UsageError(f"no user `{args.name}`")
        password = _password(args.password_stdin, args.name)
        store.replace(make_record(args.name, hash_password(password), record.attributes))
        return f"changed the password of `{args.name}`"

    return _run(args, action)


def _remove(args: argparse.Namespace) -> int:
    def action(store: UserStore) -> str:
        store.remove(args.name)
        return f"removed user `{args.name}`"

    return _run(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(store: UserStore) -> str:
        # SECURITY: names and attributes only; the hashes stay in the file.
        records = store.records()
        if args.json:
            users = [{"name": r.name, "attributes": dict(r.attributes)} for r in records]
            return json.dumps({"users": users}, indent=2, ensure_ascii=False)
        lines = []
        for record in records:
            shown = " ".join(
                f"{key}={json.dumps(value, ensure_ascii=False)}"
                for key, value in sorted(record.attributes.items())
            )
            lines.append(f"{record.name}  {shown}".rstrip())
        return "\n".join(lines) if lines else "(no users)"

    return _run(args, action)


def _run(args: argparse.Namespace, action: Any) -> int:
    try:
        store = UserStore(_users_file(args.config))
        message: str = action(store)
    except (_UsageError, ConfigError, UserStoreError, ValueError) as error:
        print(f"pdp users {args.users_action}: {error}", file=sys.stderr)
        return exit_codes.ERROR
    print(message)
    return exit_codes.ALLOW


def _users_file(config_path: str) -> Path:
    return load_config(config_path).credentials.users_file


def _attributes(texts: list[str]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for text in texts:
        name, value = parse_claim(text, "--attr")
        if name in attributes:
            raise _UsageError(f"--attr {name}: given twice")
        attributes[name] = value
    check_attributes(attributes, "--attr")
    return attributes


def _password(from_stdin: bool, name: str) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        try:
            password = getpass.getpass(f"Password for {name}: ")
            again = getpass.getpass("Password again: ")
        except (EOFError, KeyboardInterrupt):
            raise _UsageError("no password given") from None
        if password != again:
            raise _UsageError("the passwords do not match")
    check_password(password)
    return password

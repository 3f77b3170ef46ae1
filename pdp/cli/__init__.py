"""The `pdp` command: one module per subcommand, each with `register()` and `run()`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from pdp.cli import (
    audit,
    call,
    check,
    dev_keys,
    fmt,
    keys,
    lint,
    serve,
    test,
    token,
    users,
    validate,
)

SUBCOMMANDS = (
    check, lint, validate, test, fmt, serve, token, call, dev_keys, audit, keys, users
)  # fmt: skip


SIGPIPE_EXIT = 128 + 13
"""The exit status of a process killed by SIGPIPE, which Python ignores."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pdp",
        description="pdp: a policy decision point. See README.md and docs/.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`pdp test --json | head`): stop quietly, as a C tool would on
        # SIGPIPE, and keep Python from complaining again when it flushes at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

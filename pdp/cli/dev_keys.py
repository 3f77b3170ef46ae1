"""`pdp dev-keys`: make the development issuer's key pair and JWKS if missing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pdp.cli import exit_codes
from pdp.identity.dev_issuer import ensure_dev_issuer

DEFAULT_DIRECTORY = "dev-keys"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev-keys",
        help="create the development issuer's keys (for make run and pdp token)",
        description="Create an RSA key pair and its JWKS for local development, if missing. "
        "Never use these keys in production.",
    )
    parser.add_argument("--dir", default=DEFAULT_DIRECTORY, metavar="DIR")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    issuer, created = ensure_dev_issuer(Path(args.dir))
    state = "created" if created else "present"
    print(f"development issuer keys {state}: {issuer.jwks_path} (kid {issuer.kid})")
    return exit_codes.ALLOW

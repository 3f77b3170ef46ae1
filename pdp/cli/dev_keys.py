"""`pdp dev-keys`: make the development issuer's keys and the development TLS files if missing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pdp.cli import exit_codes
from pdp.identity.dev_issuer import ensure_dev_issuer
from pdp.identity.dev_pki import ensure_dev_pki

DEFAULT_DIRECTORY = "dev-keys"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "dev-keys",
        help="create development keys and certificates (for make run, pdp token, pdp call)",
        description="Create, if missing, an RSA key pair and its JWKS for a development token "
        "issuer, and in DIR/tls a development CA with a server certificate (localhost, "
        "127.0.0.1, ::1) and client certificates (reports, orders, sensor-7). "
        "Never use these in production.",
    )
    parser.add_argument("--dir", default=DEFAULT_DIRECTORY, metavar="DIR")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    issuer, created = ensure_dev_issuer(directory)
    state = "created" if created else "present"
    print(f"development issuer keys {state}: {issuer.jwks_path} (kid {issuer.kid})")
    pki, created = ensure_dev_pki(directory / "tls")
    state = "created" if created else "present"
    clients = ", ".join(sorted(pki.clients))
    print(f"development TLS files {state}: {pki.directory} (CA, server, clients {clients})")
    return exit_codes.ALLOW

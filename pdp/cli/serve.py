"""`pdp serve`: run the gRPC decision service."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from typing import Any

from pdp.cli import exit_codes
from pdp.cli.output import print_diagnostics
from pdp.config import ConfigError, load_config
from pdp.engine.policy_set import PolicySetError
from pdp.server.app import StartupError, serve


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the decision service",
        description="Serve DecisionService, health and reflection over gRPC. SIGHUP reloads the "
        "policies; SIGTERM and SIGINT drain in-flight calls and exit 0.",
    )
    parser.add_argument("--config", default="pdp.toml", metavar="FILE", help="default: pdp.toml")
    parser.add_argument("--listen", metavar="HOST:PORT", help="overrides server.listen")
    parser.add_argument(
        "--tls-listen", metavar="HOST:PORT", help="overrides server.tls.listen (needs [server.tls])"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(f"pdp serve: {error}", file=sys.stderr)
        return exit_codes.ERROR
    if args.tls_listen is not None:
        tls = config.server.tls
        if tls is None:
            print("pdp serve: --tls-listen needs a [server.tls] section", file=sys.stderr)
            return exit_codes.ERROR
        server = replace(config.server, tls=replace(tls, listen=args.tls_listen))
        config = replace(config, server=server)
    try:
        return serve(config, args.listen)
    except PolicySetError as error:
        print_diagnostics(error.diagnostics, sys.stderr)
        print(f"pdp serve: {config.policies.dir}: {error}; not starting", file=sys.stderr)
        return exit_codes.ERROR
    except StartupError as error:
        print(f"pdp serve: {error}; not starting", file=sys.stderr)
        return exit_codes.ERROR

"""`pdp token`: mint a token signed by the development issuer."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pdp.cli import exit_codes
from pdp.cli.dev_keys import DEFAULT_DIRECTORY
from pdp.config import ConfigError, load_config
from pdp.identity.dev_issuer import ensure_dev_issuer
from pdp.language.literals import parse_duration


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "token",
        help="mint a development token",
        description="Print a JWT signed by the development issuer (see pdp dev-keys). Issuer and "
        "audience come from the first [[issuers]] entry of the configuration.",
    )
    parser.add_argument("--sub", required=True, help="the subject (`sub` claim)")
    parser.add_argument(
        "--claim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra claim; VALUE is read as JSON when it can be (age=21 is a number)",
    )
    parser.add_argument("--ttl", default="1h", help="lifetime, e.g. 15m, 1h (default 1h)")
    parser.add_argument("--config", default="pdp.toml", metavar="FILE")
    parser.add_argument("--keys", default=DEFAULT_DIRECTORY, metavar="DIR")
    parser.add_argument("--issuer", help="overrides the configured issuer")
    parser.add_argument("--audience", help="overrides the configured audience")
    parser.set_defaults(run=run)


def parse_claim(text: str, flag: str = "--claim") -> tuple[str, Any]:
    name, separator, raw = text.partition("=")
    if not separator or not name:
        raise ValueError(f"{flag} {text!r}: expected NAME=VALUE")
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError:
        return name, raw


def run(args: argparse.Namespace) -> int:
    try:
        claims = dict(parse_claim(text) for text in args.claim)
        ttl = parse_duration(args.ttl)
        issuer_name, audience = args.issuer, args.audience
        if issuer_name is None or audience is None:
            config = load_config(args.config)
            if not config.issuers:
                raise ConfigError(f"{args.config}: no [[issuers]] configured")
            issuer_name = issuer_name or config.issuers[0].issuer
            audience = audience or config.issuers[0].audiences[0]
    except (ValueError, ConfigError) as error:
        print(f"pdp token: {error}", file=sys.stderr)
        return exit_codes.ERROR
    issuer, _ = ensure_dev_issuer(Path(args.keys))
    now = datetime.now(UTC)
    token = issuer.mint(
        issuer=issuer_name, audience=audience, subject=args.sub, claims=claims, now=now, ttl=ttl
    )
    print(token)
    return exit_codes.ALLOW

"""`python -m benchmarks [NAME ...] [--quick] [--profile]`: run the named benchmarks, or all."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

from benchmarks.report import Options

BENCHMARKS: dict[str, str] = {
    "engine": "benchmarks.engine",
    "server": "benchmarks.server",
}
"""Benchmark name -> module, in the order a full run takes them."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Speed and memory figures for pdp. With no NAME, runs every benchmark "
        "available here.",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="a short run, for a smoke check")
    parser.add_argument(
        "--profile", action="store_true", help="also print cProfile summaries of hot paths"
    )
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    arguments = parser.parse_args(argv)
    unknown = [name for name in arguments.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r} (choose from {', '.join(BENCHMARKS)})")

    if arguments.list:
        for name, module_name in BENCHMARKS.items():
            print(f"{name:10} {importlib.import_module(module_name).DESCRIPTION}")
        return 0

    options = Options(quick=arguments.quick, profile=arguments.profile)
    explicit = bool(arguments.names)
    for name in dict.fromkeys(arguments.names or BENCHMARKS):
        module = importlib.import_module(BENCHMARKS[name])
        reason = unavailable(module)
        if reason is not None:
            print(f"\n{name}: skipped ({reason})")
            if explicit:
                return 1  # asked for by name: not running it is a failure to do what was asked
            continue
        module.run(options)
    return 0


def unavailable(module: ModuleType) -> str | None:
    check = getattr(module, "unavailable", None)
    return check() if check is not None else None


if __name__ == "__main__":
    sys.exit(main())

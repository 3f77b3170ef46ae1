"""Plain-text output shared by the benchmarks: options, aligned tables, the machine they ran on."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool = False
    """A short run: fewer passes and requests, the slowest measurements left out."""
    profile: bool = False
    """Also print cProfile summaries of the hot paths (benchmarks that support it)."""


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    """An aligned table: `numeric` columns are right-aligned, the others left-aligned."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        padded = (
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(cells, widths, numeric, strict=True)
        )
        return "  ".join(padded).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])


def section(title: str) -> str:
    return f"\n{title}\n{'=' * len(title)}"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for text in cpuinfo.read_text(errors="replace").splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    return (
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu})"
    )


def load_average() -> str:
    if not hasattr(os, "getloadavg"):
        return "unknown"
    return ", ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1, 5, 15 min)"


def cpu_share(wall_seconds: float, cpu_seconds: float) -> str:
    """How much of the wall time this process was running: well under 100% means other work
    competed for the CPUs, and every figure is slower and noisier than on a quiet machine."""
    share = cpu_seconds / wall_seconds if wall_seconds > 0 else 0.0
    note = "quiet" if share >= 0.95 else "other work competed for the CPUs: rerun when quiet"
    return f"{share:.0%} of wall time on a CPU ({note})"


def us(value: float) -> str:
    return f"{value:,.2f}"


def megabytes(count: int) -> str:
    return f"{count / 1_000_000:,.1f}"


def seconds(value: float) -> str:
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def whole(value: float) -> str:
    return f"{value:,.0f}"

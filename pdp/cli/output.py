"""Printing shared by subcommands."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TextIO

from pdp.language.source import Diagnostic


def print_diagnostics(diagnostics: Iterable[Diagnostic], stream: TextIO) -> None:
    for diagnostic in diagnostics:
        print(diagnostic.render(), file=stream)


def diagnostic_dict(diagnostic: Diagnostic) -> dict[str, Any]:
    span = diagnostic.span
    return {
        "file": span.file,
        "line": span.line,
        "column": span.column,
        "end_line": span.end_line,
        "end_column": span.end_column,
        "severity": diagnostic.severity,
        "code": diagnostic.code,
        "message": diagnostic.message,
    }

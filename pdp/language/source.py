"""Source text and positions: the first step of the flow, where every diagnostic points back."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Source:
    """One policy file as text. `name` is how diagnostics refer to it (usually a relative path)."""

    name: str
    text: str

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its line break ("" past the end). Lines end at
        `\n` only, as positions count them (splitlines() would also split at U+2028 and \f)."""
        lines = self.text.split("\n")
        text = lines[line - 1] if 0 < line <= len(lines) else ""
        return text.removesuffix("\r")


@dataclass(frozen=True, slots=True)
class Span:
    """Where a piece of syntax came from: 1-based line and column, plus character offsets."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to(self, other: Span) -> Span:
        """The span that runs from the start of this one to the end of `other`."""
        return Span(
            self.file,
            self.line,
            self.column,
            other.end_line,
            other.end_column,
            self.start,
            other.end,
        )


UNKNOWN_SPAN = Span("<unknown>", 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """A problem found in policy text. Errors stop a policy set from loading; warnings do not.

    Messages follow one style: lower case, no final period, user input in backticks.
    """

    code: str
    message: str
    span: Span
    severity: str = "error"
    # A diagnostic is data; the source line is attached only to render the caret.
    source_line: str = field(default="", compare=False)

    @property
    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.span.file, self.span.line, self.span.column, self.message)

    def headline(self) -> str:
        return f"{self.span}: {self.severity}: {self.message}"

    def render(self) -> str:
        """`file:line:col: severity: message`, then the source line with a caret under the span."""
        out = [self.headline()]
        if self.source_line and self.span.line > 0:
            # Tabs would shift the caret; show them as single spaces so columns line up.
            line, caret_at = _window(self.source_line.replace("\t", " "), self.span.column - 1)
            width = 1
            if self.span.end_line == self.span.line and self.span.end_column > self.span.column:
                width = self.span.end_column - self.span.column
            width = max(1, min(width, len(line) - caret_at))
            gutter = f"{self.span.line:>5} | "
            out.append(gutter + line)
            out.append(" " * (len(gutter) - 2) + "| " + " " * caret_at + "^" * width)
        return "\n".join(out)


_WINDOW = 160


def _window(line: str, index: int) -> tuple[str, int]:
    """A slice of `line` around `index` and the index within it.

    A minified or hostile file can have one enormous line; never echo all of it.
    """
    if len(line) <= _WINDOW:
        return line, index
    start = max(0, min(index - _WINDOW // 2, len(line) - _WINDOW))
    prefix = "... " if start > 0 else ""
    suffix = " ..." if start + _WINDOW < len(line) else ""
    return prefix + line[start : start + _WINDOW] + suffix, index - start + len(prefix)


def attach_source_lines(
    diagnostics: list[Diagnostic], sources: dict[str, Source]
) -> list[Diagnostic]:
    """Fill in the source line of each diagnostic (for carets) and sort them by position."""
    done = []
    for diagnostic in diagnostics:
        source = sources.get(diagnostic.span.file)
        if source is not None and not diagnostic.source_line:
            line = source.line_text(diagnostic.span.line)
            done.append(dataclasses.replace(diagnostic, source_line=line))
        else:
            done.append(diagnostic)
    return sorted(done, key=lambda d: d.sort_key)

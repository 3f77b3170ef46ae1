"""String literals: strict escape decoding and reason-message templates.

Both work on the raw token text (quotes included) and report problems as offsets into it, so the
caller can point a caret at the exact character.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIMPLE_ESCAPES = {
    '"': '"',
    "\\": "\\",
    "/": "/",
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "b": "\b",
    "f": "\f",
}
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_PATH = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*")


class LiteralError(Exception):
    """A problem inside a literal; offsets are relative to the raw token text."""

    def __init__(self, message: str, start: int, end: int) -> None:
        super().__init__(message)
        self.message = message
        self.start = start
        self.end = end


def decode_string(raw: str) -> str:
    """Decode a string token (with its quotes) using JSON's escapes."""
    return _decode(raw, 1, len(raw) - 1)


def _decode(raw: str, start: int, end: int) -> str:
    out: list[str] = []
    i = start
    while i < end:
        char = raw[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        escape = raw[i + 1] if i + 1 < end else ""
        if escape in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[escape])
            i += 2
        elif escape == "u" and _HEX4.fullmatch(raw, i + 2, i + 6):
            code = int(raw[i + 2 : i + 6], 16)
            if 0xD800 <= code <= 0xDFFF:
                raise LiteralError("surrogate code points are not allowed in strings", i, i + 6)
            out.append(chr(code))
            i += 6
        else:
            raise LiteralError(
                f'invalid escape `\\{escape}` (use \\", \\\\, \\n, \\t, \\r or \\uXXXX)', i, i + 2
            )
    return "".join(out)


@dataclass(frozen=True, slots=True)
class TemplatePath:
    """An interpolated `{a.b.c}` inside a template; offsets cover the path text."""

    names: tuple[str, ...]
    start: int
    end: int


def parse_template(raw: str) -> tuple[str | TemplatePath, ...]:
    """Split a reason string into text and `{path}` parts. `{{` and `}}` stand for braces."""
    parts: list[str | TemplatePath] = []
    text: list[str] = []
    i, end = 1, len(raw) - 1
    segment_start = i

    def flush_text(upto: int) -> None:
        if upto > segment_start:
            text.append(_decode(raw, segment_start, upto))

    while i < end:
        char = raw[i]
        if char == "\\":
            i += 2
            continue
        if char in "{}" and raw[i + 1 : i + 2] == char and i + 1 < end:
            flush_text(i)
            text.append(char)
            i += 2
            segment_start = i
            continue
        if char == "}":
            raise LiteralError("unmatched `}` in reason (write `}}` for a brace)", i, i + 1)
        if char == "{":
            close = raw.find("}", i + 1, end)
            if close < 0:
                raise LiteralError("unclosed `{` in reason (write `{{` for a brace)", i, i + 1)
            match = _PATH.fullmatch(raw, i + 1, close)
            if match is None:
                raise LiteralError(
                    "a reason can only interpolate an attribute path such as `{subject.account}`",
                    i,
                    close + 1,
                )
            flush_text(i)
            if text:
                parts.append("".join(text))
                text = []
            parts.append(TemplatePath(tuple(match.group(1).split(".")), i, close + 1))
            i = close + 1
            segment_start = i
            continue
        i += 1
    flush_text(end)
    if text:
        parts.append("".join(text))
    return tuple(parts)

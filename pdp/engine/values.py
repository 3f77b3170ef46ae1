"""The runtime value model: what the engine evaluates, and how JSON input becomes it.

Values are plain Python objects: str, int, Decimal, bool, tuple or list (lists), dict (records),
date, datetime (always timezone-aware), timedelta (durations), ip addresses and networks.
Floats never reach the engine (they become Decimal); JSON null means "absent" as a record value
and is refused inside a list.

Equality is strict across types: `true` is not `1`, and `"1"` is not `1`. Integers and decimals
compare by value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

NUMBER_TYPES = (int, Decimal)
MAX_INPUT_DEPTH = 32
"""Nesting of records and lists in request input and data files."""


class InputError(ValueError):
    """Input (a request or a data file) that cannot become engine values."""


def from_json(value: Any, depth: int = 0) -> Any:
    """Convert parsed JSON into engine values: floats to Decimal, nulls dropped from records."""
    if depth > MAX_INPUT_DEPTH:
        raise InputError(f"input is nested more than {MAX_INPUT_DEPTH} levels deep")
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if kind is float:
        return from_double(value)
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise InputError("record keys must be strings")
            if item is not None:
                out[key] = from_json(item, depth + 1)
        return out
    if kind is list or kind is tuple:
        if any(item is None for item in value):
            # Dropping it would shift the items after it; there is no null value to keep.
            raise InputError("lists cannot contain null")
        return [from_json(item, depth + 1) for item in value]
    if value is None:
        raise InputError("null is only allowed as a record value (where it means absent)")
    if kind is Decimal:
        return value
    raise InputError(f"unsupported input value of type {kind.__name__}")


def from_double(value: float) -> int | Decimal:
    """A JSON or protobuf number (a double) as an engine number: whole numbers that a double
    holds exactly become integers, the rest decimals. Raises InputError if not finite."""
    if not math.isfinite(value):
        raise InputError("numbers must be finite")
    if value.is_integer() and abs(value) <= 2**53:
        return int(value)
    # repr() gives the shortest text that reads back as the same double: 0.1 stays 0.1.
    return Decimal(repr(value))


def type_name(value: object) -> str:
    """The language's name for a value's type, for messages."""
    match value:
        case bool():
            return "boolean"
        case int():
            return "integer"
        case Decimal():
            return "decimal"
        case str():
            return "string"
        case datetime():
            return "datetime"
        case date():
            return "date"
        case timedelta():
            return "duration"
        case IPv4Address() | IPv6Address():
            return "ip"
        case IPv4Network() | IPv6Network():
            return "cidr"
        case dict():
            return "record"
        case list() | tuple():
            return "list"
    return type(value).__name__


def equal(a: object, b: object) -> bool:
    """Strict equality: values of different types are unequal, except integer and decimal."""
    ta, tb = type(a), type(b)
    if ta is tb:
        if ta is list or ta is tuple:
            return _sequences_equal(a, b)  # type: ignore[arg-type]
        if ta is dict:
            return _records_equal(a, b)  # type: ignore[arg-type]
        return a == b
    if ta in NUMBER_TYPES and tb in NUMBER_TYPES:
        return a == b
    if ta in (list, tuple) and tb in (list, tuple):
        return _sequences_equal(a, b)  # type: ignore[arg-type]
    return False


def _sequences_equal(
    a: list[object] | tuple[object, ...], b: list[object] | tuple[object, ...]
) -> bool:
    return len(a) == len(b) and all(equal(x, y) for x, y in zip(a, b, strict=True))


def _records_equal(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    return a.keys() == b.keys() and all(equal(a[key], b[key]) for key in a)


# --- rendering -----------------------------------------------------------------------------------

MAX_RENDERED = 120
"""Longest value shown in an explanation or a reason; longer ones are cut with `...`."""


def render(value: object) -> str:
    """A value as policy syntax, for explanations: `16`, `"RU"`, `ip("10.0.0.1")`, `[1, 2]`."""
    text = _render(value, 0)
    return text if len(text) <= MAX_RENDERED else text[: MAX_RENDERED - 3] + "..."


def _render(value: object, depth: int) -> str:
    match value:
        case bool():
            return "true" if value else "false"
        case int() | Decimal():
            return str(value)
        case str():
            shown = value if len(value) <= MAX_RENDERED else value[:MAX_RENDERED]
            return json.dumps(shown, ensure_ascii=False)
        case datetime():
            return f'datetime("{value.isoformat().replace("+00:00", "Z")}")'
        case date():
            return f'date("{value.isoformat()}")'
        case timedelta():
            return f'duration("{format_duration(value)}")'
        case IPv4Address() | IPv6Address():
            return f'ip("{value}")'
        case IPv4Network() | IPv6Network():
            return f'cidr("{value}")'
    if depth > 3:
        return "..."
    if isinstance(value, list | tuple):
        items = [_render(item, depth + 1) for item in value[:20]]
        return "[" + ", ".join(items) + (", ..." if len(value) > 20 else "") + "]"
    if isinstance(value, dict):
        items = [f"{key}: {_render(item, depth + 1)}" for key, item in list(value.items())[:10]]
        return "{" + ", ".join(items) + (", ..." if len(value) > 10 else "") + "}"
    return f"<{type_name(value)}>"


def render_text(value: object) -> str:
    """A value inside a reason message: strings without quotes, the rest as policy syntax."""
    if type(value) is str:
        return value if len(value) <= MAX_RENDERED else value[:MAX_RENDERED] + "..."
    return render(value)


def format_duration(value: timedelta) -> str:
    """`1h30m`, `2d`, `250ms`: the form that parse_duration reads."""
    total_ms = (value.days * 86_400 + value.seconds) * 1000 + value.microseconds // 1000
    sign = "-" if total_ms < 0 else ""
    total_ms = abs(total_ms)
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        amount, total_ms = divmod(total_ms, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return sign + ("".join(parts) or "0s")

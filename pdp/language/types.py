"""Static types and the signatures of built-in functions, as the checker sees them.

The engine implements each function in pdp/engine/functions.py; a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pdp.language import literals


@dataclass(frozen=True, slots=True)
class Type:
    kind: str
    element: Type | None = None
    values: tuple[str, ...] = ()
    """For a string from a schema enumeration: the values it can take."""

    def __str__(self) -> str:
        if self.kind == "list" and self.element is not None and self.element.kind != "any":
            return f"list of {self.element}"
        return self.kind

    @property
    def known(self) -> bool:
        return self.kind != "any"


ANY = Type("any")
STRING = Type("string")
INTEGER = Type("integer")
DECIMAL = Type("decimal")
BOOLEAN = Type("boolean")
DATE = Type("date")
DATETIME = Type("datetime")
DURATION = Type("duration")
IP = Type("ip")
CIDR = Type("cidr")
RECORD = Type("record")
LIST = Type("list", ANY)


def list_of(element: Type) -> Type:
    return Type("list", element)


NUMERIC_KINDS = frozenset({"integer", "decimal"})
ORDERED_FAMILIES = (
    NUMERIC_KINDS,
    frozenset({"date"}),
    frozenset({"datetime"}),
    frozenset({"duration"}),
)


def same_family(a: Type, b: Type) -> bool:
    """Whether values of the two types can ever be equal (unknown types always can)."""
    if not a.known or not b.known:
        return True
    if a.kind in NUMERIC_KINDS and b.kind in NUMERIC_KINDS:
        return True
    if a.kind == "list" and b.kind == "list":
        return same_family(a.element or ANY, b.element or ANY)
    return a.kind == b.kind


def ordered(a: Type, b: Type) -> bool:
    """Whether `<` and friends apply: numbers, dates, datetimes or durations, of one family."""
    if not a.known and not b.known:
        return True
    if not a.known or not b.known:
        known = a if a.known else b
        return any(known.kind in family for family in ORDERED_FAMILIES)
    return any(a.kind in family and b.kind in family for family in ORDERED_FAMILIES)


def join(a: Type, b: Type) -> Type:
    """The type of a value that is one or the other (e.g. `x ?? fallback`)."""
    if a == b:
        return a
    if a.kind == "string" and b.kind == "string":
        return STRING
    if a.kind in NUMERIC_KINDS and b.kind in NUMERIC_KINDS:
        return DECIMAL if DECIMAL in (a, b) else INTEGER
    if a.kind == "list" and b.kind == "list":
        return list_of(join(a.element or ANY, b.element or ANY))
    return ANY


# --- built-in functions ------------------------------------------------------------------------

Kinds = frozenset[str]
TEMPORAL_TEXT: Kinds = frozenset({"datetime", "string"})


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    params: tuple[Kinds, ...]
    required: int
    returns: Type
    summary: str
    reads_clock: bool = False
    """Depends on the evaluation time, so never folded into a constant."""
    literal_checks: tuple[Callable[[str], object] | None, ...] = ()
    """Validators for string-literal arguments, so a bad literal is a load-time error."""

    def accepts(self, count: int) -> bool:
        return self.required <= count <= len(self.params)

    def arity(self) -> str:
        if self.required == len(self.params):
            return f"{self.required} argument{'s' if self.required != 1 else ''}"
        return f"{self.required} to {len(self.params)} arguments"


def _zone_check(name: str) -> object:
    return literals.time_zone(name)


_S = frozenset({"string"})
_DAY = frozenset({"date", "datetime", "string"})
"""A day: a date, a datetime (its UTC date), or YYYY-MM-DD / RFC 3339 text."""

SIGNATURES: dict[str, Signature] = {
    s.name: s
    for s in (
        Signature("now", (), 0, DATETIME, "the evaluation time", reads_clock=True),
        Signature(
            "hour",
            (TEMPORAL_TEXT, _S),
            1,
            INTEGER,
            "hour of day, 0 to 23, in a time zone (default UTC)",
            literal_checks=(literals.parse_datetime, _zone_check),
        ),
        Signature(
            "minute",
            (TEMPORAL_TEXT, _S),
            1,
            INTEGER,
            "minute of the hour, 0 to 59, in a time zone (default UTC)",
            literal_checks=(literals.parse_datetime, _zone_check),
        ),
        Signature(
            "weekday",
            (TEMPORAL_TEXT, _S),
            1,
            STRING,
            'day of the week ("monday" ... "sunday") in a time zone (default UTC)',
            literal_checks=(literals.parse_datetime, _zone_check),
        ),
        Signature(
            "date",
            (frozenset({"string", "datetime", "date"}), _S),
            1,
            DATE,
            "a date from YYYY-MM-DD, or the calendar date of a datetime in a time zone",
            literal_checks=(literals.parse_day, _zone_check),
        ),
        Signature(
            "datetime",
            (frozenset({"string", "datetime"}),),
            1,
            DATETIME,
            "a datetime from RFC 3339 text with an offset",
            literal_checks=(literals.parse_datetime,),
        ),
        Signature(
            "duration",
            (frozenset({"string", "duration"}),),
            1,
            DURATION,
            "a duration such as 90s, 15m, 1h30m, 2d",
            literal_checks=(literals.parse_duration,),
        ),
        Signature(
            "ip",
            (frozenset({"string", "ip"}),),
            1,
            IP,
            "an IPv4 or IPv6 address",
            literal_checks=(literals.parse_ip,),
        ),
        Signature(
            "cidr",
            (frozenset({"string", "cidr"}),),
            1,
            CIDR,
            "an IPv4 or IPv6 range such as 10.0.0.0/8",
            literal_checks=(literals.parse_cidr,),
        ),
        Signature(
            "decimal",
            (frozenset({"string", "integer", "decimal"}),),
            1,
            DECIMAL,
            "a decimal number from text or a number",
            literal_checks=(literals.parse_decimal,),
        ),
        Signature(
            "years_since",
            (_DAY, _DAY),
            1,
            INTEGER,
            "whole years from a date until today (UTC) or until the second argument: an age",
            reads_clock=True,
            literal_checks=(literals.parse_day, literals.parse_day),
        ),
        Signature(
            "days_since",
            (_DAY, _DAY),
            1,
            INTEGER,
            "whole days from a date until today (UTC) or until the second argument",
            reads_clock=True,
            literal_checks=(literals.parse_day, literals.parse_day),
        ),
        Signature("lower", (_S,), 1, STRING, "the string in lower case"),
        Signature("upper", (_S,), 1, STRING, "the string in upper case"),
        Signature(
            "length",
            (frozenset({"string", "list", "record"}),),
            1,
            INTEGER,
            "characters in a string, items in a list, keys in a record",
        ),
    )
}

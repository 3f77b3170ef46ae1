"""Built-in functions: one implementation per signature in pdp/language/types.py.

Each takes the evaluation time first (most ignore it: the engine never reads the clock, so
`now()` and ages are computed from the time the caller passes in), then the arguments.
Temporal and network arguments may be given as values or as text (JWT claims are JSON, so a
birthdate arrives as "2008-05-01").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from pdp.engine.errors import InvalidValueError, TypeMismatchError
from pdp.engine.values import type_name
from pdp.language import literals

Implementation = Callable[..., Any]
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _parse(parser: Callable[[str], Any], text: str) -> Any:
    try:
        return parser(text)
    except ValueError as error:
        raise InvalidValueError(str(error)) from None


def _wrong(function: str, value: object, wanted: str) -> TypeMismatchError:
    return TypeMismatchError(f"`{function}` needs {wanted}, not {type_name(value)}")


def as_datetime(value: object, function: str) -> datetime:
    if type(value) is datetime:
        return value
    if type(value) is str:
        result: datetime = _parse(literals.parse_datetime, value)
        return result
    raise _wrong(function, value, "a datetime")


def as_date(value: object, function: str) -> date:
    # datetime is a subclass of date, so it is tested first.
    if isinstance(value, datetime):
        return value.astimezone(UTC).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        day: date | datetime = _parse(literals.parse_day, value)
        return day.date() if isinstance(day, datetime) else day
    raise _wrong(function, value, "a date")


def _zone(name: object, function: str) -> Any:
    if type(name) is not str:
        raise _wrong(function, name, "a time zone name")
    return _parse(literals.time_zone, name)


def _local(now: datetime, value: object, zone: object, function: str) -> datetime:
    moment = as_datetime(value, function)
    return moment.astimezone(_zone(zone, function))


def fn_now(now: datetime) -> datetime:
    return now


def fn_hour(now: datetime, value: object, zone: object = "UTC") -> int:
    return _local(now, value, zone, "hour").hour


def fn_minute(now: datetime, value: object, zone: object = "UTC") -> int:
    return _local(now, value, zone, "minute").minute


def fn_weekday(now: datetime, value: object, zone: object = "UTC") -> str:
    return WEEKDAYS[_local(now, value, zone, "weekday").weekday()]


def fn_date(now: datetime, value: object, zone: object = None) -> date:
    is_day = isinstance(value, date) and not isinstance(value, datetime)
    if zone is None or is_day or (isinstance(value, str) and len(value) <= 10):
        # A date has no time of day, so a zone cannot change it.
        return as_date(value, "date")
    return _local(now, value, zone, "date").date()


def fn_datetime(now: datetime, value: object) -> datetime:
    return as_datetime(value, "datetime")


def fn_duration(now: datetime, value: object) -> timedelta:
    if type(value) is timedelta:
        return value
    if type(value) is str:
        result: timedelta = _parse(literals.parse_duration, value)
        return result
    raise _wrong("duration", value, "a duration text such as 15m")


def fn_ip(now: datetime, value: object) -> IPv4Address | IPv6Address:
    if isinstance(value, IPv4Address | IPv6Address):
        return value
    if type(value) is str:
        result: IPv4Address | IPv6Address = _parse(literals.parse_ip, value)
        return result
    raise _wrong("ip", value, "an IP address text")


def fn_cidr(now: datetime, value: object) -> IPv4Network | IPv6Network:
    if isinstance(value, IPv4Network | IPv6Network):
        return value
    if type(value) is str:
        result: IPv4Network | IPv6Network = _parse(literals.parse_cidr, value)
        return result
    raise _wrong("cidr", value, "a CIDR range text")


def fn_decimal(now: datetime, value: object) -> Decimal:
    kind = type(value)
    if kind is Decimal:
        return value  # type: ignore[return-value]
    if kind is int:
        return Decimal(value)  # type: ignore[arg-type]
    if kind is str:
        result: Decimal = _parse(literals.parse_decimal, value)  # type: ignore[arg-type]
        return result
    raise _wrong("decimal", value, "a number or decimal text")


def _until(now: datetime, at: object, function: str) -> date:
    # `at` may be a local date, e.g. `years_since(subject.birthdate, date(now(), subject.tz))`.
    return now.astimezone(UTC).date() if at is None else as_date(at, function)


def fn_years_since(now: datetime, since: object, at: object = None) -> int:
    start = as_date(since, "years_since")
    end = _until(now, at, "years_since")
    years = end.year - start.year
    # Not yet had this year's anniversary. A 29 February birthday counts from 1 March.
    if (end.month, end.day) < (start.month, start.day):
        years -= 1
    return years


def fn_days_since(now: datetime, since: object, at: object = None) -> int:
    return (_until(now, at, "days_since") - as_date(since, "days_since")).days


def fn_lower(now: datetime, value: object) -> str:
    if type(value) is not str:
        raise _wrong("lower", value, "a string")
    return value.lower()


def fn_upper(now: datetime, value: object) -> str:
    if type(value) is not str:
        raise _wrong("upper", value, "a string")
    return value.upper()


def fn_length(now: datetime, value: object) -> int:
    if type(value) in (str, list, tuple, dict):
        return len(value)  # type: ignore[arg-type]
    raise _wrong("length", value, "a string, list or record")


IMPLEMENTATIONS: dict[str, Implementation] = {
    "now": fn_now,
    "hour": fn_hour,
    "minute": fn_minute,
    "weekday": fn_weekday,
    "date": fn_date,
    "datetime": fn_datetime,
    "duration": fn_duration,
    "ip": fn_ip,
    "cidr": fn_cidr,
    "decimal": fn_decimal,
    "years_since": fn_years_since,
    "days_since": fn_days_since,
    "lower": fn_lower,
    "upper": fn_upper,
    "length": fn_length,
}

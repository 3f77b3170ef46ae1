"""What counts as a valid date, datetime, duration, IP address, CIDR range, decimal or time zone.

The checker uses these to reject bad literals at load time; the engine uses the same functions to
convert request values at run time, so both agree on every edge case. Each raises ValueError
with a message in the house style (lower case, input in backticks).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# RFC 3339 with an explicit offset: a datetime without one would depend on the server's zone.
_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_DURATION_PART = re.compile(r"(\d+)(ms|d|h|m|s)")
_DURATION = re.compile(r"-?(?:\d+(?:ms|d|h|m|s))+")
_DURATION_UNITS = {
    "d": timedelta(days=1),
    "h": timedelta(hours=1),
    "m": timedelta(minutes=1),
    "s": timedelta(seconds=1),
    "ms": timedelta(milliseconds=1),
}
_MAX_TEXT = 64  # no valid literal of these kinds is longer; refuse before any parsing work


def _short(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "..."


def parse_date(text: str) -> date:
    if len(text) > _MAX_TEXT or not _DATE.fullmatch(text):
        raise ValueError(f"invalid date `{_short(text)}` (expected YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid date `{text}` (no such day)") from None


def parse_day(text: str) -> date | datetime:
    """YYYY-MM-DD, or an RFC 3339 datetime: what date(), years_since() and days_since() read."""
    return parse_date(text) if len(text) <= 10 else parse_datetime(text)


def parse_datetime(text: str) -> datetime:
    if len(text) > _MAX_TEXT or not _DATETIME.fullmatch(text):
        raise ValueError(
            f"invalid datetime `{_short(text)}` (expected RFC 3339 with an offset, "
            "e.g. 2026-11-23T10:00:00Z)"
        )
    normalized = text.replace("z", "Z").replace("t", "T")
    # fromisoformat accepts at most 6 fractional digits; RFC 3339 allows more.
    normalized = re.sub(r"(\.\d{6})\d+", r"\1", normalized)
    try:
        return datetime.fromisoformat(normalized).astimezone(UTC)
    except ValueError:
        raise ValueError(f"invalid datetime `{text}` (no such time)") from None


def parse_duration(text: str) -> timedelta:
    """`1h30m`, `90s`, `2d`, `250ms`, `-15m`: units d, h, m, s, ms, largest first."""
    if len(text) > _MAX_TEXT or not _DURATION.fullmatch(text):
        raise ValueError(
            f"invalid duration `{_short(text)}` (expected e.g. 90s, 15m, 1h30m, 2d, 250ms)"
        )
    total = timedelta()
    order = list(_DURATION_UNITS)
    previous = -1
    for amount, unit in _DURATION_PART.findall(text):
        if order.index(unit) <= previous:
            raise ValueError(
                f"invalid duration `{text}` (units go from largest to smallest, each once)"
            )
        previous = order.index(unit)
        total += int(amount) * _DURATION_UNITS[unit]
    try:
        return -total if text.startswith("-") else total
    except OverflowError:  # pragma: no cover - timedelta itself overflows first
        raise ValueError(f"invalid duration `{text}` (too long)") from None


def parse_ip(text: str) -> IPAddress:
    # SECURITY: a zone id (`fe80::1%eth0`) makes an address compare unequal to itself without
    # one, so a deny list could be dodged; it has no meaning in a policy, so it is refused.
    if len(text) > _MAX_TEXT or "%" in text:
        raise ValueError(f"invalid IP address `{_short(text)}`")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"invalid IP address `{text}`") from None
    # SECURITY: `::ffff:10.0.0.1` is 10.0.0.1 on the wire; as an IPv6 value it would escape a
    # forbid on 10.0.0.0/8.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_cidr(text: str) -> IPNetwork:
    if len(text) > _MAX_TEXT or "/" not in text:
        raise ValueError(f"invalid CIDR range `{_short(text)}` (expected e.g. 10.0.0.0/8)")
    try:
        # strict: `10.0.0.1/8` has host bits set and is almost always a typo.
        return ipaddress.ip_network(text, strict=True)
    except ValueError as error:
        raise ValueError(f"invalid CIDR range `{text}` ({error})") from None


def parse_decimal(text: str) -> Decimal:
    if len(text) > _MAX_TEXT or not re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        raise ValueError(f"invalid decimal `{_short(text)}` (expected e.g. 12.50)")
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid text
        raise ValueError(f"invalid decimal `{text}`") from None


@functools.lru_cache(maxsize=256)
def time_zone(name: str) -> zoneinfo.ZoneInfo:
    """An IANA zone such as `Europe/Stockholm`. The cache is bounded: names come from requests."""
    if len(name) > _MAX_TEXT or not re.fullmatch(r"[A-Za-z0-9_+\-]+(?:/[A-Za-z0-9_+\-]+)*", name):
        raise ValueError(f"unknown time zone `{_short(name)}`")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone `{name}`") from None


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> object:
    """A `matches` pattern compiled with re2, which runs in linear time (Python's `re` can take
    seconds on `^(a+)+$`). Refuses back-references and other non-regular constructs."""
    # Imported here: the checker needs it only for policies that use `matches`.
    import re2  # noqa: PLC0415

    from pdp.language.limits import MAX_REGEX_LENGTH, MAX_REGEX_MEMORY  # noqa: PLC0415

    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError(f"regex is longer than {MAX_REGEX_LENGTH} characters")
    options = re2.Options()
    options.log_errors = False
    options.max_mem = MAX_REGEX_MEMORY
    try:
        return re2.compile(pattern, options)
    except re2.error as error:
        detail = error.args[0] if error.args else "invalid"
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise ValueError(f"invalid regex `{_short(pattern)}`: {detail}") from None

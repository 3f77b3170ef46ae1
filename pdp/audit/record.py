"""Decision records: one JSON object per decision, built cheaply and encoded as JSON Lines.

A record holds what is needed to re-evaluate the decision later against other policies (the
action, the resource, the context, the time and the subject claims that policies read) and what
was decided (outcome, reasons, rule errors). docs/audit.md documents every field.

SECURITY: a record is built only from verified claims (`Subject.attributes`) and the request
and decision values; no credential is ever passed in, so no token, key, password or signature
can reach the log through this module. Callers must not put secrets in a request's `context`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

import orjson

from pdp.engine.decision import Decision, Reason, Request
from pdp.engine.values import format_duration
from pdp.identity.subject import Subject

RECORD_VERSION = 1
"""Bumped only when a field changes meaning or disappears; new fields keep the version."""

ALLOW = "allow"
DENY = "deny"
REJECTED = "rejected"
"""The `decision` of a request refused as malformed (INVALID_ARGUMENT)."""

AUTH_ATTRIBUTE = "auth"
"""The subject attribute pdp sets itself (method, issuer); kept whatever `claims_read` says."""
KEPT_ATTRIBUTES = frozenset({AUTH_ATTRIBUTE, "key_id"})
"""Kept whatever `claims_read` says: how the subject was verified and, for an API key or an
HMAC key, which key (an id, never a secret): an auditor must be able to tell which of an
application's keys made a call, to trace or revoke it."""


def decision_record(
    *,
    time: datetime,
    decision_id: str,
    policy_revision: str,
    subject: Subject | None,
    credential_kind: str,
    request: Request,
    decision: Decision,
    latency_us: int,
    claims_read: frozenset[str] | None,
) -> dict[str, Any]:
    """The record of one decision.

    `subject` is None when authentication failed. `claims_read` names the subject claims that
    the policies read (only those are kept, beside `auth`); None keeps every claim. The values
    are referenced, not copied: requests and decisions are immutable.
    """
    return {
        "v": RECORD_VERSION,
        "time": format_time(time),
        "decision_id": decision_id,
        "policy_revision": policy_revision,
        "decision": ALLOW if decision.allowed else DENY,
        "credential": credential_kind,
        "subject": None if subject is None else _subject(subject, claims_read),
        # The service that asked, from its mutual-TLS certificate; null without one.
        "caller": request.caller or None,
        "action": request.action,
        "resource": request.resource,
        "context": request.context,
        "reasons": [_reason(reason) for reason in decision.reasons],
        "errors": [
            {"rule": error.rule, "message": error.message, "source": error.source}
            for error in decision.errors
        ],
        "latency_us": latency_us,
    }


def rejected_record(
    *,
    time: datetime,
    decision_id: str,
    policy_revision: str,
    credential_kind: str,
    error: str,
    latency_us: int,
    request: Request | None = None,
    caller: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The record of a request refused as malformed: audited too, so nothing is lost.

    `error` says why (it goes to the caller as well, so it never holds a secret). `request` is
    what could be read of the request, if anything; `caller` the calling service's certificate
    identity on a mutual-TLS connection. The subject is never recorded: a refused
    request was not decided, so its claims were not read by any policy.
    """
    return {
        "v": RECORD_VERSION,
        "time": format_time(time),
        "decision_id": decision_id,
        "policy_revision": policy_revision,
        "decision": REJECTED,
        "credential": credential_kind,
        "subject": None,
        "caller": (caller or (request.caller if request is not None else None)) or None,
        "action": None if request is None else request.action,
        "resource": None if request is None else request.resource,
        "context": None if request is None else request.context,
        "reasons": [],
        "errors": [],
        "error": error,
        "latency_us": latency_us,
    }


def encode(records: Sequence[Mapping[str, Any]]) -> bytes:
    """JSON Lines: one record per line, each line ending in a newline, UTF-8, compact.

    JSON escapes every control character inside strings, so a value can never break a line.
    orjson does the work (the standard library's encoder took 8 times as long, a third of a
    decision's cost in a batch); it refuses what it cannot write exactly (a lone surrogate, an
    integer beyond 64 bits), and then the standard library writes the batch instead.
    """
    if not records:
        return b""
    try:
        lines = [orjson.dumps(record, default=_json_value, option=_ORJSON) for record in records]
        return b"\n".join(lines) + b"\n"
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return b"".join(_encode_one(record) for record in records)


def format_time(time: datetime) -> str:
    """RFC 3339 in UTC with microseconds: `2026-11-23T10:00:00.123456Z` (sorts as text)."""
    global _last_time  # noqa: PLW0603 - a one-entry cache: a batch shares one time
    last = _last_time
    if last is not None and last[0] is time:
        return last[1]
    if time.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    text = time.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"
    _last_time = (time, text)
    return text


_last_time: tuple[datetime, str] | None = None

# Datetimes go through _json_value for the log's own format (UTC, microseconds, Z). SECURITY:
# so do dataclasses, which orjson would otherwise write field by field: an object that reaches
# a record by mistake is named by its type, never spelled out.
_ORJSON = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


# --- encoding ------------------------------------------------------------------------------------


def _subject(subject: Subject, claims_read: frozenset[str] | None) -> dict[str, Any]:
    # Every record of a batch has the same subject: build its part once (records are never
    # changed after they are built, so sharing the dict is safe).
    global _last_subject  # noqa: PLW0603 - a one-entry cache
    last = _last_subject
    if last is not None and last[0] is subject and last[1] is claims_read:
        return last[2]
    built = _build_subject(subject, claims_read)
    _last_subject = (subject, claims_read, built)
    return built


_last_subject: tuple[Subject, frozenset[str] | None, dict[str, Any]] | None = None


def _build_subject(subject: Subject, claims_read: frozenset[str] | None) -> dict[str, Any]:
    attributes = subject.attributes
    if claims_read is None:
        claims: Mapping[str, Any] = attributes
    else:
        claims = {
            name: value
            for name, value in attributes.items()
            if name in claims_read or name in KEPT_ATTRIBUTES
        }
    return {"id": subject.id, "issuer": subject.issuer, "method": subject.method, "claims": claims}


def _reason(reason: Reason) -> dict[str, str]:
    if reason.rule:
        return {"code": reason.code, "rule": reason.rule}
    # Without a rule (authn.*, error.*, default.deny) the message is the only explanation, e.g.
    # "token expired at ...". Reason messages never hold secrets (see pdp.identity.errors).
    return {"code": reason.code, "message": reason.message}


def _json_value(value: Any) -> Any:
    """What the JSON encoder calls for a value it does not know: engine values that are not
    JSON types. Never str() or repr() of an unknown object: that could expose anything."""
    if type(value) is Decimal:
        # Request decimals come from JSON or protobuf doubles (values.from_json), so the nearest
        # float is the number that came in and the record reads back as the same decimal.
        number = float(value)
        return number if math.isfinite(number) else str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, datetime):
        return format_time(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, IPv4Address | IPv6Address | IPv4Network | IPv6Network):
        return str(value)
    if isinstance(value, Decimal):  # a subclass
        return _json_value(Decimal(value))
    return f"<{type(value).__name__}>"


# One encoder each, shared: encode() is thread-safe and, without indent, runs the C encoder.
_UTF8_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_value)
_ASCII_ENCODER = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=_json_value)


def _encode_one(record: Mapping[str, Any]) -> bytes:
    text = _UTF8_ENCODER.encode(record) + "\n"
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return (_ASCII_ENCODER.encode(record) + "\n").encode("ascii")

"""authenticate -> authorize -> audit, for the server and the CLI alike.

The decision point never answers allow by accident: a credential that does not verify, a fault
while deciding, or a decision that cannot be written to the audit log all become DENY with a
reason that says so.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pdp.audit.record import decision_record, rejected_record
from pdp.audit.writer import AuditLog, AuditWriteError
from pdp.engine.authorizer import authorize
from pdp.engine.decision import Decision, Reason, Request
from pdp.engine.validation import validate_request
from pdp.identity.authenticator import Authenticator
from pdp.identity.credentials import Credential
from pdp.identity.errors import AuthenticationError
from pdp.identity.subject import Subject
from pdp.language.schema import Schema
from pdp.metering import Metering
from pdp.policy_store import PolicyStore

_NO_CALLER: Mapping[str, Any] = MappingProxyType({})

AUDIT_FAILED = "error.audit"
INTERNAL = "error.internal"
SCHEMA = "error.schema"
_WARN_EVERY_SECONDS = 60.0

_log = logging.getLogger("pdp.decisions")


@dataclass(frozen=True, slots=True)
class Query:
    """One question within a call: an action on a resource (`type`, `id` and attributes)."""

    action: str
    resource: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Answer:
    decision: Decision
    decision_id: str
    retry_after: float = 0.0
    """With limit.rate or limit.quota: seconds until a request may succeed again."""


class DecisionIds:
    """Unique, cheap decision ids: a random prefix per process and a counter."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(6)
        self._counter = itertools.count(1)

    def next(self) -> str:
        # next() on itertools.count is atomic under the GIL: safe across handler threads.
        return f"{self._prefix}-{next(self._counter):010x}"


def utc_now() -> datetime:
    return datetime.now(UTC)


class DecisionPoint:
    def __init__(
        self,
        policies: PolicyStore,
        authenticator: Authenticator,
        audit: AuditLog,
        *,
        clock: Callable[[], datetime] = utc_now,
        validate_requests: str = "off",
        metering: Metering | None = None,
    ) -> None:
        self.policies = policies
        self.authenticator = authenticator
        self.audit = audit
        self.clock = clock
        self.metering = metering
        self.ids = DecisionIds()
        self.validate_requests = validate_requests
        self._warned: dict[str, float] = {}

    def decide(
        self,
        credential: Credential | None,
        queries: Sequence[Query],
        context: Mapping[str, Any],
        explain: bool = False,
        caller: Mapping[str, Any] = _NO_CALLER,
    ) -> list[Answer]:
        """Decide every query for one caller, audit every decision, and answer in order.

        One clock reading, one authentication and one policy set serve the whole call, so the
        answers of a batch are consistent with each other. `caller` is the calling service's
        identity from mutual TLS (empty without it).
        """
        started = time.perf_counter_ns()
        now = self.clock()
        policy_set = self.policies.current
        revision = policy_set.revision
        subject: Subject | None = None
        try:
            subject = self.authenticator.authenticate(credential, now)
            refusal = None
        except AuthenticationError as error:
            refusal = Decision(False, (Reason(error.code, "", error.message),), (), (), revision)
        except Exception:
            # SECURITY: an unexpected fault must not become an RPC error that a caller might
            # treat as "try again" or, worse, as allow. Nothing of the credential is logged.
            _log.exception("authentication failed unexpectedly")
            refusal = _fault(revision, "authentication failed unexpectedly")
        attributes = subject.attributes if subject is not None else {}
        requests = [Request(attributes, q.action, q.resource, context, caller) for q in queries]
        decisions = []
        waits = [0.0] * len(requests)
        schema = policy_set.schema if self.validate_requests != "off" else None
        metering = self.metering if self.metering and Metering.metered(subject) else None
        outcomes: list[str] = []
        for position, request in enumerate(requests):
            if refusal is not None:
                decisions.append(refusal)
                continue
            if metering is not None and subject is not None:
                over = metering.admit(subject, now)
                outcomes.append("throttled" if over is not None else "")
                if over is not None:
                    waits[position] = over.retry_after
                    reason = Reason(over.code, "", over.message)
                    decisions.append(Decision(False, (reason,), (), (), revision))
                    continue
            if schema is not None:
                mismatch = self._check_schema(schema, request, revision)
                if mismatch is not None:
                    decisions.append(mismatch)
                    continue
            try:
                decisions.append(authorize(policy_set, request, now, explain))
            except Exception:
                _log.exception("evaluation failed unexpectedly (policy revision %s)", revision)
                decisions.append(_fault(revision, "the decision could not be made"))
        ids = [self.ids.next() for _ in decisions]
        latency_us = (time.perf_counter_ns() - started) // 1000
        kind = credential.kind if credential is not None else "none"
        records = [
            decision_record(
                time=now,
                decision_id=decision_id,
                policy_revision=revision,
                subject=subject,
                credential_kind=kind,
                request=request,
                decision=decision,
                latency_us=latency_us,
                claims_read=policy_set.subject_claims_read,
            )
            for decision_id, request, decision in zip(ids, requests, decisions, strict=True)
        ]
        try:
            self.audit.write(records)
        except AuditWriteError as error:
            # A decision that cannot be recorded must not become a silent allow.
            _log.error("audit log write failed, denying %d decision(s): %s", len(records), error)
            unrecorded = Decision(
                False,
                (Reason(AUDIT_FAILED, "", "the decision could not be recorded, so it is denied"),),
                (),
                (),
                revision,
            )
            decisions = [unrecorded] * len(decisions)
        if metering is not None and subject is not None:
            for outcome, decision in zip(outcomes, decisions, strict=True):
                counted = outcome or ("allowed" if decision.allowed else "denied")
                metering.record(subject, now, counted)
        return [Answer(d, i, w) for d, i, w in zip(decisions, ids, waits, strict=True)]

    def _check_schema(self, schema: Schema, request: Request, revision: str) -> Decision | None:
        """A DENY for a request the schema rejects (in "reject" mode), else None."""
        violations = validate_request(schema, request)
        if not violations:
            return None
        message = "; ".join(violation.message for violation in violations)
        if self.validate_requests == "reject":
            return Decision(False, (Reason(SCHEMA, "", message),), (), (), revision)
        now = time.monotonic()
        for violation in violations:
            # One line per attribute per minute: a misbehaving caller must not flood the log.
            if now - self._warned.get(violation.attribute, -_WARN_EVERY_SECONDS) >= 60.0:
                self._warned[violation.attribute] = now
                _log.warning("request does not match the schema: %s", violation.message)
        return None

    def reject(
        self,
        credential_kind: str,
        error: str,
        request: Request | None = None,
        caller: Mapping[str, Any] | None = None,
    ) -> str:
        """Audit a request refused as malformed (INVALID_ARGUMENT); returns its decision id."""
        started = time.perf_counter_ns()
        decision_id = self.ids.next()
        record = rejected_record(
            time=self.clock(),
            decision_id=decision_id,
            policy_revision=self.policies.current.revision,
            credential_kind=credential_kind,
            error=error,
            latency_us=(time.perf_counter_ns() - started) // 1000,
            request=request,
            caller=caller,
        )
        try:
            self.audit.write([record])
        except AuditWriteError as failure:
            _log.error("audit log write failed for a rejected request: %s", failure)
        return decision_id


def _fault(revision: str, message: str) -> Decision:
    return Decision(False, (Reason(INTERNAL, "", message),), (), (), revision)

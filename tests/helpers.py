"""Small helpers shared by tests: build a policy set from text, decide a request."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pdp.engine.authorizer import authorize
from pdp.engine.decision import Decision, Request
from pdp.engine.policy_set import PolicySet, build_policy_set
from pdp.language.source import Source

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def policy_set(
    text: str, data: dict[str, Any] | None = None, name: str = "test.policy"
) -> PolicySet:
    return build_policy_set([Source(name, text)], data)


def request(
    subject: dict[str, Any] | None = None,
    action: str = "read",
    resource: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> Request:
    return Request.from_json(
        {
            "subject": subject or {},
            "action": action,
            "resource": resource or {"type": "Document", "id": "d1"},
            "context": context or {},
        }
    )


def decide(
    text: str,
    subject: dict[str, Any] | None = None,
    action: str = "read",
    resource: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    *,
    data: dict[str, Any] | None = None,
    now: datetime = NOW,
    explain: bool = False,
) -> Decision:
    return authorize(
        policy_set(text, data), request(subject, action, resource, context), now, explain=explain
    )

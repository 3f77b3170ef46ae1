"""Real decisions and their audit records, shared by the audit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pdp.audit.record import decision_record, rejected_record
from pdp.engine.authorizer import authorize
from pdp.engine.decision import Request
from pdp.engine.policy_set import PolicySet
from pdp.identity.subject import Subject
from tests.helpers import policy_set

NOW = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)

SHOP_POLICY = """
forbid blocked-country {
    action   any
    resource any
    when     context.country in ["KP"]
    reason   "requests from {context.country} are refused"
}

forbid broken-limit {
    action   refund
    resource Order
    when     resource.amount > subject.refund_limit
}

permit purchase-alcohol {
    action   purchase
    resource Product
    when     resource.category == "alcohol" and subject.age >= 18
    reason   "{subject.sub} is {subject.age}"
}

permit purchase-cheap {
    action   purchase
    resource Product
    when     resource.price < 10.5
}

permit read-own {
    action   read
    resource Document
    when     resource.owner == subject.sub
}
"""


def shop() -> PolicySet:
    return policy_set(SHOP_POLICY, name="shop.policy")


def subject_attributes(sub: str = "alice", age: int = 30, **claims: Any) -> dict[str, Any]:
    """Verified claims as the authenticator hands them over, with pdp's own `auth` record."""
    return {
        "sub": sub,
        "iss": "https://id.example.test",
        "aud": "shop-api",
        "age": age,
        "email": f"{sub}@example.test",
        **claims,
        "auth": {"method": "jwt", "issuer": "https://id.example.test"},
    }


def record_for(
    policies: PolicySet,
    number: int = 1,
    *,
    sub: str | None = "alice",
    age: int = 30,
    action: str = "purchase",
    resource: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    time: datetime | None = None,
) -> dict[str, Any]:
    """Decide a request for real and build its record; `sub=None` means no verified subject."""
    subject = (
        None
        if sub is None
        else Subject(subject_attributes(sub, age), "jwt", sub, "https://id.example.test")
    )
    request = Request.from_json(
        {
            "subject": dict(subject.attributes) if subject is not None else {},
            "action": action,
            "resource": resource or {"type": "Product", "id": f"p-{number}", "category": "food"},
            "context": context or {"country": "SE"},
        }
    )
    when = time or NOW + timedelta(seconds=number)
    decision = authorize(policies, request, when)
    return decision_record(
        time=when,
        decision_id=f"d-{number:06d}",
        policy_revision=policies.revision,
        subject=subject,
        credential_kind="jwt" if subject is not None else "none",
        request=request,
        decision=decision,
        latency_us=40 + number,
        claims_read=policies.subject_claims_read,
    )


def numbered_records(policies: PolicySet, count: int, start: int = 0) -> list[dict[str, Any]]:
    """`count` distinct records (decision ids d-<start> ...), built once and reused."""
    return [record_for(policies, number) for number in range(start, start + count)]


def rejected(number: int = 1, time: datetime | None = None) -> dict[str, Any]:
    return rejected_record(
        time=time or NOW + timedelta(seconds=number),
        decision_id=f"r-{number:06d}",
        policy_revision="rev-1",
        credential_kind="jwt",
        error="`resource.type` must be a non-empty string",
        latency_us=12,
    )

"""Throttling and metering of API keys: each key's plan sets a rate limit (a token bucket) and a
daily quota, and every decision made for a key is counted per day for billing.

State lives behind pdp.state.StateStore, so several replicas can later share one limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pdp.config import PlanSettings
from pdp.identity.subject import Subject
from pdp.state import StateStore

RATE = "limit.rate"
QUOTA = "limit.quota"
PLAN = "limit.plan"


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    message: str
    retry_after: float
    """Seconds until a request may succeed again (0 when waiting will not help)."""


class Metering:
    def __init__(
        self,
        plans: Sequence[PlanSettings],
        state: StateStore,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plans = {plan.name: plan for plan in plans}
        self.state = state
        self.monotonic = monotonic

    @staticmethod
    def metered(subject: Subject | None) -> bool:
        return subject is not None and subject.method == "api_key"

    def admit(self, subject: Subject, now: datetime) -> Refusal | None:
        """None when the key may make one more request now; else why not (nothing is used up
        by a refused request)."""
        key_id = str(subject.attributes.get("key_id", ""))
        plan_name = str(subject.attributes.get("plan", ""))
        plan = self.plans.get(plan_name)
        if plan is None:
            return Refusal(PLAN, f"the plan `{plan_name}` of this key is not configured", 0.0)
        wait = self.state.take(f"rate:{key_id}", plan.rate, plan.burst, self.monotonic())
        if wait > 0:
            return Refusal(
                RATE,
                f"more than {plan.rate:g} requests a second (burst {plan.burst}) for plan "
                f"`{plan.name}`; retry in {wait:.3f} s",
                wait,
            )
        day = now.astimezone(UTC).date()
        if not self.state.count(f"quota:{key_id}:{day.isoformat()}", plan.daily_quota):
            midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
            wait = (midnight - now).total_seconds()
            return Refusal(
                QUOTA,
                f"the daily quota of {plan.daily_quota} requests for plan `{plan.name}` is used "
                f"up; it renews at {midnight.isoformat().replace('+00:00', 'Z')}",
                wait,
            )
        return None

    def record(self, subject: Subject, now: datetime, outcome: str) -> None:
        """Count one decision for billing: "allowed", "denied" or "throttled"."""
        day = now.astimezone(UTC).date().isoformat()
        self.state.record_usage(str(subject.attributes.get("key_id", "")), day, outcome)

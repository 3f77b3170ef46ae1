"""Throttling and metering of API keys: each key's plan sets a rate limit (a token bucket) and a
daily quota, and every decision made for a key is counted per day for billing.

State lives behind pdp.state.StateStore, so several replicas can later share one limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

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
        day = now.astimezone(UTC).date()
        quota = f"quota:{key_id}:{day.isoformat()}"
        # What earlier runs of pdp admitted today, so a restart does not renew the quota.
        earlier = self._admitted(key_id, day.isoformat())
        # The quota first, so that a request refused for it uses up no rate token.
        if self.state.counted(quota, earlier) >= plan.daily_quota:
            return self._quota_refusal(plan, day, now)
        wait = self.state.take(f"rate:{key_id}", plan.rate, plan.burst, self.monotonic())
        if wait > 0:
            return Refusal(
                RATE,
                f"more than {plan.rate:g} requests a second (burst {plan.burst}) for plan "
                f"`{plan.name}`; retry in {wait:.3f} s",
                wait,
            )
        if not self.state.count(quota, plan.daily_quota, earlier):
            return self._quota_refusal(plan, day, now)  # another request took the last one
        return None

    def _admitted(self, key_id: str, day: str) -> int:
        counts = self.state.day_usage(key_id, day)
        return int(counts.get("allowed", 0)) + int(counts.get("denied", 0))

    @staticmethod
    def _quota_refusal(plan: PlanSettings, day: date, now: datetime) -> Refusal:
        midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        return Refusal(
            QUOTA,
            f"the daily quota of {plan.daily_quota} requests for plan `{plan.name}` is used "
            f"up; it renews at {midnight.isoformat().replace('+00:00', 'Z')}",
            (midnight - now).total_seconds(),
        )

    def record(self, subject: Subject, now: datetime, outcome: str) -> None:
        """Count one decision for billing: "allowed", "denied" or "throttled"."""
        day = now.astimezone(UTC).date().isoformat()
        self.state.record_usage(str(subject.attributes.get("key_id", "")), day, outcome)

"""Plans of API keys: the token bucket and the daily quota, on the real in-process state and
its usage file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pdp.config import PlanSettings
from pdp.identity.subject import Subject
from pdp.metering import QUOTA, RATE, Metering
from pdp.state import MemoryState

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PLAN = PlanSettings(name="free", rate=1.0, burst=2, daily_quota=3)
KEY = Subject({"key_id": "k1", "plan": "free"}, "api_key", "partner")


class Monotonic:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def admit_and_record(metering: Metering, now: datetime) -> str:
    refusal = metering.admit(KEY, now)
    metering.record(KEY, now, "allowed" if refusal is None else "throttled")
    return "allowed" if refusal is None else refusal.code


def test_the_daily_quota_survives_a_restart(tmp_path: Path) -> None:
    usage = tmp_path / "usage.json"
    clock = Monotonic()
    first = MemoryState(usage)
    metering = Metering([PLAN], first, clock)
    for _ in range(2):
        assert admit_and_record(metering, NOON) == "allowed"
        clock.now += 1
    first.flush()  # as the server does when it stops

    restarted = Metering([PLAN], MemoryState(usage), clock)
    assert admit_and_record(restarted, NOON) == "allowed"
    clock.now += 1
    assert admit_and_record(restarted, NOON) == QUOTA
    # The next day starts afresh.
    assert admit_and_record(restarted, NOON + timedelta(days=1)) == "allowed"


def test_a_request_over_the_quota_uses_up_no_rate_token(tmp_path: Path) -> None:
    state = MemoryState(tmp_path / "usage.json")
    metering = Metering([PLAN], state, Monotonic())  # the clock never moves: no refill
    assert admit_and_record(metering, NOON) == "allowed"  # bucket 2 -> 1, quota 1 of 3
    state.count("quota:k1:2026-11-23", 3)
    state.count("quota:k1:2026-11-23", 3)  # quota used up
    for _ in range(5):
        assert admit_and_record(metering, NOON) == QUOTA
    # Tomorrow's first request still finds the token the refusals did not take.
    assert admit_and_record(metering, NOON + timedelta(days=1)) == "allowed"
    assert admit_and_record(metering, NOON + timedelta(days=1)) == RATE


def test_a_throttled_request_does_not_count_against_the_quota(tmp_path: Path) -> None:
    clock = Monotonic()
    state = MemoryState(tmp_path / "usage.json")
    metering = Metering([PLAN], state, clock)
    outcomes = [admit_and_record(metering, NOON) for _ in range(4)]
    assert outcomes == ["allowed", "allowed", RATE, RATE]
    clock.now += 1
    assert admit_and_record(metering, NOON) == "allowed"  # the 3rd of 3, not the 5th
    clock.now += 1
    assert admit_and_record(metering, NOON) == QUOTA

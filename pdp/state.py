"""Shared mutable state behind one small interface: rate-limit buckets, daily quotas, usage
counts for billing, and the replay cache of signed requests.

MemoryState keeps it in this process (usage is written to a file and survives a restart). A
later shared implementation (several replicas enforcing one limit) implements the same
StateStore protocol; nothing else changes.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

OUTCOMES = ("allowed", "denied", "throttled")
"""Usage is counted per key and day under these outcomes."""


class StateStore(Protocol):
    def take(self, bucket: str, rate: float, burst: int, now: float, count: int = 1) -> float:
        """Take `count` tokens from a token bucket that refills at `rate` per second up to
        `burst`. Returns 0 when taken, else the seconds until they would be available (and
        takes nothing)."""
        ...

    def count(self, counter: str, limit: int, start: int = 0) -> bool:
        """Add one to `counter` if it is below `limit` (a daily quota: put the day in the name).
        False, and nothing added, when the limit is reached. A counter this store has not seen
        begins at `start` (what an earlier run of pdp counted)."""
        ...

    def counted(self, counter: str, start: int = 0) -> int:
        """The value of `counter` now, without changing it (`start` if it is new)."""
        ...

    def record_usage(self, key: str, day: str, outcome: str, count: int = 1) -> None:
        """Count decisions for billing: per key, per day (YYYY-MM-DD), per outcome."""
        ...

    def usage(self, key: str) -> Mapping[str, Mapping[str, int]]:
        """day -> outcome -> count, for one key."""
        ...

    def day_usage(self, key: str, day: str) -> Mapping[str, int]:
        """outcome -> count, for one key and day (empty when there is none)."""
        ...

    def first_sighting(self, token: str, expires: float, now: float) -> bool:
        """True the first time `token` is offered before it expires; False on a replay."""
        ...

    def flush(self) -> None:
        """Make usage durable now."""
        ...


class MemoryState:
    """StateStore in this process. Thread-safe; usage is persisted to `usage_file`."""

    def __init__(self, usage_file: Path | None = None, replay_capacity: int = 1_000_000) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, at)
        self._counters: dict[str, int] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()  # token -> expires, oldest first
        self._replay_capacity = replay_capacity
        self._usage_file = usage_file
        self._usage: dict[str, dict[str, dict[str, int]]] = self._read_usage()
        self._dirty = False

    def take(self, bucket: str, rate: float, burst: int, now: float, count: int = 1) -> float:
        with self._lock:
            tokens, at = self._buckets.get(bucket, (float(burst), now))
            tokens = min(float(burst), tokens + max(0.0, now - at) * rate)
            if tokens >= count:
                self._buckets[bucket] = (tokens - count, now)
                return 0.0
            self._buckets[bucket] = (tokens, now)
            return (count - tokens) / rate

    def count(self, counter: str, limit: int, start: int = 0) -> bool:
        with self._lock:
            used = self._counters.get(counter, start)
            if used >= limit:
                return False
            self._counters[counter] = used + 1
            return True

    def counted(self, counter: str, start: int = 0) -> int:
        with self._lock:
            return self._counters.get(counter, start)

    def record_usage(self, key: str, day: str, outcome: str, count: int = 1) -> None:
        with self._lock:
            days = self._usage.setdefault(key, {})
            outcomes = days.setdefault(day, dict.fromkeys(OUTCOMES, 0))
            outcomes[outcome] = outcomes.get(outcome, 0) + count
            self._dirty = True

    def usage(self, key: str) -> Mapping[str, Mapping[str, int]]:
        with self._lock:
            return {day: dict(counts) for day, counts in self._usage.get(key, {}).items()}

    def day_usage(self, key: str, day: str) -> Mapping[str, int]:
        with self._lock:
            return dict(self._usage.get(key, {}).get(day, {}))

    def first_sighting(self, token: str, expires: float, now: float) -> bool:
        with self._lock:
            while self._seen:  # forget what has expired (oldest first)
                until = next(iter(self._seen.values()))
                if until > now and len(self._seen) < self._replay_capacity:
                    break
                self._seen.popitem(last=False)
            known = self._seen.get(token)
            if known is not None and known > now:
                return False
            self._seen[token] = expires
            return True

    def flush(self) -> None:
        if self._usage_file is None:
            return
        with self._lock:
            if not self._dirty:
                return
            document = json.dumps({"usage": self._usage}, indent=1, sort_keys=True)
            self._dirty = False
        path = self._usage_file
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".usage-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(document + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            with self._lock:
                self._dirty = True
            raise

    def _read_usage(self) -> dict[str, dict[str, dict[str, int]]]:
        if self._usage_file is None or not self._usage_file.exists():
            return {}
        try:
            document = json.loads(self._usage_file.read_text("utf-8"))
            usage = document["usage"]
            if not isinstance(usage, dict):
                raise TypeError("usage must be an object")
        except (OSError, ValueError, TypeError, KeyError) as error:
            raise ValueError(f"{self._usage_file}: not a valid usage file ({error})") from None
        return usage

"""How the engine benchmark measures: decision latency, load time and memory.

Decisions are timed one by one with `perf_counter_ns` (for the median and p99), and again in a
bulk loop with one clock read per pass (for the mean without the per-call timer cost). Memory
comes from tracemalloc, which slows Python down several times, so it is measured in a separate
load, never in a timed one.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pdp.engine.authorizer import authorize
from pdp.engine.decision import Request
from pdp.engine.policy_set import PolicySet
from pdp.policy_store import load_policy_set


@dataclass(frozen=True, slots=True)
class DecisionTimes:
    samples_ns: tuple[int, ...]
    """Each decision timed on its own, sorted."""
    bulk_mean_ns: float
    """Mean per decision over untimed loops: the clock is read once per pass."""

    @property
    def median_us(self) -> float:
        return statistics.median(self.samples_ns) / 1000

    @property
    def p99_us(self) -> float:
        return percentile(self.samples_ns, 99) / 1000

    @property
    def mean_us(self) -> float:
        return statistics.fmean(self.samples_ns) / 1000

    @property
    def bulk_mean_us(self) -> float:
        return self.bulk_mean_ns / 1000

    @property
    def per_second(self) -> float:
        return 1e9 / self.bulk_mean_ns

    @property
    def count(self) -> int:
        return len(self.samples_ns)


def percentile(sorted_samples: Sequence[int], rank: float) -> int:
    """Nearest-rank percentile of samples sorted in ascending order."""
    index = max(0, math.ceil(rank / 100 * len(sorted_samples)) - 1)
    return sorted_samples[index]


def time_decisions(
    policy_set: PolicySet,
    requests: Sequence[Request],
    now: datetime,
    *,
    passes: int,
    bulk_passes: int,
    explain: bool = False,
) -> DecisionTimes:
    """Time `authorize` over `requests`: one warm-up pass, then `passes` timed one decision at a
    time and `bulk_passes` timed as whole loops."""
    clock = time.perf_counter_ns
    for request in requests:  # warm-up: fills the index's candidate cache, warms caches
        authorize(policy_set, request, now, explain=explain)

    samples: list[int] = []
    record = samples.append
    for _ in range(passes):
        gc.collect()  # start each pass from the same state; collections during it still count
        for request in requests:
            start = clock()
            authorize(policy_set, request, now, explain=explain)
            record(clock() - start)

    bulk_total = 0
    for _ in range(bulk_passes):
        gc.collect()
        start = clock()
        for request in requests:
            authorize(policy_set, request, now, explain=explain)
        bulk_total += clock() - start
    samples.sort()
    return DecisionTimes(tuple(samples), bulk_total / (bulk_passes * len(requests)))


def timer_overhead_ns(rounds: int = 100_000) -> float:
    """Median cost of one `clock(); clock()` pair: what timing a call one by one adds to it."""
    clock = time.perf_counter_ns
    gaps = []
    for _ in range(rounds):
        start = clock()
        gaps.append(clock() - start)
    return statistics.median(gaps)


def time_loads(folder: Path, repeats: int) -> tuple[list[float], PolicySet]:
    """Seconds per `load_policy_set(folder)` over `repeats` loads (at least one), each a fresh
    load from disk (no PolicySet reused), and the policy set of the last load."""
    seconds: list[float] = []
    while True:
        gc.collect()
        start = time.perf_counter()
        policy_set = load_policy_set(folder)
        seconds.append(time.perf_counter() - start)
        if len(seconds) >= repeats:
            return seconds, policy_set
        del policy_set  # let it go before the next load, as a reload would


@dataclass(frozen=True, slots=True)
class LoadMemory:
    retained_bytes: int
    """Still allocated after the load, the policy set alive (after a garbage collection)."""
    peak_bytes: int
    """Highest allocation during the load, above where it started."""
    after_workload_bytes: int
    """Retained once the workload has run once: adds the index's per-(action, type) cache."""


def measure_load_memory(
    folder: Path, workload: Callable[[PolicySet], object] | None = None
) -> LoadMemory:
    """Load `folder` under tracemalloc. Run `workload` afterwards, if given, and measure again.

    Load once before calling this: the first load in a process also builds the parser, which
    would otherwise count as the policy set's memory.
    """
    gc.collect()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        policy_set = load_policy_set(folder)
        gc.collect()
        retained, peak = tracemalloc.get_traced_memory()
        after = retained
        if workload is not None:
            workload(policy_set)
            gc.collect()
            after = tracemalloc.get_traced_memory()[0]
        del policy_set
    finally:
        tracemalloc.stop()
    return LoadMemory(retained - baseline, peak - baseline, after - baseline)

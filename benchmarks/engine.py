"""The engine benchmark: decision latency, load time and memory of pdp's decision engine.

1. The shop scenario: policies/shop and the 2,000 requests of tests/data/shop.
2. Synthetic policy sets of 10 to 10,000 rules (benchmarks/synthetic.py), loaded from disk.
3. The targets of the engine's performance issue, each with its measured value and PASS/MISS.

Only `authorize(policy_set, request, now)` is timed: requests are converted to Request objects
beforehand. This is a benchmark, not a test: it reports, it never fails.
"""

from __future__ import annotations

import cProfile
import gc
import io
import json
import pstats
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import synthetic
from benchmarks.report import (
    Options,
    cpu_share,
    load_average,
    machine,
    megabytes,
    seconds,
    section,
    table,
    us,
    whole,
)
from benchmarks.timing import (
    DecisionTimes,
    LoadMemory,
    measure_load_memory,
    time_decisions,
    time_loads,
    timer_overhead_ns,
)
from pdp.engine.authorizer import authorize
from pdp.engine.decision import Request
from pdp.engine.policy_set import PolicySet
from pdp.policy_store import load_policy_set

DESCRIPTION = "decision latency, load time and memory of the engine (shop + synthetic sets)"

ROOT = Path(__file__).resolve().parent.parent
SHOP_POLICIES = ROOT / "policies" / "shop"
SHOP_REQUESTS = ROOT / "tests" / "data" / "shop" / "requests.jsonl"
SHOP_EXPECTED = ROOT / "tests" / "data" / "shop" / "expected.jsonl"

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
"""The evaluation time given to every decision (the engine never reads the clock)."""
SIZES = (10, 100, 1_000, 10_000)
DENSE_SIZE = 1_000
REQUEST_SEED = 7

# The targets of the engine's performance issue.
TARGET_SHOP_MEDIAN_US = 10.0
TARGET_SCALING = 2.0
TARGET_LOAD_SECONDS = 3.0
TARGET_LOAD_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class Plan:
    """How much to measure: a full run, or a quick one for a smoke check."""

    shop_passes: int
    shop_bulk_passes: int
    explain_passes: int
    explain_bulk_passes: int
    shop_load_repeats: int
    synthetic_requests: int
    synthetic_passes: int
    synthetic_bulk_passes: int
    small_load_repeats: int
    """Loads timed for sets under 1,000 rules; larger sets take seconds, so fewer."""
    largest_traced_size: int
    """tracemalloc makes a load several times slower: larger sets skip memory in a quick run."""

    @classmethod
    def for_options(cls, options: Options) -> Plan:
        if options.quick:
            return cls(
                shop_passes=5,
                shop_bulk_passes=2,
                explain_passes=1,
                explain_bulk_passes=1,
                shop_load_repeats=3,
                synthetic_requests=1_000,
                synthetic_passes=3,
                synthetic_bulk_passes=2,
                small_load_repeats=3,
                largest_traced_size=1_000,
            )
        return cls(
            shop_passes=25,
            shop_bulk_passes=10,
            explain_passes=5,
            explain_bulk_passes=2,
            shop_load_repeats=10,
            synthetic_requests=2_000,
            synthetic_passes=10,
            synthetic_bulk_passes=5,
            small_load_repeats=5,
            largest_traced_size=10_000,
        )

    def load_repeats(self, rule_count: int) -> int:
        if rule_count >= 10_000:
            return 1
        if rule_count >= 1_000:
            return max(1, self.small_load_repeats - 2)
        return self.small_load_repeats


@dataclass(frozen=True, slots=True)
class ShopResult:
    rule_count: int
    request_count: int
    allowed: int
    agreeing: int
    first_load_s: float
    load_s: list[float]
    memory: LoadMemory
    conversion_us: float
    timer_overhead_ns: float
    decisions: DecisionTimes
    explained: DecisionTimes


@dataclass(frozen=True, slots=True)
class SyntheticResult:
    label: str
    rule_count: int
    files: int
    total_bytes: int
    types: int
    actions: int
    candidates: float
    allowed: float
    with_errors: float
    load_s: list[float]
    memory: LoadMemory | None
    decisions: DecisionTimes


def run(options: Options) -> None:
    plan = Plan.for_options(options)
    started, started_cpu = time.perf_counter(), time.process_time()
    print(section(f"pdp engine benchmark ({'quick' if options.quick else 'full'} run)"))
    print(f"machine: {machine()}")
    print(f"load average at start: {load_average()}")
    print(f"now = {NOW.isoformat()} for every decision; single thread")

    shop = measure_shop(plan)
    print_shop(shop, plan)

    results = [measure_synthetic(f"{size:,}", size, plan, dense=False) for size in SIZES]
    results.append(measure_synthetic(f"{DENSE_SIZE:,} dense", DENSE_SIZE, plan, dense=True))
    print_synthetic(results, plan)

    print_targets(shop, {result.label: result for result in results})
    if options.profile:
        print_profiles()
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    print(f"\nengine benchmark: {wall:.0f} s; this process ran {cpu_share(wall, cpu)}")


# --- the shop scenario -------------------------------------------------------------------------


def shop_documents() -> list[dict[str, Any]]:
    with SHOP_REQUESTS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def measure_shop(plan: Plan) -> ShopResult:
    progress("shop: loading")
    start = time.perf_counter()
    policy_set = load_policy_set(SHOP_POLICIES)  # the first load in the process builds the parser
    first_load = time.perf_counter() - start
    load_s, policy_set = time_loads(SHOP_POLICIES, plan.shop_load_repeats)

    documents = shop_documents()
    start = time.perf_counter()
    requests = [Request.from_json(document) for document in documents]
    conversion_us = (time.perf_counter() - start) / len(requests) * 1e6

    decisions = [authorize(policy_set, request, NOW) for request in requests]
    with SHOP_EXPECTED.open(encoding="utf-8") as lines:
        expected = [json.loads(line) for line in lines if line.strip()]
    agreeing = sum(
        decision.outcome == answer["decision"] and list(decision.rules) == answer["rules"]
        for decision, answer in zip(decisions, expected, strict=False)
    )

    progress("shop: timing decisions")
    overhead = timer_overhead_ns()
    times = time_decisions(
        policy_set,
        requests,
        NOW,
        passes=plan.shop_passes,
        bulk_passes=plan.shop_bulk_passes,
    )
    progress("shop: timing explain mode")
    explained = time_decisions(
        policy_set,
        requests,
        NOW,
        passes=plan.explain_passes,
        bulk_passes=plan.explain_bulk_passes,
        explain=True,
    )
    progress("shop: measuring memory")
    memory = measure_load_memory(SHOP_POLICIES, lambda loaded: run_once(loaded, requests))
    return ShopResult(
        rule_count=len(policy_set.rules),
        request_count=len(requests),
        allowed=sum(decision.allowed for decision in decisions),
        agreeing=agreeing,
        first_load_s=first_load,
        load_s=load_s,
        memory=memory,
        conversion_us=conversion_us,
        timer_overhead_ns=overhead,
        decisions=times,
        explained=explained,
    )


def run_once(policy_set: PolicySet, requests: list[Request]) -> None:
    for request in requests:
        authorize(policy_set, request, NOW)


def decision_row(label: str, times: DecisionTimes) -> list[str]:
    return [
        label,
        f"{times.count:,}",
        us(times.median_us),
        us(times.p99_us),
        us(times.mean_us),
        us(times.bulk_mean_us),
        whole(times.per_second),
    ]


DECISION_HEADERS = ["", "timed", "median us", "p99 us", "mean us", "bulk mean us", "decisions/s"]


def print_shop(shop: ShopResult, plan: Plan) -> None:
    print(section("1. Shop scenario (policies/shop, tests/data/shop/requests.jsonl)"))
    facts = [
        ["rules / requests", f"{shop.rule_count} / {shop.request_count:,}"],
        ["allowed", f"{shop.allowed:,} of {shop.request_count:,}"],
        ["agree with expected.jsonl", f"{shop.agreeing:,} of {shop.request_count:,}"],
        ["first load in process (builds the parser)", f"{shop.first_load_s * 1000:.1f} ms"],
        [
            f"load, median of {len(shop.load_s)}",
            f"{statistics.median(shop.load_s) * 1000:.2f} ms",
        ],
        ["memory retained by the loaded set", f"{shop.memory.retained_bytes / 1000:,.1f} KB"],
        [
            "  + after one pass of the requests",
            f"{shop.memory.after_workload_bytes / 1000:,.1f} KB",
        ],
        ["peak memory during load", f"{shop.memory.peak_bytes / 1000:,.1f} KB"],
        ["Request.from_json per request (not timed below)", f"{shop.conversion_us:.2f} us"],
        ["timer overhead per timed call", f"{shop.timer_overhead_ns:.0f} ns"],
    ]
    print(table(["measure", "value"], facts, [False, True]))
    print()
    rows = [
        decision_row("authorize", shop.decisions),
        decision_row("authorize, explain=True", shop.explained),
    ]
    print(table(DECISION_HEADERS, rows, [False, *[True] * 6]))
    print(
        f"median and p99 time each decision on its own ({plan.shop_passes} passes over the "
        "requests after a warm-up pass);\nbulk mean times whole passes (no per-call clock); "
        "decisions/s = 1 / bulk mean."
    )


# --- synthetic policy sets ---------------------------------------------------------------------


def measure_synthetic(label: str, rule_count: int, plan: Plan, dense: bool) -> SyntheticResult:
    progress(f"synthetic {label}: generating")
    generated = synthetic.generate_set(rule_count, seed=rule_count, dense=dense)
    requests = synthetic.generate_requests(
        generated.vocabulary, plan.synthetic_requests, seed=REQUEST_SEED
    )
    with tempfile.TemporaryDirectory(prefix="pdp-bench-") as directory:
        folder = Path(directory)
        generated.write(folder)
        progress(f"synthetic {label}: loading")
        load_s, policy_set = time_loads(folder, plan.load_repeats(rule_count))
        memory = None
        if rule_count <= plan.largest_traced_size:
            progress(f"synthetic {label}: measuring memory")
            memory = measure_load_memory(folder, lambda loaded: run_once(loaded, requests))

    decisions = [authorize(policy_set, request, NOW) for request in requests]
    candidates = statistics.fmean(
        len(found.forbids) + len(found.permits)
        for found in (
            policy_set.index.candidates(request.action, request.resource_type)
            for request in requests
        )
    )
    progress(f"synthetic {label}: timing decisions")
    times = time_decisions(
        policy_set,
        requests,
        NOW,
        passes=plan.synthetic_passes,
        bulk_passes=plan.synthetic_bulk_passes,
    )
    result = SyntheticResult(
        label=label,
        rule_count=len(policy_set.rules),
        files=len(generated.files),
        total_bytes=generated.total_bytes,
        types=len(generated.vocabulary.types),
        actions=generated.vocabulary.action_count,
        candidates=candidates,
        allowed=sum(decision.allowed for decision in decisions) / len(decisions),
        with_errors=sum(bool(decision.errors) for decision in decisions) / len(decisions),
        load_s=load_s,
        memory=memory,
        decisions=times,
    )
    del policy_set, decisions
    gc.collect()
    return result


def print_synthetic(results: list[SyntheticResult], plan: Plan) -> None:
    print(section("2. Synthetic policy sets (generated .policy files, loaded from disk)"))
    shape = [
        [
            result.label,
            f"{result.rule_count:,}",
            f"{result.files}",
            f"{result.total_bytes / 1000:,.0f}",
            f"{result.types:,}",
            f"{result.actions}",
            f"{result.candidates:.1f}",
            f"{result.allowed:.0%}",
            f"{result.with_errors:.0%}",
        ]
        for result in results
    ]
    print(
        table(
            ["set", "rules", "files", "KB", "types", "actions", "cand/req", "allow", "errors"],
            shape,
            [False, *[True] * 8],
        )
    )
    print(
        "cand/req: candidate rules per request from the (action, type) index, on average; "
        "errors: requests\nwith a rule that could not be evaluated (permits reading an absent "
        "optional claim)."
    )
    print()
    load_rows = []
    for result in results:
        memory = result.memory
        load_rows.append(
            [
                result.label,
                seconds(statistics.median(result.load_s)),
                f"{len(result.load_s)}",
                f"{result.rule_count / statistics.median(result.load_s):,.0f}",
                megabytes(memory.retained_bytes) if memory else "-",
                megabytes(memory.after_workload_bytes) if memory else "-",
                megabytes(memory.peak_bytes) if memory else "-",
                f"{memory.retained_bytes / result.rule_count / 1000:,.1f}" if memory else "-",
            ]
        )
    print(
        table(
            [
                "set",
                "load s",
                "loads",
                "rules/s",
                "retained MB",
                "+workload MB",
                "peak MB",
                "KB/rule",
            ],
            load_rows,
            [False, *[True] * 7],
        )
    )
    print(
        "load s: median over `loads` fresh load_policy_set() calls; retained: tracemalloc, after "
        "the load;\n+workload: retained after one pass of the requests (adds the index's "
        "candidate cache)."
    )
    if plan.largest_traced_size < max(SIZES):
        print(
            f"quick run: memory is not traced above {plan.largest_traced_size:,} rules "
            "(tracemalloc slows a load several times)."
        )
    print()
    rows = [decision_row(result.label, result.decisions) for result in results]
    print(table(["set", *DECISION_HEADERS[1:]], rows, [False, *[True] * 6]))
    print(
        f"{plan.synthetic_requests:,} random requests per set (seed {REQUEST_SEED}), "
        f"{plan.synthetic_passes} timed passes after a warm-up pass.\n"
        f"Sets grow by breadth: one resource type per ~{synthetic.RULES_PER_TYPE} rules, "
        f"{synthetic.ACTIONS_PER_TYPE} actions per type. `dense` keeps\n"
        f"the {synthetic.DENSE_TYPES} types of a small set, so each rule adds to some requests' "
        "candidates:\nit shows what a candidate costs."
    )
    by_label = {result.label: result for result in results}
    sparse, dense = by_label[f"{DENSE_SIZE:,}"], by_label[f"{DENSE_SIZE:,} dense"]
    extra_candidates = dense.candidates - sparse.candidates
    if extra_candidates > 0:
        per_candidate = (dense.decisions.median_us - sparse.decisions.median_us) / extra_candidates
        print(
            f"cost of one more candidate rule ({DENSE_SIZE:,} dense vs {DENSE_SIZE:,}, "
            f"median): {us(per_candidate)} us"
        )


# --- targets -----------------------------------------------------------------------------------


def print_targets(shop: ShopResult, by_label: dict[str, SyntheticResult]) -> None:
    print(section("3. Targets (the engine's performance issue)"))
    small, large = by_label[f"{min(SIZES):,}"], by_label[f"{max(SIZES):,}"]
    smallest, largest = small.decisions.median_us, large.decisions.median_us
    load = statistics.median(by_label[f"{TARGET_LOAD_SIZE:,}"].load_s)
    shop_median = shop.decisions.median_us
    rows = [
        [
            "shop: median per decision",
            f"<= {TARGET_SHOP_MEDIAN_US:.1f} us",
            f"{us(shop_median)} us",
            verdict(shop_median <= TARGET_SHOP_MEDIAN_US),
        ],
        [
            f"{max(SIZES):,} rules vs {min(SIZES)} rules: median",
            f"<= {TARGET_SCALING:.1f}x",
            f"{largest / smallest:.2f}x ({us(largest)} us / {us(smallest)} us)",
            verdict(largest <= TARGET_SCALING * smallest),
        ],
        [
            f"{TARGET_LOAD_SIZE:,} rules: load from disk",
            f"<= {TARGET_LOAD_SECONDS:.1f} s",
            f"{seconds(load)} s",
            verdict(load <= TARGET_LOAD_SECONDS),
        ],
    ]
    print(table(["target", "limit", "measured", "result"], rows, [False, True, True, False]))
    print(
        f"candidate rules per request: {large.candidates:.1f} at {max(SIZES):,} rules, "
        f"{small.candidates:.1f} at {min(SIZES)} rules."
    )


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


# --- profiles ----------------------------------------------------------------------------------


def print_profiles(top: int = 20) -> None:
    """cProfile summaries of the shop decision loop and of loading the 1,000-rule set."""
    policy_set = load_policy_set(SHOP_POLICIES)
    requests = [Request.from_json(document) for document in shop_documents()]
    run_once(policy_set, requests)
    print(section("Profile: shop decision loop (5 passes), by own time"))

    def five_passes() -> None:
        for _ in range(5):
            run_once(policy_set, requests)

    print(profile(five_passes, "tottime", top))

    generated = synthetic.generate_set(DENSE_SIZE, seed=DENSE_SIZE)
    with tempfile.TemporaryDirectory(prefix="pdp-bench-") as directory:
        generated.write(Path(directory))
        title = f"Profile: loading the synthetic {DENSE_SIZE:,}-rule set"
        print(section(f"{title}, pdp functions by cumulative time"))
        print(profile(lambda: load_policy_set(directory), "cumulative", top, only=r"pdp/"))
        print(section(f"{title}, by own time"))
        print(profile(lambda: load_policy_set(directory), "tottime", top))


def profile(work: Callable[[], object], order: str, top: int, only: str = "") -> str:
    profiler = cProfile.Profile()
    profiler.runcall(work)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats(order)
    stats.print_stats(*([only] if only else []), top)
    lines = [line for line in out.getvalue().splitlines() if line.strip()]
    # Drop pstats' preamble; name files from the project root or from site-packages.
    start = next(i for i, line in enumerate(lines) if "function calls" in line)
    text = "\n".join(lines[start:]).replace(f"{ROOT}/", "")
    return re.sub(r"\S*/site-packages/", "", text)


def progress(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)

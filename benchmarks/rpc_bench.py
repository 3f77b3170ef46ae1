"""The service benchmark's runs and report (see benchmarks/server.py for what it measures)."""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import grpc

from benchmarks.report import Options, load_average, machine, section, table, whole
from benchmarks.rpc_load import LoadGenerators, LoadResult, LoadSpec
from benchmarks.rpc_servers import (
    CHECK,
    CHECK_BATCH,
    SPAWN,
    FunctionKey,
    ProfileRow,
    ServerProcess,
    ignore_interrupts,
    start_server,
    unpinned_threads,
)
from benchmarks.rpc_workload import (
    ALGORITHM,
    AUDIENCE,
    ISSUER,
    ROOT,
    SHOP_POLICIES,
    Batch,
    Issuer,
    ShopRequest,
    check_payload,
    load_shop,
    local_batch_decisions,
    most_active_users,
    plan_batches,
    typical_batch_response,
    typical_check_response,
)
from pdp.config import parse_config
from pdp.policy_store import load_policy_set
from pdp.v1 import decision_pb2 as pb

POOL_USERS = 100
BATCH_SIZE = 50
BATCH_PAYLOADS = 200
SATURATED = 0.95
"""A server using less of its core than this was not the bottleneck of its run."""
NOISE = 0.05
"""Other work using this much of a core during a run makes its figures doubtful."""
CHECK_CONCURRENCY = (16, 32, 48)
BATCH_CONCURRENCY = (8, 16, 32, 48)
"""Calls in flight, raised step by step while the server is not saturated. Kept under pdp's
max_concurrent_rpcs (64 by default), above which calls are refused."""
CONCURRENCY_HEADROOM = 8
MAX_CLIENT_PROCESSES = 4

# The targets of the service's performance issue, and the figures it compares with.
TARGET_CHECK_RATIO = 0.8
TARGET_BATCH_DECISIONS = 30_000
CERBOS_CHECKS_PER_S = 2_000
CERBOS_BATCH_DECISIONS_PER_S = 7_600


@dataclass(frozen=True, slots=True)
class Plan:
    rounds: int
    """The do-nothing server and pdp take turns, workload by workload, this many times: slow
    changes of the machine (other work starting, say) then touch both alike."""
    warmup_s: float
    """Before the first round of a workload; later rounds warm up for a fraction of it."""
    measure_s: float
    """Per round."""
    fresh_measure_s: float
    """Fresh-token runs are shorter: every call needs a token signed beforehand."""
    probe_s: float
    """Latency with one call in flight."""
    profile_s: float
    verify_checks: int
    verify_batches: int

    @classmethod
    def for_options(cls, options: Options) -> Plan:
        if options.quick:
            return cls(2, 0.5, 1.0, 1.5, 1.0, 2.0, 200, 4)
        return cls(3, 1.0, 2.5, 4.0, 2.0, 4.0, 100_000, 20)


CHECK_WORKLOAD = "Check"
BATCH_WORKLOAD = f"CheckBatch {BATCH_SIZE}"
NO_TOKENS = "-"
POOL_TOKENS = "pool"
FRESH_TOKENS = "fresh"


@dataclass
class Measurement:
    server: str
    """"do-nothing" or "pdp"."""
    workload: str
    tokens: str
    """POOL_TOKENS, FRESH_TOKENS, or NO_TOKENS for the do-nothing server (nothing is read)."""
    items: int
    """Decisions per call."""
    concurrency: int
    result: LoadResult
    rounds: list[LoadResult] = field(default_factory=list)
    """The rounds `result` pools (empty for a single run)."""
    below_saturation: list[tuple[int, float]] = field(default_factory=list)
    """Earlier attempts whose server was not saturated: (calls in flight, server CPU share)."""
    latency_probe: bool = False

    @property
    def decisions_per_s(self) -> float:
        return self.result.calls_per_s * self.items

    @property
    def saturated(self) -> bool:
        return self.result.server_share >= SATURATED

    def cpu_us_per_call(self) -> float:
        result = self.result
        return (result.server_cpu_s or 0.0) / result.completed * 1e6 if result.completed else 0.0

    def percentile_ms(self, fraction: float) -> float:
        latencies = sorted(self.result.latencies_ns)
        if not latencies:
            return math.nan
        return latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] / 1e6


@dataclass
class Setup:
    directory: Path
    config_document: dict[str, Any]
    issuer: Issuer
    requests: list[ShopRequest]
    pool_requests: list[ShopRequest]
    subjects: dict[str, dict[str, Any]]
    tokens: dict[str, str]
    check_payloads: list[bytes]
    batches: list[Batch]
    batch_payloads: list[bytes]
    noop_responses: dict[str, bytes]
    server_cpus: set[int]
    client_cpus: list[int]

    @property
    def audit_path(self) -> Path:
        return self.directory / "audit" / "decisions.jsonl"


def run_service_benchmark(options: Options) -> None:
    plan = Plan.for_options(options)
    started = time.perf_counter()
    cpus = sorted(os.sched_getaffinity(0))
    server_cpus = {cpus[0]}
    client_cpus = cpus[1 : 1 + MAX_CLIENT_PROCESSES]
    print(section(f"pdp service benchmark ({'quick' if options.quick else 'full'} run)"))
    print(f"machine: {machine()}")
    print(f"load average at start: {load_average()}")

    measurements: list[Measurement] = []
    notes: list[str] = []
    with contextlib.ExitStack() as cleanup:
        # SIGTERM would end this process at once; as an exception, the child processes are
        # stopped on the way out (Ctrl-C already is one).
        previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
        cleanup.callback(signal.signal, signal.SIGTERM, previous)
        directory = Path(
            cleanup.enter_context(tempfile.TemporaryDirectory(prefix="pdp-bench-server-"))
        )
        signers = cleanup.enter_context(
            ProcessPoolExecutor(len(cpus), mp_context=SPAWN, initializer=ignore_interrupts)
        )
        setup = prepare(directory, signers, len(cpus), server_cpus, client_cpus)
        clients = LoadGenerators(client_cpus)
        cleanup.callback(clients.close)

        progress("servers: starting")
        noop = start_server(
            "noop",
            server_cpus,
            config_document=setup.config_document,
            base=directory,
            responses=setup.noop_responses,
        )
        cleanup.callback(noop.stop)
        pdp = start_server(
            "pdp", server_cpus, config_document=setup.config_document, base=directory
        )
        cleanup.callback(pdp.stop)
        verification = verify_answers(pdp, setup, plan)
        servers = {"do-nothing": noop, "pdp": pdp}
        measurements += measure_rounds(servers, setup=setup, clients=clients, plan=plan)
        for name, server in servers.items():
            measurements.append(latency_probe(server, name, setup, clients, plan))
            loose = unpinned_threads(server.pid, server.cpus)
            if loose:
                notes.append(f"{name} server threads not pinned to {server.cpus}: {loose}")
        noop.stop()
        pool_runs = [m for m in measurements if m.server == "pdp" and not m.latency_probe]
        fresh_runs, fresh_check_payloads = measure_fresh_tokens(
            pdp, setup=setup, clients=clients, plan=plan, signers=signers, pool_runs=pool_runs
        )
        measurements += fresh_runs
        pdp.stop()
        audit = audit_summary(setup.audit_path)

        profiles = []
        if options.profile:
            fresh_check = fresh_runs[0]
            profiles = profile_server(
                setup, clients, plan, (pool_runs[0], fresh_check), fresh_check_payloads
            )

    print_setup(setup, plan, verification, audit, measurements)
    print_results(measurements, notes, setup)
    print_targets(measurements)
    for number, profile in enumerate(profiles):
        print_profile(profile, full=number == 0)
    print(f"\nservice benchmark: {time.perf_counter() - started:.0f} s")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


# --- setup ---------------------------------------------------------------------------------------


def prepare(
    directory: Path,
    signers: ProcessPoolExecutor,
    workers: int,
    server_cpus: set[int],
    client_cpus: list[int],
) -> Setup:
    progress("setup: key pair, policies, tokens, requests")
    issuer = Issuer.generate()
    issuer.write_jwks(directory / "jwks.json")
    shutil.copytree(SHOP_POLICIES, directory / "policies")
    config_document: dict[str, Any] = {
        "server": {"listen": "127.0.0.1:0", "shutdown_grace_seconds": 0},
        "policies": {"dir": "policies", "watch": False},
        "audit": {"path": "audit/decisions.jsonl"},
        "issuers": [
            {
                "issuer": ISSUER,
                "audiences": [AUDIENCE],
                "algorithms": [ALGORITHM],
                "jwks_file": "jwks.json",
            }
        ],
    }
    requests = load_shop()
    users = most_active_users(requests, POOL_USERS)
    subjects = {r.user: r.subject for r in requests}
    pool = set(users)
    pool_requests = [r for r in requests if r.user in pool]
    signed = issuer.sign(signers, [subjects[user] for user in users], workers)
    tokens = dict(zip(users, signed, strict=True))
    check_payloads = [check_payload(tokens[r.user], r) for r in pool_requests]
    batches = plan_batches(requests, users, BATCH_SIZE, BATCH_PAYLOADS)
    batch_payloads = [batch.payload(tokens[batch.user]) for batch in batches]

    policy_set = load_policy_set(directory / "policies")
    noop_responses = {
        "Check": typical_check_response(policy_set, pool_requests),
        "CheckBatch": typical_batch_response(policy_set, batches, subjects),
    }
    return Setup(
        directory,
        config_document,
        issuer,
        requests,
        pool_requests,
        subjects,
        tokens,
        check_payloads,
        batches,
        batch_payloads,
        noop_responses,
        server_cpus,
        client_cpus,
    )


# --- measuring -----------------------------------------------------------------------------------


def concurrency_steps(steps: Sequence[int], config_document: dict[str, Any]) -> list[int]:
    limit = parse_config(config_document, base=Path()).server.max_concurrent_rpcs
    allowed = [step for step in steps if step <= limit - CONCURRENCY_HEADROOM]
    return allowed or [max(1, limit - CONCURRENCY_HEADROOM)]


def measure_rounds(
    servers: dict[str, ServerProcess], *, setup: Setup, clients: LoadGenerators, plan: Plan
) -> list[Measurement]:
    """Check and CheckBatch on every server, in rounds: each workload on one server and then on
    the next. The first round finds the concurrency that saturates each server."""
    workloads = [
        (CHECK_WORKLOAD, CHECK, setup.check_payloads, 1,
         concurrency_steps(CHECK_CONCURRENCY, setup.config_document)),
        (BATCH_WORKLOAD, CHECK_BATCH, setup.batch_payloads, BATCH_SIZE,
         concurrency_steps(BATCH_CONCURRENCY, setup.config_document)),
    ]  # fmt: skip
    measured: dict[tuple[str, str], Measurement] = {}
    for number in range(plan.rounds):
        for workload, method, payloads, items, steps in workloads:
            for name, server in servers.items():
                tokens = POOL_TOKENS if name == "pdp" else NO_TOKENS
                first = measured.get((name, workload))
                if first is None:
                    measured[name, workload] = saturate(
                        server, name, workload, tokens, method=method, payloads=payloads,
                        items=items, steps=steps, clients=clients, plan=plan,
                    )  # fmt: skip
                    continue
                progress(f"round {number + 1}: {name}, {workload}, {first.concurrency} in flight")
                warmup = plan.warmup_s / 4  # the server is warm: only the new connections
                spec = LoadSpec(server.target, method, payloads, first.concurrency, warmup,
                                plan.measure_s, server_pid=server.pid)  # fmt: skip
                first.rounds.append(clients.run(spec))
    for measurement in measured.values():
        measurement.result = LoadResult.pooled(measurement.rounds)
    return list(measured.values())


def latency_probe(
    server: ServerProcess, name: str, setup: Setup, clients: LoadGenerators, plan: Plan
) -> Measurement:
    """Single Checks with one call in flight: latency without queueing."""
    progress(f"{name}: Check with one call in flight")
    result = clients.run(
        LoadSpec(server.target, CHECK, setup.check_payloads, 1, plan.warmup_s / 2, plan.probe_s,
                 server_pid=server.pid)
    )  # fmt: skip
    tokens = POOL_TOKENS if name == "pdp" else NO_TOKENS
    return Measurement(name, CHECK_WORKLOAD, tokens, 1, 1, result, latency_probe=True)


def saturate(
    server: ServerProcess,
    name: str,
    workload: str,
    tokens: str,
    *,
    method: str,
    payloads: Sequence[bytes],
    items: int,
    steps: Sequence[int],
    clients: LoadGenerators,
    plan: Plan,
) -> Measurement:
    """Run at the first concurrency of `steps` that keeps the server's core busy."""
    below: list[tuple[int, float]] = []
    for concurrency in steps:
        progress(f"round 1: {name}, {workload}, {concurrency} in flight")
        result = clients.run(
            LoadSpec(server.target, method, payloads, concurrency, plan.warmup_s, plan.measure_s,
                     server_pid=server.pid)
        )  # fmt: skip
        if result.server_share >= SATURATED or concurrency == steps[-1]:
            return Measurement(name, workload, tokens, items, concurrency, result, [result], below)
        below.append((concurrency, result.server_share))
        progress(f"{name}: server at {result.server_share:.0%} of its core: raising concurrency")
    raise AssertionError("unreachable: steps is not empty")


def measure_fresh_tokens(
    server: ServerProcess,
    *,
    setup: Setup,
    clients: LoadGenerators,
    plan: Plan,
    signers: ProcessPoolExecutor,
    pool_runs: list[Measurement],
) -> tuple[list[Measurement], list[bytes]]:
    """Check and CheckBatch again, each call with a token pdp has never seen.

    Tokens are signed beforehand, as many as the token-pool run's rate could use (a fresh-token
    run is slower); the run uses the pool run's concurrency. Returns the runs and the Check
    payloads (a new server has seen none of their tokens: the profile uses them again).
    """
    check_run, batch_run = pool_runs[0], pool_runs[1]
    seconds = plan.warmup_s + plan.fresh_measure_s
    workers = len(os.sched_getaffinity(0))
    measured = []
    check_payloads: list[bytes] = []
    for run_of_pool, method, items in (
        (check_run, CHECK, 1),
        (batch_run, CHECK_BATCH, BATCH_SIZE),
    ):
        count = int(run_of_pool.result.calls_per_s * seconds * 1.1) + run_of_pool.concurrency
        progress(f"pdp: signing {count:,} fresh tokens")
        started = time.perf_counter()
        if method == CHECK:
            chosen_requests = [
                setup.pool_requests[n % len(setup.pool_requests)] for n in range(count)
            ]
            tokens = setup.issuer.sign(signers, [r.subject for r in chosen_requests], workers)
            payloads = [check_payload(t, r) for t, r in zip(tokens, chosen_requests, strict=True)]
            check_payloads = payloads
        else:
            chosen = [setup.batches[n % len(setup.batches)] for n in range(count)]
            subjects = [setup.subjects[batch.user] for batch in chosen]
            tokens = setup.issuer.sign(signers, subjects, workers)
            payloads = [batch.payload(t) for batch, t in zip(chosen, tokens, strict=True)]
        progress(f"pdp: signed in {time.perf_counter() - started:.1f} s")
        workload = run_of_pool.workload
        progress(f"pdp: {workload}, fresh tokens, {run_of_pool.concurrency} calls in flight")
        result = clients.run(
            LoadSpec(server.target, method, payloads, run_of_pool.concurrency, plan.warmup_s,
                     plan.fresh_measure_s, reuse=False, server_pid=server.pid)
        )  # fmt: skip
        measured.append(
            Measurement("pdp", workload, FRESH_TOKENS, items, run_of_pool.concurrency, result)
        )
    return measured, check_payloads


@dataclass(frozen=True, slots=True)
class Verification:
    checks: int
    agreeing: int
    batch_decisions: int
    batch_agreeing: int
    authn_failures: int


def verify_answers(server: ServerProcess, setup: Setup, plan: Plan) -> Verification:
    """pdp's answers, before timing: Check against expected.jsonl, CheckBatch against the engine
    deciding locally for the batch's caller. A failed token check would show here."""
    progress("pdp: checking its answers")
    policy_set = load_policy_set(setup.directory / "policies")
    agreeing = authn = batch_decisions = batch_agreeing = 0
    with grpc.insecure_channel(server.target) as channel:
        check: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(CHECK)
        check_batch: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(CHECK_BATCH)
        pairs = list(zip(setup.pool_requests, setup.check_payloads, strict=True))
        pairs = pairs[: plan.verify_checks]
        for request, payload in pairs:
            response = pb.CheckResponse.FromString(check(payload, timeout=10))
            authn += any(r.code.startswith("authn.") for r in response.reasons)
            agreeing += outcome(response) == request.expected
        for batch, payload in list(zip(setup.batches, setup.batch_payloads, strict=True))[
            : plan.verify_batches
        ]:
            answer = pb.CheckBatchResponse.FromString(check_batch(payload, timeout=10))
            expected = local_batch_decisions(policy_set, batch, setup.subjects[batch.user])
            for result, decision in zip(answer.results, expected, strict=True):
                batch_decisions += 1
                authn += any(r.code.startswith("authn.") for r in result.reasons)
                batch_agreeing += outcome(result) == decision
    return Verification(len(pairs), agreeing, batch_decisions, batch_agreeing, authn)


def outcome(response: Any) -> str:
    return "allow" if response.decision == pb.DECISION_ALLOW else "deny"


@dataclass(frozen=True, slots=True)
class AuditSummary:
    files: int
    records: int
    bytes: int


def audit_summary(path: Path) -> AuditSummary:
    files = sorted(path.parent.glob(f"{path.name}*"))
    records = size = 0
    for file in files:
        with file.open("rb") as log:
            while chunk := log.read(1 << 20):
                records += chunk.count(b"\n")
                size += len(chunk)
    return AuditSummary(len(files), records, size)


# --- profile -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Profile:
    title: str
    rows: list[ProfileRow]
    calls: int
    """Calls answered during the profile."""
    cpu_s: float
    """The server's CPU seconds during the profile."""
    plain_us: float
    """CPU microseconds per call of the same workload without the profiler."""
    reused: int = 0


def profile_server(
    setup: Setup,
    clients: LoadGenerators,
    plan: Plan,
    check_runs: tuple[Measurement, Measurement],
    fresh_payloads: Sequence[bytes],
) -> list[Profile]:
    """A new pdp server with every thread under cProfile, driven with single Checks: pooled
    tokens, then fresh tokens (the new server has seen none of them). A warm-up before is left
    out (the pool's first verifications, caches)."""
    pool_run, fresh_run = check_runs
    document = {**setup.config_document, "audit": {"path": "audit-profile/decisions.jsonl"}}
    server = start_server(
        "pdp", setup.server_cpus, config_document=document, base=setup.directory, profile=True
    )
    profiles = []
    try:
        progress("pdp: profiling, warm-up")
        clients.run(
            LoadSpec(server.target, CHECK, setup.check_payloads, pool_run.concurrency, 0.0,
                     plan.warmup_s, server_pid=server.pid)
        )  # fmt: skip
        for title, payloads, reuse, unprofiled in (
            ("single Check, token pool", setup.check_payloads, True, pool_run),
            ("single Check, fresh token per call", fresh_payloads, False, fresh_run),
        ):
            progress(f"pdp: profiling {title}")
            server.mark_profile()
            cpu_before = server.cpu_seconds()
            result = clients.run(
                LoadSpec(server.target, CHECK, payloads, pool_run.concurrency, 0.0,
                         plan.profile_s, reuse=reuse, server_pid=server.pid)
            )  # fmt: skip
            cpu = server.cpu_seconds() - cpu_before
            profiles.append(
                Profile(title, server.profile(), result.total_completed, cpu,
                        unprofiled.cpu_us_per_call(), result.reused)
            )  # fmt: skip
    finally:
        server.stop()
    return profiles


# --- report --------------------------------------------------------------------------------------


def print_setup(
    setup: Setup,
    plan: Plan,
    verification: Verification,
    audit: AuditSummary,
    measurements: list[Measurement],
) -> None:
    config = parse_config(setup.config_document, base=setup.directory)
    print(section("1. Setup"))
    answered = (
        sum(m.result.total_completed * m.items for m in measurements if m.server == "pdp")
        + verification.checks
        + verification.batch_decisions
    )
    rows = [
        ["grpcio", grpc.__version__],
        [
            "server process",
            f"pinned to CPU {','.join(map(str, sorted(setup.server_cpus)))}; "
            f"{config.server.workers} handler threads, "
            f"max_concurrent_rpcs {config.server.max_concurrent_rpcs}",
        ],
        [
            "load generators",
            f"{len(setup.client_cpus)} grpc.aio process(es) pinned to CPU "
            f"{','.join(map(str, setup.client_cpus))}; 2 connections each; raw bytes",
        ],
        [
            "policies / audit",
            "copy of policies/shop, watch off / audit on, a real file (fsync off, the default)",
        ],
        [
            "tokens",
            f"RS256 (2048-bit key, JWKS file); pool of {len(setup.tokens)} users' tokens",
        ],
        [
            "Check requests",
            f"{len(setup.pool_requests):,} shop requests of the pool's users, "
            f"{statistics.fmean(map(len, setup.check_payloads)):,.0f} B on average",
        ],
        [
            "CheckBatch requests",
            f"{len(setup.batches)} batches of {BATCH_SIZE} shop items, caller from the pool, "
            f"{statistics.fmean(map(len, setup.batch_payloads)):,.0f} B on average",
        ],
        [
            "do-nothing responses",
            f"Check {len(setup.noop_responses['Check'])} B, "
            f"CheckBatch {len(setup.noop_responses['CheckBatch']):,} B (pdp's answers, of their "
            "mean size; pre-serialized)",
        ],
        [
            "pdp answers, Check",
            f"{verification.agreeing:,} of {verification.checks:,} agree with expected.jsonl",
        ],
        [
            "pdp answers, CheckBatch",
            f"{verification.batch_agreeing:,} of {verification.batch_decisions:,} agree with "
            "the engine",
        ],
        ["authn.* reasons in those answers", f"{verification.authn_failures}"],
        [
            "audit log after the pdp runs",
            f"{audit.records:,} records in {audit.files} file(s), {audit.bytes / 1e6:,.1f} MB; "
            f"{answered:,} decisions answered",
        ],
        [
            "window",
            f"{plan.rounds} rounds of {plan.measure_s:g} s per server and workload, taking "
            f"turns ({plan.warmup_s:g} s warm-up first); fresh tokens {plan.fresh_measure_s:g} s",
        ],
    ]
    print(table(["", "value"], rows, [False, False]))


def find(measurements: list[Measurement], server: str, workload: str, tokens: str) -> Measurement:
    """The saturated run of `server` on `workload` (not a latency probe)."""
    return next(
        m
        for m in measurements
        if (m.server, m.workload, m.tokens) == (server, workload, tokens) and not m.latency_probe
    )


def print_results(measurements: list[Measurement], notes: list[str], setup: Setup) -> None:
    print(section("2. Throughput, latency and server CPU (one core per server)"))
    headers = [
        "server",
        "workload",
        "tokens",
        "conc",
        "calls/s",
        "rounds",
        "dec/s",
        "p50 ms",
        "p99 ms",
        "srv CPU",
        "us/call",
        "us/dec",
        "resp B",
        "cli CPU",
        "others",
        "errors",
    ]
    rows = []
    for m in measurements:
        result = m.result
        per_call = m.cpu_us_per_call()
        rows.append(
            [
                m.server,
                m.workload + (", latency" if m.latency_probe else ""),
                m.tokens,
                f"{m.concurrency}",
                whole(result.calls_per_s),
                spread([r.calls_per_s for r in m.rounds]),
                whole(m.decisions_per_s),
                f"{m.percentile_ms(0.5):.2f}",
                f"{m.percentile_ms(0.99):.2f}",
                f"{result.server_share:.0%}",
                f"{per_call:,.0f}",
                f"{per_call / m.items:,.1f}",
                whole(result.response_bytes / result.completed) if result.completed else "-",
                f"{result.client_share:.0%}",
                f"{others_on_server(m, setup):.0%}",
                f"{sum(result.errors.values())}",
            ]
        )
    print(table(headers, rows, [False, False, False, *[True] * 13]))
    print(
        "conc: calls in flight. calls/s over all rounds; rounds: the slowest and fastest "
        "round (calls/s). dec/s: decisions/s.\nsrv CPU: the server process's CPU time (all "
        "threads, from /proc) over the measured windows, as a share of one\ncore; us/call, "
        "us/dec: that CPU time per call answered and per decision. cli CPU: per load "
        "generator\nprocess. Latency is client-observed (call sent to answer read), so at "
        "saturation it is mostly queueing;\nthe `latency` rows keep one call in flight. tokens: "
        "pool = 100 users' tokens reused (cache hits),\nfresh = a token never seen before on "
        "every call (RS256 verification every time). others: CPU used on\nthe server's core by "
        "other processes during the windows (0% on a quiet machine)."
    )
    for m in measurements:
        if m.latency_probe:
            continue
        name = f"{m.server}, {m.workload}" + (f", {m.tokens} tokens" if m.tokens != "-" else "")
        for concurrency, share in m.below_saturation:
            notes.append(
                f"{name}: with {concurrency} in flight the server used {share:.0%} of its core; "
                f"raised to {m.concurrency}."
            )
        if not m.saturated:
            limited = (
                f"the load generator was at {m.result.client_share:.0%} of its core"
                if m.result.client_share >= SATURATED
                else "neither side was saturated"
            )
            notes.append(
                f"WARNING {name}: the server used only {m.result.server_share:.0%} of its core "
                f"({limited}): this is not the server's capacity, and ratios with it are not "
                "meaningful."
            )
        others = others_on_server(m, setup)
        client_cpus = setup.client_cpus[: m.result.clients]
        others_clients = m.result.others_share(client_cpus, m.result.client_cpu_s)
        steal = m.result.steal_share([*setup.server_cpus, *client_cpus])
        # Other work on the load generators' cores matters only when the server was starved.
        starved = not m.saturated and others_clients / len(client_cpus) >= NOISE
        if others >= NOISE or steal >= NOISE or starved:
            notes.append(
                f"WARNING {name}: other processes used {others:.0%} of the server's core and "
                f"{others_clients:.0%} of the load generators' (hypervisor steal {steal:.0%}): "
                "the machine was not quiet; rerun for clean figures."
            )
        if m.result.reused:
            notes.append(
                f"WARNING {name}: {m.result.reused:,} calls reused a token (too few were "
                "signed): those were cache hits."
            )
    noop = find(measurements, "do-nothing", CHECK_WORKLOAD, NO_TOKENS)
    pool = find(measurements, "pdp", CHECK_WORKLOAD, POOL_TOKENS)
    fresh = find(measurements, "pdp", CHECK_WORKLOAD, FRESH_TOKENS)
    runtime, handler = noop.cpu_us_per_call(), pool.cpu_us_per_call()
    notes.append(
        f"server CPU per Check: {runtime:,.0f} us in the do-nothing server (gRPC's runtime), "
        f"{handler:,.0f} us in pdp with pooled tokens: pdp's own work is about "
        f"{handler - runtime:,.0f} us per call. A fresh token costs "
        f"{fresh.cpu_us_per_call() - handler:,.0f} us more (RS256 verification, cache insert)."
    )
    noop_batch = find(measurements, "do-nothing", BATCH_WORKLOAD, NO_TOKENS)
    batch = find(measurements, "pdp", BATCH_WORKLOAD, POOL_TOKENS)
    per_decision = (batch.cpu_us_per_call() - noop_batch.cpu_us_per_call()) / BATCH_SIZE
    notes.append(
        f"server CPU per CheckBatch of {BATCH_SIZE}: {noop_batch.cpu_us_per_call():,.0f} us in "
        f"the do-nothing server, {batch.cpu_us_per_call():,.0f} us in pdp: about "
        f"{per_decision:,.1f} us of pdp's work per decision."
    )
    print()
    for note in notes:
        print(textwrap.fill(note, 100, initial_indent="- ", subsequent_indent="  "))


def spread(values: Sequence[float]) -> str:
    if len(values) < 2:
        return "-"
    return f"{min(values):,.0f}-{max(values):,.0f}"


def others_on_server(m: Measurement, setup: Setup) -> float:
    return m.result.others_share(sorted(setup.server_cpus), m.result.server_cpu_s or 0.0)


def print_targets(measurements: list[Measurement]) -> None:
    print(section("3. Targets (the service's performance issue)"))
    noop = find(measurements, "do-nothing", CHECK_WORKLOAD, NO_TOKENS)
    pool = find(measurements, "pdp", CHECK_WORKLOAD, POOL_TOKENS)
    fresh = find(measurements, "pdp", CHECK_WORKLOAD, FRESH_TOKENS)
    batch = find(measurements, "pdp", BATCH_WORKLOAD, POOL_TOKENS)
    batch_fresh = find(measurements, "pdp", BATCH_WORKLOAD, FRESH_TOKENS)
    ceiling = noop.result.calls_per_s
    ratio = pool.result.calls_per_s / ceiling if ceiling else 0.0
    fresh_ratio = fresh.result.calls_per_s / ceiling if ceiling else 0.0
    meaningful = noop.saturated and pool.saturated
    round_ratios = [
        p.calls_per_s / n.calls_per_s
        for n, p in zip(noop.rounds, pool.rounds, strict=False)
        if n.calls_per_s
    ]
    round_batch = [r.calls_per_s * BATCH_SIZE for r in batch.rounds]
    rows = [
        [
            "single Check, audit on, token pool",
            f">= {TARGET_CHECK_RATIO:.1f}x do-nothing",
            f"{ratio:.2f}x ({whole(pool.result.calls_per_s)} / {whole(ceiling)} calls/s)",
            f"{min(round_ratios):.2f}-{max(round_ratios):.2f}x" if round_ratios else "-",
            verdict(ratio >= TARGET_CHECK_RATIO)
            + ("" if meaningful else " (not saturated)")
            + near(ratio, TARGET_CHECK_RATIO),
        ],
        [
            f"CheckBatch of {BATCH_SIZE}, audit on, token pool",
            f">= {TARGET_BATCH_DECISIONS:,} decisions/s",
            f"{whole(batch.decisions_per_s)} decisions/s",
            spread(round_batch),
            verdict(batch.decisions_per_s >= TARGET_BATCH_DECISIONS)
            + ("" if batch.saturated else " (not saturated)")
            + near(batch.decisions_per_s, TARGET_BATCH_DECISIONS),
        ],
    ]
    headers = ["target", "limit", "measured", "rounds", "result"]
    print(table(headers, rows, [False, True, True, True, False]))
    print(
        "measured: over all rounds; rounds: the lowest and highest round (each round runs the "
        "do-nothing server\nand pdp one after the other).\n"
        f"not targets: with a fresh token on every call, Check reaches {fresh_ratio:.2f}x the "
        f"do-nothing server and CheckBatch\n{whole(batch_fresh.decisions_per_s)} decisions/s."
    )
    print()
    context = [
        [
            "single Checks/s, audit on",
            whole(CERBOS_CHECKS_PER_S),
            f"{whole(pool.result.calls_per_s)} (fresh tokens {whole(fresh.result.calls_per_s)})",
            f"{pool.result.calls_per_s / CERBOS_CHECKS_PER_S:.1f}x",
        ],
        [
            f"decisions/s in batches of {BATCH_SIZE}",
            whole(CERBOS_BATCH_DECISIONS_PER_S),
            f"{whole(batch.decisions_per_s)} (fresh tokens {whole(batch_fresh.decisions_per_s)})",
            f"{batch.decisions_per_s / CERBOS_BATCH_DECISIONS_PER_S:.1f}x",
        ],
    ]
    headers = ["for context, one core", "Cerbos (the issue's)", "pdp, measured here", "pdp/Cerbos"]
    print(table(headers, context, [False, True, True, True]))
    print("Cerbos figures are quoted from the issue (one core of this machine), not rerun here.")


def verdict(passed: bool) -> str:
    return "PASS" if passed else "MISS"


def near(measured: float, limit: float) -> str:
    """Runs on a shared two-core machine vary by several percent: a result this close to its
    limit can land on either side."""
    return " (within 5% of the limit: rerun to confirm)" if abs(measured / limit - 1) < 0.05 else ""


# --- the profile report --------------------------------------------------------------------------

PDP_CODE = f"{ROOT}/pdp/"


def print_profile(profile: Profile, full: bool) -> None:
    """Where the CPU goes per call, pdp's side and gRPC's side. `full` adds gRPC's functions."""
    rows, calls, cpu_s = profile.rows, profile.calls, profile.cpu_s
    print(section(f"{'4' if full else '5'}. Profile: {profile.title}, server CPU per call"))
    if not rows or not calls:
        print("no profile data")
        return
    share = pdp_share(rows)
    profiled_s = sum(row[2] for row in rows)
    in_pdp_s = sum(row[2] * share[row[0]] for row in rows)
    per_call = 1e6 / calls
    summary = [
        ["pdp: handler, and what it calls (parsing, tokens, engine, audit, response)",
         f"{in_pdp_s * per_call:,.0f}", f"{in_pdp_s / cpu_s:.0%}"],
        ["gRPC runtime, Python threads (poller, call handling, thread pool)",
         f"{(profiled_s - in_pdp_s) * per_call:,.0f}", f"{(profiled_s - in_pdp_s) / cpu_s:.0%}"],
        ["threads outside Python (gRPC core), and the profiler's own bookkeeping",
         f"{(cpu_s - profiled_s) * per_call:,.0f}", f"{(cpu_s - profiled_s) / cpu_s:.0%}"],
        ["server CPU per call, profiled", f"{cpu_s * per_call:,.0f}", "100%"],
    ]  # fmt: skip
    print(table(["", "us/call", "share"], summary, [False, True, True]))
    print(
        f"{calls:,} calls under cProfile (every server thread, thread CPU time); without the "
        f"profiler a call costs {profile.plain_us:,.0f} us.\ncProfile inflates code that makes "
        "many small calls (generator expressions most): read ranks and\nshares, not absolute "
        "times. pdp side: time spent on pdp's behalf, in pdp's code and in what it calls."
    )
    if profile.reused:
        print(f"WARNING: {profile.reused:,} calls reused a token: those were cache hits.")
    top = 18 if full else 12
    pdp_rows = [row for row in rows if row[0][0].startswith(PDP_CODE)]
    pdp_rows.sort(key=lambda row: row[3], reverse=True)
    print("\npdp code, by cumulative time (includes what each function calls)")
    print(function_table(pdp_rows[:top], calls, share))
    own = sorted(rows, key=lambda row: row[2] * share[row[0]], reverse=True)
    print("\npdp side, by own time (pdp code and library calls made from it)")
    print(function_table([r for r in own if share[r[0]] > 0][:top], calls, share, pdp_side=True))
    if full:
        runtime = sorted(rows, key=lambda row: row[2] * (1 - share[row[0]]), reverse=True)
        print("\ngRPC runtime side, by own time (not called from pdp code)")
        rows_runtime = [r for r in runtime if share[r[0]] < 1][:15]
        print(function_table(rows_runtime, calls, share, pdp_side=False))


def pdp_share(rows: list[ProfileRow]) -> dict[FunctionKey, float]:
    """For every function, the share of its own time spent on pdp's behalf: 1 for pdp's code,
    0 for code no pdp function calls, and for the rest the share of its own time that came
    from calls made by functions on pdp's behalf (weighted through the call graph)."""
    callers = {row[0]: row[4] for row in rows}
    own = {row[0]: row[2] for row in rows}
    share = {key: 1.0 if key[0].startswith(PDP_CODE) else 0.0 for key in callers}
    for _ in range(60):  # call chains are shorter than this; recursion converges
        changed = False
        for key, by_caller in callers.items():
            if key[0].startswith(PDP_CODE) or own[key] <= 0:
                continue
            total = sum(by_caller.values())
            if total <= 0:
                continue
            value = sum(t * share.get(c, 0.0) for c, t in by_caller.items()) / total
            if abs(value - share[key]) > 1e-6:
                share[key] = value
                changed = True
        if not changed:
            break
    return share


def function_table(
    rows: Sequence[ProfileRow],
    calls: int,
    share: dict[FunctionKey, float],
    pdp_side: bool | None = None,
) -> str:
    lines = []
    for key, count, own, cumulative, _ in rows:
        factor = 1.0 if pdp_side is None else share[key] if pdp_side else 1 - share[key]
        lines.append(
            [
                function_name(key),
                f"{count / calls:,.2f}",
                f"{own * factor * 1e6 / calls:,.1f}",
                f"{cumulative * 1e6 / calls:,.1f}",
            ]
        )
    headers = ["function", "calls/Check", "own us/Check", "cum us/Check"]
    return table(headers, lines, [False, True, True, True])


def function_name(key: FunctionKey) -> str:
    file, line, name = key
    if file == "~":
        return re.sub(r"^<(built-in method|method) ", "<", name)
    file = file.replace(f"{ROOT}/", "")
    file = re.sub(r"^\S*/site-packages/", "", file)
    file = re.sub(r"^\S*/lib/python3\.\d+/", "", file)
    return f"{file}:{line} {name}"


def progress(message: str) -> None:
    print(f"  ... {message}", file=sys.stderr, flush=True)

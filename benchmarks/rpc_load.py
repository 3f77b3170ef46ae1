"""The load generator of the service benchmark: grpc.aio clients in processes of their own.

Each client process is pinned to one CPU the server does not use and keeps many calls in flight
on a few connections. Requests are serialized beforehand and responses are not parsed, so a
client spends its time on the transport only. Every client process measures over the same
window (absolute monotonic times, shared by all); the first also reads the server's CPU time at
the window's edges, so calls and CPU are counted over exactly the same interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import signal
import time
import traceback
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

import grpc

from benchmarks.rpc_servers import (
    SPAWN,
    cpu_seconds_by_cpu,
    die_with_parent,
    pinned_process,
    process_cpu_seconds,
)

CONNECT_TIMEOUT_S = 10.0
CALL_TIMEOUT_S = 30.0
START_DELAY_S = 0.1
"""Between "go" and the first call: every client process gets the message first."""


@dataclass(frozen=True, slots=True)
class LoadSpec:
    target: str
    method: str
    payloads: Sequence[bytes]
    concurrency: int
    """Calls in flight, over all client processes."""
    warmup_s: float
    measure_s: float
    reuse: bool = True
    """False: each payload is sent at most once (fresh tokens); when they run out, payloads are
    reused and the result counts it."""
    server_pid: int | None = None
    connections: int = 2


@dataclass
class LoadResult:
    window_s: float = 0.0
    completed: int = 0
    """Calls answered within the window."""
    latencies_ns: list[int] = field(default_factory=list)
    """Client-observed latency of each call answered within the window."""
    response_bytes: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    """Failed calls within the window, by status code."""
    total_completed: int = 0
    """Calls answered, warm-up and window together."""
    total_errors: int = 0
    reused: int = 0
    server_cpu_s: float | None = None
    client_cpu_s: float = 0.0
    clients: int = 1
    cpu_busy_s: dict[int, float] = field(default_factory=dict)
    """Seconds each CPU was busy during the window, whoever ran (read with the server's CPU)."""
    cpu_steal_s: dict[int, float] = field(default_factory=dict)
    """Seconds the hypervisor took from each CPU during the window."""

    @property
    def calls_per_s(self) -> float:
        return self.completed / self.window_s if self.window_s else 0.0

    @property
    def server_share(self) -> float:
        """The server's CPU use during the window, as a share of one core."""
        return (self.server_cpu_s or 0.0) / self.window_s if self.window_s else 0.0

    @property
    def client_share(self) -> float:
        """CPU use of a client process during the window (the mean over client processes), as a
        share of one core: near 100% means the load generator may be what limits the rate."""
        return self.client_cpu_s / self.clients / self.window_s if self.window_s else 0.0

    def others_share(self, cpus: Sequence[int], own_cpu_s: float) -> float:
        """CPU use on `cpus` during the window by anything but `own_cpu_s` (the benchmark's
        processes pinned there), as a share of one core: other work competing with the run."""
        if not self.window_s or not self.cpu_busy_s:
            return 0.0
        busy = sum(self.cpu_busy_s.get(cpu, 0.0) for cpu in cpus)
        return max(0.0, busy - own_cpu_s) / self.window_s

    def steal_share(self, cpus: Sequence[int]) -> float:
        if not self.window_s:
            return 0.0
        return sum(self.cpu_steal_s.get(cpu, 0.0) for cpu in cpus) / self.window_s

    @classmethod
    def pooled(cls, results: Sequence[LoadResult]) -> LoadResult:
        """Several runs of one workload as one: rates and shares over their windows together."""
        total = cls(clients=results[0].clients)
        for result in results:
            total.window_s += result.window_s
            total.completed += result.completed
            total.latencies_ns.extend(result.latencies_ns)
            total.response_bytes += result.response_bytes
            total.errors.update(result.errors)
            total.total_completed += result.total_completed
            total.total_errors += result.total_errors
            total.reused += result.reused
            total.server_cpu_s = (total.server_cpu_s or 0.0) + (result.server_cpu_s or 0.0)
            total.client_cpu_s += result.client_cpu_s
            for cpu, seconds in result.cpu_busy_s.items():
                total.cpu_busy_s[cpu] = total.cpu_busy_s.get(cpu, 0.0) + seconds
            for cpu, seconds in result.cpu_steal_s.items():
                total.cpu_steal_s[cpu] = total.cpu_steal_s.get(cpu, 0.0) + seconds
        return total

    def merge(self, other: LoadResult) -> None:
        """Add what another client process saw over the same window."""
        self.completed += other.completed
        self.latencies_ns.extend(other.latencies_ns)
        self.response_bytes += other.response_bytes
        self.errors.update(other.errors)
        self.total_completed += other.total_completed
        self.total_errors += other.total_errors
        self.reused += other.reused
        self.client_cpu_s += other.client_cpu_s
        self.clients += other.clients


class LoadGenerators:
    """Client processes, one per CPU in `cpus`, kept for the whole benchmark."""

    def __init__(self, cpus: Sequence[int]) -> None:
        self.cpus = list(cpus)
        self._clients: list[tuple[Any, Connection]] = []
        for cpu in self.cpus:
            parent_end, child_end = SPAWN.Pipe()
            process = pinned_process(_client_main, (child_end,), {cpu})
            child_end.close()
            self._clients.append((process, parent_end))

    def run(self, spec: LoadSpec) -> LoadResult:
        """Drive one load run and return what all clients saw together."""
        count = min(len(self._clients), spec.concurrency)
        clients = self._clients[:count]
        shares = [spec.concurrency // count + (n < spec.concurrency % count) for n in range(count)]
        for number, (_, connection) in enumerate(clients):
            if spec.reuse:
                # Every client sends every payload, each starting at its own place.
                offset = number * len(spec.payloads) // count
                payloads = [*spec.payloads[offset:], *spec.payloads[:offset]]
            else:
                payloads = list(spec.payloads[number::count])  # disjoint: none is sent twice
            connection.send(
                LoadSpec(
                    spec.target,
                    spec.method,
                    payloads,
                    shares[number],
                    spec.warmup_s,
                    spec.measure_s,
                    spec.reuse,
                    spec.server_pid if number == 0 else None,
                    spec.connections,
                )
            )
        for _, connection in clients:
            _expect(connection, "ready")
        start_at = time.monotonic() + START_DELAY_S
        for _, connection in clients:
            connection.send(start_at)
        results: list[LoadResult] = [_expect(connection, "result") for _, connection in clients]
        merged = results[0]
        for other in results[1:]:
            merged.merge(other)
        return merged

    def close(self) -> None:
        for _, connection in self._clients:
            with contextlib.suppress(OSError):
                connection.send(None)
        for process, connection in self._clients:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
            connection.close()
        self._clients = []


def _expect(connection: Connection, kind: str) -> Any:
    # A client that dies leaves the pipe closed: recv raises EOFError instead of hanging.
    wait([connection])
    status, value = connection.recv()
    if status == "failed":
        raise RuntimeError(f"a load generator failed:\n{value}")
    if status != kind:
        raise RuntimeError(f"a load generator sent {status!r}, expected {kind!r}")
    return value


# --- the client process --------------------------------------------------------------------------


def _client_main(connection: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    while True:
        try:
            spec = connection.recv()
        except (EOFError, OSError):
            return
        if spec is None:
            return
        try:
            result = asyncio.run(_drive(spec, connection))
        except BaseException:
            connection.send(("failed", traceback.format_exc()))
            continue
        connection.send(("result", result))


class _Window:
    __slots__ = ("measuring", "stopping")

    def __init__(self) -> None:
        self.measuring = False
        self.stopping = False


async def _drive(spec: LoadSpec, connection: Connection) -> LoadResult:
    # Separate subchannel pools: otherwise channels with equal arguments share one connection.
    channels = [
        grpc.aio.insecure_channel(spec.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(max(1, spec.connections))
    ]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), CONNECT_TIMEOUT_S)
        # No (de)serializers: bytes in, bytes out.
        calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
            channel.unary_unary(spec.method) for channel in channels
        ]
        payloads = list(spec.payloads)
        result = LoadResult()
        window = _Window()
        next_index = itertools.count()
        gc.collect()
        gc.freeze()  # the payloads and the runtime's objects: nothing for the collector to scan
        connection.send(("ready", None))
        start_at: float = connection.recv()
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))

        async def caller(call: Any) -> None:
            latencies = result.latencies_ns
            count = len(payloads)
            while not window.stopping:
                index = next(next_index)
                if index >= count and not spec.reuse:
                    result.reused += 1
                payload = payloads[index % count]
                started = time.perf_counter_ns()
                try:
                    response = await call(payload, timeout=CALL_TIMEOUT_S)
                except grpc.aio.AioRpcError as error:
                    result.total_errors += 1
                    if window.measuring:
                        result.errors[error.code().name] += 1
                    continue
                finished = time.perf_counter_ns()
                result.total_completed += 1
                if window.measuring:
                    latencies.append(finished - started)
                    result.completed += 1
                    result.response_bytes += len(response)

        tasks = [
            asyncio.create_task(caller(calls[number % len(calls)]))
            for number in range(spec.concurrency)
        ]
        await asyncio.sleep(max(0.0, start_at + spec.warmup_s - time.monotonic()))
        server_start = process_cpu_seconds(spec.server_pid) if spec.server_pid else 0.0
        cpus_start = cpu_seconds_by_cpu() if spec.server_pid else {}
        client_start, window_start = time.process_time(), time.perf_counter()
        window.measuring = True
        await asyncio.sleep(max(0.0, start_at + spec.warmup_s + spec.measure_s - time.monotonic()))
        window.measuring = False
        window_end = time.perf_counter()
        client_end = time.process_time()
        if spec.server_pid:
            result.server_cpu_s = process_cpu_seconds(spec.server_pid) - server_start
            for cpu, (busy, steal) in cpu_seconds_by_cpu().items():
                result.cpu_busy_s[cpu] = busy - cpus_start[cpu][0]
                result.cpu_steal_s[cpu] = steal - cpus_start[cpu][1]
        window.stopping = True
        await asyncio.gather(*tasks)
        result.window_s = window_end - window_start
        result.client_cpu_s = client_end - client_start
        return result
    finally:
        for channel in channels:
            await channel.close()
        gc.unfreeze()

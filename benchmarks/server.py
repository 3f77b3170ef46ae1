"""The service benchmark: pdp's gRPC server against a do-nothing gRPC server, one core each.

1. A do-nothing server, the ceiling: pdp's transport (server_options, thread pool, concurrency
   limit) with handlers that answer Check and CheckBatch with fixed, pre-serialized responses of
   pdp's size, without parsing the request.
2. pdp itself (create_server) on a copy of policies/shop, with a real RS256 issuer (JWKS file),
   the audit log on (a real file) and policy watching off. Tokens come from a pool of 100 users,
   reused across calls as services do; a second run signs a fresh token for every call, so no
   call finds its token in pdp's cache and the cost of verification shows.
3. Workloads: single Check (the shop requests: subject claims in the token, resource and
   context in the request) and CheckBatch of 50 items.

Each server runs in its own process pinned to one CPU; the load generators (grpc.aio, many
calls in flight, requests serialized beforehand) run in other processes pinned to the other
CPUs. The server's CPU time is read from /proc over the measured window: a server well under
100% of its core was not the bottleneck, and the report says so (the concurrency is raised
first, up to a limit). `--profile` adds a cProfile of every server thread on the Check path.

Modules: rpc_workload (tokens, requests), rpc_servers (the server processes), rpc_load (the load
generators), rpc_bench (the runs and the report). This is a benchmark, not a test: it reports,
it never fails.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from benchmarks.report import Options

DESCRIPTION = "gRPC throughput, latency and CPU per call: pdp's server vs a do-nothing server"


def unavailable() -> str | None:
    if not Path("/proc/self/stat").exists() or not hasattr(os, "sched_setaffinity"):
        return "needs Linux (/proc and CPU affinity)"
    if len(os.sched_getaffinity(0)) < 2:
        return "needs 2 CPUs: one for the server, one for the load generator"
    for module in ("grpc", "pdp.v1.decision_pb2"):
        if importlib.util.find_spec(module) is None:
            return f"cannot import {module} (run `make install generate`)"
    return None


def run(options: Options) -> None:
    # Imported here: it needs the generated pdp.v1 modules, whose absence unavailable() reports.
    from benchmarks.rpc_bench import run_service_benchmark  # noqa: PLC0415

    run_service_benchmark(options)

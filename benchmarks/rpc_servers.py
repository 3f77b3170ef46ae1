"""The servers of the service benchmark, each run in a child process of its own.

`start_server(kind, ...)` starts a process pinned to one CPU that serves either pdp
(`create_server`, the real thing) or a do-nothing gRPC server with pdp's transport settings
that answers every call with fixed bytes. The parent talks to it over a pipe: "stop"; and when
started with profiling, "mark" (start the profile here) and "profile" (the cProfile statistics
of every server thread since the mark). A child whose parent stops without a word sees the pipe
close and stops too; one whose parent is killed is killed with it.
"""

from __future__ import annotations

import contextlib
import cProfile
import ctypes
import functools
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc

from pdp.config import Config, parse_config
from pdp.server.app import create_server, server_options

SERVICE = "pdp.v1.DecisionService"
CHECK = f"/{SERVICE}/Check"
CHECK_BATCH = f"/{SERVICE}/CheckBatch"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0

SPAWN = multiprocessing.get_context("spawn")
"""gRPC's runtime must not be forked after it started: every child is a fresh interpreter."""


def pinned_process(target: Callable[..., None], args: tuple[Any, ...], cpus: set[int]) -> Any:
    """Start `target(*args)` in a new process whose every thread runs on `cpus` only.

    The affinity is set on this thread around the start, so the child inherits it from its
    first instruction: threads the gRPC runtime starts later inherit it in turn.
    """
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        process = SPAWN.Process(target=target, args=args, daemon=True)
        process.start()
    finally:
        os.sched_setaffinity(0, before)
    return process


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child process: be killed when the parent dies, however it dies (even SIGKILL, when
    no cleanup of the parent runs). Linux's PR_SET_PDEATHSIG."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


def ignore_interrupts() -> None:
    """For a worker process: Ctrl-C is the parent's to handle, and the worker goes with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()


def unpinned_threads(pid: int, cpus: set[int]) -> list[str]:
    """Threads of `pid` allowed to run outside `cpus` (an empty list: all pinned)."""
    loose = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except OSError:
            continue  # the thread ended
        for line in status.splitlines():
            if line.startswith("Cpus_allowed_list:") and parse_cpu_list(line) != cpus:
                loose.append(f"{task.name}: {line.split(':', 1)[1].strip()}")
    return loose


def parse_cpu_list(line: str) -> set[int]:
    cpus: set[int] = set()
    for part in line.split(":", 1)[1].strip().split(","):
        first, _, last = part.partition("-")
        cpus.update(range(int(first), int(last or first) + 1))
    return cpus


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of every thread of `pid`, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3 of the man page, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds_by_cpu() -> dict[int, tuple[float, float]]:
    """For every CPU, from /proc/stat: seconds running processes (user, nice, system) and
    seconds stolen by the hypervisor, since boot. Interrupt time is left out: the kernel's
    work for the benchmark's own loopback traffic is counted there, not to any process."""
    tick = os.sysconf("SC_CLK_TCK")
    found = {}
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            name, *values = line.split()
            if not name.startswith("cpu") or name == "cpu":
                continue
            user, nice, system, _idle, _iowait, _irq, _softirq, steal = map(int, values[:8])
            found[int(name[3:])] = ((user + nice + system) / tick, steal / tick)
    return found


# --- the parent's side ---------------------------------------------------------------------------


@dataclass
class ServerProcess:
    kind: str
    process: Any
    connection: Connection
    port: int
    cpus: set[int]

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.pid)

    def mark_profile(self) -> None:
        """Start the profile from here: what the server did so far (warm-up) is left out."""
        self.connection.send("mark")
        self.connection.recv()

    def profile(self) -> list[ProfileRow]:
        """The profile since mark_profile(). Call it while no call is in progress."""
        self.connection.send("profile")
        rows: list[ProfileRow] = self.connection.recv()
        return rows

    def stop(self) -> None:
        """Stop the server (pdp flushes and closes its audit log); kill it if it hangs."""
        if self.process.is_alive():
            try:
                self.connection.send("stop")
                if self.connection.poll(STOP_TIMEOUT_S):
                    self.connection.recv()
            except (OSError, EOFError):
                pass
        self.process.join(STOP_TIMEOUT_S)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


def start_server(
    kind: str,
    cpus: set[int],
    *,
    config_document: dict[str, Any],
    base: Path,
    responses: Mapping[str, bytes] | None = None,
    profile: bool = False,
) -> ServerProcess:
    """Start a "pdp" or "noop" server process on `cpus`; returns once it serves."""
    parent_end, child_end = SPAWN.Pipe()
    process = pinned_process(
        _server_main,
        (kind, child_end, (config_document, str(base)), dict(responses or {}), profile),
        cpus,
    )
    child_end.close()
    server = ServerProcess(kind, process, parent_end, 0, cpus)
    try:
        if not parent_end.poll(START_TIMEOUT_S):
            raise RuntimeError(f"the {kind} server did not start within {START_TIMEOUT_S:.0f} s")
        status, detail = parent_end.recv()
        if status != "ready":
            raise RuntimeError(f"the {kind} server failed to start:\n{detail}")
    except BaseException:
        server.stop()
        raise
    server.port = int(detail)
    return server


# --- the child's side ----------------------------------------------------------------------------


FunctionKey = tuple[str, int, str]
"""(file, line, function), as pstats names a function."""
ProfileRow = tuple[FunctionKey, int, float, float, dict[FunctionKey, float]]
"""(function, calls, own seconds, cumulative seconds, own seconds by caller)."""


def _server_main(
    kind: str,
    connection: Connection,
    config_source: tuple[dict[str, Any], str],
    responses: dict[str, bytes],
    profile: bool,
) -> None:
    # Ctrl-C goes to the whole process group: the parent stops its children itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent()
    profilers: list[cProfile.Profile] = []
    if profile:
        _profile_new_threads(profilers)
    try:
        document, base = config_source
        config = parse_config(document, base=Path(base))
        stop: Callable[[], object]
        if kind == "pdp":
            running = create_server(config)
            port, stop = running.port, functools.partial(running.stop, 0)
        else:
            server = _noop_server(config, responses)
            port = server.add_insecure_port(config.server.listen)
            server.start()
            stop = functools.partial(server.stop, 0)
    except BaseException:
        connection.send(("failed", traceback.format_exc()))
        return
    connection.send(("ready", port))
    baseline: list[ProfileRow] = []
    while True:
        try:
            command = connection.recv()
        except (EOFError, OSError):
            break  # the parent is gone
        if command == "mark":
            baseline = _profile_rows(profilers)
            connection.send(None)
        elif command == "profile":
            connection.send(_subtract(_profile_rows(profilers), baseline))
        else:
            break
    stop()
    with contextlib.suppress(OSError):
        connection.send(("stopped", None))


def _noop_server(config: Config, responses: dict[str, bytes]) -> grpc.Server:
    """pdp's transport (its options, thread pool and concurrency limit) with handlers that
    neither parse the request nor build the response: a ceiling for any handler."""
    server = grpc.server(
        ThreadPoolExecutor(max_workers=config.server.workers, thread_name_prefix="noop-rpc"),
        options=server_options(config),
        maximum_concurrent_rpcs=config.server.max_concurrent_rpcs,
    )

    def answer(response: bytes) -> grpc.RpcMethodHandler[bytes, bytes]:
        # No (de)serializers: bytes in, the same bytes out every time.
        return grpc.unary_unary_rpc_method_handler(lambda request, context: response)

    handlers = {name: answer(responses[name]) for name in ("Check", "CheckBatch")}
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    return server


def _profile_new_threads(profilers: list[cProfile.Profile]) -> None:
    """Profile every thread started from now on (the gRPC poller and the handler threads).

    cProfile hooks one thread at a time, so each new thread starts its own profiler on its
    first event. The clock is the thread's CPU time: with sixteen threads sharing one core,
    wall time would charge GIL waits to whatever function happened to be running.
    """
    lock = threading.Lock()

    def start(frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        profiler = cProfile.Profile(time.thread_time)
        with lock:
            profilers.append(profiler)
        profiler.enable()

    threading.setprofile(start)


def _profile_rows(profilers: list[cProfile.Profile]) -> list[ProfileRow]:
    """Every thread's statistics, merged. Read with getstats() while the threads are idle:
    pstats (through disable()) would close the calls still open in each thread, such as the
    worker waiting on its queue, with this thread's CPU clock, and charge nonsense to them."""
    merged: dict[FunctionKey, list[Any]] = {}
    for profiler in profilers:
        for key, (calls, own, cumulative, callers) in _snapshot(profiler).items():
            entry = merged.setdefault(key, [0, 0.0, 0.0, {}])
            entry[0] += calls
            entry[1] += own
            entry[2] += cumulative
            for caller, seconds in callers.items():
                entry[3][caller] = entry[3].get(caller, 0.0) + seconds
    return [(key, *entry) for key, entry in merged.items()]


def _subtract(rows: list[ProfileRow], baseline: list[ProfileRow]) -> list[ProfileRow]:
    empty: ProfileRow = (("", 0, ""), 0, 0.0, 0.0, {})
    before = {row[0]: row for row in baseline}
    result: list[ProfileRow] = []
    for key, calls, own, cumulative, callers in rows:
        old = before.get(key, empty)
        if calls > old[1]:
            since = {c: t - old[4].get(c, 0.0) for c, t in callers.items()}
            result.append((key, calls - old[1], own - old[2], cumulative - old[3], since))
    return result


def _snapshot(
    profiler: cProfile.Profile,
) -> dict[FunctionKey, tuple[int, float, float, dict[FunctionKey, float]]]:
    """cProfile.Profile.snapshot_stats without the disable(): per function, the calls, own and
    cumulative seconds, and own seconds by caller, of the calls that have returned."""
    entries = profiler.getstats()
    stats: dict[FunctionKey, tuple[int, float, float, dict[FunctionKey, float]]] = {}
    callers_of: dict[int, dict[FunctionKey, float]] = {}
    for entry in entries:
        callers: dict[FunctionKey, float] = {}
        callers_of[id(entry.code)] = callers
        stats[_label(entry.code)] = (entry.callcount, entry.inlinetime, entry.totaltime, callers)
    for entry in entries:
        caller = _label(entry.code)
        for sub in entry.calls or ():
            callee_callers = callers_of.get(id(sub.code))
            if callee_callers is not None:
                callee_callers[caller] = callee_callers.get(caller, 0.0) + sub.inlinetime
    return stats


def _label(code: Any) -> FunctionKey:
    if isinstance(code, str):
        return ("~", 0, code)  # a built-in function, as pstats names it
    return (code.co_filename, code.co_firstlineno, code.co_name)

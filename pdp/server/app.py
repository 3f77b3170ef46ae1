"""Assemble and run the server: DecisionService, health, reflection, limits, signals."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pdp.audit.writer import AuditLog, AuditWriteError
from pdp.config import Config
from pdp.decision_point import DecisionPoint, utc_now
from pdp.identity.authenticator import Authenticator
from pdp.identity.jwks import JwksError
from pdp.metering import Metering
from pdp.policy_store import PolicyStore
from pdp.server.service import SERVICE_NAME, DecisionService, handler
from pdp.server.tls import ReloadingCredentials, TlsFilesError
from pdp.state import MemoryState

_log = logging.getLogger("pdp.server")


class StartupError(Exception):
    """The server cannot start: the address is taken, a key set or the audit log is unusable.
    The message says which, for the operator."""


@dataclass
class RunningServer:
    """A started server. `port` is the bound port (useful when configured with port 0)."""

    server: grpc.Server
    port: int
    point: DecisionPoint
    store: PolicyStore
    audit: AuditLog
    health: health.HealthServicer
    tls_port: int = 0
    """The TLS listener's port (0 without TLS; the same as `port` when that one uses TLS)."""
    state: MemoryState | None = None
    flusher: _Flusher | None = None
    stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, let in-flight calls finish within `grace` seconds, flush the
        audit log. Safe to call twice."""
        if self.stopped.is_set():
            return
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.store.stop()
        if self.flusher is not None:
            self.flusher.stop()
        self.audit.close()
        self.stopped.set()

    def reload(self) -> None:
        self.store.reload()


def server_options(config: Config) -> list[tuple[str, int]]:
    s = config.server
    return [
        ("grpc.max_receive_message_length", s.max_message_bytes),
        ("grpc.max_send_message_length", s.max_message_bytes),
        ("grpc.keepalive_time_ms", s.keepalive_seconds * 1000),
        ("grpc.keepalive_timeout_ms", s.keepalive_timeout_seconds * 1000),
        ("grpc.max_connection_idle_ms", s.max_connection_idle_seconds * 1000),
        ("grpc.max_connection_age_ms", s.max_connection_age_seconds * 1000),
        ("grpc.max_connection_age_grace_ms", s.max_connection_age_grace_seconds * 1000),
        # Clients that ping more often than keepalive allows are cut off (ping floods).
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        # Two servers on one port would split traffic silently; fail to bind instead.
        ("grpc.so_reuseport", 0),
    ]


def create_server(
    config: Config,
    listen: str | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> RunningServer:
    """Load policies, bind, and start serving. Raises PolicySetError when the policy folder
    has errors (there is no good set to serve), StartupError for anything else that stops it."""
    store = PolicyStore(config.policies.dir, relative_names=True)
    try:
        state = MemoryState(config.credentials.usage_file)
    except ValueError as error:
        raise StartupError(f"usage: {error}") from None
    try:
        authenticator = Authenticator.from_config(config, state)
    except JwksError as error:
        raise StartupError(f"issuer keys: {error}") from None
    except (ValueError, OSError) as error:
        raise StartupError(f"credentials: {error}") from None
    try:
        audit = AuditLog(config.audit)
    except AuditWriteError as error:
        raise StartupError(f"audit log: {error}") from None
    point = DecisionPoint(
        store,
        authenticator,
        audit,
        clock=clock,
        validate_requests=config.policies.validate_requests,
        metering=Metering(config.plans, state),
    )
    try:
        return _start(config, listen, store, point, state)
    except BaseException:
        audit.close()
        raise


def _bind(server: grpc.Server, address: str, credentials: grpc.ServerCredentials | None) -> int:
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio raises this (older releases returned 0) when it cannot bind
        port = 0
    if port == 0:
        raise StartupError(f"cannot listen on {address} (address in use, or not a local address)")
    return port


def _start(
    config: Config,
    listen: str | None,
    store: PolicyStore,
    point: DecisionPoint,
    state: MemoryState,
) -> RunningServer:
    server = grpc.server(
        ThreadPoolExecutor(max_workers=config.server.workers, thread_name_prefix="pdp-rpc"),
        options=server_options(config),
        maximum_concurrent_rpcs=config.server.max_concurrent_rpcs,
    )
    server.add_generic_rpc_handlers((handler(DecisionService(point, config)),))
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if config.server.reflection:
        names = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
        reflection.enable_server_reflection((*names, reflection.SERVICE_NAME), server)
    address = listen or config.server.listen
    tls = config.server.tls
    credentials = None
    if tls is not None:
        try:
            credentials = ReloadingCredentials(tls).server_credentials()
        except TlsFilesError as error:
            raise StartupError(f"TLS: {error}") from None
    tls_port = 0
    if tls is not None and tls.listen is not None:
        # A separate TLS listener beside the plaintext one.
        port = _bind(server, address, None)
        tls_port = _bind(server, tls.listen, credentials)
    else:
        port = _bind(server, address, credentials)
        tls_port = port if credentials is not None else 0
    server.start()
    for service in ("", SERVICE_NAME):
        # SERVING only now: a policy set is loaded and the port is bound.
        health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    if config.policies.watch:
        store.watch(config.policies.poll_seconds)
    _log.info(
        "serving on %s (policy revision %s, %d rules)",
        address.rsplit(":", 1)[0] + f":{port}",
        store.current.revision,
        len(store.current.rules),
    )
    if tls is not None and tls.listen is not None:
        _log.info("serving TLS on %s", tls.listen.rsplit(":", 1)[0] + f":{tls_port}")
    flusher = _Flusher(state)
    flusher.start()
    return RunningServer(
        server, port, point, store, point.audit, health_servicer, tls_port=tls_port, state=state,
        flusher=flusher,
    )  # fmt: skip


class _Flusher(threading.Thread):
    """Writes usage counts to disk every second (when they changed), so a crash loses at most
    that much."""

    def __init__(self, state: MemoryState, every: float = 1.0) -> None:
        super().__init__(name="pdp-usage-flush", daemon=True)
        self.state = state
        self.every = every
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(self.every):
            self._flush()

    def _flush(self) -> None:
        try:
            self.state.flush()
        except OSError as error:
            _log.error("could not write API key usage: %s", error)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        self._flush()


def serve(config: Config, listen: str | None = None) -> int:
    """Run until SIGTERM or SIGINT (drain, flush, exit 0). SIGHUP reloads the policies."""
    running = create_server(config, listen)
    stop_requested = threading.Event()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        _log.info("received %s: draining", signal.Signals(signum).name)
        stop_requested.set()

    def on_reload(signum: int, frame: FrameType | None) -> None:
        # Off the signal handler: a reload of a large set takes a while.
        threading.Thread(target=running.reload, name="pdp-sighup-reload", daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGHUP, on_reload)
    stop_requested.wait()
    running.stop(config.server.shutdown_grace_seconds)
    _log.info("stopped")
    return 0

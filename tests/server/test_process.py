"""`pdp serve` as a process: the quickstart, SIGHUP reloads, SIGTERM and SIGINT drain."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from pdp.client import DecisionClient, Item

ROOT = Path(__file__).resolve().parents[2]
PDP = [sys.executable, "-m", "pdp"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pdp(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PDP, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A copy of what `make run` uses: the example policies and pdp.toml."""
    shutil.copytree(ROOT / "policies", tmp_path / "policies")
    shutil.copy(ROOT / "pdp.toml", tmp_path / "pdp.toml")
    assert pdp("dev-keys", cwd=tmp_path).returncode == 0
    return tmp_path


@contextmanager
def running_server(workdir: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`pdp serve` with workdir's pdp.toml on free ports, ready for calls."""
    address = f"127.0.0.1:{free_port()}"
    tls_address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen(
        [*PDP, "serve", "--config", "pdp.toml", "--listen", address, "--tls-listen", tls_address],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
    except grpc.FutureTimeoutError:
        process.kill()
        pytest.fail(f"pdp serve did not start:\n{process.communicate()[0]}")
    finally:
        channel.close()
    try:
        yield process, address
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.fixture
def server(workdir: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    with running_server(workdir) as started:
        yield started


def test_token_and_call_against_a_running_server(
    workdir: Path, server: tuple[subprocess.Popen[str], str]
) -> None:
    _, address = server
    minted = pdp(
        "token", "--sub", "alice", "--claim", "age=21", "--claim", "country=SE", cwd=workdir
    )
    assert minted.returncode == 0, minted.stderr
    token = minted.stdout.strip()
    token_file = workdir / "token"
    token_file.write_text(token)

    allow = pdp(
        "call", "--addr", address, "--token-file", str(token_file), "--action", "purchase",
        "--resource-type", "Product", "--resource-id", "p-1", "--attr", "category=alcohol",
        cwd=workdir,
    )  # fmt: skip
    assert allow.returncode == 0, allow.stdout + allow.stderr
    assert allow.stdout.startswith("ALLOW")
    assert "rule.permit purchase-alcohol" in allow.stdout

    deny = pdp(
        "call", "--addr", address, "--token-file", str(token_file), "--action", "delete",
        "--resource-type", "Order", "--resource-id", "o-1", "--explain",
        cwd=workdir,
    )  # fmt: skip
    assert deny.returncode == 1
    assert "default.deny: no permit rule matched" in deny.stdout
    assert "delete-admin: subject has role was false" in deny.stdout

    records = [
        json.loads(line)
        for line in (workdir / "var" / "audit" / "decisions.jsonl").read_text().splitlines()
    ]
    assert [r["decision"] for r in records] == ["allow", "deny"]
    assert token not in (workdir / "var" / "audit" / "decisions.jsonl").read_text()


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_drains_in_flight_calls_and_exits_zero(
    workdir: Path, server: tuple[subprocess.Popen[str], str], stop: signal.Signals
) -> None:
    process, address = server
    token = pdp("token", "--sub", "bob", "--claim", "role=admin", cwd=workdir).stdout.strip()
    items = [Item("delete", "Order", f"o-{n}") for n in range(100)]
    outcomes: list[str] = []
    lock = threading.Lock()
    started = threading.Event()

    def caller() -> None:
        with DecisionClient(address, timeout=30) as client:
            for _ in range(200):
                started.set()
                try:
                    results = client.check_batch(token, items, explain=True)
                    outcome = "answered" if all(r.allowed for r in results) else "wrong"
                except grpc.RpcError as error:
                    outcome = error.code().name
                with lock:
                    outcomes.append(outcome)
                if outcome != "answered":
                    return

    threads = [threading.Thread(target=caller) for _ in range(4)]
    for thread in threads:
        thread.start()
    started.wait(10)
    time.sleep(0.5)
    process.send_signal(stop)
    output, _ = process.communicate(timeout=30)
    for thread in threads:
        thread.join(30)
    assert process.returncode == 0, output
    assert f"received {stop.name}: draining" in output and "stopped" in output
    answered = outcomes.count("answered")
    assert answered > 0
    # Calls that race the start of shutdown are refused before any handler runs (UNAVAILABLE,
    # or CANCELLED when the stream was already open); nothing else, and never a wrong answer.
    assert set(outcomes) <= {"answered", "UNAVAILABLE", "CANCELLED"}, outcomes
    # Drained means: every decision that was made reached its caller and the log. A call cut
    # off half way would leave records without an answer; a lost record, the reverse.
    records = (workdir / "var" / "audit" / "decisions.jsonl").read_text().splitlines()
    assert len(records) == 100 * answered


def test_sighup_reloads_the_policies(workdir: Path) -> None:
    # With watching off, only the signal can bring an edit into service.
    config = workdir / "pdp.toml"
    config.write_text(config.read_text().replace("watch = true", "watch = false"))
    token = pdp(
        "token", "--sub", "alice", "--claim", "age=21", "--claim", "country=SE", cwd=workdir
    )
    policy = workdir / "policies" / "shop" / "shop.policy"
    with running_server(workdir) as (process, address), DecisionClient(address) as client:

        def purchase() -> tuple[bool, str]:
            result = client.check(
                token.stdout.strip(), "purchase", "Product", "p-1",
                attributes={"category": "alcohol"},
            )  # fmt: skip
            return result.allowed, result.policy_revision

        allowed, revision = purchase()
        assert allowed
        policy.write_text(policy.read_text().replace("subject.age >= 18", "subject.age >= 25"))
        time.sleep(0.5)
        assert purchase() == (True, revision)  # not watching: the edit is not in service yet
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while purchase() == (True, revision) and time.monotonic() < deadline:
            time.sleep(0.05)
        allowed, reloaded = purchase()
        assert not allowed
        assert reloaded != revision
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert f"revision {revision} -> {reloaded}" in output


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('jwks_file = "dev-keys/jwks.json"', "issuer keys: "),
        ('path = "var/audit/decisions.jsonl"', "audit log: "),
    ],
    ids=["missing jwks file", "unopenable audit log"],
)
def test_startup_failures_are_clean_errors(workdir: Path, change: str, message: str) -> None:
    config = workdir / "pdp.toml"
    replacement = {
        "issuer keys: ": 'jwks_file = "dev-keys/missing.json"',
        "audit log: ": 'path = "/proc/no-such-dir/decisions.jsonl"',
    }[message]
    config.write_text(config.read_text().replace(change, replacement))
    result = pdp("serve", "--config", "pdp.toml", "--listen", "127.0.0.1:0", cwd=workdir)
    assert result.returncode == 2
    assert f"pdp serve: {message}" in result.stderr and "not starting" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_a_clean_error(
    workdir: Path, server: tuple[subprocess.Popen[str], str]
) -> None:
    _, address = server
    result = pdp("serve", "--config", "pdp.toml", "--listen", address, cwd=workdir)
    assert result.returncode == 2
    assert f"pdp serve: cannot listen on {address}" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_config_names_the_key(workdir: Path) -> None:
    config = workdir / "pdp.toml"
    config.write_text(config.read_text().replace('listen = "127.0.0.1:50051"', "listen = 7"))
    result = pdp("serve", "--config", "pdp.toml", cwd=workdir)
    assert result.returncode == 2
    assert "server.listen: must be a non-empty string" in result.stderr


def test_a_broken_policy_folder_refuses_to_start(workdir: Path) -> None:
    (workdir / "policies" / "broken.policy").write_text("permit x { action a resource T when }")
    result = pdp("serve", "--config", "pdp.toml", "--listen", "127.0.0.1:0", cwd=workdir)
    assert result.returncode == 2
    assert "broken.policy:1:37: error: unexpected `}`; expected an expression" in result.stderr
    assert "not starting" in result.stderr

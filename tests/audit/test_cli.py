"""`pdp audit`, run as the real command in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pdp.audit.record import encode
from pdp.audit.writer import AuditLog
from pdp.config import AuditSettings
from tests.audit.builders import record_for, rejected, shop

ROOT = Path(__file__).resolve().parents[2]
PDP = [sys.executable, "-m", "pdp"]


def pdp(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PDP, *args], check=False, capture_output=True, text=True, cwd=cwd, timeout=60
    )


def sample_records() -> list[dict[str, Any]]:
    policies = shop()
    alcohol = {"type": "Product", "id": "p-a", "category": "alcohol"}
    return [
        record_for(policies, 1, sub="alice", age=30, resource=alcohol),
        record_for(policies, 2, sub="bob", age=16, resource=alcohol),
        record_for(policies, 3, sub="bob", resource={"type": "Product", "id": "p", "price": 2.5}),
        record_for(policies, 4, sub="carol", resource=alcohol, context={"country": "KP"}),
        record_for(policies, 5, sub=None, action="read", resource={"type": "Document"}),
        rejected(6),
    ]


@pytest.fixture
def log(tmp_path: Path) -> Path:
    """A rotated log: records 1-3 in decisions.jsonl.1, 4-6 in decisions.jsonl."""
    records = sample_records()
    path = tmp_path / "audit" / "decisions.jsonl"
    settings = AuditSettings(path=path, max_bytes=len(encode(records[:3])) + 1, keep=3)
    with AuditLog(settings) as audit:
        audit.write(records[:3])
        audit.write(records[3:])
    assert path.with_name("decisions.jsonl.1").exists()
    return path


def test_lists_every_record_one_line_each(log: Path) -> None:
    result = pdp("audit", "--log", str(log))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        "2026-11-23T10:00:01.123456Z  allow     alice  purchase  Product/p-a  purchase-alcohol",
        "2026-11-23T10:00:02.123456Z  deny      bob  purchase  Product/p-a  default.deny",
        "2026-11-23T10:00:03.123456Z  allow     bob  purchase  Product/p  purchase-cheap",
        "2026-11-23T10:00:04.123456Z  deny      carol  purchase  Product/p-a  blocked-country",
        "2026-11-23T10:00:05.123456Z  deny      -  read  Document  default.deny",
        "2026-11-23T10:00:06.123456Z  rejected  -  -  -  "
        "error: `resource.type` must be a non-empty string",
    ]


def test_filters_and_limit(log: Path) -> None:
    result = pdp("audit", "--log", str(log), "--decision", "deny", "--action", "purchase")
    assert [line.split()[2] for line in result.stdout.splitlines()] == ["bob", "carol"]
    result = pdp("audit", "--log", str(log), "--subject", "bob", "--resource-type", "Product")
    assert [line.split()[1] for line in result.stdout.splitlines()] == ["deny", "allow"]
    result = pdp("audit", "--log", str(log), "--rule", "blocked-country")
    assert [line.split()[2] for line in result.stdout.splitlines()] == ["carol"]
    result = pdp(
        "audit",
        "--log",
        str(log),
        "--since",
        "2026-11-23T11:00:02.123456+01:00",
        "--until",
        "2026-11-23T10:00:04.123456Z",
    )
    assert [line.split()[0] for line in result.stdout.splitlines()] == [
        "2026-11-23T10:00:02.123456Z",
        "2026-11-23T10:00:03.123456Z",
    ]
    # --limit: the most recent matching records, oldest first.
    result = pdp("audit", "--log", str(log), "--decision", "deny", "--limit", "2")
    assert result.returncode == 0, result.stderr
    assert [line.split()[2] for line in result.stdout.splitlines()] == ["carol", "-"]


def test_json_prints_the_records_as_json_lines(log: Path) -> None:
    result = pdp("audit", "--log", str(log), "--json", "--subject", "alice")
    assert result.returncode == 0, result.stderr
    [record] = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["decision_id"] == "d-000001"
    assert record["subject"]["claims"]["age"] == 30
    assert record["reasons"] == [{"code": "rule.permit", "rule": "purchase-alcohol"}]


def test_stats(log: Path) -> None:
    result = pdp("audit", "--log", str(log), "--stats")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "6 records, 2026-11-23T10:00:01.123456Z .. 2026-11-23T10:00:06.123456Z",
        "by decision:",
        "  deny      3",
        "  allow     2",
        "  rejected  1",
        "by rule:",
        "  purchase-alcohol  1",
        "  purchase-cheap    1",
        "  blocked-country   1",
        "by reason code:",
        "  rule.permit   2",
        "  default.deny  2",
        "  rule.forbid   1",
    ]


def test_stats_as_json_with_a_filter(log: Path) -> None:
    result = pdp("audit", "--log", str(log), "--stats", "--json", "--action", "purchase")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "total": 4,
        "first_time": "2026-11-23T10:00:01.123456Z",
        "last_time": "2026-11-23T10:00:04.123456Z",
        "by_decision": {"allow": 2, "deny": 2},
        "by_rule": {"purchase-alcohol": 1, "purchase-cheap": 1, "blocked-country": 1},
        "by_reason": {"rule.permit": 2, "default.deny": 1, "rule.forbid": 1},
        "skipped_lines": 0,
    }


def test_the_log_path_from_a_config_file(log: Path, tmp_path: Path) -> None:
    config = tmp_path / "pdp.toml"
    config.write_text('[audit]\npath = "audit/decisions.jsonl"\n')  # relative to the file
    result = pdp("audit", "--config", str(config), "--decision", "rejected")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[1] == "rejected"


def test_the_default_log_path(tmp_path: Path) -> None:
    path = tmp_path / "var" / "audit" / "decisions.jsonl"
    with AuditLog(AuditSettings(path=path)) as audit:
        audit.write([rejected(1)])
    result = pdp("audit", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "rejected" in result.stdout


def test_damaged_lines_are_reported_and_the_rest_listed(log: Path) -> None:
    with log.open("ab") as file:
        file.write(b'{"v":1,"decision_id":"cut')
    result = pdp("audit", "--log", str(log), "--stats")
    assert result.returncode == 0
    assert result.stdout.startswith("6 records")
    assert result.stderr == (
        f"pdp audit: skipped 1 damaged line(s) (cut short or not a JSON object): {log}:4\n"
    )


def test_text_output_escapes_control_characters(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    resource = {"type": "Document", "id": "x\x1b[2J\nforged line"}
    with AuditLog(AuditSettings(path=path)) as audit:
        audit.write([record_for(shop(), 1, action="read", resource=resource)])
    result = pdp("audit", "--log", str(path))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    assert "\x1b" not in result.stdout
    assert "Document/x\\u001b[2J\\nforged line" in result.stdout


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--log", "{tmp}/none.jsonl"], "pdp audit: no audit log at {tmp}/none.jsonl"),
        (["--config", "{tmp}/none.toml"], "pdp audit: {tmp}/none.toml: cannot read"),
        (["--since", "yesterday"], "argument --since: invalid datetime `yesterday`"),
        (["--until", "2026-11-23T10:00:00"], "argument --until: invalid datetime"),
        (["--limit", "0"], "argument --limit: expected a positive whole number, got `0`"),
        (["--limit", "2", "--stats"], "pdp audit: --limit cannot be combined with --stats"),
        (["--decision", "maybe"], "argument --decision: invalid choice: 'maybe'"),
        (["--log", "a", "--config", "b"], "argument --config: not allowed with argument --log"),
        (
            ["--since", "2026-11-23T10:00:00Z", "--until", "2026-11-23T09:00:00Z"],
            "pdp audit: --since must be before --until",
        ),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    tmp_path: Path, arguments: list[str], message: str
) -> None:
    result = pdp("audit", *(a.replace("{tmp}", str(tmp_path)) for a in arguments), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert message.replace("{tmp}", str(tmp_path)) in result.stderr

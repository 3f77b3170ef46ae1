"""`pdp check` and `pdp lint`, run as the installed command in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PDP = [sys.executable, "-m", "pdp"]


def pdp(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PDP, *args],
        check=False,
        capture_output=True,
        text=True,
        input=stdin,
        cwd=ROOT,
        timeout=60,
    )


def write_request(tmp_path: Path, **overrides: object) -> Path:
    request = {
        "subject": {"sub": "u-16", "account": "acct-1", "age": 16, "country": "SE"},
        "action": "purchase",
        "resource": {"type": "Product", "id": "p-1", "category": "alcohol"},
        "context": {},
    }
    request.update(overrides)
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    return path


def test_check_explains_a_denied_purchase_by_a_16_year_old(tmp_path: Path) -> None:
    result = pdp(
        "check", "--policies", "policies", "--request", str(write_request(tmp_path)), "--explain"
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("DENY  (policy revision ")
    assert "default.deny: no permit rule matched" in result.stdout
    assert (
        "purchase-alcohol: subject.age >= 18 was false (subject.age = 16)  "
        "[policies/shop/shop.policy:" in result.stdout
    )


def test_check_allows_with_exit_code_zero_and_reasons(tmp_path: Path) -> None:
    request = write_request(
        tmp_path, subject={"sub": "u-30", "account": "acct-1", "age": 30, "country": "SE"}
    )
    result = pdp("check", "--policies", "policies", "--request", str(request))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("ALLOW")
    assert "rule.permit purchase-alcohol: u-30 is 30, buying alcohol in SE" in result.stdout


def test_check_json_output(tmp_path: Path) -> None:
    result = pdp(
        "check",
        "--policies",
        "policies",
        "--request",
        str(write_request(tmp_path)),
        "--json",
        "--explain",
        "--now",
        "2026-11-23T12:00:00Z",
    )
    assert result.returncode == 1
    document = json.loads(result.stdout)
    assert document["decision"] == "deny"
    assert document["rules"] == []
    assert document["reasons"][0]["code"] == "default.deny"
    messages = [e["message"] for e in document["explanations"]]
    assert "purchase-alcohol: subject.age >= 18 was false (subject.age = 16)" in messages
    alcohol = next(e for e in document["explanations"] if e["rule"] == "purchase-alcohol")
    assert alcohol["values"] == {"subject.age": "16"}


def test_check_reads_standard_input() -> None:
    request = json.dumps(
        {
            "subject": {"role": "admin"},
            "action": "delete",
            "resource": {"type": "Order", "id": "o-1"},
        }
    )
    result = pdp("check", "--policies", "policies/shop", "--request", "-", stdin=request)
    assert result.returncode == 0
    assert "delete-admin" in result.stdout


def test_check_errors_exit_with_two(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = pdp("check", "--policies", "policies", "--request", str(broken))
    assert result.returncode == 2
    assert "invalid JSON at line 1, column 2" in result.stderr

    result = pdp(
        "check", "--policies", "policies", "--request", str(write_request(tmp_path, action=""))
    )
    assert result.returncode == 2
    assert "invalid request: `action` must be a non-empty string" in result.stderr

    result = pdp(
        "check", "--policies", str(tmp_path / "missing"), "--request", str(write_request(tmp_path))
    )
    assert result.returncode == 2
    assert "not a directory" in result.stderr

    result = pdp(
        "check",
        "--policies",
        "policies",
        "--request",
        str(write_request(tmp_path)),
        "--now",
        "yesterday",
    )
    assert result.returncode == 2
    assert "--now: invalid datetime `yesterday`" in result.stderr


def test_lint_reports_three_different_errors_sorted_with_carets(tmp_path: Path) -> None:
    (tmp_path / "b.policy").write_text(
        "permit b-1 {\n"
        "    action read\n"
        "    resource Document\n"
        "    when subjct.age >= 18\n"
        "}\n"
        "permit b-2 {\n"
        "    action read\n"
        "    resource Document\n"
        '    when subject.ip in cidr("10.0.0.0/33")\n'
        "}\n"
    )
    (tmp_path / "a.policy").write_text(
        "permit a-1 {\n    action read\n    resource Document\n    when subject.age >= \n}\n"
    )
    result = pdp("lint", str(tmp_path))
    assert result.returncode == 1
    a, b = tmp_path / "a.policy", tmp_path / "b.policy"
    assert result.stdout == (
        f"{a}:5:1: error: unexpected `}}`; expected an expression\n"
        "    5 | }\n"
        "      | ^\n"
        f"{b}:4:10: error: unknown name `subjct`; did you mean `subject`?\n"
        "    4 |     when subjct.age >= 18\n"
        "      |          ^^^^^^\n"
        f"{b}:9:29: error: invalid CIDR range `10.0.0.0/33` "
        "('10.0.0.0/33' does not appear to be an IPv4 or IPv6 network)\n"
        '    9 |     when subject.ip in cidr("10.0.0.0/33")\n'
        "      |                             ^^^^^^^^^^^^^\n"
        "3 errors, 0 warnings\n"
    )


def test_lint_clean_and_json(tmp_path: Path) -> None:
    result = pdp("lint", "policies")
    assert result.returncode == 0
    assert result.stdout.startswith("policies: ") and result.stdout.endswith("rules, no problems\n")

    (tmp_path / "x.policy").write_text("permit x { action read resource T when zzz }\n")
    result = pdp("lint", str(tmp_path), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout) == [
        {
            "file": str(tmp_path / "x.policy"),
            "line": 1,
            "column": 40,
            "end_line": 1,
            "end_column": 43,
            "severity": "error",
            "code": "name",
            "message": "unknown name `zzz`",
        }
    ]


def test_no_command_prints_help() -> None:
    result = pdp()
    assert result.returncode == 2
    assert "usage: pdp" in result.stderr


def test_a_reader_that_goes_away_is_not_a_traceback() -> None:
    # `pdp test --json policies | head -1`: the reader is gone before pdp has written it all.
    # Here it is gone from the start, so the first write fails every time.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*PDP, "test", "--json", str(ROOT / "policies")],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr
    assert result.returncode == 141

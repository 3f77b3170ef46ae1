"""API keys on the real server: keys made the way `pdp keys create` makes them, throttled and
metered by their plan, and the usage that `pdp keys usage` reports.

The server's clock (the day of a quota) and the metering clock (the token bucket) are one test
Clock, so rate limits and quotas are exact and no test sleeps.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pdp.client import Result, api_key
from pdp.identity.api_keys import BASE62, new_api_key
from pdp.identity.keystore import KeyStore
from tests.server.conftest import (
    NO_PERMIT,
    Clock,
    Restart,
    Service,
    ServiceFactory,
    assert_no_secrets,
    refusal,
)

PDP_KEYS = (sys.executable, "-m", "pdp", "keys")
PLANS = {
    "free": {"rate": 1, "burst": 2, "daily_quota": 5},
    "pro": {"rate": 100, "burst": 100, "daily_quota": 1000},
}


@dataclass(frozen=True)
class Key:
    key_id: str
    key: str = field(repr=False)


@dataclass
class Setup:
    service: Service
    clock: Clock
    keys: KeyStore
    partner: Key
    """App partner, plan free: rate 1/s, burst 2, 5 a day."""
    insights: Key
    """App insights, plan pro."""
    revoked: Key
    """App partner, revoked before the server started."""
    cli_config: Path
    """A pdp.toml with the same [credentials] and [plans], for `pdp keys`."""


def new_key(keys: KeyStore, app: str, plan: str, clock: Clock) -> Key:
    record, key = new_api_key(keys, app, plan, clock.now())
    return Key(record.key_id, key)


def metered_by(service: Service, clock: Clock) -> Service:
    """Token buckets on the test clock: Metering takes its clock as `monotonic`."""
    metering = service.running.point.metering
    assert metering is not None
    metering.monotonic = clock.monotonic
    return service


def write_cli_config(path: Path, credentials: dict[str, str]) -> Path:
    lines = [
        "[credentials]",
        *(f"{name} = {json.dumps(value)}" for name, value in credentials.items()),
    ]
    for name, plan in PLANS.items():
        lines += ["", f"[plans.{name}]", *(f"{key} = {value}" for key, value in plan.items())]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


@pytest.fixture
def setup(
    pdp_service: ServiceFactory, credential_policies: Path, clock: Clock, tmp_path: Path
) -> Setup:
    secrets = tmp_path / "secrets"
    keys = KeyStore(secrets / "keys.json", secrets / "master.key")
    keys.ensure_master_key()
    partner = new_key(keys, "partner", "free", clock)
    insights = new_key(keys, "insights", "pro", clock)
    revoked = new_key(keys, "partner", "free", clock)
    keys.retire(revoked.key_id, "2026-11-22T09:30:00Z")
    credentials = {
        "keys_file": str(keys.keys_file),
        "master_key_file": str(keys.master_key_file),
        "usage_file": str(tmp_path / "var" / "usage.json"),
    }
    service = pdp_service(
        policy_folder=credential_policies, clock=clock.now, credentials=credentials, plans=PLANS
    )
    cli_config = write_cli_config(tmp_path / "pdp.toml", credentials)
    return Setup(metered_by(service, clock), clock, keys, partner, insights, revoked, cli_config)


def call(setup: Setup, key: str, action: str = "read") -> Result:
    return setup.service.client.check(api_key(key), action, "Catalogue", "main")


def with_checksum(body: str) -> str:
    """An API key's checksum, from the format documented in pdp/identity/api_keys.py: CRC32 of
    the rest, in base62, 6 characters, zero-padded."""
    value, digits = zlib.crc32(body.encode("ascii")), ""
    for _ in range(6):
        value, digit = divmod(value, 62)
        digits = BASE62[digit] + digits
    return body + digits


def usage_report(setup: Setup, app: str) -> dict[str, Any]:
    """`pdp keys usage --json`, run as the command."""
    completed = subprocess.run(
        [*PDP_KEYS, "usage", "--config", str(setup.cli_config), "--app", app, "--json"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def by_key(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A usage report's keys by key id (keys made in the same second come in any order)."""
    return {key.pop("key_id"): key for key in report["keys"]}


# --- the subject ---------------------------------------------------------------------------------


def test_api_key_is_allowed_and_its_plan_decides_what_it_may_do(setup: Setup) -> None:
    read = call(setup, setup.partner.key)
    export_free = call(setup, setup.partner.key, "export")
    export_pro = call(setup, setup.insights.key, "export")

    assert read.allowed
    assert read.reasons[0].message == "app partner on plan free"
    assert refusal(export_free) == NO_PERMIT
    assert export_pro.allowed
    assert export_pro.rules == ("catalogue-export-pro",)
    assert export_pro.reasons[0].message == "app insights exports on plan pro"
    records = setup.service.audit_records()
    assert [record["decision"] for record in records] == ["allow", "deny", "allow"]
    assert {record["credential"] for record in records} == {"api_key"}
    subject = records[0]["subject"]
    assert (subject["id"], subject["method"]) == ("partner", "api_key")
    assert subject["claims"]["plan"] == "free"
    assert subject["claims"]["app"] == "partner"
    assert subject["claims"]["auth"] == {"method": "api_key"}
    assert records[2]["subject"]["claims"]["plan"] == "pro"


# --- rate and quota ------------------------------------------------------------------------------


def test_rate_limit_denies_with_retry_after_then_allows_again(setup: Setup) -> None:
    assert call(setup, setup.partner.key).allowed
    assert call(setup, setup.partner.key).allowed  # the burst of 2

    throttled = call(setup, setup.partner.key)

    assert refusal(throttled) == (
        "limit.rate",
        "more than 1 requests a second (burst 2) for plan `free`; retry in 1.000 s",
    )
    assert throttled.retry_after == 1.0
    setup.clock.advance(0.5)
    half = call(setup, setup.partner.key)
    assert refusal(half)[0] == "limit.rate"
    assert half.retry_after == 0.5
    setup.clock.advance(0.5)
    assert call(setup, setup.partner.key).allowed
    # Another key has its own bucket.
    assert call(setup, setup.insights.key).allowed
    record = setup.service.audit_records()[2]
    assert record["decision"] == "deny"
    assert record["subject"]["id"] == "partner"
    assert record["reasons"] == [{"code": "limit.rate", "message": throttled.reasons[0].message}]


def test_daily_quota_denies_until_the_next_day(setup: Setup) -> None:
    for action in ["read", "read", "export", "read", "read"]:  # 5 requests, one of them denied
        call(setup, setup.partner.key, action)
        setup.clock.advance(1)

    over = call(setup, setup.partner.key)

    assert refusal(over) == (
        "limit.quota",
        "the daily quota of 5 requests for plan `free` is used up; it renews at "
        "2026-11-24T00:00:00Z",
    )
    assert over.retry_after == 12 * 3600 - 5  # the clock started at 12:00, 5 s have passed
    setup.clock.advance(over.retry_after)
    assert call(setup, setup.partner.key).allowed


# --- refused keys --------------------------------------------------------------------------------


def test_revoked_key_is_refused(setup: Setup) -> None:
    result = call(setup, setup.revoked.key)

    assert refusal(result) == (
        "authn.revoked",
        f"API key `{setup.revoked.key_id}` was revoked at 2026-11-22T09:30:00Z",
    )
    [record] = setup.service.audit_records()
    assert record["subject"] is None
    assert record["credential"] == "api_key"


def test_key_revoked_while_the_server_runs_is_refused(setup: Setup) -> None:
    assert call(setup, setup.insights.key).allowed

    # What `pdp keys revoke` does while the server runs: refused from the next request on.
    setup.keys.retire(setup.insights.key_id, "2026-11-23T12:00:00Z")

    assert refusal(call(setup, setup.insights.key)) == (
        "authn.revoked",
        f"API key `{setup.insights.key_id}` was revoked at 2026-11-23T12:00:00Z",
    )
    assert call(setup, setup.partner.key).allowed


def test_unknown_key_is_refused_like_a_wrong_secret(setup: Setup, tmp_path: Path) -> None:
    elsewhere = KeyStore(
        tmp_path / "elsewhere" / "keys.json", tmp_path / "elsewhere" / "master.key"
    )
    elsewhere.ensure_master_key()
    stranger = new_key(elsewhere, "partner", "free", setup.clock)
    # A known key id with another secret, well formed (right checksum).
    secret = setup.partner.key[18:40]
    other_secret = secret[::-1] if secret[::-1] != secret else "0" * 22
    guessed = with_checksum(f"pdpk_{setup.partner.key_id}_{other_secret}")

    results = [call(setup, stranger.key), call(setup, guessed)]

    assert [refusal(result) for result in results] == [("authn.unknown_key", "unknown API key")] * 2


@pytest.mark.parametrize(
    ("typo", "message"),
    [
        ("one character", "API key checksum does not match: the key was mistyped or cut"),
        (
            "cut short",
            "not an API key (expected 46 characters: pdpk_, a key id, `_`, a secret and a "
            "checksum)",
        ),
    ],
    ids=["one-character", "cut-short"],
)
def test_mistyped_key_is_malformed(setup: Setup, typo: str, message: str) -> None:
    key = setup.partner.key
    if typo == "one character":
        position = 25  # inside the secret
        replacement = "A" if key[position] != "A" else "B"
        mistyped = key[:position] + replacement + key[position + 1 :]
    else:
        mistyped = key[:-1]

    result = call(setup, mistyped)

    assert refusal(result) == ("authn.malformed", message)


# --- usage ---------------------------------------------------------------------------------------


def test_usage_report_counts_the_calls_and_survives_a_restart(
    setup: Setup, restart: Restart
) -> None:
    outcomes = [
        call(setup, setup.partner.key).allowed,  # allowed
        call(setup, setup.partner.key, "export").allowed,  # denied by the policy
        call(setup, setup.partner.key).allowed,  # throttled: the burst is used up
    ]
    setup.clock.advance(1)
    outcomes.append(call(setup, setup.partner.key).allowed)  # allowed
    call(setup, setup.revoked.key)  # not verified: not counted
    call(setup, setup.insights.key)  # another app
    assert outcomes == [True, False, False, True]

    # Stopped as on SIGTERM: usage is written to the usage file.
    service = metered_by(restart(setup.service, clock=setup.clock.now), setup.clock)
    first = usage_report(setup, "partner")
    setup.service = service
    setup.clock.advance(1)
    assert call(setup, setup.partner.key).allowed
    service.running.stop(0)
    second = usage_report(setup, "partner")

    day = "2026-11-23"
    counts = {"allowed": 2, "denied": 1, "throttled": 1, "total": 4}
    nothing = {"allowed": 0, "denied": 0, "throttled": 0, "total": 0}
    assert (first["app"], first["since"], first["total"]) == ("partner", None, counts)
    assert by_key(first) == {
        setup.partner.key_id: {
            "kind": "api_key",
            "days": [{"day": day, **counts}],
            "total": counts,
        },
        setup.revoked.key_id: {"kind": "api_key", "days": [], "total": nothing},
    }
    after = {**counts, "allowed": 3, "total": 5}
    assert by_key(second)[setup.partner.key_id]["days"] == [{"day": day, **after}]
    assert second["total"] == after
    assert usage_report(setup, "insights")["total"] == {**nothing, "allowed": 1, "total": 1}


# --- secrets -------------------------------------------------------------------------------------


def test_no_api_key_reaches_the_audit_log_the_log_or_the_files(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = setup.partner.key
    mistyped = key[:30] + ("x" if key[30] != "x" else "y") + key[31:]
    for credential in [key, key, key, setup.insights.key, setup.revoked.key, mistyped]:
        call(setup, credential)
    call(setup, with_checksum(f"pdpk_{setup.partner.key_id}_{'Z' * 22}"))
    setup.service.running.stop(0)  # writes the usage file

    keys = [setup.partner.key, setup.insights.key, setup.revoked.key, mistyped]
    parts = [k[18:40] for k in keys]  # the secret part alone
    master = setup.keys.master_key_file.read_text("ascii").strip()
    files = [setup.keys.keys_file, setup.service.config.credentials.usage_file]
    assert len(setup.service.audit_records()) == 7
    assert_no_secrets(setup.service, caplog.text, [*keys, *parts, master], also=files)

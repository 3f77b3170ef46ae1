"""HMAC-signed requests on the real server: keys made the way `pdp keys create --kind hmac` makes
them, requests signed with pdp.client.sign_request, verified against the server's clock.

The server's clock is a test Clock: timestamps are exact, and a window edge is a window edge.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pdp.client import Result, SignedRequest, api_key, hmac, sign_request
from pdp.identity.api_keys import new_api_key
from pdp.identity.hmac_signing import new_hmac_key
from pdp.identity.keystore import KeyStore
from pdp.signing import body_digest
from tests.server.conftest import (
    NO_PERMIT,
    Clock,
    Service,
    ServiceFactory,
    assert_no_secrets,
    refusal,
)

WINDOW = 300
BODY = b'{"event":"order.paid","order":"o-1"}'


@dataclass(frozen=True)
class HmacKey:
    key_id: str
    secret: str = dataclasses.field(repr=False)


@dataclass(frozen=True)
class Setup:
    service: Service
    clock: Clock
    keys: KeyStore
    """The keys file as `pdp keys` opens it: a store of its own, beside the server's."""
    billing: HmacKey
    crm: HmacKey
    retired: HmacKey
    """A key of billing retired before the server started."""
    billing_api_key: str = dataclasses.field(repr=False)
    """An API key of billing: the same app, another credential kind."""


def new_key(keys: KeyStore, app: str, clock: Clock) -> HmacKey:
    record, secret = new_hmac_key(keys, app, clock.now())
    return HmacKey(record.key_id, secret)


@pytest.fixture
def setup(
    pdp_service: ServiceFactory, credential_policies: Path, clock: Clock, tmp_path: Path
) -> Setup:
    secrets = tmp_path / "secrets"
    keys = KeyStore(secrets / "keys.json", secrets / "master.key")
    retired = new_key(keys, "billing", clock)
    keys.retire(retired.key_id, "2026-11-20T08:00:00Z")
    billing, crm = new_key(keys, "billing", clock), new_key(keys, "crm", clock)
    _, billing_api_key = new_api_key(keys, "billing", "free", clock.now())
    service = pdp_service(
        policy_folder=credential_policies,
        clock=clock.now,
        credentials={
            "keys_file": str(keys.keys_file),
            "master_key_file": str(keys.master_key_file),
            "hmac_window_seconds": WINDOW,
        },
        plans={"free": {"rate": 10, "burst": 10, "daily_quota": 100}},
    )
    return Setup(service, clock, keys, billing, crm, retired, billing_api_key)


def signed(
    key: HmacKey,
    clock: Clock,
    *,
    timestamp: int | None = None,
    nonce: str | None = None,
    path: str = "/webhooks/wh-1",
) -> SignedRequest:
    return sign_request(
        key_id=key.key_id,
        secret=key.secret,
        method="POST",
        path=path,
        query="attempt=1&format=json",
        headers={"Host": "hooks.example.org", "Content-Type": "application/json"},
        body=BODY,
        timestamp=clock.timestamp() if timestamp is None else timestamp,
        nonce=nonce,
    )


def deliver(setup: Setup, request: SignedRequest, owner: str = "billing") -> Result:
    return setup.service.client.check(
        hmac(request), "deliver", "Webhook", "wh-1", attributes={"owner_app": owner}
    )


# --- allowed -------------------------------------------------------------------------------------


def test_signed_request_of_the_owning_app_is_allowed(setup: Setup) -> None:
    result = deliver(setup, signed(setup.billing, setup.clock))

    assert result.allowed
    assert result.rules == ("webhook-deliver-signed",)
    assert result.reasons[0].message == "billing delivers webhook wh-1"
    [record] = setup.service.audit_records()
    assert record["decision"] == "allow"
    assert record["credential"] == "hmac"
    subject = record["subject"]
    assert (subject["id"], subject["method"]) == ("billing", "hmac")
    assert subject["claims"]["app"] == "billing"
    assert subject["claims"]["auth"] == {"method": "hmac"}


def test_signed_request_of_another_app_is_denied_by_the_policy(setup: Setup) -> None:
    result = deliver(setup, signed(setup.crm, setup.clock))

    assert refusal(result) == NO_PERMIT
    [record] = setup.service.audit_records()
    assert record["subject"]["claims"]["app"] == "crm"
    # The same signed app, for a webhook it owns:
    assert deliver(setup, signed(setup.crm, setup.clock), owner="crm").allowed


def test_api_key_of_the_owning_app_is_not_a_signed_request(setup: Setup) -> None:
    result = setup.service.client.check(
        api_key(setup.billing_api_key),
        "deliver",
        "Webhook",
        "wh-1",
        attributes={"owner_app": "billing"},
    )

    assert refusal(result) == NO_PERMIT
    [record] = setup.service.audit_records()
    assert record["subject"]["claims"]["app"] == "billing"
    assert record["subject"]["claims"]["auth"] == {"method": "api_key"}


# --- replays and time ----------------------------------------------------------------------------


def test_replayed_request_is_refused(setup: Setup) -> None:
    request = signed(setup.billing, setup.clock)
    assert deliver(setup, request).allowed

    result = deliver(setup, request)

    assert refusal(result) == (
        "authn.replay",
        "signature was already used within the window (replay)",
    )
    records = setup.service.audit_records()
    assert records[-1]["decision"] == "deny"
    assert records[-1]["subject"] is None
    assert records[-1]["reasons"] == [
        {"code": "authn.replay", "message": "signature was already used within the window (replay)"}
    ]


def test_replay_is_refused_until_the_window_has_passed_then_as_too_old(setup: Setup) -> None:
    request = signed(setup.billing, setup.clock)
    assert deliver(setup, request).allowed

    # One second before the edge: still remembered. (At exactly timestamp + window the
    # timestamp is still accepted but the replay cache has already forgotten the signature:
    # reported, not asserted here.)
    setup.clock.advance(WINDOW - 1)
    assert refusal(deliver(setup, request))[0] == "authn.replay"
    setup.clock.advance(2)
    assert refusal(deliver(setup, request))[0] == "authn.timestamp"


def test_reused_nonce_is_refused_even_with_another_signature(setup: Setup) -> None:
    first = signed(setup.billing, setup.clock, nonce="n-0001")
    second = signed(setup.billing, setup.clock, nonce="n-0001", path="/webhooks/wh-1/retry")
    assert deliver(setup, first).allowed

    result = deliver(setup, second)

    assert refusal(result) == ("authn.replay", "nonce was already used within the window (replay)")


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        (-WINDOW, None),
        (WINDOW, None),
        (
            -WINDOW - 1,
            "signed request is too old: signed 301 seconds ago, outside the window of 300 seconds",
        ),
        (
            WINDOW + 1,
            "signed request is too far ahead: dated 301 seconds in the future, outside the "
            "window of 300 seconds",
        ),
        (
            -86_400,
            "signed request is too old: signed 86400 seconds ago, outside the window of 300 "
            "seconds",
        ),
    ],
    ids=["oldest-accepted", "newest-accepted", "too-old", "too-far-ahead", "a-day-old"],
)
def test_timestamp_must_be_within_the_window(
    setup: Setup, offset: int, expected: str | None
) -> None:
    request = signed(setup.billing, setup.clock, timestamp=setup.clock.timestamp() + offset)

    result = deliver(setup, request)

    if expected is None:
        assert result.allowed
    else:
        assert refusal(result) == ("authn.timestamp", expected)


# --- forgeries -----------------------------------------------------------------------------------


def _tamper(**changes: Any) -> Callable[[SignedRequest], SignedRequest]:
    return lambda request: dataclasses.replace(request, **changes)


TAMPERED: dict[str, Callable[[SignedRequest], SignedRequest]] = {
    "body": _tamper(body_sha256=body_digest(b'{"event":"order.refunded","order":"o-1"}')),
    "path": _tamper(path="/webhooks/wh-2"),
    "method": _tamper(method="PUT"),
    "query": _tamper(query="attempt=1&format=xml"),
    "added query parameter": _tamper(query="attempt=1&format=json&debug=1"),
    "host": _tamper(headers={"host": "hooks.attacker.example", "content-type": "application/json"}),
    "header left out": _tamper(headers={"host": "hooks.example.org"}),
    "timestamp": lambda request: dataclasses.replace(request, timestamp=request.timestamp - 1),
    "nonce": _tamper(nonce="another-nonce"),
}


@pytest.mark.parametrize("part", list(TAMPERED))
def test_tampered_request_fails_the_signature_check(setup: Setup, part: str) -> None:
    genuine = signed(setup.billing, setup.clock)
    tampered = TAMPERED[part](genuine)

    result = deliver(setup, tampered)

    assert refusal(result) == ("authn.bad_signature", "signature does not match the request")
    # A forgery is not remembered: the genuine request still goes through, once.
    assert deliver(setup, genuine).allowed
    assert refusal(deliver(setup, genuine))[0] == "authn.replay"


def test_signature_made_with_another_apps_secret_fails(setup: Setup) -> None:
    forged = sign_request(
        key_id=setup.billing.key_id,
        secret=setup.crm.secret,
        method="POST",
        path="/webhooks/wh-1",
        headers={"host": "hooks.example.org"},
        timestamp=setup.clock.timestamp(),
    )

    result = deliver(setup, forged)

    assert refusal(result) == ("authn.bad_signature", "signature does not match the request")


# --- keys ----------------------------------------------------------------------------------------


def test_unknown_key_id_is_refused(setup: Setup, tmp_path: Path) -> None:
    # A real key of another deployment (another keys file, another master key).
    elsewhere = KeyStore(
        tmp_path / "elsewhere" / "keys.json", tmp_path / "elsewhere" / "master.key"
    )
    stranger = new_key(elsewhere, "billing", setup.clock)

    result = deliver(setup, signed(stranger, setup.clock))

    assert refusal(result) == ("authn.unknown_key", f"unknown HMAC key `{stranger.key_id}`")


def test_retired_key_is_refused(setup: Setup) -> None:
    result = deliver(setup, signed(setup.retired, setup.clock))

    assert refusal(result) == (
        "authn.revoked",
        f"HMAC key `{setup.retired.key_id}` was retired at 2026-11-20T08:00:00Z",
    )


def test_rotation_two_active_keys_then_only_the_new_one(setup: Setup) -> None:
    assert deliver(setup, signed(setup.billing, setup.clock)).allowed

    # What `pdp keys create --kind hmac` does while the server runs: the successor works at once,
    # and so does the current key.
    successor = new_key(setup.keys, "billing", setup.clock)
    assert deliver(setup, signed(successor, setup.clock)).allowed
    assert deliver(setup, signed(setup.billing, setup.clock)).allowed

    # What `pdp keys revoke` does to the old key: refused from the next request on.
    setup.keys.retire(setup.billing.key_id, "2026-11-23T12:00:00Z")

    assert refusal(deliver(setup, signed(setup.billing, setup.clock))) == (
        "authn.revoked",
        f"HMAC key `{setup.billing.key_id}` was retired at 2026-11-23T12:00:00Z",
    )
    assert deliver(setup, signed(successor, setup.clock)).allowed


# --- secrets -------------------------------------------------------------------------------------


def test_no_secret_or_signature_reaches_the_audit_log_or_the_log(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    clock = setup.clock
    requests = [
        signed(setup.billing, clock),
        signed(setup.crm, clock),
        signed(setup.retired, clock),
        signed(setup.billing, clock, timestamp=clock.timestamp() - WINDOW - 1),
        dataclasses.replace(signed(setup.billing, clock), path="/other"),
    ]
    for request in [*requests, requests[0]]:  # the last one a replay
        deliver(setup, request)

    keys_file = setup.keys.keys_file
    master = setup.keys.master_key_file.read_text("ascii").strip()
    secrets = [key.secret for key in (setup.billing, setup.crm, setup.retired)]
    secrets += [request.signature for request in requests]
    assert len(setup.service.audit_records()) == len(requests) + 1
    assert_no_secrets(setup.service, caplog.text, [*secrets, master], also=[keys_file])

"""HMAC-signed requests: real keys files and master keys in tmp_path, real HMAC, MemoryState.

Every way a signed request can be refused, with its exact reason code, the worked example of
docs/hmac.md checked byte for byte, and proof that no message, log line or repr carries the
signature, a secret or the master key."""

from __future__ import annotations

import ast
import base64
import dataclasses
import hashlib
import hmac
import inspect
import json
import logging
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pdp.engine.values import from_json
from pdp.identity import errors
from pdp.identity.credentials import HmacSignature
from pdp.identity.errors import AuthenticationError
from pdp.identity.hmac_signing import (
    HMAC_SECRET_PURPOSE,
    HmacVerifier,
    hmac_secret,
    new_hmac_key,
)
from pdp.identity.keystore import KeyRecord, KeyStore
from pdp.signing import (
    SignedRequest,
    SigningError,
    body_digest,
    canonical_query,
    canonical_string,
    sign,
    sign_request,
)
from pdp.state import MemoryState
from tests.helpers import NOW

DOC = Path(__file__).resolve().parents[2] / "docs" / "hmac.md"
WINDOW = 300
SIGNED_AT = int(NOW.timestamp())
BODY = b'{"sku":"p-1","quantity":2}'


class RecordingState(MemoryState):
    """The real MemoryState, remembering what it was asked (to inspect the replay keys)."""

    def __init__(self) -> None:
        super().__init__()
        self.sightings: list[tuple[str, float, float]] = []

    def first_sighting(self, token: str, expires: float, now: float) -> bool:
        self.sightings.append((token, expires, now))
        return super().first_sighting(token, expires, now)


class BrokenState(MemoryState):
    """A replay cache that fails, as a shared store can."""

    def first_sighting(self, token: str, expires: float, now: float) -> bool:
        raise ConnectionError("replay store unreachable")


@dataclass
class Setup:
    tmp_path: Path
    keys: KeyStore
    state: RecordingState
    verifier: HmacVerifier
    record: KeyRecord
    secret: str

    def sign(self, secret: str | bytes | None = None, **changes: Any) -> SignedRequest:
        """A request signed at NOW with this setup's key (or `secret`), parts replaced."""
        fields: dict[str, Any] = {
            "key_id": self.record.key_id,
            "method": "POST",
            "path": "/orders/o-1/items",
            "query": "limit=10&expand",
            "headers": {"host": "shop.example.com", "content-type": "application/json"},
            "body": BODY,
            "timestamp": SIGNED_AT,
        }
        fields.update(changes)
        return sign_request(secret=self.secret if secret is None else secret, **fields)

    def verify(self, credential: SignedRequest | HmacSignature, now: datetime = NOW) -> Any:
        return self.verifier.verify(as_credential(credential), now)

    def refuse(
        self, credential: SignedRequest | HmacSignature, now: datetime = NOW
    ) -> AuthenticationError:
        with pytest.raises(AuthenticationError) as caught:
            self.verify(credential, now)
        return caught.value


def as_credential(signed: SignedRequest | HmacSignature, **changes: Any) -> HmacSignature:
    """What the service passes to pdp: the signed parts, some perhaps changed on the way."""
    if isinstance(signed, HmacSignature):
        return dataclasses.replace(signed, **changes)
    return HmacSignature(**{**dataclasses.asdict(signed), **changes})


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    keys = KeyStore(tmp_path / "secrets" / "keys.json", tmp_path / "secrets" / "master.key")
    record, secret = new_hmac_key(keys, "shop", NOW - timedelta(days=1), {"team": "orders"})
    state = RecordingState()
    return Setup(tmp_path, keys, state, HmacVerifier(keys, state, WINDOW), record, secret)


# --- allowed --------------------------------------------------------------------------------------


def test_a_valid_request_gives_the_applications_subject(setup: Setup) -> None:
    subject = setup.verify(setup.sign())
    app, key_id = "shop", setup.record.key_id
    assert subject.attributes == from_json(
        {"sub": app, "app": app, "key_id": key_id, "team": "orders", "auth": {"method": "hmac"}}
    )
    assert (subject.method, subject.id, subject.issuer, subject.expires) == ("hmac", app, "", None)


def test_the_canonical_form_forgives_what_it_documents(setup: Setup) -> None:
    signed = setup.sign(
        method="post",
        query="b=2&a=1&a=0",
        headers={"Host": "shop.example.com", "X-Request-Id": "  r-42\t"},
    )
    # Reordered query, upper-case digest, other header-name case, untrimmed values: the same
    # canonical string.
    changed = as_credential(
        signed,
        method="POST",
        query="a=0&b=2&a=1",
        headers={"HOST": "shop.example.com", "x-request-id": "r-42"},
        body_sha256=signed.body_sha256.upper(),
    )
    assert setup.verify(changed).id == "shop"


def test_the_edges_of_the_window_are_inside_it(setup: Setup) -> None:
    assert setup.verify(setup.sign(timestamp=SIGNED_AT - WINDOW)).id == "shop"
    assert setup.verify(setup.sign(timestamp=SIGNED_AT + WINDOW)).id == "shop"


def test_the_one_call_helper_signs_what_the_verifier_accepts(setup: Setup) -> None:
    before = int(time.time())
    signed = sign_request(
        key_id=setup.record.key_id,
        secret=setup.secret,
        method="GET",
        path="/orders",
        headers={"Host": "shop.example.com"},
    )
    after = int(time.time())
    assert before <= signed.timestamp <= after
    assert re.fullmatch(r"[0-9a-f]{32}", signed.nonce)
    assert signed.headers == {"host": "shop.example.com"}
    assert signed.body_sha256 == hashlib.sha256(b"").hexdigest()
    now = datetime.fromtimestamp(signed.timestamp, NOW.tzinfo)
    assert setup.verify(signed, now).attributes["key_id"] == setup.record.key_id
    # Its fields are exactly the proto message's (the lead builds pb.HmacSignature from them).
    proto_fields = [f.name for f in dataclasses.fields(HmacSignature)]
    assert [f.name for f in dataclasses.fields(SignedRequest)] == proto_fields


def test_the_secret_as_text_or_bytes_is_the_same_key(setup: Setup) -> None:
    as_text = setup.sign(nonce="n-1")
    as_bytes = setup.sign(secret=setup.secret.encode("ascii"), nonce="n-1")
    assert as_text.signature == as_bytes.signature
    assert (
        sign_request(
            key_id="k", secret="a", method="GET", path="/", headers={"host": "h"}, nonce=""
        ).nonce
        == ""
    )


def test_every_call_gets_a_new_nonce(setup: Setup) -> None:
    nonces = {setup.sign(nonce=None).nonce for _ in range(20)}
    assert len(nonces) == 20


# --- replay ---------------------------------------------------------------------------------------


def test_the_same_signature_twice_is_a_replay(setup: Setup) -> None:
    signed = setup.sign()
    setup.verify(signed)
    error = setup.refuse(signed, NOW + timedelta(seconds=10))
    assert (error.code, error.message) == (
        errors.REPLAY,
        "signature was already used within the window (replay)",
    )


def test_a_replay_at_the_last_instant_of_the_window_is_refused(setup: Setup) -> None:
    signed = setup.sign()
    setup.verify(signed)
    assert setup.refuse(signed, NOW + timedelta(seconds=WINDOW)).code == errors.REPLAY
    # One second later the timestamp itself is too old.
    assert setup.refuse(signed, NOW + timedelta(seconds=WINDOW + 1)).code == errors.TIMESTAMP


def test_the_same_nonce_with_a_new_signature_is_a_replay(setup: Setup) -> None:
    setup.verify(setup.sign(nonce="n-1"))
    again = setup.sign(nonce="n-1", path="/orders/o-2/items")
    error = setup.refuse(again)
    assert (error.code, error.message) == (
        errors.REPLAY,
        "nonce was already used within the window (replay)",
    )
    assert setup.verify(setup.sign(nonce="n-2", path="/orders/o-2/items")).id == "shop"


def test_without_a_nonce_only_the_signature_is_remembered(setup: Setup) -> None:
    first = setup.sign(nonce="")
    setup.verify(first)
    assert setup.refuse(first).code == errors.REPLAY
    # The same request a second later has a new signature.
    later = setup.sign(nonce="", timestamp=SIGNED_AT + 1)
    assert setup.verify(later, NOW + timedelta(seconds=1)).id == "shop"


def test_a_refused_request_is_not_remembered(setup: Setup) -> None:
    signed = setup.sign(nonce="n-1")
    tampered = as_credential(signed, path="/admin")
    assert setup.refuse(tampered).code == errors.BAD_SIGNATURE
    assert setup.refuse(as_credential(signed, timestamp=SIGNED_AT - 999)).code == errors.TIMESTAMP
    assert setup.state.sightings == []
    assert setup.verify(signed).id == "shop"


def test_replay_keys_are_scoped_and_cannot_collide(setup: Setup) -> None:
    created = "2026-11-22T12:00:00Z"
    for key_id in ("k:1", "k"):
        setup.keys.add(KeyRecord(key_id=key_id, kind="hmac", app="other", created=created))
    # ("k:1", nonce "2") and ("k", nonce "1:2") would collide under a naive "key:nonce".
    first = setup.sign(key_id="k:1", secret=hmac_secret(setup.keys, "k:1"), nonce="2")
    second = setup.sign(key_id="k", secret=hmac_secret(setup.keys, "k"), nonce="1:2")
    setup.verify(first)
    setup.verify(second)
    # The same nonce under another key is that key's business.
    setup.verify(setup.sign(nonce="2"))
    tokens = [token for token, _, _ in setup.state.sightings]
    assert len(tokens) == len(set(tokens)) == 6
    assert sum(t.startswith("hmac.signature:") for t in tokens) == 3
    assert sum(t.startswith("hmac.nonce:") for t in tokens) == 3
    for _, expires, now in setup.state.sightings:
        assert (expires, now) == (SIGNED_AT + WINDOW + 1, NOW.timestamp())


def test_a_failing_replay_cache_fails_closed(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    verifier = HmacVerifier(setup.keys, BrokenState(), WINDOW)
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(as_credential(setup.sign()), NOW)
    assert (caught.value.code, caught.value.message) == (
        errors.INVALID,
        "signed request could not be verified: the replay cache is unavailable",
    )
    assert "replay cache unavailable: ConnectionError" in caplog.text


# --- time -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signed_at", "now", "message"),
    [
        (
            SIGNED_AT - WINDOW - 1,
            NOW,
            "signed request is too old: signed 301 seconds ago, outside the window of 300 seconds",
        ),
        (
            SIGNED_AT - WINDOW,
            NOW + timedelta(milliseconds=500),
            "signed request is too old: signed 301 seconds ago, outside the window of 300 seconds",
        ),
        (
            SIGNED_AT - 3600,
            NOW,
            "signed request is too old: signed 3600 seconds ago, outside the window of 300 seconds",
        ),
        (
            SIGNED_AT + WINDOW + 1,
            NOW,
            "signed request is too far ahead: dated 301 seconds in the future, outside the window "
            "of 300 seconds",
        ),
        (
            SIGNED_AT + 86400,
            NOW,
            "signed request is too far ahead: dated 86400 seconds in the future, outside the "
            "window of 300 seconds",
        ),
    ],
)
def test_a_timestamp_outside_the_window_is_refused(
    setup: Setup, signed_at: int, now: datetime, message: str
) -> None:
    error = setup.refuse(setup.sign(timestamp=signed_at), now)
    assert (error.code, error.message) == (errors.TIMESTAMP, message)


def test_a_naive_now_fails_closed(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    error = setup.refuse(setup.sign(), NOW.replace(tzinfo=None))
    assert error.code == errors.INVALID
    assert "timezone-aware" in caplog.text


def test_the_window_must_be_positive(setup: Setup) -> None:
    with pytest.raises(ValueError, match="positive"):
        HmacVerifier(setup.keys, MemoryState(), 0)


# --- tampering ------------------------------------------------------------------------------------


def _tamper_cases() -> Iterator[Any]:
    yield pytest.param({"body_sha256": body_digest(BODY + b" ")}, id="body")
    yield pytest.param({"path": "/orders/o-2/items"}, id="path")
    yield pytest.param({"path": "/orders/o-1/items/"}, id="path-trailing-slash")
    yield pytest.param({"path": "/orders/o-1/./items"}, id="path-dot-segment")
    yield pytest.param({"path": "/orders/o%2D1/items"}, id="path-percent-encoded")
    yield pytest.param({"method": "PUT"}, id="method")
    yield pytest.param({"query": "limit=11&expand"}, id="query-value")
    yield pytest.param({"query": "limit=10&expand="}, id="query-a-parameter-gained-an-equals")
    yield pytest.param({"query": "limit=10"}, id="query-parameter-removed")
    yield pytest.param({"query": "limit=%31%30&expand"}, id="query-percent-encoded")
    yield pytest.param(
        {"headers": {"host": "shop.example.com", "content-type": "text/plain"}},
        id="signed-header-value",
    )
    yield pytest.param(
        {"headers": {"host": "evil.example.com", "content-type": "application/json"}},
        id="host",
    )
    yield pytest.param(
        {
            "headers": {
                "host": "shop.example.com",
                "content-type": "application/json",
                "x-extra": "added after signing",
            }
        },
        id="header-added",
    )
    yield pytest.param({"headers": {"host": "shop.example.com"}}, id="signed-header-removed")
    yield pytest.param({"timestamp": SIGNED_AT + 1}, id="timestamp")
    yield pytest.param({"nonce": "n-2"}, id="nonce")


@pytest.mark.parametrize("changes", list(_tamper_cases()))
def test_a_changed_part_breaks_the_signature(setup: Setup, changes: dict[str, Any]) -> None:
    signed = setup.sign(nonce="n-1")
    error = setup.refuse(as_credential(signed, **changes))
    assert (error.code, error.message) == (
        errors.BAD_SIGNATURE,
        "signature does not match the request",
    )
    # The untouched request still verifies: the refusal was not a replay side effect.
    assert setup.verify(signed).id == "shop"


def test_a_flipped_signature_bit_is_a_bad_signature(setup: Setup) -> None:
    signed = setup.sign()
    raw = bytearray(base64.urlsafe_b64decode(signed.signature + "="))
    raw[0] ^= 1
    forged = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    assert setup.refuse(as_credential(signed, signature=forged)).code == errors.BAD_SIGNATURE


def test_a_key_id_of_another_key_is_a_bad_signature(setup: Setup) -> None:
    other, _ = new_hmac_key(setup.keys, "billing", NOW)
    # Signed with shop's secret, presented under billing's key id.
    error = setup.refuse(setup.sign(key_id=other.key_id))
    assert error.code == errors.BAD_SIGNATURE


def test_an_unknown_key_id(setup: Setup) -> None:
    error = setup.refuse(setup.sign(key_id="hk_0000000000000000000a"))
    assert (error.code, error.message) == (
        errors.UNKNOWN_KEY,
        "unknown HMAC key `hk_0000000000000000000a`",
    )


def test_an_api_key_id_is_not_an_hmac_key(setup: Setup) -> None:
    setup.keys.add(
        KeyRecord(key_id="4fT9xQ2LmZ8a", kind="api_key", app="shop", created="2026-11-22T12:00:00Z")
    )
    # Even with the secret pdp would derive for that id, it is not an HMAC key.
    forged = setup.sign(key_id="4fT9xQ2LmZ8a", secret=hmac_secret(setup.keys, "4fT9xQ2LmZ8a"))
    assert setup.refuse(forged).code == errors.UNKNOWN_KEY


def test_a_retired_key_is_revoked(setup: Setup) -> None:
    setup.keys.retire(setup.record.key_id, "2026-11-23T11:00:00Z")
    error = setup.refuse(setup.sign())
    assert (error.code, error.message) == (
        errors.REVOKED,
        f"HMAC key `{setup.record.key_id}` was retired at 2026-11-23T11:00:00Z",
    )


def test_rotation_two_active_keys_then_retire_the_old_one(setup: Setup) -> None:
    new_record, new_secret = new_hmac_key(setup.keys, "shop", NOW)
    assert new_record.key_id != setup.record.key_id and new_secret != setup.secret
    old = setup.sign(nonce="old-1")
    new = setup.sign(key_id=new_record.key_id, secret=new_secret, nonce="new-1")
    assert setup.verify(old).attributes["key_id"] == setup.record.key_id
    assert setup.verify(new).attributes["key_id"] == new_record.key_id
    # Each key verifies only with its own secret.
    crossed = setup.sign(key_id=new_record.key_id, nonce="crossed")
    assert setup.refuse(crossed).code == errors.BAD_SIGNATURE

    setup.keys.retire(setup.record.key_id, "2026-11-23T12:00:00Z")
    assert setup.refuse(setup.sign(nonce="old-2")).code == errors.REVOKED
    newer = setup.sign(key_id=new_record.key_id, secret=new_secret, nonce="new-2")
    subject = setup.verify(newer)
    assert (subject.id, subject.attributes["key_id"]) == ("shop", new_record.key_id)


def test_an_app_has_at_most_two_active_keys(setup: Setup) -> None:
    second, _ = new_hmac_key(setup.keys, "shop", NOW)
    with pytest.raises(ValueError) as refused:
        new_hmac_key(setup.keys, "shop", NOW)
    active = ", ".join(sorted([setup.record.key_id, second.key_id]))
    assert str(refused.value) == (
        f"app `shop` already has 2 active HMAC keys ({active}); "
        "retire the old one first (pdp keys revoke KEY_ID)"
    )
    assert len([r for r in setup.keys.records() if r.app == "shop"]) == 2
    # Another app is not affected, and retiring one makes room again.
    new_hmac_key(setup.keys, "billing", NOW)
    setup.keys.retire(setup.record.key_id, "2026-11-23T12:00:00Z")
    third, _ = new_hmac_key(setup.keys, "shop", NOW)
    assert third.active


def test_pdp_attributes_win_over_a_hand_edited_keys_file(setup: Setup) -> None:
    document = json.loads(setup.keys.keys_file.read_text())
    document["keys"][0]["attributes"] = {"sub": "mallory", "auth": {"method": "jwt"}, "tier": 2}
    setup.keys.keys_file.write_text(json.dumps(document))
    keys = KeyStore(setup.keys.keys_file, setup.keys.master_key_file)
    subject = HmacVerifier(keys, MemoryState(), WINDOW).verify(as_credential(setup.sign()), NOW)
    assert subject.attributes["sub"] == "shop"
    assert subject.attributes["auth"] == {"method": "hmac"}
    assert subject.attributes["tier"] == 2


def test_unusable_key_attributes_are_invalid(setup: Setup) -> None:
    document = json.loads(setup.keys.keys_file.read_text())
    document["keys"][0]["attributes"] = {"tags": ["a", None]}
    setup.keys.keys_file.write_text(json.dumps(document))
    keys = KeyStore(setup.keys.keys_file, setup.keys.master_key_file)
    with pytest.raises(AuthenticationError) as caught:
        HmacVerifier(keys, MemoryState(), WINDOW).verify(as_credential(setup.sign()), NOW)
    assert caught.value.code == errors.INVALID
    assert "has attributes that cannot be used" in caught.value.message


def test_a_missing_master_key_fails_closed(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    setup.keys.master_key_file.unlink()
    keys = KeyStore(setup.keys.keys_file, setup.keys.master_key_file)
    with pytest.raises(AuthenticationError) as caught:
        HmacVerifier(keys, MemoryState(), WINDOW).verify(as_credential(setup.sign()), NOW)
    assert (caught.value.code, caught.value.message) == (
        errors.INVALID,
        "signed request could not be verified: the key store is unavailable",
    )
    assert "master.key: missing" in caplog.text
    assert caught.value.__context__ is None and caught.value.__cause__ is None


# --- malformed ------------------------------------------------------------------------------------


def _malformed_cases() -> Iterator[Any]:
    def param(changes: dict[str, Any], detail: str, name: str) -> Any:
        return pytest.param(changes, detail, id=name)

    digest = "the body digest must be 64 hexadecimal characters (SHA-256)"
    signature = "the signature is not base64url of an HMAC-SHA256 digest"
    yield param({"body_sha256": "abc"}, digest, "digest-short")
    yield param({"body_sha256": "g" * 64}, digest, "digest-not-hex")
    yield param({"body_sha256": body_digest(BODY) + "0"}, digest, "digest-long")
    yield param({"body_sha256": "٠" * 64}, digest, "digest-arabic-digits")
    yield param({"signature": "not base64!"}, signature, "signature-garbage")
    yield param({"signature": ""}, signature, "signature-empty")
    yield param({"signature": "A" * 42}, signature, "signature-short")
    yield param({"signature": "A" * 43 + "="}, signature, "signature-padded")
    yield param({"signature": "A" * 42 + "B"}, signature, "signature-non-canonical")
    yield param({"signature": "é" * 43}, signature, "signature-non-ascii")
    yield param({"headers": {"content-type": "x"}}, "the `host` header must be signed", "no-host")
    yield param(
        {"headers": {"host": "a", "Host": "b"}},
        "header `host` is given twice (names ignore case)",
        "host-twice",
    )
    yield param(
        {"headers": {"host": "a", "x-a": "1\nx-b:2"}},
        "header `x-a` contains a control character",
        "header-line-feed",
    )
    yield param(
        {"headers": {"host": "a", "x a": "1"}},
        "a header name is not a valid HTTP field name",
        "header-name-space",
    )
    yield param(
        {"headers": {"host": "a", **{f"x-{n}": "1" for n in range(64)}}},
        "at most 64 headers can be signed",
        "too-many-headers",
    )
    yield param(
        {"key_id": ""},
        "the key id must be 1 to 128 printable ASCII characters without spaces",
        "key-id-empty",
    )
    yield param(
        {"nonce": "a b"},
        "the nonce must be 1 to 128 printable ASCII characters without spaces",
        "nonce-space",
    )
    yield param(
        {"nonce": "n\n1"},
        "the nonce must be 1 to 128 printable ASCII characters without spaces",
        "nonce-line-feed",
    )
    yield param(
        {"path": "orders"},
        "the path must start with `/` and have at most 8192 characters",
        "path-relative",
    )
    yield param(
        {"path": "/orders?a=1"},
        "the path contains a space, a control character, `?` or `#`",
        "path-with-query",
    )
    yield param(
        {"path": "/" + "a" * 8192},
        "the path must start with `/` and have at most 8192 characters",
        "path-long",
    )
    yield param({"query": "?a=1"}, "the query is given without its leading `?`", "query-mark")
    yield param(
        {"query": "a=1\nb"},
        "the query contains a space, a control character or `#`",
        "query-line-feed",
    )
    yield param(
        {"method": "GET /"},
        "the method must be an HTTP method name",
        "method-not-a-token",
    )
    yield param(
        {"timestamp": -1},
        "the timestamp must be a whole number of seconds since 1970",
        "timestamp-negative",
    )
    yield param(
        {"timestamp": True},
        "the timestamp must be a whole number of seconds since 1970",
        "timestamp-boolean",
    )


@pytest.mark.parametrize(("changes", "detail"), list(_malformed_cases()))
def test_a_malformed_part_is_refused(setup: Setup, changes: dict[str, Any], detail: str) -> None:
    error = setup.refuse(as_credential(setup.sign(), **changes))
    assert (error.code, error.message) == (
        errors.MALFORMED,
        f"signed request is malformed: {detail}",
    )


def test_the_helpers_refuse_to_sign_what_pdp_would_refuse(setup: Setup) -> None:
    with pytest.raises(SigningError, match="`host` header must be signed"):
        setup.sign(headers={"content-type": "application/json"})
    with pytest.raises(SigningError, match="given twice"):
        setup.sign(headers={"host": "a", "HOST": "b"})
    with pytest.raises(SigningError, match="control character"):
        setup.sign(headers={"host": "a\r\nx-injected: 1"})
    with pytest.raises(SigningError, match="path"):
        setup.sign(path="/a b")


# --- the parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "canonical"),
    [
        ("", ""),
        ("b=2&a=1", "a=1&b=2"),
        ("a=1&a=0", "a=0&a=1"),  # by name, then value
        ("a=&a&a=0", "a&a=&a=0"),  # same name and value: the parameter text decides
        ("a-b=1&a=2", "a=2&a-b=1"),  # by name, not by the whole text (`-` sorts before `=`)
        ("a=2&a.=1", "a=2&a.=1"),
        ("x=%2f&x=%2F&x=/", "x=%2F&x=%2f&x=/"),  # encoding kept as sent
        ("q=a+b&q=a%20b", "q=a%20b&q=a+b"),
        ("b=1&&a=2&", "&&a=2&b=1"),  # empty parameters kept
        ("a=1=2&a=1", "a=1&a=1=2"),  # the value is everything after the first `=`
    ],
)
def test_query_sorting(query: str, canonical: str) -> None:
    assert canonical_query(query) == canonical


def test_the_canonical_string_layout() -> None:
    canonical = canonical_string(
        key_id="k",
        timestamp=7,
        nonce="",
        method="get",
        path="/",
        query="",
        headers={},
        body_sha256="A" * 64,
    )
    assert canonical == b"PDP-HMAC-SHA256-V1\nk\n7\n\nGET\n/\n\n\n" + b"a" * 64


# --- the document ---------------------------------------------------------------------------------


def _doc_blocks() -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    for match in re.finditer(r"^```([^\n]*)\n(.*?)\n```$", DOC.read_text("utf-8"), re.M | re.S):
        blocks.setdefault(match.group(1).strip(), []).append(match.group(2))
    return blocks


def test_the_worked_example_in_the_document() -> None:
    blocks = _doc_blocks()
    (example_text,) = blocks["json hmac-example"]
    (canonical_text,) = blocks["text hmac-canonical"]
    (signature_text,) = blocks["text hmac-signature"]
    example = json.loads(example_text)
    body = example.pop("body").encode("utf-8")
    secret = example.pop("secret")
    expected = canonical_text.encode("utf-8")

    canonical = canonical_string(**example, body_sha256=body_digest(body))
    assert canonical == expected
    assert canonical.split(b"\n")[-1] == hashlib.sha256(body).hexdigest().encode()
    assert sign(secret.encode("ascii"), canonical) == signature_text.strip()
    # The one-call helper gives the same signature for the same request.
    signed = sign_request(secret=secret, body=body, **example)
    assert signed.signature == signature_text.strip()


def test_the_python_examples_in_the_document_match_the_api() -> None:
    examples = _doc_blocks()["python"]
    assert examples
    parameters = set(inspect.signature(sign_request).parameters)
    calls = 0
    for example in examples:
        for node in ast.walk(ast.parse(example)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "sign_request":
                calls += 1
                assert {k.arg for k in node.keywords} <= parameters
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "HmacSignature":
                assert {k.arg for k in node.keywords} == {
                    f.name for f in dataclasses.fields(HmacSignature)
                }
    assert calls == 1


def test_the_documented_error_codes_exist() -> None:
    text = DOC.read_text("utf-8")
    section = text[text.index("## Error codes") :]
    documented = re.findall(r"^\| `(authn\.[a-z_]+)` \|", section, re.M)
    codes = {v for k, v in vars(errors).items() if k.isupper() and isinstance(v, str)}
    assert set(documented) <= codes
    assert set(documented) >= {
        errors.MALFORMED,
        errors.UNKNOWN_KEY,
        errors.REVOKED,
        errors.TIMESTAMP,
        errors.BAD_SIGNATURE,
        errors.REPLAY,
        errors.INVALID,
    }


# --- keys -----------------------------------------------------------------------------------------


def test_new_hmac_key_makes_a_record_and_a_secret_shown_once(setup: Setup) -> None:
    record, secret = setup.record, setup.secret
    assert re.fullmatch(r"hk_[0-9a-f]{20}", record.key_id)
    assert (record.kind, record.app, record.plan, record.digest, record.retired) == (
        "hmac",
        "shop",
        "",
        "",
        "",
    )
    assert record.created == "2026-11-22T12:00:00Z"
    assert record.attributes == {"team": "orders"}
    assert setup.keys.get(record.key_id) == record
    # The secret is derived, not stored: base64url of HMAC(master, purpose NUL key id).
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", secret)
    master = base64.b64decode(setup.keys.master_key_file.read_text())
    expected = hmac.new(
        master, HMAC_SECRET_PURPOSE.encode() + b"\0" + record.key_id.encode(), "sha256"
    ).digest()
    assert base64.urlsafe_b64decode(secret + "=") == expected
    assert secret not in setup.keys.keys_file.read_text()
    # Made on demand, owner-only.
    assert stat.S_IMODE(os.stat(setup.keys.master_key_file).st_mode) == 0o600


@pytest.mark.parametrize(
    ("app", "attributes", "message"),
    [
        ("", None, "app name"),
        ("my app", None, "app name"),
        ("shop", {"sub": "root"}, "set by pdp"),
        ("shop", {"key_id": "x"}, "set by pdp"),
        ("shop", {"auth": {"method": "jwt"}}, "set by pdp"),
        ("shop", {"tags": ["a", None]}, "cannot be used"),
    ],
)
def test_new_hmac_key_refuses_unusable_names_and_attributes(
    tmp_path: Path, app: str, attributes: dict[str, Any] | None, message: str
) -> None:
    keys = KeyStore(tmp_path / "keys.json", tmp_path / "master.key")
    with pytest.raises(ValueError, match=message):
        new_hmac_key(keys, app, NOW, attributes)
    assert keys.records() == []


# --- secrets stay secret --------------------------------------------------------------------------


def test_no_secret_in_any_message_log_or_repr(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    master_text = setup.keys.master_key_file.read_text().strip()
    master = base64.b64decode(master_text)
    derived = base64.urlsafe_b64decode(setup.secret + "=")
    signed = setup.sign(nonce="n-1")
    secrets = [
        setup.secret,
        signed.signature,
        master_text,
        base64.urlsafe_b64encode(master).decode().rstrip("="),
        master.hex(),
        derived.hex(),
        base64.b64encode(derived).decode().rstrip("="),
    ]
    setup.verify(signed)
    failures: list[AuthenticationError] = [
        setup.refuse(signed),  # replay
        setup.refuse(as_credential(signed, path="/admin")),
        setup.refuse(as_credential(signed, signature=signed.signature[:-1])),
        setup.refuse(as_credential(signed, signature=signed.signature + "A")),
        setup.refuse(as_credential(signed, key_id="hk_0000000000000000000a")),
        setup.refuse(as_credential(signed, timestamp=SIGNED_AT - 1000)),
        setup.refuse(as_credential(signed, headers={"host": setup.secret + "\n"})),
        setup.refuse(signed, NOW.replace(tzinfo=None)),
    ]
    setup.keys.master_key_file.unlink()
    broken = KeyStore(setup.keys.keys_file, setup.keys.master_key_file)
    with pytest.raises(AuthenticationError) as caught:
        HmacVerifier(broken, MemoryState(), WINDOW).verify(as_credential(signed), NOW)
    failures.append(caught.value)
    texts = [caplog.text, repr(signed), repr(as_credential(signed)), repr(setup.verifier)]
    texts += [repr(setup.record), str(setup.state.sightings)]
    for error in failures:
        assert error.__cause__ is None and error.__context__ is None
        texts += [str(error), repr(error), error.message, *(str(a) for a in error.args)]
    for secret in secrets:
        for text in texts:
            assert secret not in text, "a signature, secret or the master key leaked"

"""API keys: real key files, a real master key, real digests.

The checksum and the digest are recomputed here independently (zlib.crc32, hmac), from the
format documented in pdp/identity/api_keys.py, so a test cannot agree with a wrong module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import zlib
from datetime import timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

import pdp.identity.api_keys as api_keys_module
from pdp.identity.api_keys import (
    API_KEY_DIGEST_PURPOSE,
    ApiKeyVerifier,
    new_api_key,
    parse_api_key,
)
from pdp.identity.credentials import ApiKey
from pdp.identity.errors import INVALID, MALFORMED, REVOKED, UNKNOWN_KEY, AuthenticationError
from pdp.identity.keystore import KeyRecord, KeyStore, KeyStoreError
from tests.helpers import NOW

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_PATTERN = re.compile(r"pdpk_([0-9A-Za-z]{12})_([0-9A-Za-z]{22})([0-9A-Za-z]{6})")


def crc32_base62(body: str) -> str:
    """The documented checksum: CRC32 of the text before it, 6 base62 digits, zero-padded."""
    value, digits = zlib.crc32(body.encode("ascii")), ""
    while value:
        value, digit = divmod(value, 62)
        digits = BASE62[digit] + digits
    return digits.rjust(6, "0")


def with_checksum(body: str) -> str:
    return body + crc32_base62(body)


def keystore(directory: Path) -> KeyStore:
    return KeyStore(directory / "keys.json", directory / "master.key")


@pytest.fixture
def store(tmp_path: Path) -> KeyStore:
    keys = keystore(tmp_path)
    keys.ensure_master_key()
    return keys


def secret_part(key: str) -> str:
    match = KEY_PATTERN.fullmatch(key)
    assert match is not None, "not a key"
    return match.group(2)


def failure(verifier: ApiKeyVerifier, text: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(ApiKey(text))
    return caught.value


def assert_secret_free(error: AuthenticationError, key: str) -> None:
    for shown in (str(error), error.message, repr(error)):
        assert key not in shown
        assert secret_part(key) not in shown
    # Raised without a chained exception that a traceback could print.
    assert error.__cause__ is None
    assert error.__context__ is None


# --- making keys ---------------------------------------------------------------------------------


def test_a_new_key_has_the_documented_format_and_checksum(store: KeyStore) -> None:
    record, key = new_api_key(store, "checkout", "basic", NOW)
    match = KEY_PATTERN.fullmatch(key)
    assert match is not None, "unexpected format"
    assert len(key) == 46
    assert match.group(1) == record.key_id
    assert match.group(3) == crc32_base62(key[:-6])
    assert parse_api_key(key).key_id == record.key_id
    assert record.kind == "api_key"
    assert record.app == "checkout"
    assert record.plan == "basic"
    assert record.created == "2026-11-23T12:00:00Z"
    assert record.active
    # Any time zone in, UTC out.
    east = NOW.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert new_api_key(store, "checkout", "basic", east)[0].created == "2026-11-23T12:00:00Z"


def test_the_example_in_the_module_docstring_is_a_valid_key() -> None:
    documented = re.findall(
        r"pdpk_[0-9A-Za-z]{12}_[0-9A-Za-z]{28}\b", api_keys_module.__doc__ or ""
    )
    assert documented, "the docstring shows no example key"
    for example in documented:
        assert parse_api_key(example).key_id == example[5:17]


def test_keys_differ_in_id_and_secret(store: KeyStore) -> None:
    made = [new_api_key(store, "checkout", "basic", NOW) for _ in range(20)]
    assert len({record.key_id for record, _ in made}) == 20
    assert len({secret_part(key) for _, key in made}) == 20


def test_only_a_keyed_digest_is_stored(store: KeyStore, tmp_path: Path) -> None:
    record, key = new_api_key(store, "checkout", "basic", NOW)
    master = base64.b64decode((tmp_path / "master.key").read_text("ascii").strip())
    message = API_KEY_DIGEST_PURPOSE.encode() + b"\0" + key.encode()
    expected = hmac.new(master, message, hashlib.sha256).hexdigest()
    assert record.digest == expected
    stored = json.loads((tmp_path / "keys.json").read_text("utf-8"))["keys"]
    assert stored == [
        {
            "key_id": record.key_id,
            "kind": "api_key",
            "app": "checkout",
            "created": "2026-11-23T12:00:00Z",
            "plan": "basic",
            "digest": expected,
            "retired": "",
            "attributes": {},
        }
    ]


def test_the_key_files_hold_neither_the_key_nor_its_secret_part(
    store: KeyStore, tmp_path: Path
) -> None:
    keys = [new_api_key(store, "checkout", "basic", NOW)[1] for _ in range(5)]
    for path in (tmp_path / "keys.json", tmp_path / "master.key"):
        text = path.read_text("utf-8")
        for key in keys:
            assert key not in text
            assert secret_part(key) not in text
            assert key[-28:] not in text  # secret part and checksum


def test_without_a_master_key_nothing_is_stored(tmp_path: Path) -> None:
    keys = keystore(tmp_path)
    with pytest.raises(KeyStoreError, match=r"master\.key: missing"):
        new_api_key(keys, "checkout", "basic", NOW)
    assert not (tmp_path / "keys.json").exists()


@pytest.mark.parametrize(
    ("app", "plan", "attributes", "message"),
    [
        ("", "basic", {}, "an app name must be"),
        ("check out", "basic", {}, "an app name must be"),
        ("a" * 129, "basic", {}, "an app name must be"),
        ("checkout", "", {}, "a plan name must be"),
        ("checkout", "basic", {"sub": "root"}, "attribute `sub` is set by pdp"),
        ("checkout", "basic", {"auth": {"method": "jwt"}}, "attribute `auth` is set by pdp"),
        ("checkout", "basic", {"plan": "enterprise"}, "attribute `plan` is set by pdp"),
        ("checkout", "basic", {"key_id": "x"}, "attribute `key_id` is set by pdp"),
        ("checkout", "basic", {"tier": None}, "attribute `tier`: null is not a value"),
        ("checkout", "basic", {"tags": ["a", None]}, "lists cannot contain null"),
    ],
)
def test_unusable_names_and_attributes_are_refused_and_nothing_is_stored(
    store: KeyStore, app: str, plan: str, attributes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        new_api_key(store, app, plan, NOW, attributes)
    assert not store.keys_file.exists()


# --- verifying -----------------------------------------------------------------------------------


def test_a_key_verifies_as_its_application(store: KeyStore, tmp_path: Path) -> None:
    record, key = new_api_key(
        store, "checkout", "basic", NOW, {"tier": 2, "score": 1.5, "regions": ["eu", "us"]}
    )
    # A second store on the same files: what a server started later reads.
    subject = ApiKeyVerifier(keystore(tmp_path)).verify(ApiKey(key))
    assert subject.method == "api_key"
    assert subject.id == "checkout"
    assert subject.issuer == ""
    assert subject.expires is None
    assert subject.attributes == {
        "sub": "checkout",
        "app": "checkout",
        "plan": "basic",
        "key_id": record.key_id,
        "tier": 2,
        "score": Decimal("1.5"),  # engine values, as from a token
        "regions": ["eu", "us"],
        "auth": {"method": "api_key"},
    }
    assert type(subject.attributes["score"]) is Decimal


def test_every_single_character_typo_is_refused_by_the_checksum_before_any_lookup(
    store: KeyStore, tmp_path: Path
) -> None:
    _, key = new_api_key(store, "checkout", "basic", NOW)
    # A store that fails whenever it is consulted: the keys file is garbage and the master key
    # is gone (this store has not read it yet).
    blind = ApiKeyVerifier(keystore(tmp_path))
    (tmp_path / "keys.json").write_text("this is not a keys file", "utf-8")
    (tmp_path / "master.key").unlink()

    # (typo, whether it keeps the shape of a key so that only the checksum can catch it)
    typos: list[tuple[str, bool]] = []
    for position in range(len(key)):
        keeps_shape = position >= 5 and position != 17  # not in `pdpk_` nor the separator
        for replacement in BASE62:
            if replacement != key[position]:
                typo = key[:position] + replacement + key[position + 1 :]
                typos.append((typo, keeps_shape))
    for position in range(len(key) - 1):  # two neighbours swapped
        if key[position] != key[position + 1]:
            swapped = key[:position] + key[position + 1] + key[position] + key[position + 2 :]
            typos.append((swapped, position >= 5 and position not in (16, 17)))
    assert len(typos) > 46 * 61
    for typo, keeps_shape in typos:
        error = failure(blind, typo)
        assert error.code == MALFORMED, error.message
        if keeps_shape:
            assert error.message == ("API key checksum does not match: the key was mistyped or cut")
        else:
            assert error.message.startswith("not an API key"), error.message

    # The control: a well-formed key does consult the store, which fails.
    error = failure(blind, key)
    assert error.code == INVALID
    assert error.message == "API key could not be verified: the key store is unavailable"


def test_an_unknown_key_id_is_an_unknown_key(store: KeyStore) -> None:
    new_api_key(store, "checkout", "basic", NOW)
    stranger = with_checksum("pdpk_" + "A" * 12 + "_" + "b" * 22)
    error = failure(ApiKeyVerifier(store), stranger)
    assert (error.code, error.message) == (UNKNOWN_KEY, "unknown API key")


def test_a_wrong_secret_with_a_real_key_id_reads_the_same_as_an_unknown_key(
    store: KeyStore,
) -> None:
    record, key = new_api_key(store, "checkout", "basic", NOW)
    other_secret = "x" * 22 if secret_part(key) != "x" * 22 else "y" * 22
    forged = with_checksum(f"pdpk_{record.key_id}_{other_secret}")
    assert parse_api_key(forged).key_id == record.key_id  # it gets past the checksum
    error = failure(ApiKeyVerifier(store), forged)
    assert (error.code, error.message) == (UNKNOWN_KEY, "unknown API key")
    assert record.key_id not in error.message


def test_a_revoked_key_is_refused_and_only_its_holder_learns_it_was_revoked(
    store: KeyStore,
) -> None:
    record, key = new_api_key(store, "checkout", "basic", NOW)
    store.retire(record.key_id, "2026-11-23T11:00:00Z")
    verifier = ApiKeyVerifier(store)
    error = failure(verifier, key)
    assert error.code == REVOKED
    assert error.message == f"API key `{record.key_id}` was revoked at 2026-11-23T11:00:00Z"
    # Someone who knows the key id but not the secret learns nothing about its state.
    forged = with_checksum(f"pdpk_{record.key_id}_{'z' * 22}")
    error = failure(verifier, forged)
    assert (error.code, error.message) == (UNKNOWN_KEY, "unknown API key")


def test_other_keys_of_the_app_still_work_after_one_is_revoked(store: KeyStore) -> None:
    old, old_key = new_api_key(store, "checkout", "basic", NOW)
    _, new_key = new_api_key(store, "checkout", "basic", NOW)
    store.retire(old.key_id, "2026-11-23T11:00:00Z")
    verifier = ApiKeyVerifier(store)
    assert failure(verifier, old_key).code == REVOKED
    assert verifier.verify(ApiKey(new_key)).id == "checkout"


def test_a_running_server_sees_new_and_revoked_keys_at_the_next_lookup(tmp_path: Path) -> None:
    # The server's store and the one `pdp keys` uses are separate objects on one file.
    server = keystore(tmp_path)
    verifier = ApiKeyVerifier(server)
    cli = keystore(tmp_path)
    cli.ensure_master_key()
    record, key = new_api_key(cli, "checkout", "basic", NOW)
    assert verifier.verify(ApiKey(key)).id == "checkout"  # at once, not a second later
    keystore(tmp_path).retire(record.key_id, "2026-11-23T11:00:00Z")
    assert failure(verifier, key).code == REVOKED


def test_an_hmac_key_id_does_not_verify_as_an_api_key(store: KeyStore) -> None:
    # An HMAC record under an id shaped like an API key id, with the digest of a real key.
    key = with_checksum("pdpk_" + "H" * 12 + "_" + "s" * 22)
    digest = store.derive(API_KEY_DIGEST_PURPOSE, key).hex()
    store.add(
        KeyRecord(
            key_id="H" * 12, kind="hmac", app="reports", created="2026-11-23T12:00:00Z",
            digest=digest,
        )
    )  # fmt: skip
    error = failure(ApiKeyVerifier(store), key)
    assert (error.code, error.message) == (UNKNOWN_KEY, "unknown API key")


def test_pdps_own_attributes_win_over_a_hand_edited_keys_file(
    store: KeyStore, tmp_path: Path
) -> None:
    record, key = new_api_key(store, "checkout", "basic", NOW, {"tier": 2})
    path = tmp_path / "keys.json"
    document = json.loads(path.read_text("utf-8"))
    document["keys"][0]["attributes"] = {
        "tier": 2,
        "sub": "root",
        "app": "admin",
        "plan": "unlimited",
        "key_id": "other",
        "auth": {"method": "jwt", "issuer": "https://id.example.test"},
    }
    path.write_text(json.dumps(document), "utf-8")
    attributes = ApiKeyVerifier(keystore(tmp_path)).verify(ApiKey(key)).attributes
    assert attributes == {
        "sub": "checkout",
        "app": "checkout",
        "plan": "basic",
        "key_id": record.key_id,
        "tier": 2,
        "auth": {"method": "api_key"},
    }


@pytest.mark.parametrize(
    "text",
    [
        "",
        "pdpk_",
        "x" * 46,
        "ghp_" + "a" * 42,
        "pdpk_" + "a" * 12 + "-" + "b" * 28,  # separator
        "pdpk_" + "a" * 12 + "_" + "b" * 27 + "é",  # not base62, right length
        "pdpk_" + "a" * 12 + "_" + "b" * 27 + "\n",
        "pdpk_" + "a" * 12 + "_" + "b" * 28 + "c" * 100_000,  # long: refused by length
    ],
)
def test_text_that_is_not_an_api_key_is_malformed(store: KeyStore, text: str) -> None:
    error = failure(ApiKeyVerifier(store), text)
    assert error.code == MALFORMED
    assert error.message.startswith("not an API key (expected 46 characters")


def test_a_key_with_surrounding_whitespace_is_refused(store: KeyStore) -> None:
    # Trimming is the caller's job (a header parser); pdp does not guess.
    _, key = new_api_key(store, "checkout", "basic", NOW)
    for text in (f" {key}", f"{key}\n", f"Bearer {key}"):
        assert failure(ApiKeyVerifier(store), text).code == MALFORMED


def test_an_unusable_master_key_fails_closed_and_the_log_names_only_the_file(
    store: KeyStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = new_api_key(store, "checkout", "basic", NOW)
    (tmp_path / "master.key").write_text("not base64 at all!\n", "ascii")
    with caplog.at_level(logging.DEBUG):
        error = failure(ApiKeyVerifier(keystore(tmp_path)), key)
    assert error.code == INVALID
    assert error.message == "API key could not be verified: the key store is unavailable"
    assert "master.key: not a valid master key" in caplog.text
    assert key not in caplog.text
    assert secret_part(key) not in caplog.text


def test_a_damaged_record_fails_closed_without_an_exception_escaping(
    store: KeyStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, key = new_api_key(store, "checkout", "basic", NOW)
    path = tmp_path / "keys.json"
    document = json.loads(path.read_text("utf-8"))
    document["keys"][0]["digest"] = 12345  # not text
    path.write_text(json.dumps(document), "utf-8")
    with caplog.at_level(logging.DEBUG):
        error = failure(ApiKeyVerifier(keystore(tmp_path)), key)
    assert (error.code, error.message) == (INVALID, "API key could not be verified")
    assert "AttributeError" in caplog.text
    assert secret_part(key) not in caplog.text
    assert_secret_free(error, key)


def test_attributes_that_cannot_be_engine_values_fail_closed(
    store: KeyStore, tmp_path: Path
) -> None:
    record, key = new_api_key(store, "checkout", "basic", NOW)
    path = tmp_path / "keys.json"
    document = json.loads(path.read_text("utf-8"))
    document["keys"][0]["attributes"] = {"tags": ["a", None]}
    path.write_text(json.dumps(document), "utf-8")
    error = failure(ApiKeyVerifier(keystore(tmp_path)), key)
    assert error.code == INVALID
    assert error.message == (
        f"API key `{record.key_id}` has attributes that cannot be used: lists cannot contain null"
    )


# --- secrets stay secret -------------------------------------------------------------------------


def test_no_message_repr_or_log_line_shows_a_key_or_its_secret_part(
    store: KeyStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record, key = new_api_key(store, "checkout", "basic", NOW, {"tier": 2})
    _, revoked_key = new_api_key(store, "checkout", "basic", NOW)
    revoked = parse_api_key(revoked_key)
    store.retire(revoked.key_id, "2026-11-23T11:00:00Z")
    verifier = ApiKeyVerifier(store)
    wrong_secret = with_checksum(f"pdpk_{record.key_id}_{'q' * 22}")
    typo = key[:20] + ("A" if key[20] != "A" else "B") + key[21:]
    with caplog.at_level(logging.DEBUG):
        subject = verifier.verify(ApiKey(key))
        errors = [
            (failure(verifier, revoked_key), revoked_key),
            (failure(verifier, wrong_secret), wrong_secret),
            (failure(verifier, typo), typo),
        ]
    for error, presented in errors:
        assert_secret_free(error, presented)
        assert_secret_free(error, key)
    for shown in (
        repr(ApiKey(key)),
        repr(parse_api_key(key)),
        str(parse_api_key(key)),
        repr(record),
        repr(subject),
        json.dumps(dict(subject.attributes)),
        caplog.text,
    ):
        assert key not in shown
        assert secret_part(key) not in shown
    assert record.key_id in repr(parse_api_key(key))  # the id is public

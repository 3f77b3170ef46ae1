"""Basic credentials: strict parsing of the Authorization value, scrypt hashes, the users file
and BasicVerifier, with real files and real scrypt. Equal work for unknown users and wrong
passwords is proved by counting scrypt calls (and their parameters), not by timing."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pdp.identity.basic import (
    BasicVerifier,
    UserStore,
    UserStoreError,
    hash_password,
    make_record,
    parse_authorization,
)
from pdp.identity.credentials import BasicAuthorization
from pdp.identity.errors import MALFORMED, PASSWORD, AuthenticationError

PASSWORD_ALICE = "correct horse: battery staple"  # a colon inside: only the first one splits
PASSWORD_BOB = "Tr0ub4dor&3"


def header(user: str | bytes, password: str = "") -> str:
    raw = user if isinstance(user, bytes) else f"{user}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def credential(user: str, password: str) -> BasicAuthorization:
    return BasicAuthorization(header(user, password))


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    # Real hashes, made once: each costs a real scrypt computation.
    return {"alice": hash_password(PASSWORD_ALICE), "bob": hash_password(PASSWORD_BOB)}


@pytest.fixture
def store(tmp_path: Path, hashes: dict[str, str]) -> UserStore:
    users = UserStore(tmp_path / "secrets" / "users.json", reload_seconds=0)
    users.add(make_record("alice", hashes["alice"], {"roles": ["ops", "billing"], "level": 3}))
    users.add(make_record("bob", hashes["bob"], {}))
    return users


class ScryptSpy:
    """Counts calls to hashlib.scrypt (and records their parameters), calling the real one."""

    def __init__(self, real: Callable[..., bytes]) -> None:
        self.real = real
        self.calls: list[dict[str, Any]] = []

    def __call__(self, password: bytes, **kwargs: Any) -> bytes:
        self.calls.append(kwargs)
        return self.real(password, **kwargs)

    def shapes(self) -> list[tuple[Any, ...]]:
        """What decides the cost of each call: n, r, p, maxmem, output and salt sizes."""
        return [
            (c["n"], c["r"], c["p"], c["maxmem"], c["dklen"], len(c["salt"])) for c in self.calls
        ]


@pytest.fixture
def scrypt_spy(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScryptSpy]:
    spy = ScryptSpy(hashlib.scrypt)
    monkeypatch.setattr(hashlib, "scrypt", spy)
    yield spy


def denied(verifier: BasicVerifier, user: str, password: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as caught:
        verifier.verify(credential(user, password))
    return caught.value


# --- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (header("alice", "secret"), ("alice", "secret")),
        ("bAsIc " + header("alice", "secret").split(" ")[1], ("alice", "secret")),
        ("BASIC " + header("alice", "secret").split(" ")[1], ("alice", "secret")),
        (header("alice", "a:b:c"), ("alice", "a:b:c")),
        (header("jöran", "pässwörd ✓"), ("jöran", "pässwörd ✓")),
        (header("alice", ""), ("alice", "")),  # well formed; no stored password is empty
    ],
)
def test_parse_authorization_accepts_rfc_7617_credentials(
    value: str, expected: tuple[str, str]
) -> None:
    assert parse_authorization(value) == expected


USER, SECRET = "mallory", "s3cret-Pa55"
GOOD = base64.b64encode(f"{USER}:{SECRET}".encode()).decode()  # "bWFsbG9yeTpzM2NyZXQtUGE1NQ=="
# Spellings that b64decode(validate=True) still accepts, decoding to a well-formed credential;
# only the canonical spelling is allowed.
NO_PADDING_NEEDED = header(f"{USER}:{SECRET}xx".encode())  # 21 bytes: no padding
BENT = GOOD.replace("NQ==", "NR==")  # the same bytes, with unused low bits set
assert base64.b64decode(BENT, validate=True) == base64.b64decode(GOOD)
assert base64.b64decode(NO_PADDING_NEEDED[6:] + "==", validate=True).startswith(USER.encode())


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("Bearer " + GOOD, id="other scheme"),
        pytest.param(GOOD, id="no scheme"),
        pytest.param("Basic", id="scheme only"),
        pytest.param("Basic ", id="empty credential"),
        pytest.param("Basic  " + GOOD, id="two spaces"),
        pytest.param(" Basic " + GOOD, id="leading space"),
        pytest.param("Basic " + GOOD + " ", id="trailing space"),
        pytest.param("Basic " + GOOD + "\n", id="trailing newline"),
        pytest.param("Basic\t" + GOOD, id="tab"),
        pytest.param("Basic " + GOOD[:8] + " " + GOOD[8:], id="space inside"),
        pytest.param("Basic " + GOOD.replace("b", "!"), id="not base64"),
        pytest.param("Basic " + GOOD.replace("b", "_"), id="base64url alphabet"),
        pytest.param("Basic " + GOOD + "é", id="non-ASCII"),
        pytest.param("Basic " + GOOD.rstrip("="), id="padding missing"),
        pytest.param("Basic " + GOOD.rstrip("=") + "=", id="padding short"),
        pytest.param("Basic " + GOOD + "==", id="padding extra"),
        pytest.param(NO_PADDING_NEEDED + "==", id="needless padding"),
        pytest.param(NO_PADDING_NEEDED + "=", id="needless padding, one"),
        pytest.param("Basic " + BENT, id="non-canonical unused bits"),
        pytest.param(header(f"{USER}{SECRET}".encode()), id="no colon"),
        pytest.param(header(f":{SECRET}".encode()), id="empty user"),
        pytest.param(header(b"\xff" + f"{USER}:{SECRET}".encode()), id="not UTF-8"),
        pytest.param(header(f"{USER}:{SECRET}".encode("utf-16")), id="UTF-16"),
        pytest.param(header(f"{USER}\0:{SECRET}".encode()), id="NUL in user"),
        pytest.param(header(f"{USER}:{SECRET}\n".encode()), id="newline in password"),
        pytest.param(header(f"{USER}:{SECRET}\x7f".encode()), id="DEL in password"),
        pytest.param(header(f"{USER}\u0085:{SECRET}".encode()), id="C1 control in user"),
        pytest.param("Basic " + "QUFB" * 1100, id="too long"),
    ],
)
def test_malformed_authorization_is_authn_malformed_and_quotes_nothing(value: str) -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse_authorization(value)
    error = caught.value
    assert error.code == MALFORMED
    assert error.message.startswith("Basic credential is malformed: ")
    # Not chained to a decoder error whose text could quote bytes of the credential.
    assert error.__cause__ is None
    assert error.__context__ is None
    for text in (str(error), repr(error), error.message):
        for part in (USER, SECRET, GOOD, GOOD.rstrip("="), "QUFB"):
            assert part not in text


def test_parse_authorization_refuses_what_is_not_text() -> None:
    with pytest.raises(AuthenticationError) as caught:
        parse_authorization(b"Basic " + GOOD.encode())  # type: ignore[arg-type]
    assert caught.value.code == MALFORMED


# --- hashes ----------------------------------------------------------------------------------


def test_hash_password_is_salted_scrypt_with_its_parameters_in_the_string() -> None:
    hashed = hash_password(PASSWORD_BOB)
    match = re.fullmatch(
        r"scrypt\$n=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)", hashed
    )
    assert match is not None
    n, r, p = (int(match[i]) for i in (1, 2, 3))
    assert (n, r, p) == (2**15, 8, 1)
    salt, digest = base64.b64decode(match[4]), base64.b64decode(match[5])
    assert len(salt) == 16
    # Recomputed here with the standard library: the string says everything needed.
    expected = hashlib.scrypt(
        PASSWORD_BOB.encode(), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=len(digest)
    )
    assert digest == expected
    # A fresh salt every time.
    assert hash_password(PASSWORD_BOB) != hashed
    assert PASSWORD_BOB not in hashed


@pytest.mark.parametrize(
    ("password", "problem"),
    [("", "empty"), ("a\nb", "control"), ("x" * 1025, "longer")],
)
def test_hash_password_refuses_passwords_that_could_never_be_sent(
    password: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        hash_password(password)
    if password:
        assert password not in str(caught.value)


def test_a_hash_with_other_parameters_is_checked_with_those_parameters(
    tmp_path: Path,
) -> None:
    salt = os.urandom(16)
    digest = hashlib.scrypt(b"old-password", salt=salt, n=2**10, r=4, p=2, dklen=32)
    encoded_salt, encoded_digest = (
        base64.b64encode(salt).decode(),
        base64.b64encode(digest).decode(),
    )
    stored = f"scrypt$n=1024,r=4,p=2${encoded_salt}${encoded_digest}"
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"users": {"carol": {"hash": stored}}}))
    verifier = BasicVerifier(UserStore(path))
    assert verifier.verify(credential("carol", "old-password")).id == "carol"
    assert denied(verifier, "carol", "old-passwort").code == PASSWORD


# --- verification ----------------------------------------------------------------------------


def test_the_right_password_gives_the_subject_with_the_users_attributes(
    store: UserStore,
) -> None:
    subject = BasicVerifier(store).verify(credential("alice", PASSWORD_ALICE))
    assert subject.method == "basic"
    assert subject.id == "alice"
    assert subject.issuer == ""
    assert subject.expires is None
    assert dict(subject.attributes) == {
        "sub": "alice",
        "username": "alice",
        "roles": ["ops", "billing"],
        "level": 3,
        "auth": {"method": "basic"},
    }
    assert BasicVerifier(store).verify(credential("bob", PASSWORD_BOB)).attributes == {
        "sub": "bob",
        "username": "bob",
        "auth": {"method": "basic"},
    }


def test_a_wrong_password_and_an_unknown_user_are_told_apart_by_nothing(
    store: UserStore,
) -> None:
    verifier = BasicVerifier(store)
    wrong = denied(verifier, "alice", "not the password")
    unknown = denied(verifier, "nobody", "not the password")
    unknown_right_password = denied(verifier, "nobody", PASSWORD_ALICE)
    other_users_password = denied(verifier, "alice", PASSWORD_BOB)
    for error in (wrong, unknown, unknown_right_password, other_users_password):
        assert error.code == PASSWORD
        assert error.message == "user name or password is wrong"
        assert str(error) == "user name or password is wrong"
        assert error.__context__ is None


def test_user_names_are_exact(store: UserStore) -> None:
    verifier = BasicVerifier(store)
    for name in ("Alice", "ALICE", "alice ", " alice", "alicE"):
        assert denied(verifier, name, PASSWORD_ALICE).code == PASSWORD


def test_exactly_one_scrypt_of_the_same_cost_for_unknown_user_wrong_and_right_password(
    store: UserStore, scrypt_spy: ScryptSpy
) -> None:
    verifier = BasicVerifier(store)
    denied(verifier, "nobody", "guess")
    assert len(scrypt_spy.calls) == 1
    denied(verifier, "alice", "guess")
    assert len(scrypt_spy.calls) == 2
    verifier.verify(credential("alice", PASSWORD_ALICE))
    assert len(scrypt_spy.calls) == 3
    # The dummy hash of an unknown user has the parameters and sizes of a real one.
    unknown, wrong, right = scrypt_spy.shapes()
    assert unknown == wrong == right == (2**15, 8, 1, unknown[3], 32, 16)
    # maxmem is given explicitly: OpenSSL's default (32 MiB) is too small for n=2**15, r=8.
    assert unknown[3] > 32 * 1024 * 1024
    # And the unknown user's password was hashed, as a known user's would be.
    assert scrypt_spy.calls[0]["salt"] != scrypt_spy.calls[1]["salt"]


def test_a_malformed_header_costs_no_scrypt(store: UserStore, scrypt_spy: ScryptSpy) -> None:
    with pytest.raises(AuthenticationError) as caught:
        BasicVerifier(store).verify(BasicAuthorization("Basic !!!!"))
    assert caught.value.code == MALFORMED
    assert scrypt_spy.calls == []


# --- the verified-password cache -------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_verified_password_is_remembered_and_a_wrong_one_never_is(
    store: UserStore, scrypt_spy: ScryptSpy
) -> None:
    verifier = BasicVerifier(store)
    for _ in range(3):
        assert verifier.verify(credential("alice", PASSWORD_ALICE)).id == "alice"
    assert len(scrypt_spy.calls) == 1
    assert verifier.cache_hits == 2
    for _ in range(3):
        denied(verifier, "alice", "guess")
    assert len(scrypt_spy.calls) == 4  # every wrong password is hashed
    # The cached subject is a fresh one each time, with the same attributes.
    first = verifier.verify(credential("alice", PASSWORD_ALICE))
    second = verifier.verify(credential("alice", PASSWORD_ALICE))
    assert first == second
    assert first.attributes is not second.attributes


def test_a_changed_password_in_the_file_invalidates_the_cache(
    store: UserStore, tmp_path: Path, hashes: dict[str, str]
) -> None:
    verifier = BasicVerifier(store)
    verifier.verify(credential("alice", PASSWORD_ALICE))
    verifier.verify(credential("alice", PASSWORD_ALICE))
    assert verifier.cache_hits == 1
    # `pdp users passwd` from another process: another store writes the same file.
    other = UserStore(store.path)
    other.replace(make_record("alice", hashes["bob"], {"roles": ["ops"]}))
    assert denied(verifier, "alice", PASSWORD_ALICE).code == PASSWORD
    assert verifier.verify(credential("alice", PASSWORD_BOB)).attributes["roles"] == ["ops"]


def test_new_attributes_and_a_removed_user_take_effect_despite_the_cache(
    store: UserStore, hashes: dict[str, str]
) -> None:
    verifier = BasicVerifier(store)
    assert verifier.verify(credential("alice", PASSWORD_ALICE)).attributes["level"] == 3
    UserStore(store.path).replace(make_record("alice", hashes["alice"], {"level": 4}))
    assert verifier.verify(credential("alice", PASSWORD_ALICE)).attributes["level"] == 4
    UserStore(store.path).remove("alice")
    assert denied(verifier, "alice", PASSWORD_ALICE).code == PASSWORD


def test_remembered_passwords_expire_and_the_cache_is_bounded(
    store: UserStore, scrypt_spy: ScryptSpy
) -> None:
    clock = Clock()
    verifier = BasicVerifier(store, cache_size=1, cache_seconds=60, clock=clock)
    verifier.verify(credential("alice", PASSWORD_ALICE))
    clock.now += 59
    verifier.verify(credential("alice", PASSWORD_ALICE))
    assert len(scrypt_spy.calls) == 1
    clock.now += 2  # 61 s after it was verified
    verifier.verify(credential("alice", PASSWORD_ALICE))
    assert len(scrypt_spy.calls) == 2
    verifier.verify(credential("bob", PASSWORD_BOB))  # pushes alice out (size 1)
    verifier.verify(credential("alice", PASSWORD_ALICE))
    assert len(scrypt_spy.calls) == 4


def test_the_cache_holds_no_password(store: UserStore) -> None:
    verifier = BasicVerifier(store)
    verifier.verify(credential("alice", PASSWORD_ALICE))
    keys = list(verifier._cache)
    assert len(keys) == 1
    assert len(keys[0]) == 32  # an HMAC-SHA256, with a key that lives only in this process
    assert PASSWORD_ALICE.encode() not in keys[0]
    # Another process (verifier) keys the same password differently.
    other = BasicVerifier(store)
    other.verify(credential("alice", PASSWORD_ALICE))
    assert list(other._cache) != keys


# --- the users file --------------------------------------------------------------------------


def test_the_users_file_is_owner_only_and_holds_no_password(
    store: UserStore, hashes: dict[str, str]
) -> None:
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    store.path.chmod(0o644)
    store.remove("bob")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600  # rewritten owner-only
    data = store.path.read_bytes()
    for password in (PASSWORD_ALICE, PASSWORD_BOB):
        assert password.encode() not in data
        assert base64.b64encode(password.encode()) not in data
    document = json.loads(data)
    assert document == {
        "users": {
            "alice": {
                "hash": hashes["alice"],
                "attributes": {"roles": ["ops", "billing"], "level": 3},
            }
        }
    }
    # No temporary files are left next to it.
    assert sorted(p.name for p in store.path.parent.iterdir()) == ["users.json"]


def test_the_store_sees_a_changed_file_at_the_next_lookup(
    tmp_path: Path, hashes: dict[str, str]
) -> None:
    path = tmp_path / "users.json"
    store = UserStore(path)
    UserStore(path).add(make_record("bob", hashes["bob"], {}))
    assert store.get("bob") is not None
    UserStore(path).remove("bob")
    assert store.get("bob") is None


def test_the_store_can_reread_a_changed_file_at_most_once_a_second(
    tmp_path: Path, hashes: dict[str, str]
) -> None:
    clock = Clock()
    path = tmp_path / "users.json"
    store = UserStore(path, reload_seconds=1.0, clock=clock)
    assert store.records() == []  # a missing file: no users
    UserStore(path).add(make_record("bob", hashes["bob"], {}))
    clock.now += 0.5
    assert store.get("bob") is None  # not looked at yet
    clock.now += 0.5
    assert store.get("bob") is not None
    assert [record.name for record in store.records()] == ["bob"]


def test_a_broken_file_keeps_the_last_good_users_and_is_logged_without_secrets(
    store: UserStore, hashes: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    version = store.version
    text = store.path.read_text()
    store.path.write_text(text.replace('"level": 3', '"level": 3,,'))
    with caplog.at_level(logging.DEBUG):
        assert store.get("alice") is not None
        assert store.version == version
        assert store.get("alice") is not None
    assert caplog.text.count("invalid JSON at line") == 1  # once, not at every lookup
    assert "keeping the users read before" in caplog.text
    for hashed in hashes.values():
        assert hashed not in caplog.text
        assert hashed.split("$")[3] not in caplog.text
    store.path.write_text(text)
    assert store.get("alice") is not None
    assert store.version > version


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("[]", 'expected {"users"'),
        ('{"users": {}, "extra": 1}', 'expected {"users"'),
        ('{"users": []}', "must be a JSON object"),
        ('{"users": {"eve": {"hash": "HASH", "password": "x"}}}', "user 'eve': expected"),
        (
            '{"users": {"eve": {"hash": "HASH", "attributes": {"auth": {}}}}}',
            "`auth` is set by pdp",
        ),
        ('{"users": {"eve": {"hash": "HASH", "attributes": {"sub": "root"}}}}', "`sub` is set"),
        ('{"users": {"eve": {"hash": "HASH", "attributes": []}}}', "must be a JSON object"),
        ('{"users": {"eve": {"hash": "HASH", "attributes": {"x": [1, null]}}}}', "null"),
        ('{"users": {"e:ve": {"hash": "HASH"}}}', "cannot contain"),
        ('{"users": {"eve": {}}}', "not a valid scrypt hash"),
        ('{"users": {"eve": {"hash": "BROKEN"}}}', "not a valid scrypt hash"),
        ('{"users": {"eve": {"hash": "HUGE"}}}', "not a valid scrypt hash"),
        ('{"users": {"eve": {"hash": "BCRYPT"}}}', "not a valid scrypt hash"),
        ("{not json", "invalid JSON at line 1"),
    ],
)
def test_an_invalid_users_file_is_refused_at_start_naming_the_problem_not_the_hash(
    tmp_path: Path, hashes: dict[str, str], document: str, problem: str
) -> None:
    good = hashes["alice"]
    broken = good[:-8] + "!!!!!!!="
    huge = good.replace("n=32768", "n=1073741824")  # a 1 TiB scrypt: refused, never run
    bcrypt = "$2b$12$" + good.split("$")[3]
    path = tmp_path / "users.json"
    path.write_text(
        document.replace("HASH", good)
        .replace("BROKEN", broken)
        .replace("HUGE", huge)
        .replace("BCRYPT", bcrypt)
    )
    with pytest.raises(UserStoreError, match=re.escape(problem)) as caught:
        UserStore(path)
    message = str(caught.value)
    assert str(path) in message
    for secret in (good, broken, huge, good.split("$")[2], good.split("$")[3]):
        assert secret not in message


def test_store_changes_refuse_duplicates_and_unknown_users(
    store: UserStore, hashes: dict[str, str]
) -> None:
    with pytest.raises(UserStoreError, match="exists already"):
        store.add(make_record("alice", hashes["bob"], {}))
    with pytest.raises(UserStoreError, match="no user `carol`"):
        store.replace(make_record("carol", hashes["bob"], {}))
    with pytest.raises(UserStoreError, match="no user `carol`"):
        store.remove("carol")


# --- no secret in a repr, a message or a log line --------------------------------------------


def test_no_password_or_hash_in_reprs_messages_or_logs(
    store: UserStore, hashes: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    verifier = BasicVerifier(store)
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        subject = verifier.verify(credential("alice", PASSWORD_ALICE))
        for user, password in (("alice", "guess-one"), ("nobody", "guess-two")):
            error = denied(verifier, user, password)
            texts += [str(error), repr(error), error.message, *map(str, error.args)]
    record = store.get("alice")
    assert record is not None
    texts += [
        caplog.text,
        repr(subject),
        repr(record),
        str(record),
        repr(verifier),
        repr(store),
        repr(credential("alice", PASSWORD_ALICE)),
        repr(verifier._dummy),
    ]
    secrets = [
        PASSWORD_ALICE,
        "guess-one",
        "guess-two",
        header("alice", PASSWORD_ALICE).split(" ")[1],
        *hashes.values(),
        *(h.split("$")[2] for h in hashes.values()),
        *(h.split("$")[3] for h in hashes.values()),
    ]
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert "alice" in repr(record)  # the repr is there, just without the hash

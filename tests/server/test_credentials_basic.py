"""Basic credentials on the real server: users added the way `pdp users add` adds them (scrypt
hashes in the users file), passwords sent as an HTTP Basic Authorization value."""

from __future__ import annotations

import base64
import functools
import logging
import secrets
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pdp.client import Result, basic
from pdp.identity.basic import UserStore, hash_password, make_record
from pdp.v1 import decision_pb2 as pb
from tests.server.conftest import NO_PERMIT, Service, ServiceFactory, assert_no_secrets, refusal

WRONG = ("authn.password", "user name or password is wrong")
WRONG_RECORD = [{"code": "authn.password", "message": "user name or password is wrong"}]


@dataclass(frozen=True)
class User:
    name: str
    password: str = field(repr=False)
    roles: tuple[str, ...]


@functools.cache
def users() -> dict[str, User]:
    made = [User("ada", secrets.token_urlsafe(18), ("ops", "billing"))]
    made.append(User("bob", secrets.token_urlsafe(18), ("billing",)))
    return {user.name: user for user in made}


@functools.cache
def hashes() -> dict[str, str]:
    """scrypt costs ~0.1 s a hash: made once per session."""
    return {name: hash_password(user.password) for name, user in users().items()}


@pytest.fixture
def service(pdp_service: ServiceFactory, credential_policies: Path, tmp_path: Path) -> Service:
    store = UserStore(tmp_path / "secrets" / "users.json")
    for name, user in users().items():
        store.add(make_record(name, hashes()[name], {"roles": list(user.roles)}))
    return pdp_service(
        policy_folder=credential_policies, credentials={"users_file": str(store.path)}
    )


def view(service: Service, credentials: pb.Credentials) -> Result:
    return service.client.check(credentials, "view", "Console", "ops")


def test_right_password_is_allowed_and_roles_decide(service: Service) -> None:
    ada, bob = users()["ada"], users()["bob"]

    allowed = view(service, basic("ada", ada.password))
    denied = view(service, basic("bob", bob.password))

    assert allowed.allowed
    assert allowed.rules == ("console-ops",)
    assert allowed.reasons[0].message == "ada has the ops role"
    assert refusal(denied) == NO_PERMIT
    records = service.audit_records()
    assert [record["decision"] for record in records] == ["allow", "deny"]
    assert {record["credential"] for record in records} == {"basic"}
    for record, user in zip(records, (ada, bob), strict=True):
        subject = record["subject"]
        assert (subject["id"], subject["method"]) == (user.name, "basic")
        assert subject["claims"]["roles"] == list(user.roles)
        assert subject["claims"]["auth"] == {"method": "basic"}


def test_wrong_password_and_unknown_user_are_refused_alike(service: Service) -> None:
    ada, bob = users()["ada"], users()["bob"]

    results = [
        view(service, basic("ada", ada.password + "x")),
        view(service, basic("ada", bob.password)),  # another user's password
        view(service, basic("ADA", ada.password)),  # names are exact
        view(service, basic("carol", ada.password)),
    ]

    assert [refusal(result) for result in results] == [WRONG] * 4
    records = service.audit_records()
    assert [record["reasons"] for record in records] == [WRONG_RECORD] * 4
    assert [record["subject"] for record in records] == [None] * 4


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Basic %%%not-base64%%%", "the credential is not canonical base64 (alphabet or padding)"),
        ("Basic YWRhOng", "the credential is not canonical base64 (alphabet or padding)"),
        (
            "Basic " + base64.b64encode(b"ada-without-a-colon").decode(),
            'no ":" between user name and password',
        ),
        ("Bearer abc", 'expected "Basic", one space, then base64 of user:password'),
        (
            "Basic  " + base64.b64encode(b"ada:x").decode(),
            'expected "Basic", one space, then base64 of user:password',
        ),
    ],
    ids=["alphabet", "padding", "no-colon", "scheme", "two-spaces"],
)
def test_malformed_header_is_refused(service: Service, header: str, message: str) -> None:
    result = view(service, pb.Credentials(basic=header))

    assert refusal(result) == ("authn.malformed", f"Basic credential is malformed: {message}")
    [record] = service.audit_records()
    assert record["credential"] == "basic"
    assert record["subject"] is None


def test_no_password_reaches_the_audit_log_or_the_log(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ada, bob = users()["ada"], users()["bob"]
    wrong = secrets.token_urlsafe(18)
    for credentials in [
        basic("ada", ada.password),
        basic("ada", ada.password),  # remembered
        basic("bob", bob.password),
        basic("ada", wrong),
        basic("nobody", wrong),
        pb.Credentials(basic="Basic " + base64.b64encode(f"ada{ada.password}".encode()).decode()),
    ]:
        view(service, credentials)

    headers = [basic(name, user.password).basic for name, user in users().items()]
    passwords = [ada.password, bob.password, wrong]
    assert len(service.audit_records()) == 6
    assert_no_secrets(service, caplog.text, [*passwords, *headers, *hashes().values()])

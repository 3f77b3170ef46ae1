"""`pdp users`, run as the real command in a subprocess (passwords via --password-stdin), and
the files it writes checked with the real BasicVerifier. The interactive (getpass) path runs
in-process, with getpass answering instead of a terminal."""

from __future__ import annotations

import base64
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pdp.cli import main
from pdp.identity.basic import BasicVerifier, UserStore, hash_password, make_record
from pdp.identity.credentials import BasicAuthorization
from pdp.identity.errors import PASSWORD, AuthenticationError

PDP = [sys.executable, "-m", "pdp"]
SECRET = "pa55: w0rd ✓"  # a colon, a space and non-ASCII: all allowed in a password
OTHER = "Zq-0ther-Sekr1t"


def pdp(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PDP, *args],
        check=False,
        capture_output=True,
        text=True,
        input=stdin,
        cwd=cwd,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pdp.toml").write_text('[credentials]\nusers_file = "secrets/users.json"\n')
    return tmp_path


def users_file(project: Path) -> Path:
    return project / "secrets" / "users.json"


def verify(project: Path, user: str, password: str) -> dict[str, object]:
    value = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    verifier = BasicVerifier(UserStore(users_file(project)))
    return dict(verifier.verify(BasicAuthorization(value)).attributes)


def refused(project: Path, user: str, password: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        verify(project, user, password)
    return caught.value.code


def add_alice(project: Path) -> None:
    result = pdp(
        "users", "add", "alice",
        "--attr", 'roles=["ops","billing"]',
        "--attr", "level=3",
        "--attr", "team=red",
        "--attr", 'manager={"name": "carol"}',
        "--attr", "since=2024-05-01",
        "--password-stdin",
        cwd=project,
        stdin=SECRET + "\n",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "added user `alice`\n"


def test_add_then_the_password_verifies_with_the_attributes(project: Path) -> None:
    add_alice(project)
    assert verify(project, "alice", SECRET) == {
        "sub": "alice",
        "username": "alice",
        "roles": ["ops", "billing"],  # read as JSON
        "level": 3,
        "team": "red",  # not JSON: kept as text
        "manager": {"name": "carol"},
        "since": "2024-05-01",
        "auth": {"method": "basic"},
    }
    assert refused(project, "alice", SECRET + "x") == PASSWORD
    assert refused(project, "alice", SECRET.rstrip("✓")) == PASSWORD


def test_the_users_file_is_owner_only_and_holds_no_password(project: Path) -> None:
    add_alice(project)
    path = users_file(project)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = path.read_bytes()
    assert SECRET.encode() not in data
    assert base64.b64encode(SECRET.encode()) not in data
    assert json.loads(data)["users"]["alice"]["hash"].startswith("scrypt$n=32768,r=8,p=1$")


def test_list_shows_names_and_attributes_never_hashes(project: Path) -> None:
    add_alice(project)
    result = pdp("users", "add", "bob", "--password-stdin", cwd=project, stdin="other\n")
    assert result.returncode == 0, result.stderr
    hashes = [
        entry["hash"] for entry in json.loads(users_file(project).read_text())["users"].values()
    ]

    text = pdp("users", "list", cwd=project)
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        'alice  level=3 manager={"name": "carol"} roles=["ops", "billing"] since="2024-05-01" '
        'team="red"',
        "bob",
    ]
    as_json = pdp("users", "list", "--json", cwd=project)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == {
        "users": [
            {
                "name": "alice",
                "attributes": {
                    "roles": ["ops", "billing"],
                    "level": 3,
                    "team": "red",
                    "manager": {"name": "carol"},
                    "since": "2024-05-01",
                },
            },
            {"name": "bob", "attributes": {}},
        ]
    }
    for output in (text.stdout, as_json.stdout, text.stderr, as_json.stderr):
        assert "scrypt" not in output
        for hashed in hashes:
            assert hashed.split("$")[3] not in output


def test_list_of_no_users(project: Path) -> None:
    result = pdp("users", "list", cwd=project)
    assert (result.returncode, result.stdout) == (0, "(no users)\n")
    assert json.loads(pdp("users", "list", "--json", cwd=project).stdout) == {"users": []}


def test_passwd_changes_the_password_and_keeps_the_attributes(project: Path) -> None:
    add_alice(project)
    result = pdp("users", "passwd", "alice", "--password-stdin", cwd=project, stdin="n3w\r\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "changed the password of `alice`\n"
    assert refused(project, "alice", SECRET) == PASSWORD
    assert verify(project, "alice", "n3w")["roles"] == ["ops", "billing"]
    assert stat.S_IMODE(users_file(project).stat().st_mode) == 0o600


def test_remove_takes_the_user_out(project: Path) -> None:
    add_alice(project)
    result = pdp("users", "remove", "alice", cwd=project)
    assert (result.returncode, result.stdout) == (0, "removed user `alice`\n")
    assert refused(project, "alice", SECRET) == PASSWORD
    assert json.loads(users_file(project).read_text()) == {"users": {}}


def test_config_may_be_given_before_or_after_the_action(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = str(project / "pdp.toml")
    result = pdp(
        "users", "--config", config, "add", "dave", "--password-stdin", cwd=elsewhere, stdin="x\n"
    )
    assert result.returncode == 0, result.stderr
    result = pdp("users", "list", "--config", config, cwd=elsewhere)
    assert (result.returncode, result.stdout) == (0, "dave\n")
    # The users file is resolved against the configuration file's folder, not the working one.
    assert users_file(project).exists()
    assert list(elsewhere.iterdir()) == []


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return hash_password(SECRET)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("add", "alice", "--password-stdin"), OTHER + "\n", "user `alice` exists already"),
        (("add", "bob", "--password-stdin"), "\n", "the password is empty"),
        (("add", "bob", "--password-stdin"), "", "the password is empty"),
        (("add", "bob", "--password-stdin"), "Zq\tSekr1t\n", "control characters"),
        (("add", "b:ob", "--password-stdin"), OTHER + "\n", 'cannot contain ":"'),
        (("add", " bob", "--password-stdin"), OTHER + "\n", "white space"),
        (("add", "", "--password-stdin"), OTHER + "\n", "cannot be empty"),
        (
            ("add", "bob", "--attr", "sub=root", "--password-stdin"),
            OTHER + "\n",
            "`sub` is set by pdp",
        ),
        (
            ("add", "bob", "--attr", "auth={}", "--password-stdin"),
            OTHER + "\n",
            "`auth` is set by pdp",
        ),
        (("add", "bob", "--attr", "x=null", "--password-stdin"), OTHER + "\n", "`x` is null"),
        (
            ("add", "bob", "--attr", "nothing", "--password-stdin"),
            OTHER + "\n",
            "expected NAME=VALUE",
        ),
        (
            ("add", "bob", "--attr", "a=1", "--attr", "a=2", "--password-stdin"),
            OTHER + "\n",
            "twice",
        ),
        (("passwd", "bob", "--password-stdin"), OTHER + "\n", "no user `bob`"),
        (("remove", "bob"), "", "no user `bob`"),
    ],
)
def test_refusals_exit_2_with_a_clear_message(
    project: Path, args: tuple[str, ...], stdin: str, message: str, alice_hash: str
) -> None:
    # Written directly (one scrypt for the whole module); `pdp users add` is tested above.
    UserStore(users_file(project)).add(make_record("alice", alice_hash, {"team": "red"}))
    before = users_file(project).read_bytes()
    result = pdp("users", *args, cwd=project, stdin=stdin)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"pdp users {args[0]}: ")
    assert message in result.stderr
    assert users_file(project).read_bytes() == before  # nothing written
    if stdin.strip():
        assert stdin.strip() not in result.stderr


def test_there_is_no_password_flag(project: Path) -> None:
    result = pdp("users", "add", "bob", "--password", "visible-in-ps", cwd=project)
    assert result.returncode == 2
    assert not users_file(project).exists()


def test_no_action_and_a_missing_config_exit_2(project: Path) -> None:
    result = pdp("users", cwd=project)
    assert result.returncode == 2
    assert "choose an action: add, list, remove or passwd" in result.stderr
    result = pdp("users", "list", "--config", "missing.toml", cwd=project)
    assert result.returncode == 2
    assert "missing.toml: cannot read" in result.stderr


def test_a_broken_users_file_is_reported_not_overwritten(project: Path) -> None:
    users_file(project).parent.mkdir()
    users_file(project).write_text('{"users": {"eve": {"hash": "not a hash"}}}')
    result = pdp("users", "add", "bob", "--password-stdin", cwd=project, stdin="x\n")
    assert result.returncode == 2
    assert "user `eve`: the password hash is not a valid scrypt hash" in result.stderr
    assert "not a hash" not in result.stderr
    assert users_file(project).read_text() == '{"users": {"eve": {"hash": "not a hash"}}}'


# --- the interactive path: getpass, twice ----------------------------------------------------


def answer_getpass(monkeypatch: pytest.MonkeyPatch, *answers: str) -> list[str]:
    prompts: list[str] = []
    replies = iter(answers)

    def fake_getpass(prompt: str = "Password: ") -> str:
        prompts.append(prompt)
        return next(replies)

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    return prompts


def test_add_asks_twice_without_echo(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    prompts = answer_getpass(monkeypatch, SECRET, SECRET)
    assert main(["users", "add", "erin", "--config", str(project / "pdp.toml")]) == 0
    assert prompts == ["Password for erin: ", "Password again: "]
    assert verify(project, "erin", SECRET)["sub"] == "erin"
    assert SECRET not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("answers", "message"),
    [((SECRET, SECRET + "!"), "the passwords do not match"), (("", ""), "the password is empty")],
)
def test_add_refuses_a_mismatching_or_empty_password(
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answers: tuple[str, str],
    message: str,
) -> None:
    answer_getpass(monkeypatch, *answers)
    assert main(["users", "add", "erin", "--config", str(project / "pdp.toml")]) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert SECRET not in captured.err + captured.out
    assert not users_file(project).exists()


def test_passwd_asks_twice_too(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    add_alice(project)
    answer_getpass(monkeypatch, "n3w pass", "n3w pass")
    assert main(["users", "passwd", "alice", "--config", str(project / "pdp.toml")]) == 0
    assert verify(project, "alice", "n3w pass")["team"] == "red"

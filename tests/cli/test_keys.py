"""`pdp keys` run as the command in a subprocess, on real files in a temporary folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pdp.identity.api_keys import ApiKeyVerifier, parse_api_key
from pdp.identity.credentials import ApiKey
from pdp.identity.errors import REVOKED, AuthenticationError
from pdp.identity.keystore import KeyRecord, KeyStore
from pdp.state import MemoryState

CONFIG = """\
[credentials]
keys_file = "secrets/keys.json"
master_key_file = "secrets/master.key"
usage_file = "var/usage.json"

[plans.basic]
rate = 10
burst = 20
daily_quota = 10000

[plans.pro]
rate = 100
burst = 200
daily_quota = 1000000
"""
CREATED_API_KEY = (
    "pdp keys: created API key {key_id} for app `{app}`, plan `{plan}`\n"
    "pdp keys: the key is printed on standard output and will not be shown again\n"
)
CREATED_MASTER_KEY = (
    "pdp keys: created the master key secrets/master.key (keep it secret and back it up: every "
    "key depends on it)\n"
)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder with pdp.toml, where `pdp keys` runs (its default --config)."""
    (tmp_path / "pdp.toml").write_text(CONFIG, "utf-8")
    return tmp_path


def keys(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp", "keys", *args],
        check=False,
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=60,
    )


def store(folder: Path) -> KeyStore:
    return KeyStore(folder / "secrets/keys.json", folder / "secrets/master.key")


def record(folder: Path, key_id: str) -> KeyRecord:
    found = store(folder).get(key_id)
    assert found is not None, f"no record {key_id}"
    return found


def create(folder: Path, app: str, plan: str, *more: str) -> str:
    result = keys(folder, "create", "--app", app, "--plan", plan, *more)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def assert_no_secret(text: str, key: str) -> None:
    assert key not in text
    assert key[18:40] not in text  # the secret part


# --- create --------------------------------------------------------------------------------------


def test_create_prints_the_key_alone_on_stdout_and_it_verifies(folder: Path) -> None:
    result = keys(folder, "create", "--app", "checkout", "--plan", "basic", "--attr", "tier=2")
    assert result.returncode == 0, result.stderr
    key = result.stdout.removesuffix("\n")
    assert result.stdout == key + "\n"  # one line: `$(pdp keys create ...)` is the key
    key_id = parse_api_key(key).key_id
    assert result.stderr == CREATED_MASTER_KEY + CREATED_API_KEY.format(
        key_id=key_id, app="checkout", plan="basic"
    )
    assert (folder / "secrets/master.key").stat().st_mode & 0o777 == 0o600
    made = record(folder, key_id)
    assert (made.kind, made.app, made.plan, made.attributes) == (
        "api_key", "checkout", "basic", {"tier": 2}
    )  # fmt: skip
    subject = ApiKeyVerifier(store(folder)).verify(ApiKey(key))
    assert subject.id == "checkout"
    assert subject.attributes["plan"] == "basic"
    assert subject.attributes["tier"] == 2
    assert_no_secret(result.stderr, key)
    for path in (folder / "secrets/keys.json", folder / "secrets/master.key"):
        assert_no_secret(path.read_text("utf-8"), key)


def test_a_second_key_reuses_the_master_key(folder: Path) -> None:
    create(folder, "checkout", "basic")
    master = (folder / "secrets/master.key").read_bytes()
    result = keys(folder, "create", "--app", "shop", "--plan", "pro")
    assert result.returncode == 0, result.stderr
    key_id = parse_api_key(result.stdout.strip()).key_id
    assert result.stderr == CREATED_API_KEY.format(key_id=key_id, app="shop", plan="pro")
    assert (folder / "secrets/master.key").read_bytes() == master


def test_create_json_prints_the_key_and_its_record(folder: Path) -> None:
    result = keys(
        folder, "create", "--app", "checkout", "--plan", "pro", "--attr", 'regions=["eu","us"]',
        "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    key_id = parse_api_key(shown["key"]).key_id
    made = record(folder, key_id)
    assert shown == {
        "key_id": key_id,
        "kind": "api_key",
        "app": "checkout",
        "plan": "pro",
        "created": made.created,
        "state": "active",
        "retired": None,
        "attributes": {"regions": ["eu", "us"]},
        "key": shown["key"],
    }
    assert ApiKeyVerifier(store(folder)).verify(ApiKey(shown["key"])).id == "checkout"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--app", "checkout", "--plan", "gold"), "unknown plan `gold` (plans: basic, pro)"),
        (("--app", "checkout"), "--plan is required for an API key (plans: basic, pro)"),
        (("--kind", "hmac", "--app", "reports", "--plan", "basic"),
         "--plan applies to API keys only"),
        (
            ("--app", "checkout", "--plan", "basic", "--attr", "sub=root"),
            "attribute `sub` is set by pdp and cannot be given",
        ),
        (
            ("--kind", "hmac", "--app", "reports", "--attr", "auth=x"),
            "attribute `auth` is set by pdp and cannot be given",
        ),
        (
            ("--app", "checkout", "--plan", "basic", "--attr", "tier=1", "--attr", "tier=2"),
            "--attr `tier` is given twice",
        ),
        (("--app", "check out", "--plan", "basic"), "an app name must be 1 to 128 printable "
         "characters, without spaces"),
        (("--config", "missing.toml", "--app", "checkout", "--plan", "basic"),
         "missing.toml: cannot read: No such file or directory"),
    ],
)  # fmt: skip
def test_create_refuses_with_exit_code_2_and_writes_nothing(
    folder: Path, args: tuple[str, ...], message: str
) -> None:
    result = keys(folder, "create", *args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"pdp keys: {message}\n")
    assert not (folder / "secrets").exists()


def test_create_without_plans_in_the_configuration_says_so(folder: Path) -> None:
    (folder / "bare.toml").write_text("", "utf-8")
    result = keys(folder, "create", "--config", "bare.toml", "--app", "checkout", "--plan", "a")
    assert result.returncode == 2
    assert result.stderr == "pdp keys: unknown plan `a` (no [plans.NAME] in bare.toml)\n"


def test_create_hmac_prints_the_secret_once_and_stores_none(folder: Path) -> None:
    from pdp.identity.hmac_signing import hmac_secret

    result = keys(folder, "create", "--kind", "hmac", "--app", "reports", "--attr", "team=bi")
    assert result.returncode == 0, result.stderr
    secret = result.stdout.removesuffix("\n")
    assert result.stdout == secret + "\n"
    (made,) = store(folder).records()
    assert (made.kind, made.app, made.plan, made.attributes) == (
        "hmac",
        "reports",
        "",
        {"team": "bi"},
    )
    assert result.stderr == CREATED_MASTER_KEY + (
        f"pdp keys: created HMAC key {made.key_id} for app `reports`\n"
        "pdp keys: its secret is printed on standard output and will not be shown again\n"
    )
    # The printed secret is the one the server derives to check signatures.
    assert secret == hmac_secret(store(folder), made.key_id)
    assert secret not in (folder / "secrets/keys.json").read_text("utf-8")
    assert secret not in result.stderr


def test_create_hmac_json_gives_the_key_id_and_the_secret(folder: Path) -> None:
    from pdp.identity.hmac_signing import hmac_secret

    result = keys(folder, "create", "--kind", "hmac", "--app", "reports", "--json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    made = record(folder, shown["key_id"])
    assert shown == {
        "key_id": made.key_id,
        "kind": "hmac",
        "app": "reports",
        "plan": None,
        "created": made.created,
        "state": "active",
        "retired": None,
        "attributes": {},
        "secret": hmac_secret(store(folder), made.key_id),
    }


# --- list and revoke -----------------------------------------------------------------------------


def test_list_shows_every_key_and_its_state_but_no_secret(folder: Path) -> None:
    checkout_key = create(folder, "checkout", "basic")
    shop_key = create(folder, "shop", "pro", "--attr", "tier=2")
    checkout_id, shop_id = parse_api_key(checkout_key).key_id, parse_api_key(shop_key).key_id

    revoked = keys(folder, "revoke", checkout_id)
    retired = record(folder, checkout_id).retired
    assert (revoked.returncode, revoked.stderr) == (0, "")
    assert revoked.stdout == f"revoked API key {checkout_id} of app `checkout` at {retired}\n"
    with pytest.raises(AuthenticationError) as caught:
        ApiKeyVerifier(store(folder)).verify(ApiKey(checkout_key))
    assert caught.value.code == REVOKED

    listed = keys(folder, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == (
        "KEY ID        KIND     APP       PLAN   CREATED               STATE\n"
        f"{checkout_id}  api_key  checkout  basic  {record(folder, checkout_id).created}  "
        f"retired at {retired}\n"
        f"{shop_id}  api_key  shop      pro    {record(folder, shop_id).created}  active\n"
    )
    as_json = keys(folder, "list", "--app", "shop", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [
        {
            "key_id": shop_id,
            "kind": "api_key",
            "app": "shop",
            "plan": "pro",
            "created": record(folder, shop_id).created,
            "state": "active",
            "retired": None,
            "attributes": {"tier": 2},
        }
    ]
    for output in (revoked.stdout, listed.stdout, as_json.stdout):
        assert_no_secret(output, checkout_key)
        assert_no_secret(output, shop_key)
        assert "digest" not in output


def test_list_with_no_keys(folder: Path) -> None:
    assert keys(folder, "list").stdout == "no keys\n"
    create(folder, "checkout", "basic")
    result = keys(folder, "list", "--app", "nobody")
    assert (result.returncode, result.stdout) == (0, "no keys for app `nobody`\n")
    assert keys(folder, "list", "--app", "nobody", "--json").stdout == "[]\n"


def test_revoke_accepts_the_leaked_key_itself_and_repeats_only_its_id(folder: Path) -> None:
    key = create(folder, "checkout", "basic")
    key_id = parse_api_key(key).key_id
    result = keys(folder, "revoke", key)
    retired = record(folder, key_id).retired
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"revoked API key {key_id} of app `checkout` at {retired}\n"
    again = keys(folder, "revoke", key_id)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"API key {key_id} of app `checkout` was already revoked at {retired}\n"
    assert record(folder, key_id).retired == retired  # not moved by the second revoke


def test_revoke_an_unknown_key_is_an_error(folder: Path) -> None:
    create(folder, "checkout", "basic")
    result = keys(folder, "revoke", "nope")
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == "pdp keys: no key `nope` (pdp keys list shows them)\n"


def test_rotating_an_hmac_key_create_the_new_one_then_retire_the_old(folder: Path) -> None:
    old = json.loads(keys(folder, "create", "--kind", "hmac", "--app", "reports", "--json").stdout)
    new = json.loads(keys(folder, "create", "--kind", "hmac", "--app", "reports", "--json").stdout)
    result = keys(folder, "revoke", old["key_id"])
    retired = record(folder, old["key_id"]).retired
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"retired HMAC key {old['key_id']} of app `reports` at {retired}\n"
    assert record(folder, new["key_id"]).active
    listed = keys(folder, "list", "--app", "reports").stdout
    assert old["secret"] not in listed
    assert new["secret"] not in listed


def test_a_third_active_hmac_key_is_refused(folder: Path) -> None:
    made = [
        json.loads(keys(folder, "create", "--kind", "hmac", "--app", "reports", "--json").stdout)
        for _ in range(2)
    ]
    result = keys(folder, "create", "--kind", "hmac", "--app", "reports")
    assert (result.returncode, result.stdout) == (2, "")
    active = ", ".join(sorted(key["key_id"] for key in made))
    assert f"app `reports` already has 2 active HMAC keys ({active})" in result.stderr
    assert len(store(folder).records()) == 2


# --- usage ---------------------------------------------------------------------------------------


def write_usage(folder: Path, counts: list[tuple[str, str, str, int]]) -> None:
    # What the server writes: its own MemoryState, flushed.
    state = MemoryState(folder / "var/usage.json")
    for key_id, day, outcome, count in counts:
        state.record_usage(key_id, day, outcome, count)
    state.flush()


def test_usage_per_key_and_day_with_totals(folder: Path) -> None:
    first = parse_api_key(create(folder, "checkout", "basic")).key_id
    second = parse_api_key(create(folder, "checkout", "pro")).key_id
    other_app = parse_api_key(create(folder, "shop", "basic")).key_id
    write_usage(
        folder,
        [
            (first, "2026-11-21", "allowed", 120),
            (first, "2026-11-21", "denied", 3),
            (first, "2026-11-22", "allowed", 80),
            (first, "2026-11-22", "throttled", 7),
            (second, "2026-11-22", "denied", 1),
            (second, "2026-11-23", "allowed", 1500),
            (other_app, "2026-11-22", "allowed", 999),
        ],
    )
    # Keys in the order pdp keys list shows them (by creation time, then id).
    a, b = (r.key_id for r in store(folder).records() if r.app == "checkout")
    rows = {
        first: [
            f"{first}  2026-11-21      120       3          0    123",
            f"{first}  2026-11-22       80       0          7     87",
            f"{first}  total           200       3          7    210",
        ],
        second: [
            f"{second}  2026-11-22        0       1          0      1",
            f"{second}  2026-11-23     1500       0          0   1500",
            f"{second}  total          1500       1          0   1501",
        ],
    }
    result = keys(folder, "usage", "--app", "checkout")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "usage of app `checkout`",
        "KEY ID        DAY         ALLOWED  DENIED  THROTTLED  TOTAL",
        *rows[a],
        *rows[b],
        "all keys      total          1700       4          7   1711",
    ]

    since = keys(folder, "usage", "--app", "checkout", "--since", "2026-11-22", "--json")
    assert since.returncode == 0, since.stderr
    report = json.loads(since.stdout)
    by_key = {key["key_id"]: key for key in report["keys"]}
    assert [key["key_id"] for key in report["keys"]] == [a, b]
    assert (report["app"], report["since"]) == ("checkout", "2026-11-22")
    assert by_key[first] == {
        "key_id": first,
        "kind": "api_key",
        "days": [
            {"day": "2026-11-22", "allowed": 80, "denied": 0, "throttled": 7, "total": 87},
        ],
        "total": {"allowed": 80, "denied": 0, "throttled": 7, "total": 87},
    }
    assert by_key[second]["total"] == {"allowed": 1500, "denied": 1, "throttled": 0, "total": 1501}
    assert report["total"] == {"allowed": 1580, "denied": 1, "throttled": 7, "total": 1588}


def test_usage_agrees_with_the_servers_reader(folder: Path) -> None:
    key_id = parse_api_key(create(folder, "checkout", "basic")).key_id
    write_usage(folder, [(key_id, "2026-11-22", "allowed", 5), (key_id, "2026-11-22", "denied", 2)])
    report = json.loads(keys(folder, "usage", "--app", "checkout", "--json").stdout)
    day = report["keys"][0]["days"][0]
    server_view = MemoryState(folder / "var/usage.json").usage(key_id)["2026-11-22"]
    assert {name: day[name] for name in ("allowed", "denied", "throttled")} == server_view


def test_usage_with_no_usage_file_yet_shows_zeros(folder: Path) -> None:
    key_id = parse_api_key(create(folder, "checkout", "basic")).key_id
    result = keys(folder, "usage", "--app", "checkout")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "usage of app `checkout`",
        "KEY ID        DAY    ALLOWED  DENIED  THROTTLED  TOTAL",
        f"{key_id}  total        0       0          0      0",
        "all keys      total        0       0          0      0",
    ]


@pytest.mark.parametrize(
    ("args", "usage_file", "message"),
    [
        (("--app", "nobody"), None,
         "pdp keys: no keys for app `nobody` (pdp keys list shows them)"),
        (("--app", "checkout"), "not json",
         "pdp keys: var/usage.json: not a valid usage file (Expecting value: line 1 column 1 "
         "(char 0))"),
        (("--app", "checkout"), '{"usage": {"KEY": {"2026-11-22": {"allowed": "many"}}}}',
         "pdp keys: the usage file is not valid (a count is not a whole number)"),
        (("--app", "checkout", "--since", "2026-13-01"), None,
         "pdp keys usage: error: argument --since: expected a day as YYYY-MM-DD, got `2026-13-01`"),
    ],
)  # fmt: skip
def test_usage_errors_exit_with_2(
    folder: Path, args: tuple[str, ...], usage_file: str | None, message: str
) -> None:
    key_id = parse_api_key(create(folder, "checkout", "basic")).key_id
    if usage_file is not None:
        (folder / "var").mkdir()
        (folder / "var/usage.json").write_text(usage_file.replace("KEY", key_id), "utf-8")
    result = keys(folder, "usage", *args)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines()[-1] == message  # argparse prints its usage line first


def test_keys_without_an_action_is_an_error(folder: Path) -> None:
    result = keys(folder)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "pdp keys: name an action: create, list, revoke or usage (pdp keys --help)\n"
    )

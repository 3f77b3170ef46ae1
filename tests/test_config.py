"""Configuration: defaults, relative paths, and refusals that name the offending key."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdp.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]

ISSUER = """
[[issuers]]
issuer = "https://id.example.test"
audiences = ["shop-api"]
algorithms = ["RS256"]
jwks_file = "keys/jwks.json"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pdp.toml"
    path.write_text(text)
    return path


def test_the_example_configuration_loads() -> None:
    config = load_config(ROOT / "pdp.toml")
    assert config.server.listen == "127.0.0.1:50051"
    assert config.policies.dir == ROOT / "policies"
    assert [i.issuer for i in config.issuers] == ["https://id.example.test"]
    assert config.issuers[0].required_claims == ("exp", "iat", "iss", "aud", "sub")
    assert config.audit.path == ROOT / "var" / "audit" / "decisions.jsonl"


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUER))
    assert config.server.max_batch_items == 100
    assert config.issuers[0].jwks_file == tmp_path / "keys" / "jwks.json"
    assert config.issuers[0].leeway_seconds == 30
    assert config.policies.dir == tmp_path / "policies"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nlisen = 'x'\n", "server.lisen: unknown key; did you mean `listen`?"),
        ("[sever]\n", "sever: unknown key; did you mean `server`?"),
        ("[server]\nlisten = 'localhost'\n", "server.listen: must be host:port"),
        ("[server]\nlisten = 5\n", "server.listen: must be a non-empty string"),
        ("[server]\nworkers = 0\n", "server.workers: must be at least 1"),
        ("[server]\nreflection = 'yes'\n", "server.reflection: must be true or false"),
        ("[server]\nmax_batch_items = 1.5\n", "server.max_batch_items: must be an integer"),
        ("[policies]\npoll_seconds = 0\n", "policies.poll_seconds: must be positive"),
        ("[audit]\nkeep = 0\n", "audit.keep: must be at least 1"),
        ("[requests]\nmax_depth = 0\n", "requests.max_depth: must be at least 1"),
        (ISSUER.replace('audiences = ["shop-api"]\n', ""), "issuers[0].audiences: required"),
        (ISSUER.replace('"RS256"', '"none"'), "issuers[0].algorithms: `none` is never allowed"),
        (ISSUER.replace('"RS256"', '"RS256", "ES256"'), "issuers[0].algorithms: all algorithms"),
        (ISSUER.replace('"RS256"', '"RS256", "HS256"'), "issuers[0].algorithms: HMAC"),
        (ISSUER.replace('"RS256"', '"RS257"'), "issuers[0].algorithms: unknown algorithm"),
        (ISSUER.replace('jwks_file = "keys/jwks.json"\n', ""), "issuers[0]: set jwks_file or"),
        (ISSUER + 'jwks_url = "ftp://x"\n', "issuers[0].jwks_url: must be an http(s) URL"),
        (ISSUER + "required_claims = ['exp']\n", "issuers[0].required_claims: must include"),
        (ISSUER + ISSUER, "issuers[1].issuer: `https://id.example.test` is configured twice"),
        (ISSUER + "leway_seconds = 3\n", "issuers[0].leway_seconds: unknown key; did you mean"),
        ("issuers = 3\n", "issuers: must be a list of tables"),
        ("[server\n", "invalid TOML"),
        ("[server.tls]\ncert = 'c'\nkey = 'k'\n", "server.tls.client_ca: required with"),
        (
            "[server.tls]\ncert = 'c'\nkey = 'k'\nclient_ca = 'ca'\nrequire_client_cert = false\n",
            "server.tls.client_ca: has no effect with require_client_cert = false",
        ),
        (
            "[server.tls]\ncert = 'c'\nkey = 'k'\nclient_ca = 'ca'\nlisten = '127.0.0.1:99999'\n",
            "server.tls.listen: must be host:port",
        ),
        ("[server]\ntls = 3\n", "server.tls: must be a table"),
        (
            "[plans.free]\nname = 'gold'\nrate = 1\nburst = 1\ndaily_quota = 1\n",
            "plans.free.name: unknown key",
        ),
        ("[plans.free]\nrate = 0\nburst = 1\ndaily_quota = 1\n", "plans.free: rate must be"),
        ("[credentials]\nkeys_file = 'policies/keys.json'\n", "credentials.keys_file: must not"),
    ],
)
def test_refusals_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.toml")

"""`pdp call` picks exactly one credential: from its options, else from the environment."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from pdp.cli import build_parser
from pdp.cli.call import credentials_from, run
from pdp.v1 import decision_pb2 as pb

TARGET = ["--action", "read", "--resource-type", "Doc"]


def parse(*options: str) -> argparse.Namespace:
    return build_parser().parse_args(["call", *options, *TARGET])


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PDP_TOKEN", "PDP_API_KEY", "PDP_PASSWORD", "PDP_HMAC_SECRET"):
        monkeypatch.delenv(name, raising=False)


def test_an_option_wins_over_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("header.payload.signature\n")
    monkeypatch.setenv("PDP_API_KEY", "pdpk_from_the_environment")
    assert credentials_from(parse("--token-file", str(token_file))) == "header.payload.signature"


def test_without_options_the_environment_names_the_credential(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PDP_API_KEY", "pdpk_x")
    credentials = credentials_from(parse())
    assert isinstance(credentials, pb.Credentials) and credentials.api_key == "pdpk_x"
    monkeypatch.delenv("PDP_API_KEY")
    monkeypatch.setenv("PDP_TOKEN", "a.b.c")
    assert credentials_from(parse()) == "a.b.c"
    monkeypatch.delenv("PDP_TOKEN")
    assert credentials_from(parse()) is None  # the server answers authn.missing


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--token", "a.b.c", "--token-file", "t"), "give one credential, not --token and "
         "--token-file"),
        (("--token", "a.b.c", "--basic-user", "anna"), "not --token and --basic-user"),
        (("--api-key-file", "k", "--client-cert", "c.pem"), "not --api-key-file and --client-cert"),
    ],
)  # fmt: skip
def test_two_credentials_at_once_are_refused(
    options: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match=message):
        credentials_from(parse(*options))
    assert run(parse(*options)) == 2
    assert message in capsys.readouterr().err


def test_two_credentials_in_the_environment_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDP_TOKEN", "a.b.c")
    monkeypatch.setenv("PDP_API_KEY", "pdpk_x")
    with pytest.raises(ValueError, match="both PDP_TOKEN and PDP_API_KEY are set"):
        credentials_from(parse())


def test_hmac_headers_are_signed_as_written(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA\n")
    options = ["--hmac-key-id", "hk_1", "--hmac-secret-file", str(secret), "--hmac-path", "/x"]
    headers = ["--hmac-header", "Host=api.example.test", "--hmac-header", "x-flag=true",
               "--hmac-header", "x-count=1e2", "--hmac-header", "x-list=[1, 2]"]  # fmt: skip
    credentials = credentials_from(parse(*options, *headers))
    assert isinstance(credentials, pb.Credentials)
    assert dict(credentials.hmac.headers) == {
        "host": "api.example.test",
        "x-flag": "true",
        "x-count": "1e2",
        "x-list": "[1, 2]",
    }

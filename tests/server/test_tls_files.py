"""The server's TLS files are re-read when they change, and only a usable set replaces the
current one (the handshakes themselves are in test_credentials_mtls.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from pdp.config import TlsSettings
from pdp.server.tls import ReloadingCredentials, TlsFilesError
from tests.identity.pki import write_tls_files


def settings(folder: Path) -> TlsSettings:
    files = write_tls_files(folder)
    return TlsSettings(cert=files.server_chain, key=files.server_key, client_ca=files.ca)


def replace(target: Path, source: Path) -> None:
    # As a deployment tool does: a new file moved into place.
    staged = target.with_suffix(".new")
    staged.write_bytes(source.read_bytes())
    os.replace(staged, target)


def test_unchanged_files_keep_the_current_configuration(tmp_path: Path) -> None:
    credentials = ReloadingCredentials(settings(tmp_path / "a"))
    assert credentials.fetch() is None


def test_a_new_certificate_and_key_are_taken(tmp_path: Path) -> None:
    tls = settings(tmp_path / "a")
    newer = write_tls_files(tmp_path / "b")
    credentials = ReloadingCredentials(tls)
    replace(tls.cert, newer.server_chain)
    replace(tls.key, newer.server_key)
    assert credentials.fetch() is not None
    assert credentials.fetch() is None  # taken once


def test_a_certificate_without_its_key_is_not_taken_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tls = settings(tmp_path / "a")
    newer = write_tls_files(tmp_path / "b")
    credentials = ReloadingCredentials(tls)
    replace(tls.cert, newer.server_chain)  # the key comes a moment later
    with caplog.at_level(logging.WARNING, logger="pdp.server"):
        assert credentials.fetch() is None
        assert credentials.fetch() is None
    assert caplog.text.count("does not belong to the certificate") == 1
    assert "PRIVATE KEY" not in caplog.text
    replace(tls.key, newer.server_key)
    assert credentials.fetch() is not None


def test_a_half_written_ca_file_is_not_taken(tmp_path: Path) -> None:
    tls = settings(tmp_path / "a")
    credentials = ReloadingCredentials(tls)
    assert tls.client_ca is not None
    tls.client_ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB", "ascii")
    assert credentials.fetch() is None


def test_unusable_files_at_start_are_an_error_naming_the_file(tmp_path: Path) -> None:
    tls = settings(tmp_path / "a")
    other = write_tls_files(tmp_path / "b")
    replace(tls.key, other.server_key)
    with pytest.raises(TlsFilesError, match="does not belong to the certificate"):
        ReloadingCredentials(tls)

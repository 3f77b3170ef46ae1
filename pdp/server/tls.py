"""TLS for the server: credentials whose certificate, key and client CAs are re-read when their
files change, without a restart.

grpc asks the fetcher for a new configuration at each new handshake; it only compares file
times and sizes unless something changed, and it never hands grpc a half-written file: what it
returns must parse first, or the current configuration stays.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from pdp.config import TlsSettings

_log = logging.getLogger("pdp.server")

Signature = tuple[tuple[int, int, int], ...]


class TlsFilesError(ValueError):
    """The TLS files cannot be used; the message names the file, never its contents."""


def _read(tls: TlsSettings) -> grpc.ServerCertificateConfiguration:
    chain, key = _load(tls.cert, "certificate"), _load(tls.key, "private key")
    try:
        leaf = x509.load_pem_x509_certificates(chain)[0]
    except ValueError:
        raise TlsFilesError(f"{tls.cert}: not a PEM certificate chain") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError):
        raise TlsFilesError(f"{tls.key}: not an unencrypted PEM private key") from None
    # Mid-rotation (the new certificate written, the old key still there) every handshake
    # would fail: keep the current pair until both files match.
    if _public(private.public_key()) != _public(leaf.public_key()):
        raise TlsFilesError(f"{tls.key}: does not belong to the certificate in {tls.cert}")
    roots = None
    if tls.client_ca is not None:
        roots = _load(tls.client_ca, "client CA bundle")
        try:
            x509.load_pem_x509_certificates(roots)
        except ValueError:
            raise TlsFilesError(f"{tls.client_ca}: not a PEM certificate bundle") from None
    return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)


def _public(key: Any) -> bytes:
    encoded: bytes = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return encoded


def _load(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsFilesError(f"{path}: cannot read the {what}: {error.strerror}") from None


def _signature(tls: TlsSettings) -> Signature:
    paths = [tls.cert, tls.key, *([tls.client_ca] if tls.client_ca is not None else [])]
    found = []
    for path in paths:
        try:
            status = path.stat()
        except OSError:
            return ()
        found.append((status.st_ino, status.st_mtime_ns, status.st_size))
    return tuple(found)


class ReloadingCredentials:
    def __init__(self, tls: TlsSettings) -> None:
        self.tls = tls
        self._lock = threading.Lock()
        self._seen = _signature(tls)
        self._rejected: Signature = ()
        self.initial = _read(tls)  # raises TlsFilesError: nothing good to start with

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """For grpc, at each handshake: a new configuration, or None to keep the current one."""
        signature = _signature(self.tls)
        if signature in (self._seen, self._rejected) or not signature:
            return None
        with self._lock:
            if signature in (self._seen, self._rejected):
                return None
            try:
                configuration = _read(self.tls)
            except TlsFilesError as error:
                # Perhaps half written: keep serving with what we have, say so once, and look
                # again when the files change.
                _log.warning("TLS files changed but cannot be used yet: %s", error)
                self._rejected = signature
                return None
            self._seen = signature
        _log.info("TLS certificate, key or client CAs reloaded")
        return configuration

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.initial,
            self.fetch,  # type: ignore[arg-type]  # grpc documents None as "no change"; the stub omits it
            require_client_authentication=self.tls.require_client_cert,
        )

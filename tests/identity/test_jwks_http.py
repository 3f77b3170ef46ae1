"""The real JWKS fetcher (urllib) against a real HTTP server on 127.0.0.1: size cap, errors,
redirects, and a server that stalls or drips bytes (bounded by the timeout, not held for ever)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pdp.config import IssuerSettings
from pdp.identity import errors
from pdp.identity.errors import AuthenticationError
from pdp.identity.jwks import MAX_JWKS_BYTES, JwksError, KeySet, fetch_url
from pdp.identity.tokens import TokenVerifier
from tests.helpers import NOW
from tests.identity.keys import AUDIENCE, ISSUER, SigningKey, claims, jwks

KEY = SigningKey.generate("ES256", "served")


class Handler(BaseHTTPRequestHandler):
    stop: threading.Event
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path == "/jwks":
            self._send(200, jwks(KEY.public_jwk()))
        elif self.path == "/big":
            self._send(200, b" " * (MAX_JWKS_BYTES + 1))
        elif self.path == "/big-unannounced":
            self.send_response(200)
            self.end_headers()  # no Content-Length: the cap must hold while reading
            self.wfile.write(b" " * (MAX_JWKS_BYTES + 1))
            self.close_connection = True
        elif self.path == "/redirect":
            self._redirect("/jwks")
        elif self.path == "/redirect-ftp":
            self._redirect(f"ftp://127.0.0.1:{self.server.server_address[1]}/jwks")
        elif self.path == "/stall":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.flush()
            self.stop.wait(timeout=10)
        elif self.path == "/drip":
            self.send_response(200)
            self.end_headers()
            self.wfile.flush()
            try:
                while not self.stop.wait(timeout=0.05):
                    self.wfile.write(b" ")
                    self.wfile.flush()
            except OSError:
                pass  # the client gave up, as it should
            self.close_connection = True
        else:
            self._send(404, b"not found")

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    stop = threading.Event()
    requests: list[str] = []
    handler = type("TestHandler", (Handler,), {"stop": stop, "requests": requests})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        stop.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def issuer(url: str, timeout: float = 2.0) -> IssuerSettings:
    return IssuerSettings(
        ISSUER, (AUDIENCE,), ("ES256",), jwks_url=url, jwks_timeout_seconds=timeout
    )


def test_keys_are_fetched_from_a_real_server(server: tuple[str, list[str]]) -> None:
    base, requests = server
    verifier = TokenVerifier([issuer(f"{base}/jwks")])
    assert verifier.verify(KEY.sign(claims()), NOW).id == "alice"
    assert requests == ["/jwks"]


def test_an_http_redirect_is_followed(server: tuple[str, list[str]]) -> None:
    base, requests = server
    keys = KeySet(issuer(f"{base}/redirect"))
    assert keys.fetch_error is None
    assert keys.key_for("served", "ES256").public_numbers() == KEY.public_key.public_numbers()
    assert requests == ["/redirect", "/jwks"]


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/missing", "HTTP 404"),
        ("/big", "{base}/big: larger than 1048576 bytes"),
        ("/big-unannounced", "{base}/big-unannounced: larger than 1048576 bytes"),
        ("/redirect-ftp", "redirect to a non-HTTP URL refused"),
    ],
)
def test_fetch_failures_are_remembered_and_deny(
    server: tuple[str, list[str]], path: str, error: str
) -> None:
    base, _ = server
    keys = KeySet(issuer(base + path))
    assert keys.fetch_error == error.format(base=base)
    with pytest.raises(AuthenticationError) as caught:
        keys.key_for("served", "ES256")
    assert (caught.value.code, caught.value.message) == (
        errors.UNKNOWN_KID,
        f"unknown key id `served` for issuer `{ISSUER}`; its key set could not be fetched",
    )


@pytest.mark.parametrize("path", ["/stall", "/drip"])
def test_a_slow_server_costs_at_most_the_timeout(server: tuple[str, list[str]], path: str) -> None:
    base, _ = server
    keys = KeySet(issuer(base + path, timeout=0.3))
    assert keys.fetch_error == "timed out"


def test_a_closed_port_is_a_clean_failure() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago, and is closed now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    keys = KeySet(issuer(f"http://127.0.0.1:{port}/jwks"))
    assert keys.fetch_error == "Connection refused"


def test_only_http_urls_are_fetched() -> None:
    with pytest.raises(JwksError) as caught:
        fetch_url("file:///etc/passwd", 1.0)
    assert str(caught.value) == "file:///etc/passwd: only http and https URLs are fetched"

"""HMAC request signing: the canonical string, and signing it. Shared by clients and pdp.

A client signs an HTTP request with its application's HMAC key:

    from pdp.signing import sign_request   # also re-exported as pdp.client.sign_request

    signed = sign_request(key_id="hk_...", secret=SECRET, method="POST", path="/orders",
                          headers={"host": "shop.example.com"}, body=body)

and pdp verifies it (pdp.identity.hmac_signing) by rebuilding the same canonical string from the
parts of the request the service received. The exact format, with a worked example, is in
docs/hmac.md; tests check this module against that example.

This module imports neither grpc nor jwt: a client can use it alone.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import re
import secrets as random_source
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

VERSION = "PDP-HMAC-SHA256-V1"
"""The first line of every canonical string: a new format gets a new version line."""

REQUIRED_HEADERS = ("host",)
"""Headers every signed request must sign: the host binds a signature to one service, so a
request signed for one service cannot be replayed against another that shares pdp."""

MAX_ID_LENGTH = 128
"""Key ids and nonces: at most this many characters."""
MAX_TARGET_LENGTH = 8192
"""Path and query: at most this many characters each."""
MAX_HEADERS = 64
MAX_HEADER_VALUE_LENGTH = 8192
MAX_TIMESTAMP = 2**63 - 1
SIGNATURE_BYTES = 32

_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")
# RFC 9110 token characters: method and header names.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Printable ASCII without space: key ids and nonces.
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")
# A request target never contains controls or spaces; `?` and `#` would split the path.
_PATH_FORBIDDEN = re.compile(r"[\x00-\x20\x7f?#]")
_QUERY_FORBIDDEN = re.compile(r"[\x00-\x20\x7f#]")
# Field values (RFC 9110 5.5): no controls except horizontal tab.
_VALUE_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_OPTIONAL_WHITESPACE = " \t"


class SigningError(ValueError):
    """A part of a request that cannot be signed or verified as given. The message names the
    part and the rule, never its value (a header or query may carry a secret)."""


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """Every field of the proto HmacSignature: `pb.HmacSignature(**dataclasses.asdict(signed))`."""

    key_id: str
    # SECURITY: whoever reads it within the window could try to replay it; never in a repr.
    signature: str = field(repr=False)
    timestamp: int
    nonce: str
    method: str
    path: str
    query: str
    headers: dict[str, str]
    """Signed headers, names in lower case."""
    body_sha256: str

    def canonical(self) -> bytes:
        """The bytes its signature covers (see canonical_string)."""
        return canonical_string(
            key_id=self.key_id,
            timestamp=self.timestamp,
            nonce=self.nonce,
            method=self.method,
            path=self.path,
            query=self.query,
            headers=self.headers,
            body_sha256=self.body_sha256,
        )


def body_digest(body: bytes) -> str:
    """Hex SHA-256 of the body (of b"" when there is none)."""
    return hashlib.sha256(body).hexdigest()


def canonical_string(
    *,
    key_id: str,
    timestamp: int,
    nonce: str,
    method: str,
    path: str,
    query: str,
    headers: Mapping[str, str],
    body_sha256: str,
) -> bytes:
    """The bytes that are signed (docs/hmac.md, "The canonical string").

    Raises SigningError when a part breaks the rules there (so that no two different requests
    can have the same canonical string).
    """
    header_lines = _canonical_headers(headers)
    lines = [
        VERSION,
        _check_id("key id", key_id, required=True),
        str(_check_timestamp(timestamp)),
        _check_id("nonce", nonce, required=False),
        _canonical_method(method),
        _check_path(path),
        canonical_query(query),
        ";".join(name for name, _ in header_lines),
        *(f"{name}:{value}" for name, value in header_lines),
        _check_body_sha256(body_sha256),
    ]
    try:
        return "\n".join(lines).encode("utf-8")
    except UnicodeEncodeError:
        # Only possible with lone surrogates, which no HTTP request can carry.
        raise SigningError("the request contains text that is not valid Unicode") from None


def sign(secret: bytes, canonical: bytes) -> str:
    """base64url (no padding) of HMAC-SHA256(secret, canonical)."""
    digest = hmac.new(secret, canonical, hashlib.sha256).digest()
    return encode_signature(digest)


def sign_request(
    *,
    key_id: str,
    secret: bytes | str,
    method: str,
    path: str,
    query: str = "",
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
    timestamp: int | None = None,
    nonce: str | None = None,
) -> SignedRequest:
    """Sign a request in one call: every field pdp needs, ready for the proto HmacSignature.

    `secret` is the secret `pdp keys create --kind hmac` printed: its text, or that text as
    bytes (both mean the same key). `headers` are the headers to sign; `host` is required.
    `timestamp` defaults to now (Unix seconds); `nonce` to 16 random bytes in hex (pass "" to
    send none). Raises SigningError (a ValueError) for a part that cannot be signed.
    """
    signed_headers: dict[str, str] = {}
    for name, value in (headers or {}).items():
        lowered = name.lower()
        if lowered in signed_headers:
            raise SigningError(f"header `{lowered}` is given twice (names ignore case)")
        signed_headers[lowered] = value
    check_required_headers(signed_headers)
    unsigned = SignedRequest(
        key_id=key_id,
        signature="",
        timestamp=int(time.time()) if timestamp is None else timestamp,
        nonce=random_source.token_hex(16) if nonce is None else nonce,
        method=method,
        path=path,
        query=query,
        headers=signed_headers,
        body_sha256=body_digest(body),
    )
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return dataclasses.replace(unsigned, signature=sign(key, unsigned.canonical()))


# --- the parts ----------------------------------------------------------------------------------


def canonical_query(query: str) -> str:
    """The query's parameters (split on `&`), sorted by name, then value, then the parameter as
    sent, and joined with `&`. Nothing is decoded, re-encoded or dropped."""
    if not isinstance(query, str) or len(query) > MAX_TARGET_LENGTH:
        raise SigningError(f"the query must be text of at most {MAX_TARGET_LENGTH} characters")
    if query.startswith("?"):
        raise SigningError("the query is given without its leading `?`")
    if _QUERY_FORBIDDEN.search(query):
        raise SigningError("the query contains a space, a control character or `#`")
    if not query:
        return ""
    return "&".join(sorted(query.split("&"), key=_parameter_order))


def check_required_headers(headers: Mapping[str, str]) -> None:
    """Raise SigningError unless every header of REQUIRED_HEADERS is among `headers`."""
    names = {name.lower() for name in headers if isinstance(name, str)}
    for required in REQUIRED_HEADERS:
        if required not in names:
            raise SigningError(f"the `{required}` header must be signed")


def encode_signature(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def decode_signature(signature: str) -> bytes:
    """The 32 bytes of a signature in canonical base64url without padding; SigningError for
    anything else (a different spelling of the same bytes must not pass as a new signature)."""
    expected_length = len(encode_signature(bytes(SIGNATURE_BYTES)))
    if not isinstance(signature, str) or len(signature) != expected_length:
        raise SigningError("the signature is not base64url of an HMAC-SHA256 digest")
    try:
        raw = signature.encode("ascii")
        digest = base64.b64decode(raw + b"=", altchars=b"-_", validate=True)
    except (UnicodeEncodeError, ValueError):
        raise SigningError("the signature is not base64url of an HMAC-SHA256 digest") from None
    if len(digest) != SIGNATURE_BYTES or encode_signature(digest).encode("ascii") != raw:
        raise SigningError("the signature is not base64url of an HMAC-SHA256 digest")
    return digest


def _parameter_order(parameter: str) -> tuple[str, str, str]:
    name, _, value = parameter.partition("=")
    # The parameter itself last, so `a` and `a=` (same name and value) still have one order.
    return name, value, parameter


def _check_id(what: str, value: str, *, required: bool) -> str:
    if not isinstance(value, str):
        raise SigningError(f"the {what} must be text")
    if not value and not required:
        return value
    if len(value) > MAX_ID_LENGTH or not _VISIBLE_ASCII.fullmatch(value):
        raise SigningError(
            f"the {what} must be 1 to {MAX_ID_LENGTH} printable ASCII characters without spaces"
        )
    return value


def _check_timestamp(timestamp: int) -> int:
    if type(timestamp) is not int or not 0 <= timestamp <= MAX_TIMESTAMP:
        raise SigningError("the timestamp must be a whole number of seconds since 1970")
    return timestamp


def _canonical_method(method: str) -> str:
    if not isinstance(method, str) or len(method) > MAX_ID_LENGTH or not _TOKEN.fullmatch(method):
        raise SigningError("the method must be an HTTP method name")
    return method.upper()


def _check_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or len(path) > MAX_TARGET_LENGTH:
        raise SigningError(
            f"the path must start with `/` and have at most {MAX_TARGET_LENGTH} characters"
        )
    if _PATH_FORBIDDEN.search(path):
        raise SigningError("the path contains a space, a control character, `?` or `#`")
    return path


def _canonical_headers(headers: Mapping[str, str]) -> list[tuple[str, str]]:
    if not isinstance(headers, Mapping):
        raise SigningError("the headers must be a mapping of names to values")
    if len(headers) > MAX_HEADERS:
        raise SigningError(f"at most {MAX_HEADERS} headers can be signed")
    canonical: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or len(name) > MAX_ID_LENGTH or not _TOKEN.fullmatch(name):
            raise SigningError("a header name is not a valid HTTP field name")
        lowered = name.lower()
        if lowered in canonical:
            raise SigningError(f"header `{lowered}` is given twice (names ignore case)")
        if not isinstance(value, str) or len(value) > MAX_HEADER_VALUE_LENGTH:
            raise SigningError(
                f"header `{lowered}` must have a text value of at most "
                f"{MAX_HEADER_VALUE_LENGTH} characters"
            )
        if _VALUE_FORBIDDEN.search(value):
            raise SigningError(f"header `{lowered}` contains a control character")
        canonical[lowered] = value.strip(_OPTIONAL_WHITESPACE)
    return sorted(canonical.items())


def _check_body_sha256(body_sha256: str) -> str:
    if not isinstance(body_sha256, str) or not _HEX_DIGEST.fullmatch(body_sha256):
        raise SigningError("the body digest must be 64 hexadecimal characters (SHA-256)")
    return body_sha256.lower()

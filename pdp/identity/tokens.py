"""JWT verification: a bearer token in, a verified Subject out, or an exact reason why not.

The only module of pdp that imports `jwt` (PyJWT >= 2.15.1; the image's 2.6.0 lacks security
fixes). The order of checks follows RFC 8725 (JWT best current practice):

1. Size first: a token longer than the largest `max_token_bytes` is refused before any decoding.
2. The header and payload are decoded here, strictly (canonical base64url, JSON objects, no
   duplicate members, no NaN), only to read `alg`, `kid` and `iss`; nothing else in them is
   trusted yet. `jku`, `x5u`, `x5c` and an embedded `jwk` are ignored: keys come from
   configuration only, chosen by issuer first and then by `kid`.
3. The header `alg` must be one of the issuer's configured algorithms (`none` never), and the
   chosen key must be able to verify it (pdp.identity.jwks.KeySet.key_for).
4. `jwt.decode` verifies the signature with that key and `algorithms=[that one alg]`. Its own
   time checks are off: pyjwt reads the system clock, and pdp passes `now` in.
5. The claims are checked here against `now`, with exact messages: required claims, `iss`,
   `aud`, `exp` / `nbf` / `iat` with the issuer's leeway, and the lifetime cap.

Every failure is an AuthenticationError with an `authn.*` code; anything else that goes wrong
(pyjwt's InvalidKeyError, a TypeError on a key/algorithm mismatch) becomes authn.invalid "token
could not be verified". SECURITY: no message, log line or exception chain carries the token or
key material.

Verified tokens are cached (by SHA-256 of the token, bounded, least recently used out). A hit is
checked against `now` again for exp, nbf, iat and lifetime, and is dropped when the issuer's keys
have changed since it was verified.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from pdp.config import IssuerSettings
from pdp.engine.values import InputError, from_json
from pdp.identity.errors import (
    ALGORITHM,
    AUDIENCE,
    BAD_SIGNATURE,
    EXPIRED,
    INVALID,
    LIFETIME,
    MALFORMED,
    MISSING_CLAIM,
    NOT_YET_VALID,
    UNKNOWN_ISSUER,
    AuthenticationError,
    fail_closed,
)
from pdp.identity.jwks import Fetch, KeySet, base64url_decode, shown
from pdp.identity.subject import Subject

_log = logging.getLogger("pdp.identity")

CACHE_SIZE = 4096
"""Verified tokens remembered (LRU)."""
MAX_TIMESTAMP = 253_402_300_799
"""9999-12-31T23:59:59Z: the last instant a datetime can hold. Later values are refused."""
DEFAULT_MAX_TOKEN_BYTES = 8192

# pyjwt verifies the signature only; pdp checks every claim itself, against `now`.
_DECODE_OPTIONS: jwt.types.Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "verify_aud": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "require": [],
    "enforce_minimum_key_length": True,
}
_TIME_CLAIMS = ("exp", "nbf", "iat")


@dataclass(frozen=True, slots=True)
class _Issuer:
    settings: IssuerSettings
    keys: KeySet


@dataclass(frozen=True, slots=True)
class _Times:
    """The time claims of a verified token, kept to check a cached token against a new `now`."""

    exp: float | None
    nbf: float | None
    iat: float | None


@dataclass(frozen=True, slots=True)
class _Verified:
    subject: Subject
    issuer: _Issuer
    times: _Times
    keys_version: int


class TokenVerifier:
    """Verifies JWTs from the configured issuers (see the module docstring for the rules).

    Construction loads every issuer's keys: a broken jwks_file raises pdp.identity.jwks.JwksError.
    `fetch` and `clock` are for JWKS URLs (tests inject them); see pdp.identity.jwks.KeySet.
    Thread-safe.
    """

    def __init__(
        self,
        issuers: Sequence[IssuerSettings],
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuers = {
            settings.issuer: _Issuer(settings, KeySet(settings, fetch, clock))
            for settings in issuers
        }
        self._max_token_bytes = max(
            (settings.max_token_bytes for settings in issuers), default=DEFAULT_MAX_TOKEN_BYTES
        )
        self._cache: OrderedDict[bytes, _Verified] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.cache_hits = 0
        """Verifications answered from the cache (for tests and metrics)."""

    def verify(self, token: str, now: datetime) -> Subject:
        """The subject the token vouches for at `now` (timezone-aware).

        Raises AuthenticationError, and nothing else.
        """
        return fail_closed("token", lambda: self._verify(token, now))

    def _verify(self, token: str, now: datetime) -> Subject:
        if now.utcoffset() is None:
            # A naive `now` would be read as local time: fail closed, and say why in the log.
            _log.error("TokenVerifier.verify needs a timezone-aware `now`")
            raise AuthenticationError(INVALID, "token could not be verified")
        if not isinstance(token, str):
            raise AuthenticationError(MALFORMED, "token is not text")
        _check_size(token, self._max_token_bytes)
        digest = hashlib.sha256(token.encode("ascii")).digest()
        instant = now.timestamp()
        cached = self._cached(digest)
        if cached is not None:
            _check_times(cached.issuer.settings, cached.times, instant)
            return cached.subject
        verified = self._verify_uncached(token, instant)
        self._remember(digest, verified)
        return verified.subject

    def _verify_uncached(self, token: str, instant: float) -> _Verified:
        header, unverified = _parse(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or not algorithm:
            raise AuthenticationError(ALGORITHM, "token header has no `alg`")
        if algorithm.lower() == "none":
            raise AuthenticationError(ALGORITHM, "algorithm `none` is never accepted")
        # Keys are chosen by issuer first: the unverified `iss` only picks which keys to try.
        iss = unverified.get("iss")
        if iss is None:
            raise AuthenticationError(MISSING_CLAIM, "token has no `iss` claim")
        if not isinstance(iss, str):
            raise AuthenticationError(MALFORMED, "token `iss` claim must be a string")
        issuer = self._issuers.get(iss)  # exact match: no prefixes, no normalisation
        if issuer is None:
            raise AuthenticationError(UNKNOWN_ISSUER, f"token issuer `{shown(iss)}` is not known")
        settings = issuer.settings
        _check_size(token, settings.max_token_bytes)
        _check_header(header)
        kid = header.get("kid")
        if kid is not None and (not isinstance(kid, str) or not kid):
            raise AuthenticationError(MALFORMED, "token header `kid` must be a non-empty string")
        keys_version = issuer.keys.version  # read before the keys, so a change is never missed
        key = issuer.keys.key_for(kid, algorithm)  # checks `alg` against the issuer and the key
        claims = _decode(token, key, algorithm)
        if claims.get("iss") != iss:  # pragma: no cover - same bytes, parsed twice
            raise AuthenticationError(INVALID, "token could not be verified")
        times = _check_claims(settings, claims)
        _check_times(settings, times, instant)
        try:
            attributes = from_json(claims)
        except (InputError, RecursionError) as error:
            reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
            raise AuthenticationError(MALFORMED, f"token claims cannot be used: {reason}") from None
        # The `auth` record is pdp's own: a token cannot pose as another kind of credential.
        attributes["auth"] = {"method": "jwt", "issuer": iss}
        subject = Subject(
            attributes=attributes,
            method="jwt",
            id=claims["sub"],
            issuer=iss,
            expires=None if times.exp is None else datetime.fromtimestamp(times.exp, UTC),
        )
        return _Verified(subject, issuer, times, keys_version)

    # --- cache -----------------------------------------------------------------------------------

    def _cached(self, digest: bytes) -> _Verified | None:
        with self._cache_lock:
            entry = self._cache.get(digest)
            if entry is None:
                return None
            if entry.keys_version != entry.issuer.keys.version:
                del self._cache[digest]  # the issuer's keys changed: verify again
                return None
            self._cache.move_to_end(digest)
            self.cache_hits += 1
            return entry

    def _remember(self, digest: bytes, verified: _Verified) -> None:
        with self._cache_lock:
            self._cache[digest] = verified
            self._cache.move_to_end(digest)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)


# --- parsing -------------------------------------------------------------------------------------


def _check_size(token: str, limit: int) -> None:
    if len(token) > limit:
        raise AuthenticationError(MALFORMED, f"token is longer than the limit of {limit} bytes")
    if not token:
        raise AuthenticationError(MALFORMED, "token is empty")
    if not token.isascii():
        raise AuthenticationError(MALFORMED, "token contains characters that a JWT cannot have")


def _parse(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The unverified header and payload of a compact JWS."""
    parts = token.split(".")
    if len(parts) == 5:
        raise AuthenticationError(MALFORMED, "encrypted tokens (JWE) are not accepted")
    if len(parts) != 3:
        raise AuthenticationError(
            MALFORMED, "token is not a JWT (expected three parts: header.payload.signature)"
        )
    header = _json_object(parts[0], "header")
    payload = _json_object(parts[1], "payload")
    if base64url_decode(parts[2]) is None:
        raise AuthenticationError(MALFORMED, "token signature is not valid base64url")
    return header, payload


def _json_object(part: str, name: str) -> dict[str, Any]:
    data = base64url_decode(part)
    if data is None:
        raise AuthenticationError(MALFORMED, f"token {name} is not valid base64url")
    try:
        value = json.loads(
            data.decode("utf-8"), object_pairs_hook=_unique_members, parse_constant=_no_constant
        )
    except UnicodeDecodeError:
        raise AuthenticationError(MALFORMED, f"token {name} is not UTF-8 text") from None
    except json.JSONDecodeError:
        raise AuthenticationError(MALFORMED, f"token {name} is not JSON") from None
    except _DuplicateMemberError as error:
        raise AuthenticationError(
            MALFORMED, f"token {name} has a duplicate `{error.name}` member"
        ) from None
    except RecursionError:
        raise AuthenticationError(MALFORMED, f"token {name} is nested too deeply") from None
    except ValueError:  # NaN, Infinity, an integer with thousands of digits
        raise AuthenticationError(MALFORMED, f"token {name} has an unusable number") from None
    if not isinstance(value, dict):
        raise AuthenticationError(MALFORMED, f"token {name} is not a JSON object")
    return value


class _DuplicateMemberError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__("duplicate member")
        self.name = shown(name)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # SECURITY: with duplicates, which value counts depends on the parser; refuse them.
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateMemberError(name)
        result[name] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _check_header(header: dict[str, Any]) -> None:
    # RFC 7515: a recipient must refuse a token whose `crit` lists extensions it does not
    # implement; pdp implements none. `b64: false` (RFC 7797) changes what the signature covers.
    if "crit" in header:
        raise AuthenticationError(
            INVALID, "token header has critical extensions (`crit`), which pdp does not support"
        )
    if "b64" in header and header["b64"] is not True:
        raise AuthenticationError(INVALID, "token header `b64` is not supported")


def _decode(token: str, key: Any, algorithm: str) -> dict[str, Any]:
    """Verify the signature: ONE algorithm, checked against the issuer and the key already."""
    try:
        claims = jwt.decode(token, key, algorithms=[algorithm], options=_DECODE_OPTIONS)
    except jwt.InvalidSignatureError:
        raise AuthenticationError(BAD_SIGNATURE, "token signature is not valid") from None
    except jwt.InvalidAlgorithmError:
        raise AuthenticationError(
            ALGORITHM, f"algorithm `{shown(algorithm)}` is not accepted"
        ) from None
    except jwt.DecodeError:
        raise AuthenticationError(MALFORMED, "token could not be decoded") from None
    except jwt.InvalidTokenError:
        raise AuthenticationError(INVALID, "token could not be verified") from None
    return claims


# --- claims --------------------------------------------------------------------------------------


def _check_claims(settings: IssuerSettings, claims: dict[str, Any]) -> _Times:
    """Presence and types of the claims, `aud`; the time claims, for _check_times."""
    # `sub` names the subject and `aud` is checked against the configured audiences, so both
    # are needed whatever required_claims says.
    for name in (*settings.required_claims, "sub", "aud"):
        if claims.get(name) is None:
            raise AuthenticationError(MISSING_CLAIM, f"token has no `{shown(name)}` claim")
    sub = claims["sub"]
    if not isinstance(sub, str) or not sub:
        raise AuthenticationError(MALFORMED, "token `sub` claim must be a non-empty string")
    _check_audience(settings, claims["aud"])
    times = _Times(*(_timestamp(claims, name) for name in _TIME_CLAIMS))
    if times.exp is not None and times.iat is not None and times.exp < times.iat:
        raise AuthenticationError(INVALID, "token `exp` is earlier than its `iat`")
    return times


def _check_audience(settings: IssuerSettings, aud: Any) -> None:
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise AuthenticationError(
            MALFORMED, "token `aud` claim must be a string or a list of strings"
        )
    if any(a in settings.audiences for a in audiences):
        return
    if not audiences:
        raise AuthenticationError(AUDIENCE, "token audience list is empty")
    named = ", ".join(f"`{shown(a)}`" for a in audiences[:5]) + (
        ", ..." if len(audiences) > 5 else ""
    )
    if len(audiences) == 1:
        raise AuthenticationError(AUDIENCE, f"token audience {named} is not accepted")
    raise AuthenticationError(AUDIENCE, f"token audiences {named} are not accepted")


def _timestamp(claims: dict[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AuthenticationError(
            MALFORMED, f"token `{name}` claim must be a number (seconds since 1970)"
        )
    if not (isinstance(value, int) or math.isfinite(value)) or not 0 <= value <= MAX_TIMESTAMP:
        raise AuthenticationError(MALFORMED, f"token `{name}` claim is out of range")
    return float(value)


def _check_times(settings: IssuerSettings, times: _Times, instant: float) -> None:
    """exp, nbf, iat and the lifetime against `instant` (seconds since 1970), with leeway."""
    leeway = settings.leeway_seconds
    if times.exp is not None and instant >= times.exp + leeway:
        raise AuthenticationError(EXPIRED, f"token expired at {_format(times.exp)}")
    if times.nbf is not None and instant + leeway < times.nbf:
        raise AuthenticationError(NOT_YET_VALID, f"token is not valid before {_format(times.nbf)}")
    if times.iat is not None and instant + leeway < times.iat:
        raise AuthenticationError(
            NOT_YET_VALID,
            f"token is not valid before {_format(times.iat)} (it says it was issued then)",
        )
    if times.exp is not None:
        limit = settings.max_lifetime_seconds
        if times.iat is not None and times.exp - times.iat > limit:
            raise AuthenticationError(
                LIFETIME,
                f"token lifetime of {_seconds(times.exp - times.iat)} seconds is longer than "
                f"the limit of {limit} seconds",
            )
        if times.iat is None and times.exp - instant > limit:
            # Without `iat` the lifetime is counted from now.
            raise AuthenticationError(
                LIFETIME,
                f"token expires {_seconds(times.exp - instant)} seconds from now, later than "
                f"the limit of {limit} seconds",
            )


def _format(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC)
    if moment.microsecond:
        return moment.isoformat().replace("+00:00", "Z")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}"

"""HMAC-signed requests: an HmacSignature credential in, a verified Subject out (the application
that owns the key). The canonical string and the rules are in docs/hmac.md and pdp.signing.

An application's HMAC secret is never stored: it is derived from the master key,
base64url(KeyStore.derive(HMAC_SECRET_PURPOSE, key id)) without padding, printed once by
`pdp keys create --kind hmac`; its ASCII text is the HMAC key on both sides.

Verification, in order (each failure is an AuthenticationError with its code):
1. the form of every part (authn.malformed): signature, key id, nonce, method, path, query,
   headers (`host` must be signed), body digest;
2. the key: known and of kind hmac (authn.unknown_key), active (authn.revoked);
3. the timestamp within ±window of now (authn.timestamp);
4. the signature, recomputed and compared in constant time on bytes (authn.bad_signature);
5. replay (authn.replay): the signature, and the nonce if one is given, may each be seen once
   until timestamp + window. Checked only after the signature, so nobody without the key can
   fill the replay cache or make a client's request look like a replay.

SECURITY: the signature, the secrets and the master key never appear in a message, a log line
or a repr; the replay cache holds a digest of the signature, not the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
from datetime import datetime
from typing import Any

from pdp.identity.api_keys import check_app_name, check_attributes, key_subject, rfc3339
from pdp.identity.credentials import HmacSignature
from pdp.identity.errors import (
    BAD_SIGNATURE,
    INVALID,
    MALFORMED,
    REPLAY,
    REVOKED,
    TIMESTAMP,
    UNKNOWN_KEY,
    AuthenticationError,
    fail_closed,
)
from pdp.identity.keystore import KeyRecord, KeyStore, KeyStoreError
from pdp.identity.subject import Subject
from pdp.signing import SigningError, check_required_headers, decode_signature
from pdp.state import StateStore

_log = logging.getLogger("pdp.identity")

HMAC_SECRET_PURPOSE = "pdp hmac secret v1"  # noqa: S105 - a derivation label, not a secret
HMAC_KIND = "hmac"
HMAC_KEY_ID_PREFIX = "hk_"
"""Key ids look like hk_9f2c4e1a7b3d5f60a8c2: recognisable as pdp HMAC keys in logs."""
_KEY_ID_RANDOM_BYTES = 10


class HmacVerifier:
    def __init__(self, keys: KeyStore, state: StateStore, window_seconds: int) -> None:
        if window_seconds <= 0:
            raise ValueError("the HMAC window must be a positive number of seconds")
        self._keys = keys
        self._state = state
        self.window_seconds = window_seconds

    def verify(self, credential: HmacSignature, now: datetime) -> Subject:
        """The application's subject at `now` (timezone-aware), or AuthenticationError (and
        nothing else) saying why not."""
        return fail_closed("signed request", lambda: self._verify(credential, now))

    def _verify(self, credential: HmacSignature, now: datetime) -> Subject:
        if now.utcoffset() is None:
            # A naive `now` would be read as local time: fail closed, and say why in the log.
            _log.error("HmacVerifier.verify needs a timezone-aware `now`")
            raise AuthenticationError(INVALID, "signed request could not be verified")
        if not isinstance(credential, HmacSignature):
            raise AuthenticationError(MALFORMED, "not a signed request")
        try:
            signature = decode_signature(credential.signature)
            canonical = credential.canonical()
            check_required_headers(credential.headers)
        except SigningError as error:
            raise AuthenticationError(MALFORMED, f"signed request is malformed: {error}") from None

        key_id = credential.key_id
        try:
            record = self._keys.get(key_id)
            if record is None or record.kind != HMAC_KIND:
                raise AuthenticationError(UNKNOWN_KEY, f"unknown HMAC key `{key_id}`")
            if not record.active:
                raise AuthenticationError(
                    REVOKED, f"HMAC key `{key_id}` was retired at {record.retired}"
                )
            self._check_timestamp(credential.timestamp, now)
            secret = _secret(self._keys, key_id)
        except KeyStoreError as error:
            # The message names a file, never a secret; the caller learns only that it failed.
            _log.error("signed requests cannot be verified: %s", error)
            raise AuthenticationError(
                INVALID, "signed request could not be verified: the key store is unavailable"
            ) from None

        expected = hmac.new(secret, canonical, hashlib.sha256).digest()
        # SECURITY: constant time, on bytes (compare_digest raises TypeError on non-ASCII str).
        if not hmac.compare_digest(expected, signature):
            raise AuthenticationError(BAD_SIGNATURE, "signature does not match the request")

        self._check_replay(credential, signature, now)
        return _subject(record)

    def _check_timestamp(self, timestamp: int, now: datetime) -> None:
        age = now.timestamp() - timestamp
        window = self.window_seconds
        if age > window:
            raise AuthenticationError(
                TIMESTAMP,
                f"signed request is too old: signed {math.ceil(age)} seconds ago, "
                f"outside the window of {window} seconds",
            )
        if -age > window:
            raise AuthenticationError(
                TIMESTAMP,
                f"signed request is too far ahead: dated {math.ceil(-age)} seconds in the "
                f"future, outside the window of {window} seconds",
            )

    def _check_replay(self, credential: HmacSignature, signature: bytes, now: datetime) -> None:
        # Remembered until the timestamp has left the window: after that, the timestamp check
        # refuses the request anyway. The window includes its last second (age == window is
        # accepted) and a store forgets what expires at or before now, hence the + 1.
        expires = float(credential.timestamp + self.window_seconds + 1)
        instant = now.timestamp()
        try:
            fresh = self._state.first_sighting(_signature_token(signature), expires, instant)
            if fresh and credential.nonce:
                token = _nonce_token(credential.key_id, credential.nonce)
                if not self._state.first_sighting(token, expires, instant):
                    raise AuthenticationError(
                        REPLAY, "nonce was already used within the window (replay)"
                    )
        except AuthenticationError:
            raise
        except Exception as error:
            # Fail closed: without the replay cache a replay cannot be told from a new request.
            _log.error("replay cache unavailable: %s", type(error).__name__)
            raise AuthenticationError(
                INVALID, "signed request could not be verified: the replay cache is unavailable"
            ) from None
        if not fresh:
            raise AuthenticationError(
                REPLAY, "signature was already used within the window (replay)"
            )


MAX_ACTIVE_HMAC_KEYS = 2
"""Active HMAC keys per app: the current one and, during a rotation, its successor."""


def new_hmac_key(
    keys: KeyStore,
    app: str,
    now: datetime,
    attributes: dict[str, Any] | None = None,
) -> tuple[KeyRecord, str]:
    """Make an HMAC key for `app`: store its record (no secret: it is derived) and return the
    record and the secret (base64url), to be shown once. Creates the master key if there is
    none.

    An app has at most MAX_ACTIVE_HMAC_KEYS active keys: two overlap during a rotation, and a
    third would only be a forgotten one. Retire the old key first.

    Raises ValueError for an unusable app name or attribute or a third active key, and
    KeyStoreError (a ValueError) when the master key or the keys file cannot be read or written.
    """
    check_app_name(app)
    extra = dict(attributes or {})
    check_attributes(extra)
    active = sorted(
        record.key_id
        for record in keys.records()
        if record.kind == HMAC_KIND and record.app == app and record.active
    )
    if len(active) >= MAX_ACTIVE_HMAC_KEYS:
        raise ValueError(
            f"app `{app}` already has {len(active)} active HMAC keys ({', '.join(active)}); "
            "retire the old one first (pdp keys revoke KEY_ID)"
        )
    keys.ensure_master_key()
    key_id = HMAC_KEY_ID_PREFIX + secrets.token_hex(_KEY_ID_RANDOM_BYTES)
    # The secret first: without a usable master key nothing is stored.
    secret = hmac_secret(keys, key_id)
    record = KeyRecord(
        key_id=key_id, kind=HMAC_KIND, app=app, created=rfc3339(now), attributes=extra
    )
    keys.add(record)
    return record, secret


def hmac_secret(keys: KeyStore, key_id: str) -> str:
    """An HMAC key's secret as its owner holds it: base64url without padding, 43 characters."""
    derived = keys.derive(HMAC_SECRET_PURPOSE, key_id)
    return base64.urlsafe_b64encode(derived).rstrip(b"=").decode("ascii")


def _secret(keys: KeyStore, key_id: str) -> bytes:
    # The text the client holds is the HMAC key (docs/hmac.md), so the server uses it too.
    return hmac_secret(keys, key_id).encode("ascii")


def _signature_token(signature: bytes) -> str:
    # A digest, not the signature: the replay cache may live in a shared store.
    return "hmac.signature:" + hashlib.sha256(signature).hexdigest()


def _nonce_token(key_id: str, nonce: str) -> str:
    # Nonces are the client's choice, so they are scoped to the key; the length prefix keeps
    # ("k:1", "2") and ("k", "1:2") apart, and the prefix keeps nonces apart from signatures.
    return f"hmac.nonce:{len(key_id)}:{key_id}:{nonce}"


def _subject(record: KeyRecord) -> Subject:
    return key_subject(record, "HMAC key", {})

r"""API keys: an ApiKey in, a verified Subject out (the application that owns the key).

Format (46 characters, like GitHub's tokens: a scanner can spot a leaked key, and a typo is
rejected before any lookup):

    pdpk_<key id>_<secret><checksum>

    pdpk_4fT9xQ2LmZ8a_Vq0cR7sKe1mWdT3yB8nHuL3z2tjG
         \__________/ \____________________/\____/
          key id, 12    secret, 22           checksum, 6

- `pdpk_`: the prefix that says "a pdp API key". A secret scanner matches
  `\bpdpk_[0-9A-Za-z]{12}_[0-9A-Za-z]{28}\b`.
- key id: 12 base62 characters, random. Public: it names the key in the keys file, in
  `pdp keys list / revoke / usage`, in `subject.key_id` and the audit log. Whoever holds a leaked
  key can read its id (the part between the underscores) and revoke it.
- secret: 22 base62 characters from `secrets` (22 * log2(62) = 131 bits).
- checksum: CRC32 of everything before it (`pdpk_<key id>_<secret>`, ASCII) in base62, 6
  characters, zero-padded. It catches every single-character typo (CRC32 detects every error
  burst up to 32 bits), so a mistyped key is refused as `authn.malformed` without consulting the
  key store. It is not a secret and protects nothing against an attacker.

Base62 is `0-9A-Za-z` in that order. Only a keyed digest is stored: `KeyRecord.digest` is the hex
of `KeyStore.derive(API_KEY_DIGEST_PURPOSE, key)` = HMAC-SHA256(master key, purpose NUL key). A
copy of the keys file therefore neither works as a key nor lets anyone search for keys without
the master key.

Verification: parse (format and checksum: authn.malformed), look the key id up, compare the
digest with `hmac.compare_digest` on bytes, then check the key is active. An unknown key id and
a known key id with the wrong secret both read "unknown API key" (authn.unknown_key); only the
holder of the real key learns that it was revoked (authn.revoked).

SECURITY: the key and its secret part never appear in a message, a log line, a repr, the keys
file or the audit log; tests assert it.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pdp.engine.values import InputError, from_json
from pdp.identity.credentials import ApiKey
from pdp.identity.errors import (
    INVALID,
    MALFORMED,
    REVOKED,
    UNKNOWN_KEY,
    AuthenticationError,
    fail_closed,
)
from pdp.identity.keystore import KeyRecord, KeyStore, KeyStoreError
from pdp.identity.subject import Subject

_log = logging.getLogger("pdp.identity")

API_KEY_DIGEST_PURPOSE = "pdp api key digest v1"
API_KEY_KIND = "api_key"
API_KEY_PREFIX = "pdpk_"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_ID_LENGTH = 12
SECRET_LENGTH = 22
CHECKSUM_LENGTH = 6
API_KEY_LENGTH = len(API_KEY_PREFIX) + KEY_ID_LENGTH + 1 + SECRET_LENGTH + CHECKSUM_LENGTH
RESERVED_ATTRIBUTES = frozenset({"sub", "app", "plan", "key_id", "auth"})
"""Subject attributes pdp sets itself; a key's own attributes cannot use these names."""

_BASE62_CHARACTERS = frozenset(BASE62)
_SEPARATOR_AT = len(API_KEY_PREFIX) + KEY_ID_LENGTH
_FORMAT_HINT = (
    f"not an API key (expected {API_KEY_LENGTH} characters: {API_KEY_PREFIX}, a key id, `_`, "
    "a secret and a checksum)"
)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """An API key whose format and checksum are right; not yet known to be valid."""

    key_id: str
    # SECURITY: the whole key is the credential; never in a repr.
    key: str = field(repr=False)


def parse_api_key(text: str) -> ParsedKey:
    """Check the format and checksum of an API key, before any lookup.

    Raises AuthenticationError(authn.malformed) for anything that is not a well-formed key,
    "... checksum ..." for a typo. The message never repeats the text.
    """
    # Length first: nothing longer is even looked at.
    if len(text) != API_KEY_LENGTH:
        raise AuthenticationError(MALFORMED, _FORMAT_HINT)
    if not text.startswith(API_KEY_PREFIX) or text[_SEPARATOR_AT] != "_":
        raise AuthenticationError(MALFORMED, _FORMAT_HINT)
    key_id = text[len(API_KEY_PREFIX) : _SEPARATOR_AT]
    rest = text[_SEPARATOR_AT + 1 :]
    if not _is_base62(key_id) or not _is_base62(rest):
        raise AuthenticationError(MALFORMED, _FORMAT_HINT)
    body, checksum = text[:-CHECKSUM_LENGTH], text[-CHECKSUM_LENGTH:]
    if checksum != _checksum(body):
        raise AuthenticationError(
            MALFORMED, "API key checksum does not match: the key was mistyped or cut"
        )
    return ParsedKey(key_id=key_id, key=text)


def new_api_key(
    keys: KeyStore,
    app: str,
    plan: str,
    now: datetime,
    attributes: dict[str, Any] | None = None,
) -> tuple[KeyRecord, str]:
    """Make an API key for `app` on `plan`, store its record (with a digest, never the key) and
    return the record and the key, to be shown once.

    Raises ValueError for an unusable app name, plan or attribute, and KeyStoreError (a
    ValueError) when the master key is missing or the keys file cannot be written. The plan is
    not checked against the configuration here (the caller has it).
    """
    check_app_name(app)
    if not plan or not plan.isprintable() or any(c.isspace() for c in plan):
        raise ValueError("a plan name must be non-empty, without spaces")
    extra = dict(attributes or {})
    check_attributes(extra)
    key_id = _random_base62(KEY_ID_LENGTH)
    body = f"{API_KEY_PREFIX}{key_id}_{_random_base62(SECRET_LENGTH)}"
    key = body + _checksum(body)
    # The digest first: without a master key nothing is stored.
    digest = keys.derive(API_KEY_DIGEST_PURPOSE, key).hex()
    record = KeyRecord(
        key_id=key_id,
        kind=API_KEY_KIND,
        app=app,
        created=rfc3339(now),
        plan=plan,
        digest=digest,
        attributes=extra,
    )
    keys.add(record)
    return record, key


class ApiKeyVerifier:
    def __init__(self, keys: KeyStore) -> None:
        self._keys = keys

    def verify(self, credential: ApiKey) -> Subject:
        """The application's subject, or AuthenticationError (and nothing else) saying why not."""
        return fail_closed("API key", lambda: self._verify(credential))

    def _verify(self, credential: ApiKey) -> Subject:
        if not isinstance(credential, ApiKey) or not isinstance(credential.key, str):
            raise AuthenticationError(MALFORMED, "not an API key")
        parsed = parse_api_key(credential.key)
        try:
            record = self._keys.get(parsed.key_id)
            # Computed for unknown key ids too, so both failures cost the same.
            digest = self._keys.derive(API_KEY_DIGEST_PURPOSE, parsed.key)
        except KeyStoreError as error:
            # The message names a file, never a secret; the caller learns only that it failed.
            _log.error("API keys cannot be verified: %s", error)
            raise AuthenticationError(
                INVALID, "API key could not be verified: the key store is unavailable"
            ) from None
        stored = record.digest if record is not None and record.kind == API_KEY_KIND else ""
        # SECURITY: constant-time, on bytes (compare_digest raises TypeError on non-ASCII str).
        # The secret is checked before the state, so a caller who only knows a key id cannot
        # learn whether that key was revoked.
        if record is None or not hmac.compare_digest(
            digest.hex().encode("ascii"), stored.encode("utf-8")
        ):
            raise AuthenticationError(UNKNOWN_KEY, "unknown API key")
        if not record.active:
            raise AuthenticationError(
                REVOKED, f"API key `{record.key_id}` was revoked at {record.retired}"
            )
        return key_subject(record, "API key", {"plan": record.plan})


def key_subject(record: KeyRecord, what: str, own: Mapping[str, Any]) -> Subject:
    """The subject of an application's key (API key or HMAC key): the key's own attributes,
    then pdp's, which win: `sub` and `app` (the application), `own`, `key_id` and `auth`."""
    try:
        attributes = from_json(
            {
                **record.attributes,
                # pdp's own attributes last: a hand-edited keys file cannot override them.
                "sub": record.app,
                "app": record.app,
                **own,
                "key_id": record.key_id,
                "auth": {"method": record.kind},
            }
        )
    except (InputError, RecursionError) as error:
        reason = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise AuthenticationError(
            INVALID, f"{what} `{record.key_id}` has attributes that cannot be used: {reason}"
        ) from None
    return Subject(attributes=attributes, method=record.kind, id=record.app)


# --- shared with pdp keys ------------------------------------------------------------------------


def check_app_name(app: str) -> None:
    """An application name: printable, no spaces, at most 128 characters."""
    if not app or len(app) > 128 or not app.isprintable() or any(c.isspace() for c in app):
        raise ValueError("an app name must be 1 to 128 printable characters, without spaces")


def check_attributes(attributes: dict[str, Any]) -> None:
    """Extra subject attributes of a key: JSON values (no null), not named like pdp's own."""
    for name, value in attributes.items():
        if not name:
            raise ValueError("an attribute name cannot be empty")
        if name in RESERVED_ATTRIBUTES:
            raise ValueError(f"attribute `{name}` is set by pdp and cannot be given")
        if value is None:
            raise ValueError(f"attribute `{name}`: null is not a value (leave it out)")
    try:
        from_json(attributes)
    except (InputError, RecursionError) as error:
        raise ValueError(f"attributes cannot be used: {error}") from None


def rfc3339(moment: datetime) -> str:
    """UTC, to the second: 2026-11-23T08:52:12Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62) for _ in range(length))


def _is_base62(text: str) -> bool:
    return all(character in _BASE62_CHARACTERS for character in text)


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode("ascii"))
    digits = []
    for _ in range(CHECKSUM_LENGTH):
        value, digit = divmod(value, len(BASE62))
        digits.append(BASE62[digit])
    return "".join(reversed(digits))

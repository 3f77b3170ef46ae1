"""Basic credentials: an HTTP Authorization header "Basic <base64 of user:password>" (RFC 7617)
checked against the users file, which holds scrypt hashes and subject attributes.

- Parsing is strict: the scheme (any case), exactly one space, canonical base64 (padding and
  all), UTF-8, the user part up to the first ":" (a user name has no colon), no control
  characters. Every failure is authn.malformed, with a message that holds no part of the header.
- Passwords are stored as "scrypt$n=32768,r=8,p=1$<salt>$<hash>" (base64, 16-byte random salt,
  32-byte hash). n=2**15, r=8, p=1 costs about 95 ms and 32 MiB on the development machine.
- An unknown user and a wrong password both give authn.password "user name or password is
  wrong", and cost the same: an unknown user is checked against a dummy hash with the default
  parameters, so the time of an answer does not tell whether a user exists.
- A verified (user, password) pair is remembered for a minute, keyed by an HMAC with a random
  per-process key (the password itself is never kept); every change to the users file clears it.

SECURITY: no password or hash appears in a message, log line, exception or repr.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdp.engine.values import InputError, from_json
from pdp.identity.credentials import BasicAuthorization
from pdp.identity.errors import MALFORMED, PASSWORD, AuthenticationError
from pdp.identity.subject import Subject

log = logging.getLogger(__name__)

# Chosen by measurement (see the module docstring): 50-100 ms per hash on the target machine.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1
SALT_BYTES = 16
HASH_BYTES = 32
# Hashes read from the users file may carry other parameters (older or newer ones), within
# these bounds, so a hand-edited file cannot make every verification take minutes or gigabytes.
MAX_SCRYPT_MEMORY = 256 * 1024 * 1024
MAX_SCRYPT_P = 16

MAX_HEADER_LENGTH = 4096
"""Longer Authorization values are refused before decoding."""
MAX_USER_NAME_LENGTH = 256
MAX_PASSWORD_BYTES = 1024
RESERVED_ATTRIBUTES = ("sub", "username", "auth")
"""Set by pdp from the verified user name and method; a users file cannot set them."""

WRONG = "user name or password is wrong"
CACHE_SIZE = 1024
CACHE_SECONDS = 60.0
_RELOAD_EVERY = 0.0
"""Seconds between checks of the users file: 0, a stat on every lookup (about a microsecond
beside ~100 ms of scrypt), so that a removed user or a changed password counts at once."""

# scrypt is CPU-bound and releases the GIL; more at once than there are processors only adds
# memory (32 MiB each) without adding throughput.
_SCRYPT_SLOTS = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))


class UserStoreError(ValueError):
    """The users file is unusable, or a change to it is refused. Never contains a secret."""


# --- parsing the header ----------------------------------------------------------------------


def _malformed(why: str) -> AuthenticationError:
    return AuthenticationError(MALFORMED, f"Basic credential is malformed: {why}")


def parse_authorization(header: str) -> tuple[str, str]:
    """The header "Basic <base64>" as (user, password), or AuthenticationError(authn.malformed).

    Errors are raised outside `except` blocks so that no decoder exception (whose text can
    quote bytes of the credential) is chained to them."""
    if not isinstance(header, str):
        raise _malformed("the Authorization value must be text")
    if len(header) > MAX_HEADER_LENGTH:
        raise _malformed(f"longer than the limit of {MAX_HEADER_LENGTH} characters")
    scheme, space, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not space:
        raise _malformed('expected "Basic", one space, then base64 of user:password')
    if not encoded or any(c.isspace() for c in encoded):
        raise _malformed('expected "Basic", one space, then base64 of user:password')
    if not encoded.isascii():
        raise _malformed("the credential is not base64")
    decoded: bytes | None
    try:
        decoded = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        decoded = None
    # validate=True still accepts some non-canonical forms ("YR==" for "YQ==", needless
    # padding); only the one canonical spelling of the bytes is accepted.
    if decoded is None or base64.b64encode(decoded).decode("ascii") != encoded:
        raise _malformed("the credential is not canonical base64 (alphabet or padding)")
    text: str | None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None:
        raise _malformed("the credential is not UTF-8")
    # RFC 7617: the user-id cannot contain a colon; the password may.
    user, colon, password = text.partition(":")
    if not colon:
        raise _malformed('no ":" between user name and password')
    if not user:
        raise _malformed("the user name is empty")
    if _has_control(user) or _has_control(password):
        raise _malformed("control characters are not allowed")
    return user, password


def _has_control(text: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in text)


def check_user_name(name: str) -> None:
    """Refuse a name that cannot be sent in a Basic credential, or that would mislead."""
    if not name:
        raise ValueError("a user name cannot be empty")
    if len(name) > MAX_USER_NAME_LENGTH:
        raise ValueError(f"a user name has at most {MAX_USER_NAME_LENGTH} characters")
    if ":" in name:
        raise ValueError('a user name cannot contain ":" (RFC 7617)')
    if _has_control(name):
        raise ValueError("a user name cannot contain control characters")
    if name != name.strip():
        raise ValueError("a user name cannot begin or end with white space")


def check_password(password: str) -> None:
    """Refuse a password that could never be sent (or that is no password at all)."""
    if not password:
        raise ValueError("the password is empty")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise ValueError(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")
    if _has_control(password):
        raise ValueError("the password contains control characters")


# --- password hashes -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes = field(repr=False)
    digest: bytes = field(repr=False)

    def encode(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        return f"scrypt$n={self.n},r={self.r},p={self.p}${salt}${digest}"

    def matches(self, password: str) -> bool:
        derived = _scrypt(password, self.salt, n=self.n, r=self.r, p=self.p, size=len(self.digest))
        return hmac.compare_digest(derived, self.digest)


def _scrypt(password: str, salt: bytes, *, n: int, r: int, p: int, size: int) -> bytes:
    with _SCRYPT_SLOTS:
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=salt,
            n=n,
            r=r,
            p=p,
            maxmem=_scrypt_memory(n, r, p),
            dklen=size,
        )


def _scrypt_memory(n: int, r: int, p: int) -> int:
    """What OpenSSL needs (V: 128*r*(n+2), B: 128*r*p). Its default maxmem, 32 MiB, is just
    short of n=2**15, r=8, so it is always passed explicitly."""
    return 128 * r * (n + 2) + 128 * r * p


def hash_password(password: str) -> str:
    """A new scrypt hash of `password` with a random salt, parameters stored in the string."""
    check_password(password)
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, size=HASH_BYTES)
    return _PasswordHash(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, digest).encode()


def _parse_hash(text: object) -> _PasswordHash | None:
    """The stored hash, or None if it is not one pdp can check (the caller names the user)."""
    if not isinstance(text, str):
        return None
    parts = text.split("$")
    if len(parts) != 4 or parts[0] != "scrypt":
        return None
    names = ("n", "r", "p")
    settings = [item.partition("=") for item in parts[1].split(",")]
    if [name for name, _, _ in settings] != list(names):
        return None
    if not all(value.isascii() and value.isdigit() for _, _, value in settings):
        return None
    n, r, p = (int(value) for _, _, value in settings)
    if n < 2 or n & (n - 1) or not 1 <= r <= 64 or not 1 <= p <= MAX_SCRYPT_P:
        return None
    if _scrypt_memory(n, r, p) > MAX_SCRYPT_MEMORY:
        return None
    salt, digest = _strict_b64(parts[2]), _strict_b64(parts[3])
    if salt is None or digest is None or len(salt) < 8 or not 16 <= len(digest) <= 64:
        return None
    return _PasswordHash(n, r, p, salt, digest)


def _strict_b64(text: str) -> bytes | None:
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return value if base64.b64encode(value).decode("ascii") == text else None


# --- the users file --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    password_hash: str = field(repr=False)
    """The stored "scrypt$..." string. SECURITY: never printed."""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    """Subject attributes, as JSON (strings, numbers, booleans, lists, records)."""

    def to_json(self) -> dict[str, Any]:
        return {"hash": self.password_hash, "attributes": dict(self.attributes)}


def make_record(name: str, password_hash: str, attributes: Mapping[str, Any]) -> UserRecord:
    """A checked record: a usable name, hash and attributes (UserStoreError if not)."""
    try:
        check_user_name(name)
    except ValueError as error:
        raise UserStoreError(f"user {name!r}: {error}") from None
    if _parse_hash(password_hash) is None:
        raise UserStoreError(f"user `{name}`: the password hash is not a valid scrypt hash")
    check_attributes(attributes, f"user `{name}`")
    return UserRecord(name, password_hash, dict(attributes))


def check_attributes(attributes: object, where: str) -> None:
    if not isinstance(attributes, dict):
        raise UserStoreError(f"{where}: attributes must be a JSON object")
    for key, value in attributes.items():
        if key in RESERVED_ATTRIBUTES:
            raise UserStoreError(f"{where}: attribute `{key}` is set by pdp and cannot be given")
        if value is None:
            raise UserStoreError(f"{where}: attribute `{key}` is null")
    problem: str | None = None
    try:
        from_json(attributes)
    except InputError as error:
        problem = str(error)
    except RecursionError:
        problem = "nested too deeply"
    if problem is not None:
        raise UserStoreError(f"{where}: attributes cannot be used: {problem}")


class UserStore:
    """The users file: {"users": {NAME: {"hash": "scrypt$...", "attributes": {...}}}}.

    Read at construction (a missing file is an empty store; an invalid one raises
    UserStoreError). While the server runs, the file's identity (mtime, size, inode) is checked
    at every lookup (or every `reload_seconds`); a changed file is read again. A file that has
    become invalid is logged once and the last good users are kept, as with policies. The CLI
    writes it atomically, owner-only (0600)."""

    def __init__(
        self,
        path: Path,
        *,
        reload_seconds: float = _RELOAD_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = Path(path)
        self._reload_seconds = reload_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._records: dict[str, UserRecord] = {}
        self._seen: tuple[int, int, int, int] | None = None
        self._rejected: tuple[int, int, int, int] | None = None
        self._version = 0
        self._checked = clock()
        self._load(initial=True)

    @property
    def version(self) -> int:
        """Goes up every time the users change (a new file was read)."""
        self._fresh()
        return self._version

    def get(self, name: str) -> UserRecord | None:
        return self._fresh().get(name)

    def lookup(self, name: str) -> tuple[int, UserRecord | None]:
        """The record (or None) and the version it belongs to, read together."""
        self._fresh()
        with self._lock:
            return self._version, self._records.get(name)

    def records(self) -> list[UserRecord]:
        return sorted(self._fresh().values(), key=lambda record: record.name)

    # --- reading ------------------------------------------------------------------------------

    def _fresh(self) -> dict[str, UserRecord]:
        now = self._clock()
        if now - self._checked >= self._reload_seconds:
            with self._lock:
                if now - self._checked >= self._reload_seconds:
                    self._checked = now
                    try:
                        self._load(initial=False)
                    except UserStoreError as error:
                        log.error("%s; keeping the users read before", error)
        return self._records

    def _load(self, *, initial: bool) -> None:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            if self._seen is not None or initial:
                if not initial:
                    log.warning("%s: the users file is gone; no user can log in", self.path)
                self._records, self._seen = {}, None
                self._version += 1
            return
        except OSError as error:
            raise UserStoreError(f"{self.path}: cannot read: {error.strerror}") from None
        signature = (status.st_mtime_ns, status.st_size, status.st_ino, status.st_dev)
        if signature in (self._seen, self._rejected):
            return
        try:
            records = self._read()
        except UserStoreError:
            self._rejected = signature  # reported once, not at every lookup
            raise
        if status.st_mode & 0o077:
            log.warning("%s: readable by other users; run chmod 600 on it", self.path)
        self._records, self._seen = records, signature
        self._version += 1

    def _read(self) -> dict[str, UserRecord]:
        problem: str | None = None
        document: Any = None
        try:
            document = json.loads(self.path.read_text("utf-8"))
        except OSError as error:
            problem = f"cannot read: {error.strerror}"
        except UnicodeDecodeError:
            problem = "not UTF-8 text"
        except json.JSONDecodeError as error:
            # The position only: the message of a JSON error can quote the text (a hash).
            problem = f"invalid JSON at line {error.lineno}, column {error.colno}"
        except RecursionError:
            problem = "nested too deeply"
        if problem is not None:
            raise UserStoreError(f"{self.path}: {problem}")
        users = document.get("users") if isinstance(document, dict) else None
        if not isinstance(document, dict) or set(document) != {"users"}:
            raise UserStoreError(f'{self.path}: expected {{"users": {{NAME: {{...}}}}}}')
        if not isinstance(users, dict):
            raise UserStoreError(f'{self.path}: "users" must be a JSON object')
        records: dict[str, UserRecord] = {}
        for name, entry in users.items():
            if not isinstance(entry, dict) or not set(entry) <= {"hash", "attributes"}:
                raise UserStoreError(
                    f'{self.path}: user {name!r}: expected {{"hash": ..., "attributes": {{...}}}}'
                )
            try:
                records[name] = make_record(
                    name, entry.get("hash", ""), entry.get("attributes", {})
                )
            except UserStoreError as error:
                raise UserStoreError(f"{self.path}: {error}") from None
        return records

    # --- writing (pdp users) --------------------------------------------------------------------

    def add(self, record: UserRecord) -> None:
        with self._lock:
            self._load(initial=False)
            if record.name in self._records:
                raise UserStoreError(f"user `{record.name}` exists already")
            self._save({**self._records, record.name: record})

    def replace(self, record: UserRecord) -> None:
        with self._lock:
            self._load(initial=False)
            if record.name not in self._records:
                raise UserStoreError(f"no user `{record.name}`")
            self._save({**self._records, record.name: record})

    def remove(self, name: str) -> None:
        with self._lock:
            self._load(initial=False)
            if name not in self._records:
                raise UserStoreError(f"no user `{name}`")
            self._save({key: value for key, value in self._records.items() if key != name})

    def _save(self, records: dict[str, UserRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        document = {"users": {name: records[name].to_json() for name in sorted(records)}}
        # mkstemp creates the file 0600: the hashes are never readable by others, not even
        # for a moment, and the rename replaces the old file whatever its mode was.
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".users-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=2, ensure_ascii=False)
                out.write("\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._seen = None
        self._load(initial=False)


# --- verification ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Remembered:
    record: UserRecord
    until: float


class BasicVerifier:
    def __init__(
        self,
        users: UserStore,
        *,
        cache_size: int = CACHE_SIZE,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.users = users
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds
        self._clock = clock
        # A fresh random key per process: cache keys are useless outside it.
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, _Remembered] = OrderedDict()
        self._cache_version = -1
        self._cache_lock = threading.Lock()
        self.cache_hits = 0
        # Checked instead of a real hash when the user does not exist: the same parameters and
        # sizes as a new hash, so the same work. Its digest is random: nothing matches it.
        self._dummy = _PasswordHash(
            SCRYPT_N,
            SCRYPT_R,
            SCRYPT_P,
            secrets.token_bytes(SALT_BYTES),
            secrets.token_bytes(HASH_BYTES),
        )

    def __repr__(self) -> str:
        return f"BasicVerifier(users={str(self.users.path)!r})"

    def verify(self, credential: BasicAuthorization) -> Subject:
        """The verified subject, or AuthenticationError (authn.malformed or authn.password)."""
        user, password = parse_authorization(credential.header)
        version, record = self.users.lookup(user)
        key = hmac.new(
            self._cache_key, user.encode() + b"\0" + password.encode(), hashlib.sha256
        ).digest()
        if record is not None and self._remembered(key, version, record):
            return _subject(record)
        # Exactly one scrypt computation whether or not the user exists. (A stored hash always
        # parses: the store checked it when it read the file.)
        stored = None if record is None else _parse_hash(record.password_hash)
        matched = (stored or self._dummy).matches(password)
        if record is None or stored is None or not matched:
            raise AuthenticationError(PASSWORD, WRONG)
        self._remember(key, version, record)
        return _subject(record)

    def _remembered(self, key: bytes, version: int, record: UserRecord) -> bool:
        with self._cache_lock:
            self._drop_if_changed(version)
            entry = self._cache.get(key)
            if entry is None:
                return False
            if entry.record is not record or self._clock() >= entry.until:
                del self._cache[key]
                return False
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return True

    def _remember(self, key: bytes, version: int, record: UserRecord) -> None:
        if self._cache_size < 1 or self._cache_seconds <= 0:
            return
        with self._cache_lock:
            self._drop_if_changed(version)
            if version != self._cache_version:
                return  # the file changed while scrypt ran: do not remember the old record
            self._cache[key] = _Remembered(record, self._clock() + self._cache_seconds)
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _drop_if_changed(self, version: int) -> None:
        # Any change to the users file (a new password, a removed user, new attributes)
        # forgets every remembered password.
        if version > self._cache_version:
            self._cache.clear()
            self._cache_version = version


def _subject(record: UserRecord) -> Subject:
    attributes = from_json(
        {
            "sub": record.name,
            "username": record.name,
            **record.attributes,
            # pdp's own record, last: nothing in the users file can pose as another method.
            "auth": {"method": "basic"},
        }
    )
    return Subject(attributes=attributes, method="basic", id=record.name)

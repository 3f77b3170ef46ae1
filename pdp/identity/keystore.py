"""Application keys (HMAC keys and API keys) and the one secret they rest on.

The keys file lists keys: id, kind, application, plan, when made, when retired, and for an API
key a keyed digest of it. It holds no secret. The master key file holds the secret:
- an HMAC key's secret is derived from it (HMAC-SHA256 of the key id), so it is never stored
  and `pdp keys create` can print it once;
- an API key is stored only as HMAC-SHA256(master, key), so a copy of the keys file cannot be
  used to call pdp, nor searched for keys by brute force without the master key.

The server reads both and notices when the keys file changes (pdp keys create / revoke while it
runs) at the next lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

MASTER_KEY_BYTES = 32


class KeyStoreError(ValueError):
    """The keys file or master key is unusable; the message names the file, never a secret."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    kind: str
    """"hmac" or "api_key"."""
    app: str
    created: str
    """RFC 3339, UTC."""
    plan: str = ""
    """For an API key: its plan ([plans.NAME] in the configuration)."""
    digest: str = ""
    """For an API key: hex HMAC-SHA256(master key, key)."""
    retired: str = ""
    """When it was retired or revoked (RFC 3339); empty while active."""
    attributes: dict[str, Any] = field(default_factory=dict)
    """Extra subject attributes for policies (strings, numbers, booleans, lists)."""

    @property
    def active(self) -> bool:
        return not self.retired


class KeyStore:
    def __init__(self, keys_file: Path, master_key_file: Path) -> None:
        self.keys_file = keys_file
        self.master_key_file = master_key_file
        self._lock = threading.Lock()
        self._records: dict[str, KeyRecord] = {}
        self._master: bytes | None = None
        self._seen: tuple[int, int, int] | None = None
        self._load()

    # --- reading --------------------------------------------------------------------------------

    def _signature(self) -> tuple[int, int, int] | None:
        """What identifies one version of the keys file (None: there is none yet)."""
        try:
            status = self.keys_file.stat()
        except FileNotFoundError:
            return None
        except OSError as error:
            raise KeyStoreError(f"{self.keys_file}: cannot read: {error.strerror}") from None
        # The inode too: pdp keys replaces the file, so a same-size rewrite in the same
        # timestamp tick is still seen.
        return (status.st_ino, status.st_mtime_ns, status.st_size)

    def _load(self) -> None:
        signature = self._signature()
        if signature == self._seen:
            return
        if signature is None:
            self._records, self._seen = {}, None
            return
        try:
            document = json.loads(self.keys_file.read_text("utf-8"))
            records = {item["key_id"]: KeyRecord(**item) for item in document.get("keys", [])}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
            raise KeyStoreError(f"{self.keys_file}: not a valid keys file ({error})") from None
        self._records, self._seen = records, signature

    def _fresh(self) -> dict[str, KeyRecord]:
        # SECURITY: a stat on every lookup (about a microsecond), so that a revoked key stops
        # working, and a new one works, the moment pdp keys has written the file.
        if self._signature() != self._seen:
            with self._lock:
                self._load()
        return self._records

    def get(self, key_id: str) -> KeyRecord | None:
        return self._fresh().get(key_id)

    def records(self) -> list[KeyRecord]:
        return sorted(self._fresh().values(), key=lambda r: (r.app, r.created, r.key_id))

    def master_key(self) -> bytes:
        if self._master is None:
            try:
                text = self.master_key_file.read_text("ascii").strip()
                master = base64.b64decode(text, validate=True)
            except FileNotFoundError:
                raise KeyStoreError(
                    f"{self.master_key_file}: missing (pdp keys create makes it)"
                ) from None
            except (OSError, ValueError):
                raise KeyStoreError(f"{self.master_key_file}: not a valid master key") from None
            if len(master) != MASTER_KEY_BYTES:
                raise KeyStoreError(f"{self.master_key_file}: not a valid master key")
            self._master = master
        return self._master

    def derive(self, purpose: str, value: str) -> bytes:
        """HMAC-SHA256(master key, purpose NUL value): secrets and digests, one per purpose."""
        message = purpose.encode() + b"\0" + value.encode()
        return hmac.new(self.master_key(), message, hashlib.sha256).digest()

    # --- writing (pdp keys) ---------------------------------------------------------------------

    def ensure_master_key(self) -> bool:
        """Create the master key if there is none; True if it was created."""
        if self.master_key_file.exists():
            return False
        self.master_key_file.parent.mkdir(parents=True, exist_ok=True)
        encoded = base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)) + b"\n"
        # SECURITY: owner-only from the start, and never overwritten.
        descriptor = os.open(self.master_key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(encoded)
        return True

    def add(self, record: KeyRecord) -> None:
        with self._lock:
            self._load()
            if record.key_id in self._records:
                raise KeyStoreError(f"key `{record.key_id}` exists already")
            self._save({**self._records, record.key_id: record})

    def retire(self, key_id: str, when: str) -> KeyRecord:
        with self._lock:
            self._load()
            record = self._records.get(key_id)
            if record is None:
                raise KeyStoreError(f"no key `{key_id}`")
            if record.retired:
                return record
            retired = replace(record, retired=when)
            self._save({**self._records, key_id: retired})
            return retired

    def _save(self, records: dict[str, KeyRecord]) -> None:
        self.keys_file.parent.mkdir(parents=True, exist_ok=True)
        document = {"keys": [asdict(r) for r in sorted(records.values(), key=lambda r: r.key_id)]}
        handle, temporary = tempfile.mkstemp(dir=self.keys_file.parent, prefix=".keys-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out, indent=2)
                out.write("\n")
            os.replace(temporary, self.keys_file)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        self._seen = None
        self._load()

    def __iter__(self) -> Iterator[KeyRecord]:
        return iter(self.records())

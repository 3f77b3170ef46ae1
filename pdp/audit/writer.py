"""The decision log on disk: append-only JSON Lines, one os.write per batch, rotated by size.

Guarantees, for one process that owns the log (docs/audit.md):
- when `write()` returns, every record of the batch has reached the operating system (and the
  disk, with `fsync = true`), so it survives a crash of pdp;
- a batch is one os.write under a lock, so batches never interleave and lines are always whole;
- when `write()` fails it raises AuditWriteError and removes what it wrote of the batch, and the
  next write starts on a fresh line: a failure never corrupts records written before or after;
- the log stays usable after a failure (disk full, a file closed underneath): the next write
  tries again.

SECURITY: a caller must treat AuditWriteError as "this decision was not recorded" and must not
answer allow for it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from pdp.audit.record import encode
from pdp.config import AuditSettings

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
_FILE_MODE = 0o640  # the log holds subject claims: not world-readable (the umask may tighten it)
_DIRECTORY_MODE = 0o750


class AuditWriteError(Exception):
    """The decision log could not be written: the records of the failed call are not in it."""


class AuditLog:
    """The decision log of one process. Thread-safe."""

    def __init__(self, settings: AuditSettings) -> None:
        """Create the log's directory if needed and open the log for appending.

        Raises AuditWriteError when that fails: pdp must not serve decisions it cannot record.
        """
        if settings.max_bytes < 1 or settings.keep < 1:
            raise ValueError("audit.max_bytes and audit.keep must be at least 1")
        self._settings = settings
        self.path: Path = settings.path
        # path.1 (newest) ... path.keep (oldest)
        self._rotated = [
            settings.path.with_name(f"{settings.path.name}.{number}")
            for number in range(1, settings.keep + 1)
        ]
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        """Bytes in the open file, kept here so a write costs one system call."""
        self._regular = True
        """False for a device or a pipe (e.g. /dev/stdout): those are never rotated."""
        self._torn = False
        """A failed write may have left a partial line: the next write starts a new line."""
        self._closed = False
        try:
            self.path.parent.mkdir(mode=_DIRECTORY_MODE, parents=True, exist_ok=True)
            self._open()
        except OSError as error:
            raise AuditWriteError(_describe(self.path, error)) from error

    def write(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Append `records` (a batch) in one os.write; rotate first if the file would grow past
        `max_bytes`. Returns once the bytes reached the operating system (or the disk, with
        fsync). Raises AuditWriteError if anything fails; the batch is then not in the log."""
        try:
            data = encode(records)  # outside the lock: encoding is most of the work
        except (ValueError, TypeError, RecursionError) as error:
            raise AuditWriteError(f"cannot encode an audit record: {error}") from error
        if not data:
            return
        with self._lock:
            if self._closed:
                raise AuditWriteError(f"{self.path}: the audit log is closed")
            try:
                if self._fd is None:
                    self._open()
                if self._regular and self._size and self._size + len(data) > self._max_bytes:
                    self._rotate()
                if self._torn:
                    data = b"\n" + data  # end the partial line a failed write left behind
                self._append(data)
            except OSError as error:
                raise AuditWriteError(_describe(self.path, error)) from error

    def close(self) -> None:
        """Flush to disk and close. Idempotent; later writes raise AuditWriteError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            fd, self._fd = self._fd, None
            if fd is None:
                return
            problem: OSError | None = None
            try:
                if self._regular:
                    os.fsync(fd)
            except OSError as error:
                problem = error
            try:
                os.close(fd)
            except OSError as error:
                problem = problem or error
            if problem is not None:
                raise AuditWriteError(_describe(self.path, problem)) from problem

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # --- under the lock --------------------------------------------------------------------------

    @property
    def _max_bytes(self) -> int:
        return self._settings.max_bytes

    def _open(self) -> None:
        fd = os.open(self.path, _OPEN_FLAGS, _FILE_MODE)
        try:
            status = os.fstat(fd)
            if self._settings.fsync:
                _sync_directory(self.path.parent)  # so the new file survives a machine crash
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        self._regular = stat.S_ISREG(status.st_mode)
        self._size = status.st_size if self._regular else 0

    def _append(self, data: bytes) -> None:
        fd = self._fd
        assert fd is not None
        start = self._size
        written = 0
        try:
            # One call writes everything to a regular file unless it fails part way (disk full,
            # file size limit); then the next call reports the error.
            view = memoryview(data)
            while written < len(data):
                count = os.write(fd, view[written:])
                if count == 0:
                    raise OSError(errno.EIO, "the operating system accepted no bytes")
                written += count
            if self._settings.fsync:
                os.fsync(fd)
        except OSError as error:
            self._undo(fd, start, written, error)
            raise
        self._torn = False
        if self._regular:
            self._size = start + written

    def _undo(self, fd: int, start: int, written: int, error: OSError) -> None:
        """After a failed write: take the batch's bytes back out, so the log holds whole lines
        and the batch is either recorded or reported as not recorded, never half of each."""
        if error.errno == errno.EBADF:
            # Closed underneath us. Never close that number: it may already be another file's.
            self._fd = None
            self._torn = self._torn or written > 0
            return
        if not written:
            return
        try:
            # Only our own bytes: if the size is not what we expect, someone else appended.
            if self._regular and os.fstat(fd).st_size == start + written:
                os.ftruncate(fd, start)
                return
        except OSError:
            pass
        self._torn = True
        if self._regular:
            self._size = start + written

    def _rotate(self) -> None:
        """path.(keep-1) -> path.keep, ..., path -> path.1, then a new empty path. The oldest
        file is replaced by the rename (os.replace), so at most `keep` rotated files exist."""
        for number in range(len(self._rotated) - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):  # fewer rotations so far than `keep`
                os.replace(self._rotated[number - 1], self._rotated[number])
        with contextlib.suppress(FileNotFoundError):  # removed by hand: start afresh below
            os.replace(self.path, self._rotated[0])
        old, self._fd = self._fd, None
        if old is not None:
            with contextlib.suppress(OSError):  # its data is already with the operating system
                os.close(old)
        self._torn = False  # the torn line, if any, ended with the old file
        self._open()


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _describe(path: Path, error: OSError) -> str:
    if error.errno == errno.EBADF:
        return f"{path}: cannot write the audit log: the file was closed"
    reason = error.strerror or str(error)
    return f"{path}: cannot write the audit log: {reason}"

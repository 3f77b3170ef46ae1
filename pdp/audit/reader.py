"""Reading the decision log back: every file oldest first, filters, and statistics.

The reader never fails on a damaged line (a write cut short by a crash, a disk error, a hand
edit): it skips it and counts it in `RecordStream.skipped`.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

from pdp.audit.record import format_time

MAX_SKIPPED_SHOWN = 20
"""How many skipped lines `RecordStream.skipped_at` names (all are counted)."""


class RecordStream(Iterator[dict[str, Any]]):
    """The records of a log and its rotated files, oldest first, as an iterator.

    The files are opened when the stream is created, so a rotation while reading neither loses
    nor repeats a file; records appended after that are not read.
    """

    def __init__(self, path: Path) -> None:
        self.skipped = 0
        """Lines that were not a whole JSON object (truncated or corrupt), skipped."""
        self.skipped_at: list[str] = []
        """`file:line` of the first MAX_SKIPPED_SHOWN skipped lines."""
        self._files = _open_oldest_first(path)
        self._records = self._read()

    def __next__(self) -> dict[str, Any]:
        return next(self._records)

    def close(self) -> None:
        for _, file in self._files:
            file.close()

    def __enter__(self) -> RecordStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _read(self) -> Iterator[dict[str, Any]]:
        try:
            for name, file in self._files:
                with file:
                    yield from self._records_of(name, file)
        finally:
            self.close()

    def _records_of(self, name: str, file: BinaryIO) -> Iterator[dict[str, Any]]:
        # Binary lines end at b"\n" only; text mode would also split at U+2028 and friends,
        # which JSON leaves unescaped inside strings.
        for number, line in enumerate(file, start=1):
            if line == b"\n":
                continue
            record = _parse(line) if line.endswith(b"\n") else None  # no newline: cut short
            if record is None:
                self.skipped += 1
                if len(self.skipped_at) < MAX_SKIPPED_SHOWN:
                    self.skipped_at.append(f"{name}:{number}")
                continue
            yield record


def read_records(path: Path) -> RecordStream:
    """Every record of the log at `path` and its rotated files (path.N ... path.1, then path),
    oldest first. Raises FileNotFoundError if none of them exists."""
    return RecordStream(path)


@dataclass(frozen=True, slots=True)
class Filter:
    """Which records to keep; None means any. `since` is inclusive, `until` exclusive."""

    decision: str | None = None
    """"allow", "deny" or "rejected"."""
    subject: str | None = None
    """The subject id."""
    action: str | None = None
    resource_type: str | None = None
    rule: str | None = None
    """A rule id named in the record's reasons (a deciding rule)."""
    since: datetime | None = None
    until: datetime | None = None


def matching(records: Iterable[dict[str, Any]], filter: Filter) -> Iterator[dict[str, Any]]:
    """The records that pass `filter`, in order."""
    # Record times are fixed-width UTC text, so comparing the text compares the times.
    since = format_time(filter.since) if filter.since is not None else None
    until = format_time(filter.until) if filter.until is not None else None
    for record in records:
        if filter.decision is not None and record.get("decision") != filter.decision:
            continue
        if filter.subject is not None and _subject_id(record) != filter.subject:
            continue
        if filter.action is not None and record.get("action") != filter.action:
            continue
        if filter.resource_type is not None and _resource_type(record) != filter.resource_type:
            continue
        if filter.rule is not None and filter.rule not in rules_of(record):
            continue
        if since is not None or until is not None:
            time = record.get("time")
            if not isinstance(time, str):
                continue
            if (since is not None and time < since) or (until is not None and time >= until):
                continue
        yield record


@dataclass(slots=True)
class Stats:
    total: int = 0
    by_decision: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    """Records naming each rule in their reasons (the deciding rules)."""
    by_reason: Counter[str] = field(default_factory=Counter)
    """Reasons by code; a record with two reasons of one code counts twice."""
    first_time: str | None = None
    last_time: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "first_time": self.first_time,
            "last_time": self.last_time,
            "by_decision": dict(self.by_decision.most_common()),
            "by_rule": dict(self.by_rule.most_common()),
            "by_reason": dict(self.by_reason.most_common()),
        }


def statistics(records: Iterable[dict[str, Any]]) -> Stats:
    """Counts by decision, by deciding rule and by reason code, the total and the time range."""
    stats = Stats()
    for record in records:
        stats.total += 1
        stats.by_decision[str(record.get("decision"))] += 1
        reasons = record.get("reasons")
        for reason in reasons if isinstance(reasons, list) else ():
            if isinstance(reason, dict):
                stats.by_reason[str(reason.get("code"))] += 1
        for rule in set(rules_of(record)):
            stats.by_rule[rule] += 1
        time = record.get("time")
        if isinstance(time, str):
            if stats.first_time is None or time < stats.first_time:
                stats.first_time = time
            if stats.last_time is None or time > stats.last_time:
                stats.last_time = time
    return stats


def rules_of(record: dict[str, Any]) -> list[str]:
    """The rule ids named in a record's reasons, in order."""
    reasons = record.get("reasons")
    if not isinstance(reasons, list):
        return []
    return [
        reason["rule"]
        for reason in reasons
        if isinstance(reason, dict) and isinstance(reason.get("rule"), str) and reason["rule"]
    ]


# --- helpers -------------------------------------------------------------------------------------


def _open_oldest_first(path: Path) -> list[tuple[str, BinaryIO]]:
    """Open path, path.1, path.2, ... (newest first, so a rotation in between shows up as a file
    seen twice, which is skipped) and return them oldest first."""
    numbers = sorted(_rotation_numbers(path))
    files: list[tuple[str, BinaryIO]] = []
    seen: set[tuple[int, int]] = set()
    try:
        for candidate in [path, *(path.with_name(f"{path.name}.{n}") for n in numbers)]:
            try:
                file: BinaryIO = candidate.open("rb")
            except FileNotFoundError:
                continue
            status = os.fstat(file.fileno())
            if (status.st_dev, status.st_ino) in seen:
                file.close()
                continue
            seen.add((status.st_dev, status.st_ino))
            files.append((str(candidate), file))
    except BaseException:
        for _, file in files:
            file.close()
        raise
    if not files:
        raise FileNotFoundError(f"no audit log at {path}")
    files.reverse()
    return files


def _rotation_numbers(path: Path) -> list[int]:
    prefix = path.name + "."
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return []
    suffixes = [name[len(prefix) :] for name in names if name.startswith(prefix)]
    # isdigit() also accepts other scripts' digits: only ASCII numbers are our rotated files.
    return [int(suffix) for suffix in suffixes if suffix.isascii() and suffix.isdigit()]


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return record if isinstance(record, dict) else None


def _subject_id(record: dict[str, Any]) -> Any:
    subject = record.get("subject")
    return subject.get("id") if isinstance(subject, dict) else None


def _resource_type(record: dict[str, Any]) -> Any:
    resource = record.get("resource")
    return resource.get("type") if isinstance(resource, dict) else None

"""A folder of policy files -> a PolicySet (the first step of the flow, from disk).

A policy set is every `*.policy` file below the folder (searched recursively, in path order),
plus reference data: every `*.json` file inside a directory named `data` becomes `data.<name>`,
where the name is its path below that directory without `.json` (`data/geo/eu.json` is
`data.geo.eu`). Hidden files and directories (such as `.git`) are ignored, and symbolic links
to directories are not followed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pdp.engine.policy_set import PolicySet, PolicySetError, build_policy_set
from pdp.engine.values import InputError, from_json
from pdp.language.limits import MAX_DATA_FILE_BYTES, MAX_FILE_BYTES, MAX_FILES, MAX_SET_BYTES
from pdp.language.parser import ParseResult, parse_source
from pdp.language.schema import SCHEMA_FILE, load_schema
from pdp.language.source import Diagnostic, Source, Span

_log = logging.getLogger("pdp.policies")

POLICY_SUFFIX = ".policy"
DATA_DIRECTORY = "data"


def load_policy_set(folder: str | os.PathLike[str]) -> PolicySet:
    """Read and build the policy set in `folder`. Raises PolicySetError with every problem."""
    return _build_folder(Path(folder), parse_source)


def _build_folder(
    folder: Path, parse: Callable[[Source], ParseResult], names_from: Path | None = None
) -> PolicySet:
    """`names_from`: make file names relative to it (the server does, so that positions in its
    answers show no installation path); by default names are paths as given."""
    contents = read_folder(folder, names_from)
    root = str(folder if names_from is None else folder.relative_to(names_from))
    data, data_problems = _load_data(contents.data)
    schema, schema_problems = load_schema(contents.schemas)
    return build_policy_set(
        contents.policies,
        data,
        [*contents.data, *contents.schemas],
        [*contents.problems, *data_problems, *schema_problems],
        parse=parse,
        root=root,
        schema=schema,
    )


@dataclass(frozen=True, slots=True)
class FolderContents:
    policies: list[Source]
    data: list[Source]
    schemas: list[Source]
    problems: list[Diagnostic]


def _kind(root: Path, path: Path) -> str | None:
    if path.suffix == POLICY_SUFFIX:
        return "policy"
    if path.name == SCHEMA_FILE:
        return "schema"
    if path.suffix == ".json" and DATA_DIRECTORY in path.relative_to(root).parts[:-1]:
        return "data"
    return None


def read_folder(root: Path, names_from: Path | None = None) -> FolderContents:
    """The policy, data and schema sources below `root`, and problems reading them. Sources are
    named by their path, relative to `names_from` when it is given."""
    contents = FolderContents([], [], [], [])
    problems = contents.problems
    if not root.is_dir():
        problems.append(_problem(str(root), "not a directory"))
        return contents
    lists = {"policy": contents.policies, "data": contents.data, "schema": contents.schemas}
    count = total = 0
    for path in _walk(root):
        kind = _kind(root, path)
        if kind is None:
            continue
        count += 1
        if count > MAX_FILES:
            problems.append(_problem(str(root), f"more than {MAX_FILES} files in the policy set"))
            break
        limit = MAX_DATA_FILE_BYTES if kind == "data" else MAX_FILE_BYTES
        name = str(path if names_from is None else path.relative_to(names_from))
        source, problem, size = _read(path, limit, name)
        total += size
        if total > MAX_SET_BYTES:
            problems.append(
                _problem(str(root), f"the policy set is larger than {MAX_SET_BYTES} bytes")
            )
            break
        if problem is not None:
            problems.append(problem)
        elif source is not None:
            lists[kind].append(source)
    return contents


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        found.extend(Path(directory) / name for name in files if not name.startswith("."))
    return sorted(found)


def _read(path: Path, limit: int, name: str) -> tuple[Source | None, Diagnostic | None, int]:
    try:
        size = path.stat().st_size
        if size > limit:
            return None, _problem(name, f"file is larger than the limit of {limit} bytes"), 0
        raw = path.read_bytes()
    except OSError as error:
        return None, _problem(name, f"cannot read file: {error.strerror or error}"), 0
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, _at_offset(name, raw, error.start, "file is not UTF-8 text"), len(raw)
    if "\0" in text:
        return None, _at_offset(name, raw, raw.index(b"\0"), "file contains a NUL byte"), len(raw)
    return Source(name, text.removeprefix("\ufeff")), None, len(raw)


def _at_offset(name: str, raw: bytes, offset: int, message: str) -> Diagnostic:
    line = raw.count(b"\n", 0, offset) + 1
    column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
    return Diagnostic(
        "file", f"{message} (byte {offset})", Span(name, line, column, line, column + 1)
    )


def _problem(name: str, message: str) -> Diagnostic:
    return Diagnostic("file", message, Span(name, 1, 1, 1, 1))


def _load_data(sources: list[Source]) -> tuple[dict[str, Any], list[Diagnostic]]:
    data: dict[str, Any] = {}
    owners: dict[tuple[str, ...], str] = {}
    problems: list[Diagnostic] = []
    for source in sources:
        key = _data_key(source.name)
        try:
            value = from_json(json.loads(source.text))
        except json.JSONDecodeError as error:
            span = Span(source.name, error.lineno, error.colno, error.lineno, error.colno + 1)
            problems.append(Diagnostic("data", f"invalid JSON: {error.msg.lower()}", span))
            continue
        except (InputError, RecursionError) as error:
            detail = str(error) if isinstance(error, InputError) else "nested too deeply"
            problems.append(_problem(source.name, f"unusable data: {detail}"))
            continue
        clash = next((owners[key[:n]] for n in range(1, len(key) + 1) if key[:n] in owners), None)
        clash = clash or next((o for k, o in owners.items() if k[: len(key)] == key), None)
        if clash is not None:
            problems.append(
                _problem(source.name, f"`data.{'.'.join(key)}` is also defined by {clash}")
            )
            continue
        owners[key] = source.name
        target = data
        for name in key[:-1]:
            target = target.setdefault(name, {})
        target[key[-1]] = value
    return data, problems


def _data_key(name: str) -> tuple[str, ...]:
    parts = Path(name).with_suffix("").parts
    directories = parts[:-1]
    # Below the innermost `data` directory: `policies/shop/data/geo/eu.json` -> ("geo", "eu").
    innermost = len(directories) - 1 - directories[::-1].index(DATA_DIRECTORY)
    return tuple(parts[innermost + 1 :])


# --- a policy set that changes while a server runs --------------------------------------------


class ParseCache:
    """Parses of unchanged files, reused across reloads: editing one file of a large set
    re-parses that file only. Keyed by file name and a digest of the text."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, bytes], ParseResult] = {}
        self._used: set[tuple[str, bytes]] = set()
        self._lock = threading.Lock()

    def parse(self, source: Source) -> ParseResult:
        key = (source.name, hashlib.sha256(source.text.encode()).digest())
        with self._lock:
            self._used.add(key)
            found = self._entries.get(key)
        if found is None:
            found = parse_source(source)
            with self._lock:
                self._entries[key] = found
        return found

    def forget_unused(self) -> None:
        """Drop entries the last build did not ask for, so the cache tracks the folder."""
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k in self._used}
            self._used = set()


@dataclass(frozen=True, slots=True)
class ReloadResult:
    changed: bool
    """A new policy set is in service."""
    revision: str
    """The revision in service after the attempt."""
    diagnostics: tuple[Diagnostic, ...] = ()
    """Why the attempt failed (the previous set stays in service), or warnings."""


class PolicyStore:
    """The policy set in service, and safe reloads of it.

    A reload builds the new set aside; only a set without errors replaces the current one, in
    one assignment, so a request sees either the old set or the new one, never a mix. A broken
    edit leaves the last good set in service and reports every error, with its position.
    """

    def __init__(self, folder: str | os.PathLike[str], relative_names: bool = False) -> None:
        """`relative_names`: name files from the folder's own name down (`policies/x.policy`),
        so positions in answers show no installation path."""
        self.folder = Path(folder)
        self._names_from = self.folder.resolve().parent if relative_names else None
        self._cache = ParseCache()
        self._reload_lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._stop = threading.Event()
        self._snapshot: tuple[tuple[str, int, int], ...] = ()
        self._current = self._build()  # raises PolicySetError: no good set to start with

    @property
    def current(self) -> PolicySet:
        return self._current

    def _build(self) -> PolicySet:
        # Taken before reading: a change made while we read shows up as a difference next time.
        # Kept whatever the outcome, so a broken file is reported once, not on every poll.
        self._snapshot = _snapshot(self.folder)
        try:
            folder = self.folder.resolve() if self._names_from is not None else self.folder
            return _build_folder(folder, self._cache.parse, self._names_from)
        finally:
            self._cache.forget_unused()

    def reload(self) -> ReloadResult:
        """Build the folder's policy set aside and put it in service if it is clean."""
        with self._reload_lock:
            previous = self._current
            try:
                policy_set = self._build()
            except PolicySetError as error:
                _log.error(
                    "policy reload failed; keeping revision %s in service:\n%s",
                    previous.revision,
                    error.render(),
                )
                return ReloadResult(False, previous.revision, error.diagnostics)
            self._current = policy_set
            changed = policy_set.revision != previous.revision
            if changed:
                _log.info(
                    "policies reloaded: revision %s -> %s, %d rules",
                    previous.revision,
                    policy_set.revision,
                    len(policy_set.rules),
                )
            for warning in policy_set.warnings:
                _log.warning("%s", warning.render())
            return ReloadResult(changed, policy_set.revision, policy_set.warnings)

    def changed_on_disk(self) -> bool:
        return _snapshot(self.folder) != self._snapshot

    def watch(self, poll_seconds: float) -> None:
        """Reload whenever a policy or data file changes (checked every `poll_seconds`)."""
        if self._watcher is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(poll_seconds):
                try:
                    if self.changed_on_disk():
                        self.reload()
                except Exception:  # a watcher that dies silently would be worse
                    _log.exception("policy watcher: unexpected error")

        self._watcher = threading.Thread(target=loop, name="pdp-policy-watch", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None


def _snapshot(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Name, modification time and size of every file that makes up the set."""
    entries = []
    if root.is_dir():
        for path in _walk(root):
            if _kind(root, path) is not None:
                try:
                    status = path.stat()
                except OSError:
                    continue
                entries.append((str(path), status.st_mtime_ns, status.st_size))
    return tuple(entries)

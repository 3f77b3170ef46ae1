"""A folder of policy files -> a PolicySet (the first step of the flow, from disk).

A policy set is every `*.policy` file below the folder (searched recursively, in path order),
plus reference data: every `*.json` file inside a directory named `data` becomes `data.<name>`,
where the name is its path below that directory without `.json` (`data/geo/eu.json` is
`data.geo.eu`). Hidden files and directories (such as `.git`) are ignored, and symbolic links
to directories are not followed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pdp.engine.policy_set import PolicySet, build_policy_set
from pdp.engine.values import InputError, from_json
from pdp.language.limits import MAX_DATA_FILE_BYTES, MAX_FILE_BYTES, MAX_FILES, MAX_SET_BYTES
from pdp.language.source import Diagnostic, Source, Span

POLICY_SUFFIX = ".policy"
DATA_DIRECTORY = "data"


def load_policy_set(folder: str | os.PathLike[str]) -> PolicySet:
    """Read and build the policy set in `folder`. Raises PolicySetError with every problem."""
    policies, data_files, problems = read_folder(Path(folder))
    data, data_problems = _load_data(data_files)
    return build_policy_set(policies, data, data_files, [*problems, *data_problems])


def read_folder(root: Path) -> tuple[list[Source], list[Source], list[Diagnostic]]:
    """The policy sources and data sources below `root`, and problems reading them."""
    problems: list[Diagnostic] = []
    if not root.is_dir():
        problems.append(_problem(str(root), "not a directory"))
        return [], [], problems
    policies: list[Source] = []
    data: list[Source] = []
    total = 0
    for path in _walk(root):
        is_policy = path.suffix == POLICY_SUFFIX
        is_data = path.suffix == ".json" and DATA_DIRECTORY in path.relative_to(root).parts[:-1]
        if not (is_policy or is_data):
            continue
        if len(policies) + len(data) >= MAX_FILES:
            problems.append(_problem(str(root), f"more than {MAX_FILES} files in the policy set"))
            break
        limit = MAX_FILE_BYTES if is_policy else MAX_DATA_FILE_BYTES
        source, problem, size = _read(path, limit)
        total += size
        if total > MAX_SET_BYTES:
            problems.append(
                _problem(str(root), f"the policy set is larger than {MAX_SET_BYTES} bytes")
            )
            break
        if problem is not None:
            problems.append(problem)
        elif source is not None:
            (policies if is_policy else data).append(source)
    return policies, data, problems


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(root, followlinks=False):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        found.extend(Path(directory) / name for name in files if not name.startswith("."))
    return sorted(found)


def _read(path: Path, limit: int) -> tuple[Source | None, Diagnostic | None, int]:
    name = str(path)
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

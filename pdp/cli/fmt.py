"""`pdp fmt`: rewrite policy files in the canonical layout (see pdp/language/formatter.py).

Files are replaced atomically (a hidden temporary file in the same directory, renamed over the
original, with the original's permissions), so a running server never reads half a file. A file
that does not parse is reported with its diagnostics and left as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pdp.cli import exit_codes
from pdp.cli.output import print_diagnostics
from pdp.language.formatter import FormatError, UnsafeFormatError, format_source
from pdp.language.limits import MAX_FILE_BYTES
from pdp.language.source import Diagnostic, Source, Span

POLICY_SUFFIX = ".policy"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "fmt",
        help="rewrite policy files in the canonical layout",
        description=(
            "Rewrite *.policy files in the canonical layout (folders are searched recursively; "
            "hidden files and folders are skipped). Only layout changes: the policies mean the "
            "same, and comments are kept. Exit code: 0 success (with --check: every file is "
            "formatted), 1 with --check: some file would change, 2 a file does not parse or "
            "cannot be read or written (it is left untouched)."
        ),
    )
    parser.add_argument(
        "paths", nargs="+", metavar="PATH", help="policy files, or folders to search for them"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing; list the files that would change and exit 1 if there are any",
    )
    parser.add_argument(
        "--diff", action="store_true", help="change nothing; print a unified diff of the changes"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    files, problems = _collect(args.paths)
    failed = bool(problems)
    print_diagnostics(problems, sys.stderr)
    changed = unchanged = 0
    for path in files:
        source, problem = _read(path)
        if source is None:
            print_diagnostics([problem] if problem else [], sys.stderr)
            failed = True
            continue
        try:
            formatted = format_source(source)
        except FormatError as error:
            print_diagnostics(error.diagnostics, sys.stderr)
            failed = True
            continue
        except UnsafeFormatError as error:
            print(f"{path}: internal error, file left untouched: {error}", file=sys.stderr)
            failed = True
            continue
        if formatted == source.text:
            unchanged += 1
            continue
        changed += 1
        if args.diff:
            sys.stdout.write(_diff(str(path), source.text, formatted))
        if args.check:
            if not args.diff:
                print(path)
        elif not args.diff:
            try:
                write_atomically(path, formatted)
            except OSError as error:
                print(f"{path}: cannot write: {error.strerror or error}", file=sys.stderr)
                failed = True
                continue
            print(f"reformatted {path}")
    _summary(changed, unchanged, failed, dry_run=args.check or args.diff)
    if failed:
        return exit_codes.ERROR
    if args.check and changed:
        return exit_codes.DENY
    return exit_codes.ALLOW


def _summary(changed: int, unchanged: int, failed: bool, dry_run: bool) -> None:
    verb = "would be reformatted" if dry_run else "reformatted"
    parts = [f"{_count(changed, 'file')} {verb}", f"{unchanged} already formatted"]
    if failed:
        parts.append("some files could not be formatted")
    print(", ".join(parts), file=sys.stderr)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _collect(arguments: list[str]) -> tuple[list[Path], list[Diagnostic]]:
    files: list[Path] = []
    problems: list[Diagnostic] = []
    seen: set[Path] = set()
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = list(_policy_files(path))
        elif path.exists():
            found = [path]  # named explicitly: formatted whatever its suffix
        else:
            problems.append(_problem(argument, "no such file or folder"))
            continue
        for file in found:
            if file not in seen:
                seen.add(file)
                files.append(file)
    return files, problems


def _policy_files(folder: Path) -> Iterator[Path]:
    # As the policy loader does: hidden entries skipped, symbolic links to folders not followed.
    found: list[Path] = []
    for directory, subdirectories, names in os.walk(folder, followlinks=False):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        found.extend(
            Path(directory) / name
            for name in names
            if name.endswith(POLICY_SUFFIX) and not name.startswith(".")
        )
    yield from sorted(found)


def _read(path: Path) -> tuple[Source | None, Diagnostic | None]:
    name = str(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None, _problem(name, f"file is larger than the limit of {MAX_FILE_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as error:
        return None, _problem(name, f"cannot read file: {error.strerror or error}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, _problem(name, f"file is not UTF-8 text (byte {error.start})")
    if "\0" in text:
        return None, _problem(name, "file contains a NUL byte")
    return Source(name, text), None


def _problem(name: str, message: str) -> Diagnostic:
    return Diagnostic("file", message, Span(name, 1, 1, 1, 1))


def _diff(name: str, before: str, after: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=name,
        tofile=f"{name} (formatted)",
    )
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)


def write_atomically(path: Path, text: str) -> None:
    """Replace the file's content in one step: a temporary file in the same directory (so the
    rename cannot cross file systems), flushed to disk, given the original's permissions, then
    renamed over the original. A symbolic link stays a link: its target is replaced."""
    target = Path(os.path.realpath(path))
    mode = stat.S_IMODE(target.stat().st_mode)
    handle, temporary = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(text.encode("utf-8"))
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise

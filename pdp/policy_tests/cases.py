"""Policy test files: `*.test.toml` beside the policies, each a list of named cases.

    [[case]]
    name = "an adult in Sweden may buy alcohol"
    now = "2026-11-23T12:00:00Z"          # optional, RFC 3339 with an offset
    action = "purchase"
    subject = { sub = "u-1", age = 30, country = "SE" }
    resource = { type = "Product", id = "p-1", category = "alcohol" }
    context = { hour = 13 }               # optional
    caller = { spiffe_id = "spiffe://example.test/reports" }   # optional: the calling service
    expect = "allow"                      # or "deny"
    rules = ["purchase-alcohol"]          # optional: the deciding rule ids, in order
    reason_codes = ["rule.permit"]        # optional: the reason codes, in order

`subject`, `resource`, `context` and `caller` hold what a JSON request would: strings, integers,
decimals (TOML floats become decimals, as JSON floats do), booleans, arrays and tables. TOML
dates and times are refused: JSON has none, so no real request could carry one (write
"2008-05-01").

A case without `now` is decided at DEFAULT_NOW, never at the clock's time, so a test gives the
same answer every day.

Files are validated strictly: an unknown key, a value of the wrong type or a missing `name`,
`expect`, `action` or `resource.type` is a problem, reported as `file:line: error: message`.
tomllib gives no positions, so the line is found in the text: the line of the offending key in
the case's `[[case]]` block, else the case's `name = ...` line.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from pdp.engine.decision import Request, RequestError
from pdp.language import literals

TEST_SUFFIX = ".test.toml"

DEFAULT_NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
"""When a case gives no `now`: Monday 23 November 2026, 12:00 UTC."""

CASE_KEYS = (
    "name",
    "now",
    "action",
    "subject",
    "resource",
    "context",
    "caller",
    "expect",
    "rules",
    "reason_codes",
)
OUTCOMES = ("allow", "deny")


@dataclass(frozen=True, slots=True)
class CaseProblem:
    """Something wrong in a test file, where it is (column 0: unknown)."""

    file: str
    line: int
    message: str
    column: int = 0

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: error: {self.message}"


@dataclass(frozen=True, slots=True)
class PolicyCase:
    """One case of a test file, validated and ready to run."""

    file: str
    line: int
    """The line of the case's `name = ...` (or of its `[[case]]` header)."""
    name: str
    request: Request
    now: datetime
    expect: str
    rules: tuple[str, ...] | None
    reason_codes: tuple[str, ...] | None

    @property
    def id(self) -> str:
        """`file::name`, as the runner prints it and `-k` matches it."""
        return f"{self.file}::{self.name}"


class CaseFileError(Exception):
    """Test files that cannot be used; `problems` says why, all of them."""

    def __init__(self, problems: list[CaseProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        super().__init__(f"{count} problem{'' if count == 1 else 's'} in the test files")


def find_case_files(folder: str | os.PathLike[str]) -> list[Path]:
    """Every `*.test.toml` below `folder`, in path order. Like the policy loader, hidden files
    and directories are skipped and symbolic links to directories are not followed."""
    found: list[Path] = []
    for directory, subdirectories, files in os.walk(folder, followlinks=False):
        subdirectories[:] = sorted(d for d in subdirectories if not d.startswith("."))
        found.extend(
            Path(directory) / name
            for name in files
            if name.endswith(TEST_SUFFIX) and not name.startswith(".")
        )
    return sorted(found)


def load_cases(folder: str | os.PathLike[str]) -> list[PolicyCase]:
    """The cases of every test file below `folder`. Raises CaseFileError with every problem in
    every file: a run never starts on half of a broken file."""
    cases: list[PolicyCase] = []
    problems: list[CaseProblem] = []
    for path in find_case_files(folder):
        try:
            cases.extend(load_case_file(path))
        except CaseFileError as error:
            problems.extend(error.problems)
    if problems:
        raise CaseFileError(problems)
    return cases


def load_case_file(path: str | os.PathLike[str]) -> list[PolicyCase]:
    name = str(path)
    try:
        text = Path(path).read_text("utf-8")
    except OSError as error:
        problem = CaseProblem(name, 1, f"cannot read: {error.strerror or error}")
        raise CaseFileError([problem]) from None
    except UnicodeDecodeError:
        raise CaseFileError([CaseProblem(name, 1, "not UTF-8 text")]) from None
    return parse_case_file(name, text)


def parse_case_file(name: str, text: str) -> list[PolicyCase]:
    """The cases in `text` (the contents of the file `name`). Raises CaseFileError."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise CaseFileError([_syntax_problem(name, error)]) from None
    lines = _Lines(name, text)
    problems: list[CaseProblem] = []
    for key in document:
        if key != "case":
            problems.append(
                CaseProblem(name, lines.top_level(key), f"unknown key `{key}` (use [[case]])")
            )
    raw_cases = document.get("case", [])
    if not isinstance(raw_cases, list) or not all(isinstance(c, dict) for c in raw_cases):
        problems.append(
            CaseProblem(name, lines.top_level("case"), "`case` must be an array of tables")
        )
        raise CaseFileError(problems)
    if not raw_cases and not problems:
        problems.append(CaseProblem(name, 1, "no [[case]] in the file"))
    lines.locate_cases(raw_cases)
    cases: list[PolicyCase] = []
    seen: dict[str, int] = {}
    for number, raw in enumerate(raw_cases):
        case, case_problems = _parse_case(name, number, raw, lines)
        problems.extend(case_problems)
        if case is None:
            continue
        if case.name in seen:
            label = json.dumps(case.name, ensure_ascii=False)
            message = f"case {label}: a case of that name is already at line {seen[case.name]}"
            problems.append(CaseProblem(name, case.line, message))
        seen.setdefault(case.name, case.line)
        cases.append(case)
    if problems:
        raise CaseFileError(sorted(problems, key=lambda problem: problem.line))
    return cases


def _syntax_problem(name: str, error: tomllib.TOMLDecodeError) -> CaseProblem:
    # tomllib only puts the position in the message: "... (at line 3, column 7)".
    message = str(error)
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if found is None:
        return CaseProblem(name, 1, f"invalid TOML: {message}")
    text = message[: found.start()]
    return CaseProblem(name, int(found[1]), f"invalid TOML: {text}", int(found[2]))


def _parse_case(
    file: str, number: int, raw: dict[str, Any], lines: _Lines
) -> tuple[PolicyCase | None, list[CaseProblem]]:
    problems: list[CaseProblem] = []
    raw_name = raw.get("name")
    label = (
        json.dumps(raw_name, ensure_ascii=False)
        if isinstance(raw_name, str) and raw_name.strip()
        else f"#{number + 1}"
    )

    def problem(key: str, message: str) -> None:
        problems.append(CaseProblem(file, lines.key(number, key), f"case {label}: {message}"))

    for key in raw:
        if key not in CASE_KEYS:
            problem(key, f"unknown key `{key}` (known: {', '.join(CASE_KEYS)})")

    if "name" not in raw:
        problem("name", "`name` is required")
    elif not isinstance(raw_name, str) or not raw_name.strip():
        problem("name", "`name` must be a non-empty string")

    expect = raw.get("expect")
    if "expect" not in raw:
        problem("expect", '`expect` is required ("allow" or "deny")')
    elif expect not in OUTCOMES:
        problem("expect", f'`expect` must be "allow" or "deny", not {_shown(expect)}')

    action = raw.get("action")
    if "action" not in raw:
        problem("action", "`action` is required")
    elif not isinstance(action, str) or not action:
        problem("action", "`action` must be a non-empty string")

    resource = raw.get("resource")
    if "resource" not in raw:
        problem("resource", "`resource` is required (a table with at least `type`)")
    elif not isinstance(resource, dict):
        problem("resource", "`resource` must be a table")
    elif "type" not in resource:
        problem("resource", "`resource.type` is required")
    elif not isinstance(resource["type"], str) or not resource["type"]:
        problem("resource", "`resource.type` must be a non-empty string")
    elif not isinstance(resource.get("id", ""), str):
        problem("resource", "`resource.id` must be a string")

    for key in ("subject", "context", "caller"):
        if key in raw and not isinstance(raw[key], dict):
            problem(key, f"`{key}` must be a table")
    for key in ("subject", "resource", "context", "caller"):
        if isinstance(raw.get(key), dict):
            bad = _first_non_json(raw[key], key)
            if bad is not None:
                problem(key, bad)

    now = DEFAULT_NOW
    if "now" in raw:
        parsed, message = _parse_now(raw["now"])
        if parsed is None:
            problem("now", message)
        else:
            now = parsed

    expected_lists: dict[str, tuple[str, ...] | None] = {"rules": None, "reason_codes": None}
    for key in expected_lists:
        if key not in raw:
            continue
        value = raw[key]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            problem(key, f"`{key}` must be an array of strings")
        else:
            expected_lists[key] = tuple(value)

    if problems:
        return None, problems
    try:
        request = Request.from_json(
            {
                "subject": raw.get("subject", {}),
                "action": action,
                "resource": resource,
                "context": raw.get("context", {}),
                "caller": raw.get("caller", {}),
            }
        )
    except RequestError as error:
        # Its messages name the part they are about: "`context`: numbers must be finite".
        part = re.match(r"`(\w+)", str(error))
        problem(part[1] if part else "resource", f"invalid request: {error}")
        return None, problems
    case = PolicyCase(
        file=file,
        line=lines.name_line(number),
        name=str(raw_name),
        request=request,
        now=now,
        expect=str(expect),
        rules=expected_lists["rules"],
        reason_codes=expected_lists["reason_codes"],
    )
    return case, problems


def _parse_now(value: object) -> tuple[datetime | None, str]:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return None, "`now` needs an offset (e.g. 2026-11-23T12:00:00Z)"
        return value.astimezone(UTC), ""
    if isinstance(value, str):
        try:
            return literals.parse_datetime(value), ""
        except ValueError as error:
            return None, f"`now`: {error}"
    return None, f"`now` must be an RFC 3339 time with an offset, not {_shown(value)}"


def _first_non_json(value: object, path: str) -> str | None:
    """A message for the first TOML date or time inside `value`, which no JSON request holds."""
    if isinstance(value, datetime | date | time):
        return (
            f"`{path}` is a TOML date or time, which a JSON request cannot hold: "
            f'write it as a string ("{value.isoformat()}")'
        )
    if isinstance(value, dict):
        for key, item in value.items():
            found = _first_non_json(item, f"{path}.{key}")
            if found is not None:
                return found
    if isinstance(value, list):
        for position, item in enumerate(value):
            found = _first_non_json(item, f"{path}[{position}]")
            if found is not None:
                return found
    return None


def _shown(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


class _Lines:
    """Where things are written in a test file, as well as its text can tell."""

    _HEADER = re.compile(r"^[ \t]*\[\[[ \t]*(?:case|\"case\"|'case')[ \t]*\]\]", re.MULTILINE)

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.lines = text.splitlines()
        self.headers = [
            text.count("\n", 0, match.start()) + 1 for match in self._HEADER.finditer(text)
        ]
        self.blocks: list[tuple[int, int]] = []
        """Per case: its first and last line (1-based), or the whole file when not known."""

    def locate_cases(self, cases: list[dict[str, Any]]) -> None:
        if cases and len(self.headers) == len(cases):
            ends = [start - 1 for start in self.headers[1:]] + [len(self.lines)]
            self.blocks = list(zip(self.headers, ends, strict=True))
            return
        # Written some other way (`case = [{...}, ...]`): each case is found by its name.
        self.blocks = []
        for case in cases:
            line = self._find(_key_pattern("name", case.get("name")), 1, len(self.lines))
            self.blocks.append((line, line) if line else (1, 1))

    def name_line(self, number: int) -> int:
        return self.key(number, "name")

    def key(self, number: int, key: str) -> int:
        """The line of `key` in case `number`; else the case's name line; else its start."""
        start, end = self.blocks[number]
        # The case's own keys come before its first sub-table (`[case.subject]`); the keys
        # after that belong to the sub-table (a subject may well have a `name` claim).
        first_table = self._find(_TABLE_HEADER, start + 1, end)
        own_end = first_table - 1 if first_table else end
        for candidate in (key, "name"):
            line = self._find(_key_pattern(candidate), start, own_end)
            line = line or self._find(_sub_table_pattern(candidate), start, end)
            if line:
                return line
        return start

    def top_level(self, key: str) -> int:
        """The line of a top-level key or table: before the first `[[case]]` or a header."""
        end = (self.headers[0] - 1) if self.headers else len(self.lines)
        line = self._find(_key_pattern(key), 1, end)
        if line:
            return line
        header = re.compile(rf"^[ \t]*\[+[ \t]*{re.escape(key)}[ \t]*[.\]]")
        return self._find(header, 1, len(self.lines)) or 1

    def _find(self, pattern: re.Pattern[str], start: int, end: int) -> int:
        for number in range(max(start, 1), min(end, len(self.lines)) + 1):
            if pattern.search(self.lines[number - 1]):
                return number
        return 0


_TABLE_HEADER = re.compile(r"^[ \t]*\[")


def _quoted(key: str) -> str:
    return rf"(?:{re.escape(key)}|\"{re.escape(key)}\"|'{re.escape(key)}')"


def _key_pattern(key: str, value: object = None) -> re.Pattern[str]:
    """`key = ...`, `"key" = ...` or `key.sub = ...`; with a string `value`, only
    `key = "value"`, also inside an inline table."""
    if isinstance(value, str):
        literal = rf"(?:\"{re.escape(value)}\"|'{re.escape(value)}')"
        return re.compile(rf"(?:^|[{{,])[ \t]*{_quoted(key)}[ \t]*=[ \t]*{literal}")
    return re.compile(rf"^[ \t]*{_quoted(key)}[ \t]*[=.]")


def _sub_table_pattern(key: str) -> re.Pattern[str]:
    """`[case.key]` or `[case.key.sub]`."""
    return re.compile(rf"^[ \t]*\[[ \t]*case[ \t]*\.[ \t]*{_quoted(key)}[ \t]*[.\]]")

"""Runs every example in docs/language.md, so the language reference cannot drift from pdp.

The document's fenced blocks are recognised by their info string. A fence starts at column 0 with
three backticks; any other fence, or an info string not listed here, fails the test.

    ```pdp                a policy file, `example.policy`: starts a new example
    ```pdp invalid        a policy file that must fail to load: starts a new example; a
                          `text diagnostics` block follows it, or a `text cli` block later
                          shows `pdp lint` on it
    ```pdp file=PATH      one file of a folder example (PATH relative to the policy folder);
    ```json file=PATH     consecutive `file=` blocks form one folder, loaded from disk with
                          load_policy_set, so data files must sit below a `data/` directory
    ```json data NAME     `data.NAME` (dots nest) for the next `pdp` or `pdp invalid` block
    ```toml schema        the folder's `schema.toml` for the next `pdp` or `pdp invalid` block
                          (loaded as the policy store loads it; its problems are diagnostics)
    ```json check         one request against the current example, and what pdp must answer:
                          {"request": {...},          as `pdp check` reads it
                           "now": "RFC 3339",         optional; default 2026-11-23T12:00:00Z
                           "expect": "allow" | "deny",
                           "rules": [ids],            optional: Decision.rules, in order
                           "reasons": [text],         optional: "CODE RULE: MESSAGE" (no RULE
                                                      for default.deny), in order
                           "errors": [text],          optional: "RULE: MESSAGE", in order
                           "explain": [text]}         optional: runs in explain mode and lists
                                                      the exact explanation messages, in order
    ```text diagnostics   right after a `pdp` / `pdp invalid` block: the exact
                          Diagnostic.headline() lines (errors and warnings, in order); a `pdp`
                          block without one must load with no warnings at all
    ```text cli           `$ pdp ...`, then the exact output. It runs in a scratch folder where
                          `policies/` holds the current example (a single file as
                          `policies/example.policy`, its data under `policies/data/`, its
                          schema as `policies/schema.toml`) and
                          `request.json` holds the request of the example's latest check. The
                          policy revision (a hash) is shown as `...`.
    ```text syntax        a sketch of the syntax, for reading only: not run, not an example

Every example that loads must have at least one check that allows and one that denies, so each
condition is shown to discriminate. Feature coverage is asserted by scanning the policy text of
the examples that run (comments removed, string contents scanned separately): a feature without
a running example fails `test_every_feature_has_an_example`.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pdp import cli
from pdp.engine.authorizer import authorize
from pdp.engine.decision import Decision, Request
from pdp.engine.policy_set import PolicySet, PolicySetError, build_policy_set
from pdp.engine.values import MAX_INPUT_DEPTH, from_json
from pdp.language import limits
from pdp.language.literals import parse_datetime
from pdp.language.schema import SCHEMA_FILE, load_schema
from pdp.language.source import Source
from pdp.language.types import SIGNATURES
from pdp.policy_store import load_policy_set

DOC = Path(__file__).resolve().parent.parent / "docs" / "language.md"
DEFAULT_NOW = "2026-11-23T12:00:00Z"
SINGLE_FILE = "example.policy"
CHECK_KEYS = {"request", "now", "expect", "rules", "reasons", "errors", "explain"}
MIN_CHECKS = 40


# --- the document's structure -------------------------------------------------------------------


@dataclass
class Check:
    line: int
    spec: dict[str, Any]


@dataclass
class CliRun:
    line: int
    command: str
    expected: list[str]
    request: dict[str, Any] | None
    """The request of the example's latest check before this block, if any."""


@dataclass
class Example:
    line: int
    kind: str
    """`policy` (one file), `invalid` (one file that must not load) or `folder`."""
    files: dict[str, str] = field(default_factory=dict)
    """Policy and data files: path -> text. A single-file example holds `example.policy`."""
    data: dict[str, Any] = field(default_factory=dict)
    """`data` for a single-file example, as JSON (before conversion to engine values)."""
    schema: str | None = None
    """The text of `schema.toml` for a single-file example, if it has one."""
    checks: list[Check] = field(default_factory=list)
    diagnostics: list[str] | None = None
    cli_runs: list[CliRun] = field(default_factory=list)

    @property
    def policy_texts(self) -> list[str]:
        return [text for path, text in self.files.items() if path.endswith(".policy")]

    @property
    def runs(self) -> bool:
        """Whether requests are decided against it (only those examples count for coverage)."""
        return self.kind != "invalid" and bool(self.checks)


@dataclass
class Block:
    line: int
    info: str
    body: str


_NAME_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_FILE_PATH = re.compile(r"(?:[A-Za-z0-9_.-]+/)*[A-Za-z0-9_.-]+\.(?:policy|json)")


def fenced_blocks(text: str) -> tuple[list[Block], list[str]]:
    blocks: list[Block] = []
    problems: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")) and (line != stripped or stripped[0] == "~"):
            problems.append(f"line {index + 1}: fences must start at column 0 with ```")
        if line.startswith("```"):
            start = index
            body: list[str] = []
            index += 1
            while index < len(lines) and lines[index] != "```":
                body.append(lines[index])
                index += 1
            if index == len(lines):
                problems.append(f"line {start + 1}: block is never closed")
                break
            blocks.append(Block(start + 1, line[3:].strip(), "\n".join(body) + "\n"))
        index += 1
    return blocks, problems


def parse_document(text: str) -> tuple[list[Example], list[str]]:
    """The examples of the document, and every problem with its blocks."""
    blocks, problems = fenced_blocks(text)
    examples: list[Example] = []
    current: Example | None = None
    pending_data: dict[str, Any] = {}
    pending_line = 0
    pending_schema: Block | None = None
    previous_info = ""

    def problem(block: Block, message: str) -> None:
        problems.append(f"line {block.line} (```{block.info}): {message}")

    def load_json(block: Block) -> Any:
        try:
            return json.loads(block.body)
        except json.JSONDecodeError as error:
            problem(block, f"invalid JSON: {error}")
            return None

    def start(block: Block, kind: str) -> Example:
        nonlocal pending_data, pending_schema
        example = Example(block.line, kind)
        if kind != "folder":
            example.files[SINGLE_FILE] = block.body
            example.data, pending_data = pending_data, {}
            if pending_schema is not None:
                example.schema, pending_schema = pending_schema.body, None
        elif pending_data:
            problem(block, "a `json data` block cannot feed a folder example")
        elif pending_schema is not None:
            problem(block, "a `toml schema` block cannot feed a folder example")
        examples.append(example)
        return example

    for block in blocks:
        info = block.info
        file_match = re.fullmatch(r"(pdp|json) file=(\S+)", info)
        data_match = re.fullmatch(r"json data (\S+)", info)
        if info == "pdp":
            current = start(block, "policy")
        elif info == "pdp invalid":
            current = start(block, "invalid")
        elif file_match:
            language, path = file_match.groups()
            if not _FILE_PATH.fullmatch(path) or ".." in path.split("/"):
                problem(block, f"bad file path `{path}`")
            elif (language == "pdp") != path.endswith(".policy"):
                problem(block, "a `pdp` file ends with .policy, a `json` file with .json")
            if current is None or current.kind != "folder" or "file=" not in previous_info:
                current = start(block, "folder")
            if path in current.files:
                problem(block, f"`{path}` appears twice in one folder")
            if language == "json":
                load_json(block)
            current.files[path] = block.body
        elif data_match:
            name = data_match.group(1)
            value = load_json(block)
            if not _NAME_PATH.fullmatch(name):
                problem(block, f"bad data name `{name}`")
            elif value is not None:
                target = pending_data
                *parents, last = name.split(".")
                for parent in parents:
                    target = target.setdefault(parent, {})
                target[last] = value
                pending_line = block.line
        elif info == "toml schema":
            try:
                tomllib.loads(block.body)
            except tomllib.TOMLDecodeError as error:
                problem(block, f"invalid TOML: {error}")
            if pending_schema is not None:
                problem(block, "two `toml schema` blocks for one example")
            pending_schema = block
        elif info == "json check":
            spec = load_json(block)
            if current is None or current.kind == "invalid":
                problem(block, "a check needs a `pdp` example above it")
            elif (message := _check_problem(spec)) is not None:
                problem(block, message)
            else:
                current.checks.append(Check(block.line, spec))
        elif info == "text diagnostics":
            if (
                current is None
                or current.kind == "folder"
                or previous_info not in ("pdp", "pdp invalid")
            ):
                problem(block, "diagnostics must directly follow a `pdp` or `pdp invalid` block")
            elif current.diagnostics is not None:
                problem(block, "the example already has diagnostics")
            else:
                current.diagnostics = block.body.splitlines()
        elif info == "text cli":
            lines = block.body.splitlines()
            if current is None:
                problem(block, "a cli block needs an example above it")
            elif not lines or not lines[0].startswith("$ pdp "):
                problem(block, "a cli block starts with `$ pdp ...`")
            else:
                request = current.checks[-1].spec["request"] if current.checks else None
                current.cli_runs.append(CliRun(block.line, lines[0][2:], lines[1:], request))
        elif info == "text syntax":
            pass
        else:
            problem(block, "unrecognised block (see the format in tests/test_docs_examples.py)")
        previous_info = info

    if pending_data:
        problems.append(f"line {pending_line}: a `json data` block with no `pdp` block after it")
    if pending_schema is not None:
        problems.append(
            f"line {pending_schema.line}: a `toml schema` block with no `pdp` block after it"
        )
    for example in examples:
        where = f"example at line {example.line}"
        lints = [run for run in example.cli_runs if run.command.startswith("pdp lint ")]
        if example.kind == "invalid" and example.diagnostics is None and not lints:
            problems.append(f"{where}: a `pdp invalid` block needs its diagnostics or a lint run")
        if example.kind != "invalid" and example.diagnostics is None:
            outcomes = {check.spec["expect"] for check in example.checks}
            if outcomes != {"allow", "deny"}:
                problems.append(f"{where}: needs at least one allow and one deny check")
        if example.kind == "folder" and not example.policy_texts:
            problems.append(f"{where}: a folder example needs a .policy file")
    return examples, problems


def _check_problem(spec: object) -> str | None:
    if not isinstance(spec, dict):
        return "a check is a JSON object"
    unknown = set(spec) - CHECK_KEYS
    if unknown:
        return f"unknown check keys {sorted(unknown)}"
    if not isinstance(spec.get("request"), dict):
        return "a check needs a `request` object"
    if spec.get("expect") not in ("allow", "deny"):
        return '`expect` must be "allow" or "deny"'
    for key in ("rules", "reasons", "errors", "explain"):
        value = spec.get(key, [])
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            return f"`{key}` must be a list of strings"
    if "now" in spec:
        try:
            parse_datetime(spec["now"])
        except (TypeError, ValueError) as error:
            return f"`now`: {error}"
    return None


DOC_TEXT = DOC.read_text("utf-8") if DOC.exists() else ""
EXAMPLES, PROBLEMS = parse_document(DOC_TEXT)


# --- running examples ---------------------------------------------------------------------------


def write_example(example: Example, folder: Path) -> None:
    """The example as a policy folder on disk, as `pdp` commands read it."""
    policies = folder / "policies"
    for path, text in example.files.items():
        target = policies / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, "utf-8")
    for name, value in example.data.items():
        target = policies / "data" / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value), "utf-8")
    if example.schema is not None:
        (policies / SCHEMA_FILE).write_text(example.schema, "utf-8")


def build(example: Example, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PolicySet:
    if example.kind == "folder":
        write_example(example, tmp_path)
        monkeypatch.chdir(tmp_path)  # so file names read `policies/...` in messages
        return load_policy_set("policies")
    source = Source(SINGLE_FILE, example.files[SINGLE_FILE])
    schemas = [] if example.schema is None else [Source(SCHEMA_FILE, example.schema)]
    # As the policy store does: the schema's own problems are reported with the policies'.
    schema, schema_problems = load_schema(schemas)
    return build_policy_set(
        [source], from_json(example.data), problems=schema_problems, schema=schema
    )


def reason_lines(decision: Decision) -> list[str]:
    return [
        f"{reason.code}{' ' + reason.rule if reason.rule else ''}: {reason.message}"
        for reason in decision.reasons
    ]


def run_check(policy_set: PolicySet, check: Check) -> None:
    spec = check.spec
    request = Request.from_json(spec["request"])
    now = parse_datetime(spec.get("now", DEFAULT_NOW))
    decision = authorize(policy_set, request, now, explain="explain" in spec)
    where = f"check at docs/language.md line {check.line}"
    got = {
        "expect": decision.outcome,
        "rules": list(decision.rules),
        "reasons": reason_lines(decision),
        "errors": [f"{error.rule}: {error.message}" for error in decision.errors],
        "explain": [explanation.message for explanation in decision.explanations],
    }
    for key, value in got.items():
        if key in spec:
            assert value == spec[key], f"{where}: `{key}` differs\n{json.dumps(got, indent=2)}"


def run_cli(
    example: Example,
    run: CliRun,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    where = f"cli block at docs/language.md line {run.line}"
    args = shlex.split(run.command)[1:]
    if args[:1] == ["check"]:
        assert "--now" in args, f"{where}: `pdp check` needs --now to be repeatable"
        assert run.request is not None, f"{where}: `pdp check` needs a check above it"
    folder.mkdir()
    write_example(example, folder)
    if run.request is not None:
        (folder / "request.json").write_text(json.dumps(run.request), "utf-8")
    monkeypatch.chdir(folder)
    capsys.readouterr()
    code = cli.main(args)
    output = capsys.readouterr().out
    output = re.sub(r"(policy revision |\"policy_revision\": \")[0-9a-f]{16}", r"\1...", output)
    assert output.splitlines() == run.expected, f"{where}: output differs:\n{output}"
    if args[:1] == ["lint"]:
        assert code == (1 if example.kind == "invalid" else 0), where
    elif args[:1] == ["validate"]:
        # 2 without a schema; 1 for errors, or for warnings (a `pdp` block's diagnostics) with
        # --strict; else 0.
        if example.schema is None:
            expected_code = 2
        elif example.kind == "invalid" or ("--strict" in args and example.diagnostics):
            expected_code = 1
        else:
            expected_code = 0
        assert code == expected_code, where
    else:
        allowed = output.startswith("ALLOW") or '"decision": "allow"' in output
        assert code == (0 if allowed else 1), where


# --- tests --------------------------------------------------------------------------------------


def test_the_document_is_well_formed() -> None:
    assert DOC.exists(), f"{DOC} is missing"
    assert PROBLEMS == []


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line{e.line}" for e in EXAMPLES])
def test_example(
    example: Example,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if example.kind == "invalid":
        with pytest.raises(PolicySetError) as raised:
            build(example, tmp_path, monkeypatch)
        headlines = [diagnostic.headline() for diagnostic in raised.value.diagnostics]
        if example.diagnostics is not None:
            assert headlines == example.diagnostics, raised.value.render()
    else:
        policy_set = build(example, tmp_path / "load", monkeypatch)
        headlines = [warning.headline() for warning in policy_set.warnings]
        assert headlines == (example.diagnostics or [])
        for check in example.checks:
            run_check(policy_set, check)
    for number, run in enumerate(example.cli_runs):
        run_cli(example, run, tmp_path / f"cli{number}", monkeypatch, capsys)


def test_there_are_enough_checks() -> None:
    checks = sum(len(example.checks) for example in EXAMPLES)
    assert checks >= MIN_CHECKS, f"only {checks} checks"


# --- feature coverage ---------------------------------------------------------------------------


@dataclass
class Scanned:
    """Policy text split for scanning: code (comments removed, string contents blanked to
    `""`), the raw contents of string literals, of reason strings, and comments."""

    code: str = ""
    strings: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)


def scan(texts: list[str]) -> Scanned:
    scanned = Scanned()
    code: list[str] = []
    for text in texts:
        index = 0
        while index < len(text):
            char = text[index]
            if char == '"':
                end = index + 1
                while end < len(text) and text[end] not in '"\n':
                    end += 2 if text[end] == "\\" else 1
                content = text[index + 1 : end]
                scanned.strings.append(content)
                if re.search(r"\breason\s*$", "".join(code[-40:])):
                    scanned.reasons.append(content)
                code.append('""')
                index = end + 1
            elif char == "#":
                end = text.find("\n", index)
                end = len(text) if end < 0 else end
                scanned.comments.append(text[index:end])
                index = end
            else:
                code.append(char)
                index += 1
        code.append("\n")
    scanned.code = "".join(code)
    return scanned


def _code(pattern: str) -> Callable[[Scanned], bool]:
    compiled = re.compile(pattern, re.MULTILINE)
    return lambda scanned: compiled.search(scanned.code) is not None


def _string(pattern: str) -> Callable[[Scanned], bool]:
    compiled = re.compile(pattern)
    return lambda scanned: any(compiled.search(text) for text in scanned.strings)


def _reason(pattern: str) -> Callable[[Scanned], bool]:
    compiled = re.compile(pattern)
    return lambda scanned: any(compiled.search(text) for text in scanned.reasons)


def _membership(scanned: Scanned) -> bool:
    # `in` outside quantifier heads (`any(x in ...`) and `not in`.
    code = re.sub(r"\b(any|all)\(\s*\w+\s+in\b", "", scanned.code)
    return len(re.findall(r"\bin\b", code)) > len(re.findall(r"\bnot\s+in\b", code))


FEATURES: dict[str, Callable[[Scanned], bool]] = {
    # files and rules
    "comment": lambda scanned: bool(scanned.comments),
    "`const`": _code(r"^const\s+[A-Z][A-Z0-9_]*\s*="),
    "a constant defined from another constant": _code(r"^const\s+\w+\s*=.*\b[A-Z][A-Z0-9_]{2,}\b"),
    "`permit`": _code(r"^permit\s"),
    "`forbid`": _code(r"^forbid\s"),
    "rule id with `-`": _code(r"^(permit|forbid)\s+\w+-\w"),
    "rule id with `:`": _code(r"^(permit|forbid)\s+\w+:\w"),
    "rule id with `.`": _code(r"^(permit|forbid)\s+\w+\.\w"),
    "`action any`": _code(r"^\s*action\s+any\s*$"),
    "`action NAME`": _code(r"^\s*action\s+[A-Za-z_]\w*\s*$"),
    "`action [list]`": _code(r"^\s*action\s+\["),
    'quoted action name `"..."`': _code(r'^\s*action\s+(\[.*)?""'),
    "`resource any`": _code(r"^\s*resource\s+any\s*$"),
    "`resource Type`": _code(r"^\s*resource\s+[A-Z]\w*\s*$"),
    "`resource [list]`": _code(r"^\s*resource\s+\["),
    "`when`": _code(r"^\s*when\s"),
    "`reason`": _code(r'^\s*reason\s+""'),
    "a rule without `when`": _code(r"^\s*resource\s+.*\n\s*\}"),
    "`{path}` interpolation in a reason": _reason(r"(?<!\{)\{[A-Za-z_]"),
    "`{{` and `}}` in a reason": _reason(r"\{\{.*\}\}"),
    # roots
    "`subject`": _code(r"\bsubject\.\w"),
    "`action` (the root)": _code(r"\baction\s*(==|!=|in\b|not\s+in\b|starts|ends|matches)"),
    "`resource.type`": _code(r"\bresource\.type\b"),
    "`resource.id`": _code(r"\bresource\.id\b"),
    "`resource.<attribute>`": _code(r"\bresource\.(?!type\b|id\b)\w"),
    "`context`": _code(r"\bcontext\.\w"),
    "`data.`": _code(r"\bdata\.\w"),
    # literals
    "string literal": lambda scanned: bool(scanned.strings),
    'escape `\\"`': _string(r'\\"'),
    "escape `\\\\`": _string(r"\\\\"),
    "escape `\\uXXXX`": _string(r"\\u[0-9A-Fa-f]{4}"),
    "integer literal": _code(r"(?<![\w.])\d+(?![\w.])"),
    "integer with `_`": _code(r"\b\d+(_\d+)+\b"),
    "negative literal": _code(r"(==|!=|<=|>=|<|>|\(|,|=)\s*-\d"),
    "decimal literal": _code(r"\b\d+\.\d+\b"),
    "`true`": _code(r"\btrue\b"),
    "`false`": _code(r"\bfalse\b"),
    "list literal": _code(r"\[\s*(\"\"|\d|-|cidr\()"),
    "list of CIDR ranges with `in`": _code(r"\[\s*cidr\("),
    # operators
    "`and`": _code(r"\band\b"),
    "`or`": _code(r"\bor\b"),
    "`not`": _code(r"\bnot\b(?!\s+in\b)"),
    "`==`": _code(r"=="),
    "`!=`": _code(r"!="),
    "`<`": _code(r"<(?!=)"),
    "`<=`": _code(r"<="),
    "`>`": _code(r"(?<![-=])>(?!=)"),
    "`>=`": _code(r">="),
    "`in`": _membership,
    "`not in`": _code(r"\bnot\s+in\b"),
    "`in cidr(...)`": _code(r"\bin\s+cidr\("),
    "key `in` a record": _code(r'""\s+in\s+(data|subject|resource|context)\.'),
    "`contains`": _code(r"\bcontains\b"),
    "`starts with`": _code(r"\bstarts\s+with\b"),
    "`ends with`": _code(r"\bends\s+with\b"),
    "`matches`": _code(r'\bmatches\s+""'),
    "`has`": _code(r"\bhas\s+\w+\s*($|\)|\band\b|\bor\b)"),
    "`has a.b` (dotted path)": _code(r"\bhas\s+\w+(\.\w+)+"),
    '`has "name"` (quoted name)': _code(r'\bhas\s+""'),
    "`+`": _code(r"[\w)\]]\s*\+\s*[\w(]"),
    "binary `-`": _code(r"[\w)\]]\s+-\s+[\w(]"),
    "`*`": _code(r"[\w)\]]\s*\*\s*[\w(]"),
    "`/`": _code(r"[\w)\]]\s*/\s*[\w(]"),
    "`%`": _code(r"[\w)\]]\s*%\s*[\w(]"),
    "unary `-` on an expression": _code(r"(==|!=|<=|>=|<|>|\(|,)\s*-\s*[A-Za-z_(]"),
    "`??`": _code(r"\?\?"),
    "indexing a list `[0]`": _code(r"[\w)\]]\[\d+\]"),
    'indexing a record `["key"]`': _code(r'[\w)\]]\[""\]'),
    "indexing with an expression": _code(r"[\w)\]]\[[A-Za-z_][\w.]*\]"),
    "attribute access on an attribute": _code(r"\b\w+\.\w+\.\w+"),
    "`any(x in list: ...)`": _code(r"\bany\(\s*\w+\s+in\b[^:]*:"),
    "`all(x in list: ...)`": _code(r"\ball\(\s*\w+\s+in\b[^:]*:"),
    "parentheses for grouping": _code(r"(\band|\bor|\bnot|\bwhen)\s+\("),
    # functions beyond a plain call
    "a time zone argument": _code(r'\b(hour|minute|weekday|date)\([^()]*(\(\))?,\s*""\)'),
    "`years_since`/`days_since` with an explicit time": _code(
        r"\b(years_since|days_since)\([^()]*(\([^()]*\))?[^()]*,"
    ),
    **{f"`{name}(...)`": _code(rf"\b{name}\(") for name in SIGNATURES},
}


def test_every_feature_has_an_example() -> None:
    running = [text for example in EXAMPLES if example.runs for text in example.policy_texts]
    scanned = scan(running)
    missing = [name for name, present in FEATURES.items() if not present(scanned)]
    assert missing == [], f"features without a running example: {missing}"


def test_a_folder_example_has_nested_policies_and_data() -> None:
    folders = [example for example in EXAMPLES if example.kind == "folder" and example.runs]
    paths = [path for example in folders for path in example.files]
    assert any(path.count("/") >= 2 and path.endswith(".policy") for path in paths), paths
    assert any(re.search(r"(^|/)data/\w+/\w+\.json$", path) for path in paths), paths


def test_semantics_are_shown_by_checks() -> None:
    specs = [check.spec for example in EXAMPLES for check in example.checks]
    texts = [json.dumps(spec) for spec in specs]
    shown = {
        "explain mode": any("explain" in spec for spec in specs),
        "an evaluation error": any(spec.get("errors") for spec in specs),
        "a forbid that errors": any(
            any(r.startswith("error.evaluation ") for r in spec.get("reasons", []))
            for spec in specs
        ),
        "default deny": any("default.deny: no permit rule matched" in t for t in texts),
        "an explicit `now`": any("now" in spec for spec in specs),
        "a JSON null": any(": null" in t for t in texts),
        "a JSON float": any(re.search(r": -?\d+\.\d+[,}\]]", t) for t in texts),
        "a reason with a missing value": any("<missing>" in t for t in texts),
    }
    assert [name for name, present in shown.items() if not present] == []


def test_static_checks_are_shown() -> None:
    lines = [line for example in EXAMPLES for line in example.diagnostics or []]
    lines += [line for example in EXAMPLES for run in example.cli_runs for line in run.expected]
    expected_output = "\n".join(lines)
    phrases = {
        "syntax error": "error: unexpected",
        "a caret": "^",
        "did you mean": "did you mean",
        "unknown function": "unknown function",
        "arity": "arguments, got",
        "duplicate rule id": "duplicate rule id",
        "type clash": "is always false",
        "ordering clash": "needs two numbers, dates, datetimes or durations",
        "invalid regex": "invalid regex",
        "invalid CIDR": "invalid CIDR range",
        "invalid date": "invalid date",
        "invalid duration": "invalid duration",
        "constant reads the request": "a constant cannot read",
        "constant reads the clock": "a constant cannot call",
        "a warning": "warning:",
        "bad escape": "invalid escape",
        "bad interpolation": "a reason can only interpolate",
        "integer out of range": "integer literal out of range",
        "a condition that never holds": "this condition can never hold",
        "a permit that never takes effect": "can never take effect",
    }
    missing = [name for name, phrase in phrases.items() if phrase not in expected_output]
    assert missing == []


def test_limits_are_listed() -> None:
    section = DOC_TEXT.partition("\n## Limits")[2]
    values = {
        name: value
        for name, value in vars(limits).items()
        if name.isupper() and isinstance(value, int)
    }
    values["MAX_INPUT_DEPTH"] = MAX_INPUT_DEPTH
    for name, value in values.items():
        rows = [line for line in section.splitlines() if f"`{name}`" in line]
        assert rows, f"the Limits section does not list `{name}`"
        assert f"{value:,}" in rows[0], f"`{name}` should show {value:,}"


# --- the format itself --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        "```python\nx = 1\n```\n",
        "```\nno info string\n```\n",
        "  ```pdp\nindented\n  ```\n",
        "```pdp\npermit a { action read resource Doc }\n",
        '```json check\n{"request": {}, "expect": "allow"}\n```\n',
        "```pdp\npermit a { action read resource Doc }\n```\n```json check\n{bad json\n```\n",
        "```pdp\npermit a { action read resource Doc }\n```\n"
        '```json check\n{"request": {}, "expect": "maybe"}\n```\n',
        "```pdp\npermit a { action read resource Doc }\n```\n"
        '```json check\n{"request": {}, "expect": "allow", "surprise": 1}\n```\n',
        "```pdp\npermit a { action read resource Doc }\n```\n"
        '```json check\n{"request": {}, "expect": "allow"}\n```\n',
        "```pdp invalid\npermit\n```\n",
        '```json data geo\n{"eu": ["SE"]}\n```\n',
        '```toml schema\n[subject]\nage = "integer"\n```\n',
        "```toml schema\n[subject\n```\n```pdp\npermit a { action read resource Doc }\n```\n"
        '```json check\n{"request": {}, "expect": "allow"}\n```\n'
        '```json check\n{"request": {}, "expect": "deny"}\n```\n',
        "```toml schema\n```\n```toml schema\n```\n"
        "```pdp\npermit a { action read resource Doc }\n```\n"
        '```json check\n{"request": {}, "expect": "allow"}\n```\n'
        '```json check\n{"request": {}, "expect": "deny"}\n```\n',
        "```toml schema\n```\n```pdp file=a.policy\npermit a { action read resource Doc }\n```\n",
        "```text diagnostics\nexample.policy:1:1: error: x\n```\n",
        "```text cli\npdp lint policies\n```\n",
    ],
)
def test_the_format_rejects_bad_documents(document: str) -> None:
    assert parse_document(document)[1] != []

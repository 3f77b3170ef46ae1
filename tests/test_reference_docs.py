"""docs/configuration.md and docs/api.md, checked against the code they document.

Everything expected here is derived from the code: the settings dataclasses of pdp.config (keys,
types, defaults), the reason-code constants, the generated proto descriptor, the CLI parsers and
a real server's answers to malformed requests. A change to any of them that the documents do not
follow fails a test here, and so does a document that names something the code does not have.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import itertools
import json
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.struct_pb2 import Struct

import pdp.config
import pdp.decision_point
import pdp.engine.decision
import pdp.identity.errors
import pdp.metering
from pdp.cli import call, dev_keys, keys, serve, token, users
from pdp.config import Config, ConfigError, load_config, parse_config
from pdp.server.app import RunningServer, create_server
from pdp.server.service import DECISION_ID_HEADER
from pdp.v1 import decision_pb2 as pb

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api.md"
CONFIGURATION = ROOT / "docs" / "configuration.md"


# --- reading markdown --------------------------------------------------------------------------


def _sections(text: str, level: int) -> dict[str, str]:
    """Heading text -> the text up to the next heading of the same or a higher level."""
    found: dict[str, str] = {}
    heading: str | None = None
    lines: list[str] = []
    in_fence = False
    for line in [*text.splitlines(), "#" * level + " end"]:
        if line.startswith("```"):
            in_fence = not in_fence
        match = None if in_fence else re.match(r"(#+) (.*)", line)
        if match and len(match.group(1)) <= level:
            if heading is not None:
                found[heading] = "\n".join(lines)
            heading = match.group(2).strip() if len(match.group(1)) == level else None
            lines = []
        else:
            lines.append(line)
    return found


def _section(text: str, level: int, title: str) -> str:
    """The section whose heading contains `title` (exactly one must)."""
    matches = [body for heading, body in _sections(text, level).items() if title in heading]
    assert len(matches) == 1, f"expected one level-{level} section titled {title!r}"
    return matches[0]


def _cells(line: str) -> list[str]:
    """The cells of a table row; a `|` inside a code span does not split."""
    cells, current, ticks = [], "", 0
    body = line.strip().removeprefix("|").removesuffix("|")
    index = 0
    while index < len(body):
        run = re.match(r"`+", body[index:])
        if run:
            length = len(run.group())
            ticks = 0 if ticks == length else (length if ticks == 0 else ticks)
            current += run.group()
            index += length
            continue
        if body[index] == "|" and ticks == 0:
            cells.append(current.strip())
            current = ""
        else:
            current += body[index]
        index += 1
    cells.append(current.strip())
    return cells


def _tables(text: str) -> list[list[dict[str, str]]]:
    """Every table in `text`, as rows keyed by the header cells."""
    tables: list[list[dict[str, str]]] = []
    block: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if len(block) >= 2:
            header = _cells(block[0])
            tables.append([dict(zip(header, _cells(row), strict=True)) for row in block[2:]])
        block = []
    return tables


def _first_table(text: str) -> list[dict[str, str]]:
    tables = _tables(text)
    assert tables, "expected a table"
    return tables[0]


def _code_spans(text: str) -> list[str]:
    return [span.strip() for _, span in re.findall(r"(`+)(.+?)\1", text)]


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, content) of every fenced code block."""
    return re.findall(r"^```([^\n]*)\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


# --- docs/configuration.md -----------------------------------------------------------------------


def _settings_sections() -> dict[str, type]:
    """Configuration section name -> its settings dataclass, from the fields of Config. A table
    inside a section is named by its path (`server.tls` for [server.tls])."""
    sections: dict[str, type] = {}

    def visit(parent: type, prefix: str) -> None:
        hints = typing.get_type_hints(parent)
        for setting in dataclasses.fields(parent):
            kind = hints[setting.name]
            if typing.get_origin(kind) is tuple:  # [[issuers]], [plans.NAME]: several tables
                kind = typing.get_args(kind)[0]
            if isinstance(kind, types.UnionType):  # an optional table: `TlsSettings | None`
                kind = next(arg for arg in typing.get_args(kind) if arg is not type(None))
            if isinstance(kind, type) and dataclasses.is_dataclass(kind):
                sections[prefix + setting.name] = kind
                visit(kind, f"{prefix}{setting.name}.")

    visit(Config, "")
    return sections


_NAMED_TABLES = {"plans": "name"}
"""Sections written as one table per name ([plans.NAME]): the field that holds the NAME, which
is not a key of the table."""


def _keys(section: str) -> set[str]:
    """The keys a section's table may hold."""
    names = {setting.name for setting in dataclasses.fields(_settings_sections()[section])}
    return names - {_NAMED_TABLES.get(section)}


def _written_tables(document: dict[str, Any], section: str) -> list[dict[str, Any]]:
    """The tables of `section` in a parsed configuration file."""
    tables: list[Any] = [document]
    for part in section.split("."):
        found = [table.get(part, []) for table in tables]
        tables = [
            item for value in found for item in (value if isinstance(value, list) else [value])
        ]
    if section in _NAMED_TABLES:
        tables = [table for named in tables for table in named.values()]
    return tables


def _toml(value: object) -> str:
    """A default as it is written in a configuration file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    raise AssertionError(f"no TOML spelling for {value!r}")


def _documented_default(setting: dataclasses.Field[Any]) -> str:
    if setting.default is dataclasses.MISSING and setting.default_factory is dataclasses.MISSING:
        return "required"
    default = (
        setting.default if setting.default is not dataclasses.MISSING else setting.default_factory()
    )
    return "unset" if default is None else f"`{_toml(default)}`"


_TYPE_NAMES = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "Path": "path",
    "tuple[str, ...]": "list of strings",
    "TlsSettings": "table",
}


def _documented_type(setting: dataclasses.Field[Any]) -> str:
    # The annotation as written (pdp.config reads values by the same text).
    annotation = str(setting.type).removesuffix(" | None")
    assert annotation in _TYPE_NAMES, f"{setting.name}: no documented name for {annotation}"
    return _TYPE_NAMES[annotation]


def _configuration_sections() -> dict[str, str]:
    """`[server]` / `[[issuers]]` / `[plans.NAME]` headings (level 2) and `[server.tls]`
    headings (level 3) of docs/configuration.md -> their text."""
    found = {}
    text = CONFIGURATION.read_text("utf-8")
    for level in (2, 3):
        for heading, body in _sections(text, level).items():
            match = re.search(r"`\[\[?([a-z_]+(?:\.[a-z_]+)*)(?:\.NAME)?\]\]?`", heading)
            if match:
                found[match.group(1)] = body
    return found


def _key_rows(section: str) -> dict[str, dict[str, str]]:
    rows = {}
    for row in _first_table(section):
        [key] = _code_spans(row["key"])
        rows[key] = row
    return rows


def test_every_settings_dataclass_is_a_section() -> None:
    defined = {
        value
        for value in vars(pdp.config).values()
        if isinstance(value, type)
        and dataclasses.is_dataclass(value)
        and value.__module__ == pdp.config.__name__
    }
    assert defined - {Config} == set(_settings_sections().values())


@pytest.mark.parametrize("section", sorted(_settings_sections()))
def test_every_key_is_documented_with_its_type_and_default(section: str) -> None:
    documented = _configuration_sections()
    assert section in documented, f"docs/configuration.md has no [{section}] section"
    rows = _key_rows(documented[section])
    settings = [
        s for s in dataclasses.fields(_settings_sections()[section]) if s.name in _keys(section)
    ]
    assert set(rows) == _keys(section), "keys documented vs in the code"
    for setting in settings:
        row = rows[setting.name]
        expected = _documented_default(setting)
        default = row["default"]
        assert default == expected or default.startswith(expected + " "), (
            f"{section}.{setting.name}: default {default!r}, the code says {expected}"
        )
        assert row["type"] == _documented_type(setting), f"{section}.{setting.name}: type"
        assert row["meaning"], f"{section}.{setting.name}: no meaning"


def _complete_example() -> str:
    text = _section(CONFIGURATION.read_text("utf-8"), 2, "A complete example")
    [content] = [content for info, content in _fenced_blocks(text) if info == "toml"]
    return content


def test_the_complete_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "pdp.toml"
    path.write_text(_complete_example())
    config = load_config(path)
    assert config.source == path
    assert config.policies.dir == tmp_path / "policies"  # relative to the file's directory


def test_the_complete_example_sets_every_key() -> None:
    document = tomllib.loads(_complete_example())
    for section in _settings_sections():
        written = {key for table in _written_tables(document, section) for key in table}
        assert written == _keys(section), section


def _refusals() -> list[tuple[str, str]]:
    """(file, message) pairs: a ```toml refused block and the ```text block after it."""
    blocks = _fenced_blocks(CONFIGURATION.read_text("utf-8"))
    pairs = []
    for (info, content), (next_info, message) in itertools.pairwise(blocks):
        if info == "toml refused":
            assert next_info == "text", "a refused file must be followed by its message"
            pairs.append((content, message.strip()))
    assert len(pairs) == sum(info == "toml refused" for info, _ in blocks) >= 5
    return pairs


@pytest.mark.parametrize(
    ("text", "message"),
    [pytest.param(text, message, id=message.split(": ")[1]) for text, message in _refusals()],
)
def test_documented_refusals_are_what_pdp_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    # The documents name the file `pdp.toml`; load it by that name so the message starts so.
    monkeypatch.chdir(tmp_path)
    Path("pdp.toml").write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config("pdp.toml")
    assert str(refused.value) == message


# --- docs/api.md: reason codes -------------------------------------------------------------------

_CODE_MODULES = (pdp.identity.errors, pdp.decision_point, pdp.engine.decision, pdp.metering)


def _reason_codes(module: types.ModuleType) -> set[str]:
    return {
        value
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str) and re.fullmatch(r"[a-z]+\.[a-z_]+", value)
    }


@pytest.mark.parametrize("module", _CODE_MODULES, ids=lambda m: m.__name__)
def test_every_reason_code_is_in_the_reason_code_table(module: types.ModuleType) -> None:
    codes = _reason_codes(module)
    assert codes, f"{module.__name__} defines no reason codes: update _CODE_MODULES"
    table = _first_table(_section(API.read_text("utf-8"), 2, "Reason codes"))
    documented = {_code_spans(row["code"])[0] for row in table}
    assert codes <= documented


def test_the_reason_code_table_names_only_real_codes() -> None:
    codes = set().union(*(_reason_codes(module) for module in _CODE_MODULES))
    table = _first_table(_section(API.read_text("utf-8"), 2, "Reason codes"))
    rows = [_code_spans(row["code"])[0] for row in table]
    assert sorted(rows) == sorted(codes)  # each once, none invented
    assert all(row["meaning"] and row["example message"] for row in table)


def test_every_authn_code_has_its_situations() -> None:
    codes = _reason_codes(pdp.identity.errors)
    table = _first_table(_section(API.read_text("utf-8"), 3, "Authentication"))
    documented = {_code_spans(row["code"])[0] for row in table}
    assert documented == codes


# --- docs/api.md: the proto ----------------------------------------------------------------------

_PACKAGE = pb.DESCRIPTOR.package
_SCALARS = {
    getattr(FieldDescriptor, f"TYPE_{name.upper()}"): name
    for name in (
        "double", "float", "int64", "uint64", "int32", "fixed64", "fixed32", "bool", "string",
        "bytes", "uint32", "sfixed32", "sfixed64", "sint32", "sint64",
    )
}  # fmt: skip


def _messages(descriptors: Any) -> Iterator[Descriptor]:
    for descriptor in descriptors:
        yield descriptor
        yield from _messages(descriptor.nested_types)


def _local_name(full_name: str) -> str:
    return full_name.removeprefix(_PACKAGE + ".")


def _proto_type(field: FieldDescriptor) -> str:
    if field.message_type is not None:
        name = _local_name(field.message_type.full_name)
    elif field.enum_type is not None:
        name = _local_name(field.enum_type.full_name)
    else:
        name = _SCALARS[field.type]
    repeated = getattr(field, "is_repeated", None)
    if repeated is None:  # protobuf before is_repeated
        repeated = field.label == FieldDescriptor.LABEL_REPEATED
    return f"repeated {name}" if repeated else name


MESSAGES = list(_messages(pb.DESCRIPTOR.message_types_by_name.values()))


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: _local_name(m.full_name))
def test_every_message_and_field_is_documented(message: Descriptor) -> None:
    name = _local_name(message.full_name)
    section = _section(API.read_text("utf-8"), 3, f"`{name}`")
    rows = {_code_spans(row["field"])[0]: row for row in _first_table(section)}
    assert set(rows) == {field.name for field in message.fields}, name
    for field in message.fields:
        row = rows[field.name]
        assert row["#"] == str(field.number), f"{name}.{field.name}: number"
        assert _code_spans(row["type"])[0] == _proto_type(field), f"{name}.{field.name}: type"
        if field.containing_oneof is not None:
            assert f"oneof `{field.containing_oneof.name}`" in row["type"], field.name
        assert row["required"] in ("yes", "no", "—"), f"{name}.{field.name}: required"
        assert row["meaning"], f"{name}.{field.name}: meaning"


@pytest.mark.parametrize(
    "enum", list(pb.DESCRIPTOR.enum_types_by_name.values()), ids=lambda e: e.full_name
)
def test_every_enum_value_is_documented(enum: EnumDescriptor) -> None:
    section = _section(API.read_text("utf-8"), 3, f"`{_local_name(enum.full_name)}`")
    rows = {_code_spans(row["value"])[0]: row["number"] for row in _first_table(section)}
    assert rows == {value.name: str(value.number) for value in enum.values}


def test_the_service_and_its_rpcs_are_documented() -> None:
    text = API.read_text("utf-8")
    [service] = pb.DESCRIPTOR.services_by_name.values()
    assert f"`{service.full_name}`" in text
    table = _first_table(_section(text, 2, "The service"))
    documented = {
        _code_spans(row["rpc"])[0]: (
            _code_spans(row["request"])[0],
            _code_spans(row["response"])[0],
        )
        for row in table
    }
    assert documented == {
        method.name: (
            _local_name(method.input_type.full_name),
            _local_name(method.output_type.full_name),
        )
        for method in service.methods
    }


# --- docs/api.md: INVALID_ARGUMENT, against a real server ----------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder = tmp_path_factory.mktemp("server")
    document = {
        "server": {"listen": "127.0.0.1:0", "shutdown_grace_seconds": 0},
        "policies": {"dir": str(ROOT / "policies" / "shop"), "watch": False},
        "audit": {"path": "audit/decisions.jsonl"},
    }
    running = create_server(parse_config(document, base=folder))
    yield running
    running.stop(0)


def _struct(values: dict[str, Any]) -> Struct:
    struct = Struct()
    struct.update(values)
    return struct


def _nested(levels: int) -> dict[str, Any]:
    """`levels` records, one inside the other: {"a": {"b": ...}}."""
    value: dict[str, Any] = {}
    for name in reversed("abcdefghijklmnop"[: levels - 1]):
        value = {name: value}
    return value


def _check(**fields: Any) -> pb.CheckRequest:
    return pb.CheckRequest(**{"action": "read", "resource": pb.Resource(type="Order"), **fields})


def _item(action: str = "read") -> pb.CheckItem:
    return pb.CheckItem(action=action, resource=pb.Resource(type="Order"))


# The example requests of the INVALID_ARGUMENT table, one per example message.
MALFORMED: dict[str, tuple[str, Callable[[], bytes]]] = {
    "empty action": ("Check", lambda: _check(action="").SerializeToString()),
    "no resource": ("Check", lambda: pb.CheckRequest(action="read").SerializeToString()),
    "long action": ("Check", lambda: _check(action="a" * 4097).SerializeToString()),
    "long id": (
        "Check",
        lambda: _check(resource=pb.Resource(type="Order", id="é" * 2049)).SerializeToString(),
    ),
    "long string": (
        "Check",
        lambda: _check(context=_struct({"note": "n" * 4097})).SerializeToString(),
    ),
    "long key": ("Check", lambda: _check(context=_struct({"k" * 4097: 1})).SerializeToString()),
    "deep": ("Check", lambda: _check(context=_struct(_nested(9))).SerializeToString()),
    "many values": (
        "Check",
        lambda: _check(context=_struct({"ids": list(range(1000))})).SerializeToString(),
    ),
    "null in a list": (
        "Check",
        lambda: _check(
            resource=pb.Resource(type="Order", attributes=_struct({"tags": ["a", None]}))
        ).SerializeToString(),
    ),
    "infinite": (
        "Check",
        lambda: _check(context=_struct({"risk": float("inf")})).SerializeToString(),
    ),
    "empty batch": ("CheckBatch", lambda: pb.CheckBatchRequest().SerializeToString()),
    "big batch": (
        "CheckBatch",
        lambda: pb.CheckBatchRequest(items=[_item()] * 101).SerializeToString(),
    ),
    "bad item": (
        "CheckBatch",
        lambda: pb.CheckBatchRequest(items=[_item(), _item("")]).SerializeToString(),
    ),
    "undecodable": ("Check", lambda: b"\xff\xff\xff\xff not protobuf"),
}


def _refusal(server: RunningServer, method: str, payload: bytes) -> grpc.RpcError:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        rpc = channel.unary_unary(f"/pdp.v1.DecisionService/{method}")
        with pytest.raises(grpc.RpcError) as refused:
            rpc(payload, timeout=10)
    return refused.value


def _documented_refusals() -> set[str]:
    section = _section(API.read_text("utf-8"), 3, "`INVALID_ARGUMENT`")
    return {span for row in _first_table(section) for span in _code_spans(row["example message"])}


@pytest.mark.parametrize("case", MALFORMED)
def test_documented_invalid_argument_messages_are_real(server: RunningServer, case: str) -> None:
    method, payload = MALFORMED[case]
    error = _refusal(server, method, payload())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() in _documented_refusals()
    trailers = dict(error.trailing_metadata() or ())
    assert trailers.get(DECISION_ID_HEADER), "the refusal's audit id is sent"


def test_every_documented_invalid_argument_message_has_an_example(server: RunningServer) -> None:
    produced = {
        _refusal(server, method, payload()).details() for method, payload in MALFORMED.values()
    }
    assert _documented_refusals() == produced
    assert f"`{DECISION_ID_HEADER}`" in API.read_text("utf-8")


# --- docs/api.md: the client examples and the command line ---------------------------------------


def test_python_examples_are_python() -> None:
    examples = [
        content for info, content in _fenced_blocks(API.read_text("utf-8")) if info == "python"
    ]
    assert len(examples) >= 2
    for example in examples:
        ast.parse(example)


@pytest.mark.parametrize("command", [serve, call, token, dev_keys], ids=lambda m: m.__name__)
def test_cli_usage_lists_every_option(command: types.ModuleType) -> None:
    subparsers = argparse.ArgumentParser(prog="pdp").add_subparsers()
    command.register(subparsers)
    [(name, parser)] = subparsers.choices.items()
    section = _section(API.read_text("utf-8"), 3, f"`pdp {name}`")
    # The usage block: `    pdp NAME ...`, continued on lines indented further.
    found = re.search(rf"^    pdp {name} .*(?:\n     .*)*", section, flags=re.MULTILINE)
    assert found, f"no usage block for pdp {name}"
    usage = found.group()
    expected = set(re.findall(r"--[a-z][a-z-]*", parser.format_usage()))
    assert set(re.findall(r"--[a-z][a-z-]*", usage)) == expected


@pytest.mark.parametrize("command", [keys, users], ids=lambda m: m.__name__)
def test_cli_usage_lists_every_action_and_its_options(command: types.ModuleType) -> None:
    subparsers = argparse.ArgumentParser(prog="pdp").add_subparsers()
    command.register(subparsers)
    [(name, parser)] = subparsers.choices.items()
    [actions] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    section = _section(API.read_text("utf-8"), 3, f"`pdp {name}`")
    # One usage line per action, `    pdp NAME [--config FILE] ACTION ...`, maybe continued.
    blocks = re.findall(rf"^    pdp {name} .*(?:\n     .*)*", section, flags=re.MULTILINE)
    documented = {}
    for block in blocks:
        words = re.findall(r"[a-z][a-z_-]*", block.removeprefix(f"    pdp {name} "))
        action = next(w for w in words if w in actions.choices)
        documented[action] = set(re.findall(r"--[a-z][a-z-]*", block))
    assert set(documented) == set(actions.choices)
    for action, action_parser in actions.choices.items():
        expected = set(re.findall(r"--[a-z][a-z-]*", action_parser.format_usage()))
        expected |= set(re.findall(r"--[a-z][a-z-]*", parser.format_usage()))
        assert documented[action] == expected, action

"""The schema: what subject claims, context attributes and resource attributes exist, their
types, which are optional, and which actions apply to which resource types.

Written as `schema.toml` files in the policy folder (several are merged):

    [subject]
    sub = "string"
    age = "integer?"                          # `?`: optional
    role = { enum = ["customer", "support", "admin"], optional = true }
    groups = "list of string?"

    [context]
    ip = "ip?"

    [resources.Order]
    actions = ["read", "refund", "delete"]
    attributes = { account = "string?", amount = "integer?" }

Types: string, integer, decimal, boolean, date, datetime, ip, list of T, record (a table with
`type = "record"` and `attributes`), and enumerations of strings. A declared section is
exhaustive: reading an undeclared attribute is an error. A section left out is not checked.

`date`, `datetime` and `ip` attributes arrive as text (JWT claims and JSON have no such types):
policies read them as strings, which every function that takes a date, time or address accepts,
and request-time validation checks their format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pdp.language.source import Diagnostic, Source, Span
from pdp.language.types import ANY, BOOLEAN, DECIMAL, INTEGER, RECORD, STRING, Type, list_of

SCHEMA_FILE = "schema.toml"
SCALARS = ("string", "integer", "decimal", "boolean", "date", "datetime", "ip")
_TEXT_FORMATS = ("date", "datetime", "ip")


@dataclass(frozen=True, slots=True)
class AttributeType:
    kind: str
    """One of SCALARS, "list", "record" or "enum"."""
    optional: bool = False
    element: AttributeType | None = None
    """For a list: the type of its items."""
    values: tuple[str, ...] = ()
    """For an enum: the allowed strings."""
    # Compared (two files must agree on a record's attributes too), but not hashed: a mapping
    # has no hash.
    attributes: Mapping[str, AttributeType] | None = field(default=None, hash=False)
    """For a record: its attributes (None: any attributes, unchecked)."""

    def static_type(self) -> Type:
        """The type the checker reasons with (see the module docstring for text formats)."""
        if self.kind in ("string", *_TEXT_FORMATS):
            return STRING
        if self.kind == "enum":
            return Type("string", values=self.values)
        if self.kind == "integer":
            return INTEGER
        if self.kind == "decimal":
            return DECIMAL
        if self.kind == "boolean":
            return BOOLEAN
        if self.kind == "list":
            return list_of(self.element.static_type() if self.element else ANY)
        if self.kind == "record":
            return RECORD
        return ANY  # pragma: no cover - parse_type admits only the kinds above

    def describe(self) -> str:
        if self.kind == "list":
            shown = f"list of {self.element.describe() if self.element else 'any'}"
        elif self.kind == "enum":
            shown = "one of " + ", ".join(f"`{v}`" for v in self.values)
        elif self.kind == "record" and self.attributes is not None:
            shown = f"record ({', '.join(self.attributes)})"
        else:
            shown = self.kind
        return f"optional {shown}" if self.optional else shown


AUTH = AttributeType(
    "record",
    attributes={
        "method": AttributeType("enum", values=("jwt", "mtls", "hmac", "api_key", "basic")),
        "issuer": AttributeType("string", optional=True),
    },
)
"""`subject.auth`: set by pdp itself for every verified subject, so declared without a schema
entry (a schema cannot redeclare it)."""


_TEXT = AttributeType("string", optional=True)
_TEXTS = AttributeType("list", optional=True, element=AttributeType("string"))
CALLER = {
    "cn": _TEXT,
    "dns": _TEXTS,
    "uri": _TEXTS,
    "spiffe_id": _TEXT,
    "fingerprint": _TEXT,
    "serial": _TEXT,
    "issuer": _TEXT,
    "subject": _TEXT,
    "not_after": AttributeType("datetime", optional=True),
}
"""`caller.*`: what pdp reads from a calling service's client certificate. Built in: a schema
need not (and cannot) declare it. Every attribute is optional: a caller without mutual TLS has
none."""


@dataclass(frozen=True, slots=True)
class ResourceSchema:
    name: str
    actions: tuple[str, ...]
    attributes: Mapping[str, AttributeType]


@dataclass(frozen=True, slots=True)
class Schema:
    subject: Mapping[str, AttributeType] | None = None
    context: Mapping[str, AttributeType] | None = None
    resources: Mapping[str, ResourceSchema] | None = None
    files: tuple[str, ...] = ()

    def root(self, name: str) -> Mapping[str, AttributeType] | None:
        if name == "subject":
            return None if self.subject is None else {**self.subject, "auth": AUTH}
        if name == "caller":
            return CALLER
        return self.context if name == "context" else None


class SchemaError(ValueError):
    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.key = key


_TYPE = re.compile(r"\s*(list\s+of\s+)?([a-z]+)\s*(\?)?\s*")


def parse_type(value: Any, where: str) -> AttributeType:
    """`"integer"`, `"string?"`, `"list of string"`, or a table (enum, record, optional)."""
    if isinstance(value, str):
        match = _TYPE.fullmatch(value)
        if match is None or match.group(2) not in (*SCALARS, "record"):
            raise SchemaError(
                f"`{where}`: unknown type `{value}` (use {', '.join(SCALARS)}, record, "
                "list of T, or a table with enum = [...])",
                where,
            )
        optional = match.group(3) is not None
        scalar = AttributeType(match.group(2))
        if match.group(1):
            return AttributeType("list", optional, element=scalar)
        return AttributeType(scalar.kind, optional)
    if not isinstance(value, dict):
        raise SchemaError(f"`{where}`: a type is a string or a table", where)
    unknown = set(value) - {"type", "optional", "enum", "attributes", "items"}
    if unknown:
        raise SchemaError(f"`{where}`: unknown key `{sorted(unknown)[0]}`", where)
    optional = value.get("optional", False)
    if not isinstance(optional, bool):
        raise SchemaError(f"`{where}.optional`: must be true or false", where)
    if "enum" in value:
        values = value["enum"]
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) for v in values)
        ):
            raise SchemaError(f"`{where}.enum`: must be a non-empty list of strings", where)
        return AttributeType("enum", optional, values=tuple(values))
    kind = value.get("type")
    if kind == "record":
        attributes = value.get("attributes")
        if attributes is None:
            return AttributeType("record", optional)
        return AttributeType("record", optional, attributes=_attributes(attributes, where))
    if kind == "list":
        return AttributeType(
            "list", optional, element=parse_type(value.get("items"), f"{where}.items")
        )
    if "attributes" in value:
        raise SchemaError(f'`{where}`: only a record has attributes: add type = "record"', where)
    if "items" in value:
        raise SchemaError(f'`{where}`: only a list has items: add type = "list"', where)
    if isinstance(kind, str):
        inner = parse_type(kind, where)
        return AttributeType(inner.kind, optional or inner.optional, inner.element, inner.values)
    raise SchemaError(f"`{where}`: give `type` or `enum`", where)


def _attributes(table: Any, where: str) -> dict[str, AttributeType]:
    if not isinstance(table, dict):
        raise SchemaError(f"`{where}`: must be a table of attribute = type", where)
    return {name: parse_type(value, f"{where}.{name}") for name, value in table.items()}


def _resources(table: Any) -> dict[str, ResourceSchema]:
    if not isinstance(table, dict):
        raise SchemaError("`resources`: must be a table of resource types", "resources")
    found = {}
    for name, body in table.items():
        where = f"resources.{name}"
        if not isinstance(body, dict):
            raise SchemaError(f"`{where}`: must be a table with actions and attributes", where)
        unknown = set(body) - {"actions", "attributes"}
        if unknown:
            raise SchemaError(f"`{where}`: unknown key `{sorted(unknown)[0]}`", where)
        actions = body.get("actions", [])
        if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
            raise SchemaError(f"`{where}.actions`: must be a list of action names", where)
        attributes = _attributes(body.get("attributes", {}), f"{where}.attributes")
        found[name] = ResourceSchema(name, tuple(actions), attributes)
    return found


def _parse_one(source: Source) -> Schema:
    try:
        document = tomllib.loads(source.text)
    except tomllib.TOMLDecodeError as error:
        raise SchemaError(f"invalid TOML: {error}") from None
    unknown = set(document) - {"subject", "context", "resources"}
    if unknown:
        key = sorted(unknown)[0]
        raise SchemaError(f"unknown section `{key}` (use subject, context, resources)", key)
    if isinstance(document.get("subject"), dict) and "auth" in document["subject"]:
        raise SchemaError(
            "`subject.auth` is set by pdp for every verified subject (method, issuer): "
            "remove it from the schema",
            "subject.auth",
        )
    return Schema(
        subject=_attributes(document["subject"], "subject") if "subject" in document else None,
        context=_attributes(document["context"], "context") if "context" in document else None,
        resources=_resources(document["resources"]) if "resources" in document else None,
        files=(source.name,),
    )


def _key_span(source: Source, key: str) -> Span:
    """Where a dotted key is written, as well as TOML text can tell (tomllib has no positions):
    its last part, or failing that the nearest part before it that is written out (the `items`
    of `subject.g.items` may be implied by `g = { type = "list" }`)."""
    for part in reversed(key.split(".")):
        name = part.split("[", maxsplit=1)[0]
        if not name:
            continue
        match = re.search(rf"^[ \t]*\[?[\w.\"]*\b{re.escape(name)}\b", source.text, re.MULTILINE)
        if match is None:
            match = re.search(rf"\b{re.escape(name)}\b\s*=", source.text)
        if match is not None:
            offset = match.start() + match.group(0).find(name)
            line = source.text.count("\n", 0, offset) + 1
            column = offset - (source.text.rfind("\n", 0, offset) + 1) + 1
            return Span(
                source.name, line, column, line, column + len(name), offset, offset + len(name)
            )
    return Span(source.name, 1, 1, 1, 2)


def load_schema(sources: Sequence[Source]) -> tuple[Schema | None, list[Diagnostic]]:
    """Parse and merge the schema files; None when there are none."""
    if not sources:
        return None, []
    merged: Schema = Schema()
    diagnostics = []
    for source in sources:
        try:
            parsed = _parse_one(source)
        except SchemaError as error:
            span = _key_span(source, error.key) if error.key else Span(source.name, 1, 1, 1, 2)
            diagnostics.append(Diagnostic("schema", error.message, span))
            continue
        conflicts: list[SchemaError] = []
        merged = _merge(merged, parsed, conflicts)
        diagnostics.extend(
            Diagnostic("schema", c.message, _key_span(source, c.key)) for c in conflicts
        )
    return merged, diagnostics


def _merge(a: Schema, b: Schema, conflicts: list[SchemaError]) -> Schema:
    """`a` and `b` together. Where they disagree `a` stays and the conflict is recorded, so one
    clash costs one diagnostic rather than the rest of the file."""
    return Schema(
        subject=_merge_section(a.subject, b.subject, "subject", conflicts),
        context=_merge_section(a.context, b.context, "context", conflicts),
        resources=_merge_resources(a.resources, b.resources, conflicts),
        files=(*a.files, *b.files),
    )


def _merge_section(
    a: Mapping[str, AttributeType] | None,
    b: Mapping[str, AttributeType] | None,
    where: str,
    conflicts: list[SchemaError],
) -> Mapping[str, AttributeType] | None:
    if a is None or b is None:
        return a if b is None else b
    merged = dict(a)
    for name, declared in b.items():
        if name in merged and merged[name] != declared:
            conflicts.append(
                SchemaError(
                    f"`{where}.{name}` is declared twice, as {merged[name].describe()} and as "
                    f"{declared.describe()}",
                    f"{where}.{name}",
                )
            )
            continue
        merged[name] = declared
    return merged


def _merge_resources(
    a: Mapping[str, ResourceSchema] | None,
    b: Mapping[str, ResourceSchema] | None,
    conflicts: list[SchemaError],
) -> Mapping[str, ResourceSchema] | None:
    if a is None or b is None:
        return a if b is None else b
    merged = dict(a)
    for name, resource in b.items():
        old = merged.get(name)
        if old is None:
            merged[name] = resource
            continue
        where = f"resources.{name}"
        attributes = _merge_section(old.attributes, resource.attributes, where, conflicts)
        actions = tuple(dict.fromkeys((*old.actions, *resource.actions)))
        merged[name] = ResourceSchema(name, actions, attributes or {})
    return merged

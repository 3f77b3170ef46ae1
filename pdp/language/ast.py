"""The immutable AST that parsing produces and checking, compiling and formatting consume.

Every node carries a Span. Spans take no part in equality, so two parses of the same policy
written with different layout compare equal (the formatter relies on that).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum

from pdp.language.source import UNKNOWN_SPAN, Span

ROOTS = ("subject", "action", "resource", "context", "data", "caller")
RECORD_ROOTS = ("subject", "resource", "context", "caller")
"""The roots that are records read from the request. `caller` is the service that called pdp,
as its mutual-TLS client certificate shows it (empty without one)."""


class Effect(Enum):
    PERMIT = "permit"
    FORBID = "forbid"


# --- expressions -------------------------------------------------------------------------------

LiteralValue = str | int | Decimal | bool


@dataclass(frozen=True, slots=True, eq=False)
class Literal:
    value: LiteralValue
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)

    # The type takes part in equality: in Python `True == 1` and `1 == Decimal(1)`, but in the
    # language `x == true` and `x == 1` are different tests.
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Literal):
            return NotImplemented
        return type(self.value) is type(other.value) and self.value == other.value

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))


@dataclass(frozen=True, slots=True)
class ListExpr:
    items: tuple[Expr, ...]
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Name:
    """A root (`subject`, `resource`, ...), a file-level constant or a quantifier variable."""

    name: str
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Attr:
    obj: Expr
    name: str
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Index:
    obj: Expr
    key: Expr
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Call:
    function: str
    args: tuple[Expr, ...]
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)
    name_span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BoolOp:
    """`and` / `or` over two or more operands, evaluated left to right with short-circuit."""

    op: str
    operands: tuple[Expr, ...]
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Compare:
    """A binary test: `==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, `not in`, `contains`,
    `starts with`, `ends with`, `matches`."""

    op: str
    left: Expr
    right: Expr
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Arith:
    """`+`, `-`, `*`, `/`, `%`."""

    op: str
    left: Expr
    right: Expr
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Has:
    """`obj has a.b.c`: true when every step of the path is present."""

    obj: Expr
    path: tuple[str, ...]
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Default:
    """`value ?? fallback`: the fallback when `value` reads a missing attribute."""

    value: Expr
    fallback: Expr
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Quantifier:
    """`any(x in xs: body)` / `all(x in xs: body)`."""

    kind: str
    var: str
    collection: Expr
    body: Expr
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)
    var_span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


Expr = (
    Literal
    | ListExpr
    | Name
    | Attr
    | Index
    | Call
    | Not
    | Negate
    | BoolOp
    | Compare
    | Arith
    | Has
    | Default
    | Quantifier
)


def children(expr: Expr) -> tuple[Expr, ...]:
    """The direct sub-expressions of `expr`, in source order."""
    match expr:
        case Literal() | Name():
            return ()
        case ListExpr(items=items):
            return items
        case Attr(obj=obj) | Has(obj=obj):
            return (obj,)
        case Index(obj=obj, key=key):
            return (obj, key)
        case Call(args=args):
            return args
        case Not(operand=operand) | Negate(operand=operand):
            return (operand,)
        case BoolOp(operands=operands):
            return operands
        case Compare(left=left, right=right) | Arith(left=left, right=right):
            return (left, right)
        case Default(value=value, fallback=fallback):
            return (value, fallback)
        case Quantifier(collection=collection, body=body):
            return (collection, body)
    raise TypeError(f"not an expression node: {type(expr).__name__}")


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node of `expr`, parents before children, without recursion (depth is untrusted)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


def attribute_path(expr: Expr) -> tuple[str, ...] | None:
    """`subject.address.city` as ("subject", "address", "city"); None for anything else."""
    names: list[str] = []
    while isinstance(expr, Attr):
        names.append(expr.name)
        expr = expr.obj
    if not isinstance(expr, Name):
        return None
    names.append(expr.name)
    return tuple(reversed(names))


# --- declarations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Which actions or resource types a rule applies to; `names is None` means any."""

    names: tuple[str, ...] | None
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)

    def matches_any(self) -> bool:
        return self.names is None


@dataclass(frozen=True, slots=True)
class Template:
    """A reason message: text parts and `{attribute.path}` interpolations, in order."""

    parts: tuple[str | Expr, ...]
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Rule:
    effect: Effect
    id: str
    actions: Target
    resources: Target
    condition: Expr | None
    reason: Template | None
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)
    id_span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Const:
    name: str
    value: Expr
    span: Span = field(default=UNKNOWN_SPAN, compare=False, repr=False)


Declaration = Const | Rule


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """One parsed file: its declarations in source order."""

    name: str
    declarations: tuple[Declaration, ...]

    @property
    def consts(self) -> tuple[Const, ...]:
        return tuple(d for d in self.declarations if isinstance(d, Const))

    @property
    def rules(self) -> tuple[Rule, ...]:
        return tuple(d for d in self.declarations if isinstance(d, Rule))

"""The policy formatter: rewrites a policy file in one canonical layout (`pdp fmt`).

Formatting never changes meaning: the output parses to the same declarations (spans aside) and
keeps every comment, in order. `format_source` re-parses its own output and refuses to return
text that fails either check, so a formatter bug can cost a refusal but never a changed policy.

The layout, close to how policies/shop/shop.policy is written:

- Declarations. One blank line after a rule and before a rule (and before its comments). Between
  two constants the author's choice is kept: no blank line, or one. Full-line comments between
  declarations stay where they are, and one blank line between them (or between the last of them
  and the declaration) is kept too. Other blank lines, trailing spaces and a byte-order mark go;
  lines end with `\\n`, and a non-empty file with exactly one.
- Rules::

      permit rule-id {  # a comment
          action   read
          resource [Document, Folder]
          when     subject.age >= 18
                   and subject.country in SHIP_COUNTRIES
                   and not resource.archived
          reason   "..."
      }

  Clause keywords are indented by 4 and padded to 9 characters, so every clause value starts in
  column 14. Target names are written bare when they are identifiers, quoted otherwise (`any` as
  a name is always quoted: bare, it would mean every action); a list of one name is the name.
- Constants: `const NAME = value`.
- Lines are at most 100 columns where the layout allows it. A `when` condition whose top level
  is a chain of three or more `and` / `or` operands goes one operand per line: it reads as a
  list of requirements. Any other condition or value that fits stays on one line; one that does
  not fit breaks its outermost chain first, inner ones only if they still do not fit. A broken
  chain has one operand per line, each continuation line starting with its operator, aligned
  under the first operand. Chains break at the top of a clause or constant, inside parentheses
  (aligned after the `(`: `and`, `or`, `??`, arithmetic or a comparison) and as an argument,
  list item, index or quantifier part; an `and` chain inside an `or` chain without parentheses
  stays on one line (broken, the two would share a column). A list that does not fit goes one
  item per line, indented by 4, with a trailing comma and its `]` on a line of its own. Nothing
  else breaks, so a long call or string may exceed the width.
- Spacing: one space around binary operators and after `,` and `:`; none inside brackets, after
  a unary `-` or around `.`.
- Parentheses: where precedence needs them, and where the author wrote them around an operator
  expression (`not (a contains b)`, `x in (a ?? b)`: authors add these for clarity). Redundant
  parentheses around a name, literal, list, call, attribute or index, around a whole condition
  or constant, and doubled parentheses are dropped. Input without redundant parentheses is
  therefore formatted the same however it was laid out.
- Literals: strings with the canonical escapes (`\\"`, `\\\\`, `\\n`, `\\t`, `\\r`, `\\b`, `\\f`,
  `\\uXXXX` for other control and invisible characters; everything else as itself, so `\\u00e9`
  becomes `é` and `\\/` becomes `/`). Reasons likewise, with `{{` / `}}` for braces and
  interpolations written `{a.b}`. Numbers keep the digits written: leading zeros and `_` go,
  then digits are grouped by thousands with `_` when the integer part has 5 or more digits
  (`10_000`, but `2026`); a decimal keeps its trailing zeros (`12.50` stays `12.50`: the two
  compare equal, but reasons show the value as written).
- Comments. An end-of-line comment stays at the end of the line of the code it follows
  (separated by two spaces); if that code is not at the end of a line in the canonical layout,
  the line is broken after it (a comment after the operand of an `and` chain breaks the chain).
  A full-line comment stays on its own line before the code it preceded, indented like that
  code. Comment text is kept as written, without trailing spaces.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from pdp.language import ast
from pdp.language.parser import parse_source
from pdp.language.source import Diagnostic, Source, attach_source_lines

WIDTH = 100
"""The line width the layout aims for."""

INDENT = 4
"""Indentation of clauses inside a rule and of list items."""

CLAUSE_WIDTH = len("resource ")
"""Clause keywords are padded to this width, so clause values line up."""

LIST_OPERANDS = 3
"""A `when` condition of this many `and` / `or` operands goes one operand per line, even if it
would fit on one: it reads as a list of requirements."""


class FormatError(Exception):
    """The file does not parse; `diagnostics` say why (with source lines, for carets)."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.headline() for d in diagnostics))
        self.diagnostics = diagnostics


class UnsafeFormatError(Exception):
    """The formatted text would not mean the same as the input: it is never returned."""


def format_text(text: str, name: str = "<text>") -> str:
    """`text` in the canonical layout. Raises FormatError when it does not parse."""
    return format_source(Source(name, text))


def format_source(source: Source) -> str:
    """The source's text in the canonical layout. Raises FormatError when it does not parse."""
    text = source.text.removeprefix("\ufeff")
    source = Source(source.name, text)
    parsed = _parse(source)
    scan = _scan(text)
    formatted = _Formatter(source, parsed, scan).run()
    _verify(source.name, parsed, scan, formatted)
    return formatted


def _parse(source: Source) -> ast.PolicyFile:
    result = parse_source(source)
    errors = [d for d in result.diagnostics if d.severity == "error"]
    if errors:
        raise FormatError(attach_source_lines(errors, {source.name: source}))
    return result.file


def _verify(name: str, parsed: ast.PolicyFile, scan: _Scan, formatted: str) -> None:
    """The safety net: same declarations (literal types included), same comments in order."""
    try:
        again = _parse(Source(name, formatted))
    except FormatError as error:
        raise UnsafeFormatError(f"{name}: the formatted text does not parse: {error}") from None
    if again.declarations != parsed.declarations or _literal_types(again) != _literal_types(parsed):
        raise UnsafeFormatError(f"{name}: formatting would change the declarations")
    before = [c.text for c in scan.comments]
    after = [c.text for c in _scan(formatted).comments]
    if before != after:
        raise UnsafeFormatError(f"{name}: formatting would lose or reorder comments")


def _literal_types(file: ast.PolicyFile) -> list[str]:
    # AST equality says Literal(True) == Literal(1) and Literal(Decimal("1.0")) == Literal(1)
    # (Python's ==), so the kinds and written forms of literals are compared separately.
    found: list[str] = []
    for declaration in file.declarations:
        roots = [declaration.value] if isinstance(declaration, ast.Const) else []
        if isinstance(declaration, ast.Rule) and declaration.condition is not None:
            roots.append(declaration.condition)
        for root in roots:
            found.extend(
                f"{type(node.value).__name__}:{node.value}"
                for node in ast.walk(root)
                if isinstance(node, ast.Literal)
            )
    return found


# --- source tokens and comments ------------------------------------------------------------------

# The lexer skips comments, so they are found here. Strings come before comments so that a `#`
# inside a string is not taken for one; the alternatives mirror the grammar's terminals.
_SCAN = re.compile(
    r"""(?P<ws>[ \t\r\n\f]+)
      |(?P<comment>\#[^\n]*)
      |(?P<string>"(?:[^"\\\n\r]|\\[^\n\r])*")
      |(?P<number>[0-9](?:_?[0-9])*(?:\.[0-9](?:_?[0-9])*)?)
      |(?P<word>[A-Za-z_][A-Za-z0-9_]*)
      |(?P<symbol>==|!=|<=|>=|\?\?|.)""",
    re.VERBOSE | re.DOTALL,
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class _SourceComment:
    start: int
    text: str
    own_line: bool
    """Nothing but whitespace before it on its line."""


@dataclass(slots=True)
class _Scan:
    starts: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)
    comments: list[_SourceComment] = field(default_factory=list)


def _scan(text: str) -> _Scan:
    found = _Scan()
    for match in _SCAN.finditer(text):
        kind = match.lastgroup or "symbol"
        if kind == "ws":
            continue
        if kind == "comment":
            line_start = text.rfind("\n", 0, match.start()) + 1
            own_line = not text[line_start : match.start()].strip()
            found.comments.append(_SourceComment(match.start(), match.group().rstrip(), own_line))
            continue
        found.starts.append(match.start())
        found.texts.append(match.group())
        found.kinds.append(kind)
    return found


class _Tokens:
    """Positions of the source's tokens, so that printed keywords and punctuation carry the
    offset they came from and comments can be placed between the right ones."""

    def __init__(self, scan: _Scan) -> None:
        self.scan = scan

    def index_from(self, offset: int) -> int:
        return bisect.bisect_left(self.scan.starts, offset)

    def find(self, text: str, offset: int) -> int:
        """The offset of the first token `text` at or after `offset`."""
        starts, texts = self.scan.starts, self.scan.texts
        index = self.index_from(offset)
        # The token sought is the next one in valid input; the bound only guards against a bug.
        for position in range(index, min(index + 8, len(starts))):
            if texts[position] == text:
                return starts[position]
        return offset

    def next_after(self, offset: int) -> int:
        """The offset of the token after the one at `offset`."""
        index = self.index_from(offset + 1)
        return self.scan.starts[index] if index < len(self.scan.starts) else offset

    def text_at(self, offset: int) -> str | None:
        index = self.index_from(offset)
        if index < len(self.scan.starts) and self.scan.starts[index] == offset:
            return self.scan.texts[index]
        return None

    def first_not_paren(self, offset: int) -> int:
        """The first token at or after `offset` that is not `(`: a node's own first token."""
        index = self.index_from(offset)
        while index < len(self.scan.starts) and self.scan.texts[index] == "(":
            index += 1
        return self.scan.starts[index] if index < len(self.scan.starts) else offset

    def between(self, start: int, end: int) -> list[tuple[int, str, str]]:
        index = self.index_from(start)
        found = []
        while index < len(self.scan.starts) and self.scan.starts[index] < end:
            found.append((self.scan.starts[index], self.scan.texts[index], self.scan.kinds[index]))
            index += 1
        return found


# --- the document: a flat stream of layout elements ----------------------------------------------


@dataclass(slots=True)
class _Text:
    text: str
    tag: int | None = None
    """The source offset of the token printed, for placing comments; None for spacing."""


@dataclass(slots=True)
class _Line:
    kind: str
    """`line`: a space when its group is flat; `soft`: nothing when flat; `hard`: always breaks."""
    forced: bool = False
    """A trailing comment ends its line here: the group must break."""


@dataclass(slots=True)
class _IfBreak:
    text: str
    """Printed only when the enclosing group is broken (the trailing comma of a list)."""


@dataclass(slots=True)
class _Open:
    kind: str
    """`group` (flat if it fits), `indent` (by INDENT) or `align` (to the current column)."""
    broken: bool = False
    close: int = 0


@dataclass(slots=True)
class _Close:
    kind: str


@dataclass(slots=True)
class _Comment:
    text: str
    trailing: bool


_Element = _Text | _Line | _IfBreak | _Open | _Close | _Comment
_Thunk = Callable[[], None]

# What a trailing comment may move past to stay on its line: closing punctuation and markers.
_STICKY = {",", ")", "]", ":"}


# --- precedence ----------------------------------------------------------------------------------

_OR, _AND, _NOT, _COMPARE, _SUM, _PRODUCT, _UNARY, _DEFAULT, _POSTFIX, _ATOM = range(1, 11)


def _is_negative_number(value: ast.LiteralValue) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return False
    return value.is_signed() if isinstance(value, Decimal) else value < 0


def _precedence(node: ast.Expr) -> int:
    match node:
        case ast.BoolOp(op="or"):
            return _OR
        case ast.BoolOp():
            return _AND
        case ast.Not():
            return _NOT
        case ast.Compare() | ast.Has():
            return _COMPARE
        case ast.Arith(op="+" | "-"):
            return _SUM
        case ast.Arith():
            return _PRODUCT
        case ast.Negate():
            return _UNARY
        case ast.Literal(value=value) if _is_negative_number(value):
            return _UNARY
        case ast.Default():
            return _DEFAULT
        case ast.Attr() | ast.Index():
            return _POSTFIX
    return _ATOM


def _is_operator(node: ast.Expr) -> bool:
    """Expressions whose author parentheses are kept: they can clarify grouping."""
    return isinstance(
        node, ast.BoolOp | ast.Not | ast.Compare | ast.Has | ast.Arith | ast.Negate | ast.Default
    )


def _leftmost_child(node: ast.Expr) -> ast.Expr | None:
    """The child whose span starts where the node's does (unless the node is parenthesized)."""
    match node:
        case ast.Attr(obj=obj) | ast.Index(obj=obj) | ast.Has(obj=obj):
            return obj
        case ast.Compare(left=left) | ast.Arith(left=left):
            return left
        case ast.Default(value=value):
            return value
        case ast.BoolOp(operands=operands):
            return operands[0]
    return None


# --- literals ------------------------------------------------------------------------------------

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
_ESCAPES |= {"\b": "\\b", "\f": "\\f"}


def _escape(text: str) -> str:
    out: list[str] = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif not char.isprintable() and ord(char) <= 0xFFFF:
            # Control and invisible characters (U+00A0, U+200B, U+2028, ...) are shown as
            # escapes. Outside the BMP there is no escape (only \uXXXX, surrogates refused).
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return "".join(out)


def quote(text: str) -> str:
    """A string literal for `text`, with the canonical escapes."""
    return f'"{_escape(text)}"'


def _group_digits(digits: str) -> str:
    if len(digits) < 5:
        return digits
    head = len(digits) % 3 or 3
    groups = [digits[:head]] + [digits[i : i + 3] for i in range(head, len(digits), 3)]
    return "_".join(groups)


def number_text(value: int | Decimal, written: str | None = None) -> str:
    """A number in canonical form. `written` is the literal's source token (without sign): its
    digits are kept, so a decimal keeps its trailing zeros."""
    if written is None:
        magnitude = abs(value)
        written = str(magnitude) if isinstance(value, int) else format(magnitude, "f")
    plain = written.replace("_", "")
    whole, dot, fraction = plain.partition(".")
    whole = whole.lstrip("0") or "0"
    sign = "-" if _is_negative_number(value) else ""
    return sign + _group_digits(whole) + dot + fraction


def _target_name(name: str) -> str:
    return name if _NAME.fullmatch(name) and name != "any" else quote(name)


def _template_text(template: ast.Template) -> str:
    out = ['"']
    for part in template.parts:
        if isinstance(part, str):
            out.append(_escape(part).replace("{", "{{").replace("}", "}}"))
        else:
            path = ast.attribute_path(part)
            out.append("{" + ".".join(path or ("?",)) + "}")
    out.append('"')
    return "".join(out)


# --- building the stream -------------------------------------------------------------------------


class _Builder:
    """Turns one declaration into a stream of layout elements, tagged with source offsets."""

    def __init__(self, tokens: _Tokens) -> None:
        self.tokens = tokens
        self.out: list[_Element] = []

    def text(self, text: str, tag: int | None = None) -> None:
        self.out.append(_Text(text, tag))

    # declarations

    def const(self, const: ast.Const) -> None:
        start = const.span.start
        self.text("const", start)
        self.text(" ")
        self.text(const.name, self.tokens.find(const.name, start + len("const")))
        self.text(" = ", self.tokens.find("=", start))
        self.expr(const.value, _OR, top=True)

    def rule(self, rule: ast.Rule) -> None:
        find = self.tokens.find
        self.text(rule.effect.value, rule.span.start)
        self.text(" ")
        self.text(rule.id, rule.id_span.start)
        brace = find("{", rule.id_span.end)
        self.text(" {", brace)
        close = rule.span.end - 1
        self.out.append(_Open("indent"))
        self.clause("action", find("action", brace), lambda: self.target(rule.actions))
        keyword = find("resource", rule.actions.span.end)
        self.clause("resource", keyword, lambda: self.target(rule.resources))
        after = rule.resources.span.end
        condition = rule.condition
        if condition is not None:
            keyword = find("when", after)
            self.clause("when", keyword, lambda: self.condition(condition))
            after = condition.span.end
        reason = rule.reason
        if reason is not None:
            keyword = find("reason", after)
            self.clause(
                "reason", keyword, lambda: self.text(_template_text(reason), reason.span.start)
            )
        self.text("", close)  # so a comment before `}` stays inside the rule
        self.out.append(_Close("indent"))
        self.out.append(_Line("hard"))
        self.text("}", close)

    def condition(self, condition: ast.Expr) -> None:
        start = len(self.out)
        self.expr(condition, _OR, top=True)
        chain = self.out[start]
        if isinstance(condition, ast.BoolOp) and len(condition.operands) >= LIST_OPERANDS:
            assert isinstance(chain, _Open) and chain.kind == "group"
            chain.broken = True

    def clause(self, keyword: str, tag: int, value: _Thunk) -> None:
        self.out.append(_Line("hard"))
        self.text(keyword.ljust(CLAUSE_WIDTH), tag)
        self.out.append(_Open("align"))
        value()
        self.out.append(_Close("align"))

    def target(self, target: ast.Target) -> None:
        if target.names is None:
            self.text("any", target.span.start)
            return
        positions = [
            start
            for start, _text, kind in self.tokens.between(target.span.start, target.span.end)
            if kind in ("string", "word")
        ]
        if len(positions) != len(target.names):  # pragma: no cover - defensive
            positions = [target.span.start] * len(target.names)
        if len(target.names) == 1:  # `[read]` and `read` are the same target
            self.text(_target_name(target.names[0]), positions[0])
            return
        items: list[_Thunk] = [
            functools.partial(self.text, _target_name(name), at)
            for name, at in zip(target.names, positions, strict=True)
        ]
        commas = [self.tokens.find(",", at) for at in positions]
        self.list_layout(items, target.span.start, commas, target.span.end - 1)

    def list_layout(
        self, items: list[_Thunk], open_tag: int, comma_tags: list[int], close_tag: int
    ) -> None:
        self.out.append(_Open("group"))
        self.text("[", open_tag)
        self.out.append(_Open("indent"))
        self.out.append(_Line("soft"))
        for index, item in enumerate(items):
            item()
            if index < len(items) - 1:
                self.text(",", comma_tags[index])
                self.out.append(_Line("line"))
        if items:
            self.out.append(_IfBreak(","))
        self.text("", close_tag)
        self.out.append(_Close("indent"))
        self.out.append(_Line("soft"))
        self.text("]", close_tag)
        self.out.append(_Close("group"))

    # expressions

    def parenthesized(self, node: ast.Expr) -> bool:
        """Did the author write parentheses around `node`? (They widen its span.)"""
        if self.tokens.text_at(node.span.start) != "(":
            return False
        lead = _leftmost_child(node)
        return lead is None or lead.span.start != node.span.start

    def expr(
        self, node: ast.Expr, min_precedence: int, top: bool = False, delimited: bool = False
    ) -> None:
        """Print `node` where an operand of `min_precedence` is expected. `top`: a whole
        condition or constant; `delimited`: nothing else on either side (a clause, an argument,
        a list item, an index, a quantifier's parts), where an and/or chain may break."""
        needed = _precedence(node) < min_precedence
        kept = not top and _is_operator(node) and self.parenthesized(node)
        if needed or kept:
            self.text("(", node.span.start)
            self.inner(node, breakable=True)
            self.text(")", node.span.end - 1)
        else:
            # An and/or chain inside another one without parentheses stays on one line: broken,
            # `a and b or c` would put `and` and `or` in the same column.
            self.inner(node, breakable=(top or delimited) and isinstance(node, ast.BoolOp))

    def own_start(self, node: ast.Expr) -> int:
        return self.tokens.first_not_paren(node.span.start)

    def inner(self, node: ast.Expr, breakable: bool) -> None:
        find = self.tokens.find
        match node:
            case ast.Name(name=name):
                self.text(name, self.own_start(node))
            case ast.Literal(value=value):
                self.text(self.literal(node, value), self.own_start(node))
            case ast.ListExpr(items=items):
                self.list_expr(node, items)
            case ast.Attr(obj=obj, name=name):
                self.expr(obj, _POSTFIX)
                self.text("." + name, find(".", obj.span.end))
            case ast.Index(obj=obj, key=key):
                self.expr(obj, _POSTFIX)
                self.text("[", find("[", obj.span.end))
                self.out.append(_Open("align"))
                self.expr(key, _OR, delimited=True)
                self.out.append(_Close("align"))
                self.text("]", find("]", key.span.end))
            case ast.Call():
                self.call(node)
            case ast.Not(operand=operand):
                self.text("not ", self.own_start(node))
                self.expr(operand, _NOT)
            case ast.Negate(operand=operand):
                self.text("-", self.own_start(node))
                self.expr(operand, _UNARY)
            case ast.Quantifier():
                self.quantifier(node)
            case ast.Has(obj=obj, path=path):
                self.expr(obj, _SUM)
                keyword = find("has", obj.span.end)
                self.text(" has ", keyword)
                written = ".".join(path)
                if len(path) == 1 and not _NAME.fullmatch(path[0]):
                    written = quote(path[0])
                self.text(written, self.tokens.next_after(keyword))
            case ast.BoolOp(op=op, operands=operands):
                level = _precedence(node) + 1
                self.chain(list(operands), [op] * (len(operands) - 1), level, level, breakable)
            case ast.Compare(op=op, left=left, right=right):
                self.chain([left, right], [op], _SUM, _SUM, breakable)
            case ast.Arith() | ast.Default():
                chained, ops = self.flatten(node)
                level = _precedence(node)
                self.chain(chained, ops, level, level + 1, breakable)

    def literal(self, node: ast.Literal, value: ast.LiteralValue) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return quote(value)
        numbers = [
            text
            for _start, text, kind in self.tokens.between(node.span.start, node.span.end)
            if kind == "number"
        ]
        return number_text(value, numbers[-1] if numbers else None)

    def flatten(self, node: ast.Arith | ast.Default) -> tuple[list[ast.Expr], list[str]]:
        """`a + b - c` as operands [a, b, c] and operators [+, -] (left-nested, same level)."""
        level = _precedence(node)
        operands: list[ast.Expr] = []
        ops: list[str] = []
        current: ast.Expr = node
        while True:
            if isinstance(current, ast.Arith) and _precedence(current) == level:
                operands.append(current.right)
                ops.append(current.op)
                left = current.left
            elif isinstance(current, ast.Default) and level == _DEFAULT:
                operands.append(current.fallback)
                ops.append("??")
                left = current.value
            else:
                break
            if _precedence(left) != level or self.parenthesized(left):
                operands.append(left)
                break
            current = left
        operands.reverse()
        ops.reverse()
        return operands, ops

    def chain(
        self,
        operands: list[ast.Expr],
        ops: list[str],
        first_precedence: int,
        rest_precedence: int,
        breakable: bool,
    ) -> None:
        if breakable:
            self.out.append(_Open("group"))
            self.out.append(_Open("align"))
        self.expr(operands[0], first_precedence)
        for previous, op, operand in zip(operands, ops, operands[1:], strict=False):
            tag = self.tokens.find(op.split()[0], previous.span.end)
            if breakable:
                self.out.append(_Line("line"))
                self.text(op + " ", tag)
            else:
                self.text(f" {op} ", tag)
            self.expr(operand, rest_precedence)
        if breakable:
            self.out.append(_Close("align"))
            self.out.append(_Close("group"))

    def list_expr(self, node: ast.ListExpr, items: tuple[ast.Expr, ...]) -> None:
        find = self.tokens.find
        open_tag = self.own_start(node)
        thunks: list[_Thunk] = [
            functools.partial(self.expr, item, _OR, delimited=True) for item in items
        ]
        commas = [find(",", item.span.end) for item in items]
        close_tag = find("]", items[-1].span.end if items else open_tag + 1)
        self.list_layout(thunks, open_tag, commas, close_tag)

    def call(self, node: ast.Call) -> None:
        find = self.tokens.find
        self.text(node.function, node.name_span.start)
        opening = find("(", node.name_span.end)
        self.text("(", opening)
        self.out.append(_Open("align"))
        for index, arg in enumerate(node.args):
            if index:
                self.text(", ", find(",", node.args[index - 1].span.end))
            self.expr(arg, _OR, delimited=True)
        close_tag = find(")", node.args[-1].span.end if node.args else opening + 1)
        self.out.append(_Close("align"))
        self.text(")", close_tag)

    def quantifier(self, node: ast.Quantifier) -> None:
        find = self.tokens.find
        start = self.own_start(node)
        self.text(node.kind, start)
        self.text("(", find("(", start))
        self.out.append(_Open("align"))
        self.text(node.var, node.var_span.start)
        self.text(" in ", find("in", node.var_span.end))
        self.expr(node.collection, _OR, delimited=True)
        self.text(": ", find(":", node.collection.span.end))
        self.expr(node.body, _OR, delimited=True)
        close_tag = find(")", node.body.span.end)
        self.out.append(_Close("align"))
        self.text(")", close_tag)


# --- comments into the stream --------------------------------------------------------------------


def _place_comments(base: list[_Element], comments: list[_SourceComment]) -> list[_Element]:
    """Insert comments between the elements whose tags surround them.

    A full-line comment goes before the first token that follows it (before any group that
    token opens, so it does not force that group to break); an end-of-line
    comment goes after the last token before it, and after the closing punctuation that follows
    that token. Comments never change order: one that would land before an earlier comment is
    placed after it, on a line of its own.
    """
    tagged = [
        (index, element.tag)
        for index, element in enumerate(base)
        if isinstance(element, _Text) and element.tag is not None
    ]
    tags = [tag for _index, tag in tagged]
    placed: list[tuple[int, _Comment]] = []
    for comment in comments:
        following = bisect.bisect_right(tags, comment.start)
        if comment.own_line:
            position = tagged[following][0] if following < len(tagged) else len(base)
            # Before the groups that token opens (so they need not break), but after the
            # alignment of the clause or chain around it (so the comment is indented as it is).
            start = position
            while start > 0 and isinstance(base[start - 1], _Open):
                start -= 1
            groups = [i for i in range(start, position) if _opens_group(base[i])]
            position = groups[0] if groups else position
        else:
            anchor = following - 1
            while anchor >= 0 and not _text_of(base[tagged[anchor][0]]):
                anchor -= 1
            position = tagged[anchor][0] + 1 if anchor >= 0 else 0
            while position < len(base) and _sticky(base[position]):
                position += 1
        trailing = not comment.own_line
        if placed and position <= placed[-1][0]:
            position = placed[-1][0]
            trailing = False
        placed.append((position, _Comment(comment.text, trailing)))
    stream: list[_Element] = []
    cursor = 0
    for position, element in placed:
        stream.extend(base[cursor:position])
        stream.append(element)
        cursor = position
    stream.extend(base[cursor:])
    return stream


def _text_of(element: _Element) -> str:
    return element.text if isinstance(element, _Text) else ""


def _opens_group(element: _Element) -> bool:
    return isinstance(element, _Open) and element.kind == "group"


def _sticky(element: _Element) -> bool:
    if isinstance(element, _Close | _IfBreak):
        return True
    return isinstance(element, _Text) and element.text.strip() in _STICKY


def _transparent(element: _Element) -> bool:
    """Prints nothing that could sit between a trailing comment and its line break."""
    if isinstance(element, _Close | _IfBreak):
        return True
    return isinstance(element, _Text) and not element.text


def _prepare(stream: list[_Element]) -> list[_Element]:
    """Decide which line breaks the comments force, and which groups must break."""
    out: list[_Element] = []
    for index, element in enumerate(stream):
        out.append(element)
        if not (isinstance(element, _Comment) and element.trailing):
            continue
        following = index + 1
        while following < len(stream) and _transparent(stream[following]):
            following += 1
        if following == len(stream):
            continue
        after = stream[following]
        if isinstance(after, _Line):
            after.forced = True
        elif not isinstance(after, _Comment):
            # Code follows on the same line: the line must end after the comment.
            out.append(_Line("hard"))
    open_groups: list[_Open] = []
    closers: list[int] = []
    for index, element in enumerate(out):
        if isinstance(element, _Open):
            closers.append(index)
            if element.kind == "group":
                open_groups.append(element)
        elif isinstance(element, _Close):
            opening = out[closers.pop()]
            assert isinstance(opening, _Open)
            opening.close = index
            if element.kind == "group":
                open_groups.pop()
        elif (isinstance(element, _Line) and (element.kind == "hard" or element.forced)) or (
            isinstance(element, _Comment) and not element.trailing
        ):
            # A group that holds a line break cannot be flat, nor can any group around it.
            for group in open_groups:
                group.broken = True
    return out


# --- rendering -----------------------------------------------------------------------------------


class _Renderer:
    """Prints a prepared stream: Wadler/Prettier-style groups, flat when they fit."""

    def __init__(self, stream: list[_Element]) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self.line = ""
        self.suffix = ""
        self.indents = [0]
        self.broken = [True]

    def has_content(self) -> bool:
        return bool(self.line.strip())

    def newline(self) -> None:
        indent = self.indents[-1]
        if self.has_content():
            text = self.line.rstrip()
            if self.suffix:
                text += "  " + self.suffix
                self.suffix = ""
            self.lines.append(text)
        self.line = " " * indent

    def fits(self, start: int, opening: _Open) -> bool:
        width = len(self.line)
        for element in self.stream[start + 1 : opening.close]:
            if isinstance(element, _Text):
                width += len(element.text)
            elif isinstance(element, _Line):
                if element.kind == "hard":  # pragma: no cover - such groups are broken
                    return False
                width += element.kind == "line"
            elif isinstance(element, _Comment) and not element.trailing:  # pragma: no cover
                return False
            if width > WIDTH:
                return False
        # What follows the group up to the next possible line break must fit too.
        for element in self.stream[opening.close + 1 :]:
            if isinstance(element, _Line | _Comment):
                break
            if isinstance(element, _Text | _IfBreak):
                width += len(element.text)
            if width > WIDTH:
                return False
        return True

    def run(self) -> list[str]:
        for index, element in enumerate(self.stream):
            if isinstance(element, _Text):
                # A line broken by a comment can start with an operator's leading space.
                has_content = self.has_content()
                self.line += element.text if has_content else element.text.lstrip(" ")
            elif isinstance(element, _Line):
                if element.kind == "hard" or self.broken[-1]:
                    self.newline()
                elif element.kind == "line" and self.has_content():
                    self.line += " "
            elif isinstance(element, _IfBreak):
                if self.broken[-1]:
                    self.line += element.text
            elif isinstance(element, _Open):
                if element.kind == "group":
                    breaks = self.broken[-1] and (element.broken or not self.fits(index, element))
                    self.broken.append(breaks)
                elif element.kind == "indent":
                    self.indents.append(self.indents[-1] + INDENT)
                else:
                    self.indents.append(len(self.line))
            elif isinstance(element, _Close):
                if element.kind == "group":
                    self.broken.pop()
                else:
                    self.indents.pop()
            elif element.trailing:
                self.suffix = f"{self.suffix}  {element.text}" if self.suffix else element.text
            else:
                if self.has_content():
                    self.newline()
                self.line += element.text
                self.newline()
        if self.has_content() or self.suffix:
            self.newline()
        return self.lines


# --- the file ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Item:
    """A declaration, or a full-line comment between declarations, as output lines."""

    lines: list[str]
    first_line: int
    last_line: int
    declaration: ast.Declaration | None = None
    follows_directly: bool = False
    """A comment moved out of the declaration before it: never a blank line in between."""


class _Formatter:
    def __init__(self, source: Source, parsed: ast.PolicyFile, scan: _Scan) -> None:
        self.text = source.text
        self.declarations = parsed.declarations
        self.scan = scan
        self.tokens = _Tokens(self.scan)
        self.newlines = [index for index, char in enumerate(source.text) if char == "\n"]

    def line_of(self, offset: int) -> int:
        return bisect.bisect_left(self.newlines, offset)

    def run(self) -> str:
        declarations = self.declarations
        starts = [d.span.start for d in declarations]
        owned: list[list[_SourceComment]] = [[] for _ in declarations]
        top_level: list[_SourceComment] = []
        for comment in self.scan.comments:
            before = bisect.bisect_right(starts, comment.start) - 1
            inside = before >= 0 and comment.start < declarations[before].span.end
            if inside or (before >= 0 and not comment.own_line):
                owned[before].append(comment)
            else:
                top_level.append(comment)
        items: list[_Item] = []
        waiting = 0
        for declaration, comments in zip(declarations, owned, strict=True):
            while waiting < len(top_level) and top_level[waiting].start < declaration.span.start:
                items.append(self.comment_item(top_level[waiting]))
                waiting += 1
            items.extend(self.declaration_items(declaration, comments))
        items.extend(self.comment_item(comment) for comment in top_level[waiting:])
        return self.join(items)

    def comment_item(self, comment: _SourceComment) -> _Item:
        line = self.line_of(comment.start)
        return _Item([comment.text], line, line)

    def declaration_items(
        self, declaration: ast.Declaration, comments: list[_SourceComment]
    ) -> list[_Item]:
        builder = _Builder(self.tokens)
        if isinstance(declaration, ast.Rule):
            builder.rule(declaration)
        else:
            builder.const(declaration)
        stream = _prepare(_place_comments(builder.out, comments))
        moved: list[str] = []
        while stream and isinstance(stream[-1], _Comment) and not stream[-1].trailing:
            moved.insert(0, stream.pop().text)  # type: ignore[union-attr]
        first = self.line_of(declaration.span.start)
        last = self.line_of(max([declaration.span.end - 1, *(c.start for c in comments)]))
        items = [_Item(_Renderer(stream).run(), first, last, declaration)]
        items.extend(_Item([text], last, last, follows_directly=True) for text in moved)
        return items

    def join(self, items: list[_Item]) -> str:
        # The declaration each item leads to (itself, or the one its comments stand before).
        leads_to: list[ast.Declaration | None] = [None] * len(items)
        following: ast.Declaration | None = None
        for index in range(len(items) - 1, -1, -1):
            following = items[index].declaration or following
            leads_to[index] = following
        out: list[str] = []
        for index, item in enumerate(items):
            if index:
                previous = items[index - 1]
                blank = not item.follows_directly and item.first_line - previous.last_line > 1
                # A rule is set apart by a blank line, before its comments and after it.
                if previous.declaration is not None and (
                    isinstance(previous.declaration, ast.Rule)
                    or isinstance(leads_to[index], ast.Rule)
                ):
                    blank = True
                if blank:
                    out.append("")
            out.extend(item.lines)
        return "".join(line + "\n" for line in out)

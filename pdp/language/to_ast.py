"""Builds the immutable AST from Lark's reductions (parse -> AST step of the flow).

Lark applies these callbacks while it parses (an inline LALR transformer), so no parse tree is
built and nothing here recurses: deep input cannot overflow the Python stack. Inline callbacks
get no `meta`, so every span is computed from tokens and from the spans of child nodes.

Problems inside literals (a bad escape, an integer out of range) are recorded as diagnostics and a
placeholder is returned, so one parse reports every such problem in the file.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation
from typing import Any

from lark import Token, Transformer

from pdp.language import ast
from pdp.language.limits import INT_MAX, MAX_DECIMAL_DIGITS
from pdp.language.source import Diagnostic, Span
from pdp.language.strings import LiteralError, TemplatePath, decode_string, parse_template


class AstBuilder(Transformer[Token, Any]):
    """Callbacks named after the grammar's rule aliases. `begin()` resets per-file state."""

    def __init__(self) -> None:
        super().__init__()
        self.file = "<unknown>"
        self.diagnostics: list[Diagnostic] = []

    def begin(self, file: str) -> None:
        self.file = file
        self.diagnostics = []

    # --- positions -----------------------------------------------------------------------------

    def _token_span(self, token: Token) -> Span:
        return Span(
            self.file,
            token.line or 0,
            token.column or 0,
            token.end_line or 0,
            token.end_column or 0,
            token.start_pos or 0,
            token.end_pos or 0,
        )

    def _span(self, first: Any, last: Any) -> Span:
        return self._span_of(first).to(self._span_of(last))

    def _span_of(self, item: Any) -> Span:
        if isinstance(item, Token):
            return self._token_span(item)
        span: Span = item.span
        return span

    def _error(self, code: str, message: str, span: Span) -> None:
        self.diagnostics.append(Diagnostic(code, message, span))

    def _literal_error(self, token: Token, error: LiteralError) -> None:
        base = self._token_span(token)
        span = Span(
            self.file,
            base.line,
            base.column + error.start,
            base.line,
            base.column + error.end,
            base.start + error.start,
            base.start + error.end,
        )
        self._error("literal", error.message, span)

    # --- declarations --------------------------------------------------------------------------

    def start(self, children: list[ast.Declaration]) -> list[ast.Declaration]:
        return children

    def const_decl(self, children: list[Any]) -> ast.Const:
        keyword, name, value = children
        return ast.Const(str(name), value, self._span(keyword, value))

    def rule(self, children: list[Any]) -> ast.Rule:
        effect_token, id_token, actions, resources, *optional, close = children
        condition: ast.Expr | None = None
        reason: ast.Template | None = None
        for clause in optional:
            if isinstance(clause, ast.Template):
                reason = clause
            else:
                condition = clause
        return ast.Rule(
            effect=ast.Effect(str(effect_token)),
            id=str(id_token),
            actions=actions,
            resources=resources,
            condition=condition,
            reason=reason,
            span=self._span(effect_token, close),
            id_span=self._token_span(id_token),
        )

    def action_clause(self, children: list[Any]) -> ast.Target:
        target: ast.Target = children[1]
        return target

    resource_clause = action_clause

    def when_clause(self, children: list[Any]) -> ast.Expr:
        condition: ast.Expr = children[0]
        return condition

    def reason_clause(self, children: list[Token]) -> ast.Template:
        token = children[0]
        span = self._token_span(token)
        try:
            raw_parts = parse_template(str(token))
        except LiteralError as error:
            self._literal_error(token, error)
            return ast.Template((), span)
        parts: list[str | ast.Expr] = []
        for part in raw_parts:
            if isinstance(part, TemplatePath):
                parts.append(self._template_path(token, part))
            else:
                parts.append(part)
        return ast.Template(tuple(parts), span)

    def _template_path(self, token: Token, path: TemplatePath) -> ast.Expr:
        base = self._token_span(token)
        span = Span(
            self.file,
            base.line,
            base.column + path.start + 1,
            base.line,
            base.column + path.end - 1,
            base.start + path.start + 1,
            base.start + path.end - 1,
        )
        expr: ast.Expr = ast.Name(path.names[0], span)
        for name in path.names[1:]:
            expr = ast.Attr(expr, name, span)
        return expr

    def target_any(self, children: list[Token]) -> ast.Target:
        return ast.Target(None, self._token_span(children[0]))

    def target_one(self, children: list[Token]) -> ast.Target:
        return ast.Target((self._target_name(children[0]),), self._token_span(children[0]))

    def target_list(self, children: list[Token]) -> ast.Target:
        names = tuple(self._target_name(token) for token in children[1:-1])
        return ast.Target(names, self._span(children[0], children[-1]))

    def _target_name(self, token: Token) -> str:
        if token.type == "STRING":
            return self._decode(token)
        return str(token)

    # --- expressions ---------------------------------------------------------------------------

    def or_(self, children: list[ast.Expr]) -> ast.BoolOp:
        return ast.BoolOp("or", tuple(children), self._span(children[0], children[-1]))

    def and_(self, children: list[ast.Expr]) -> ast.BoolOp:
        return ast.BoolOp("and", tuple(children), self._span(children[0], children[-1]))

    def not_(self, children: list[Any]) -> ast.Not:
        keyword, operand = children
        return ast.Not(operand, self._span(keyword, operand))

    def compare(self, children: list[Any]) -> ast.Compare:
        left, op, right = children
        return ast.Compare(str(op), left, right, self._span(left, right))

    def _binary(self, op: str, children: list[Any]) -> ast.Compare:
        left, right = children[0], children[-1]
        return ast.Compare(op, left, right, self._span(left, right))

    def in_(self, children: list[Any]) -> ast.Compare:
        return self._binary("in", children)

    def not_in(self, children: list[Any]) -> ast.Compare:
        return self._binary("not in", children)

    def contains(self, children: list[Any]) -> ast.Compare:
        return self._binary("contains", children)

    def starts_with(self, children: list[Any]) -> ast.Compare:
        return self._binary("starts with", children)

    def ends_with(self, children: list[Any]) -> ast.Compare:
        return self._binary("ends with", children)

    def matches(self, children: list[Any]) -> ast.Compare:
        return self._binary("matches", children)

    def has(self, children: list[Any]) -> ast.Has:
        obj, (path, path_span) = children
        return ast.Has(obj, path, self._span_of(obj).to(path_span))

    def has_path(self, children: list[Token]) -> tuple[tuple[str, ...], Span]:
        span = self._span(children[0], children[-1])
        if children[0].type == "STRING":
            return (self._decode(children[0]),), span
        return tuple(str(token) for token in children), span

    def arith(self, children: list[Any]) -> ast.Arith:
        left, op, right = children
        return ast.Arith(str(op), left, right, self._span(left, right))

    def negate(self, children: list[Any]) -> ast.Expr:
        minus, operand = children
        span = self._span(minus, operand)
        # Fold `-5` into a literal so that INT_MIN can be written and constants stay simple.
        value = operand.value if isinstance(operand, ast.Literal) else None
        if type(value) is int:
            return ast.Literal(-value, span)
        if isinstance(value, Decimal):
            # copy_negate(): exact, where `-value` would round to the context's 28 digits.
            return ast.Literal(value.copy_negate(), span)
        return ast.Negate(operand, span)

    def default(self, children: list[Any]) -> ast.Default:
        value, fallback = children
        return ast.Default(value, fallback, self._span(value, fallback))

    def attr(self, children: list[Any]) -> ast.Attr:
        obj, name = children
        return ast.Attr(obj, str(name), self._span(obj, name))

    def index(self, children: list[Any]) -> ast.Index:
        obj, _open, key, close = children
        return ast.Index(obj, key, self._span(obj, close))

    def name(self, children: list[Token]) -> ast.Name:
        return ast.Name(str(children[0]), self._token_span(children[0]))

    def call(self, children: list[Any]) -> ast.Call:
        name, *args, close = children
        return ast.Call(
            str(name), tuple(args), self._span(name, close), name_span=self._token_span(name)
        )

    def string_literal(self, children: list[Token]) -> ast.Literal:
        return ast.Literal(self._decode(children[0]), self._token_span(children[0]))

    def _decode(self, token: Token) -> str:
        try:
            return decode_string(str(token))
        except LiteralError as error:
            self._literal_error(token, error)
            return ""

    def int_literal(self, children: list[Token]) -> ast.Literal:
        token = children[0]
        span = self._token_span(token)
        digits = str(token).replace("_", "")
        # Checked on the text: converting a 100,000-digit literal would be slow and then fail.
        if len(digits.lstrip("0")) > len(str(INT_MAX)) or int(digits) > INT_MAX + 1:
            self._error("literal", "integer literal out of range (integers are 64-bit)", span)
            return ast.Literal(0, span)
        # INT_MAX + 1 is allowed only so that `-9223372036854775808` can be written; the checker
        # rejects it anywhere else.
        return ast.Literal(int(digits), span)

    def decimal_literal(self, children: list[Token]) -> ast.Literal:
        token = children[0]
        span = self._token_span(token)
        text = str(token).replace("_", "")
        if len(text.replace(".", "").strip("0")) > MAX_DECIMAL_DIGITS:
            self._error(
                "literal",
                f"decimal literal has more than {MAX_DECIMAL_DIGITS} significant digits",
                span,
            )
            return ast.Literal(Decimal(0), span)
        try:
            return ast.Literal(Decimal(text), span)
        except InvalidOperation:  # pragma: no cover - the token pattern only admits valid text
            self._error("literal", f"invalid decimal literal `{text}`", span)
            return ast.Literal(Decimal(0), span)

    def true(self, children: list[Token]) -> ast.Literal:
        return ast.Literal(True, self._token_span(children[0]))

    def false(self, children: list[Token]) -> ast.Literal:
        return ast.Literal(False, self._token_span(children[0]))

    def list_literal(self, children: list[Any]) -> ast.ListExpr:
        return ast.ListExpr(tuple(children[1:-1]), self._span(children[0], children[-1]))

    def parens(self, children: list[Any]) -> ast.Expr:
        # No node of its own, but the span grows to cover the parentheses, so an explanation
        # quotes `not (a == b)` whole.
        open_, inner, close = children
        widened: ast.Expr = dataclasses.replace(inner, span=self._span(open_, close))
        return widened

    def quantifier(self, children: list[Any]) -> ast.Quantifier:
        kind, var, collection, body, close = children
        return ast.Quantifier(
            str(kind),
            str(var),
            collection,
            body,
            self._span(kind, close),
            var_span=self._token_span(var),
        )

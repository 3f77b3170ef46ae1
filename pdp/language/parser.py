"""Source text -> AST. The only module that builds a Lark parser.

A syntax error does not stop at the first problem: the declaration that holds it is blanked out
(newlines kept, so positions stay true) and the file is parsed again, so an author sees every
broken rule at once.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from importlib import resources
from typing import Any

from lark import Lark, Token, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from pdp.language import ast
from pdp.language.lexer import PolicyLexer
from pdp.language.limits import (
    MAX_BRACKET_DEPTH,
    MAX_EXPRESSION_DEPTH,
    MAX_SYNTAX_ERRORS_PER_FILE,
    MAX_TOKENS_PER_DECLARATION,
)
from pdp.language.source import Diagnostic, Source, Span
from pdp.language.to_ast import AstBuilder


@dataclass(frozen=True, slots=True)
class ParseResult:
    file: ast.PolicyFile
    diagnostics: tuple[Diagnostic, ...]


def grammar_text() -> str:
    return resources.files("pdp.language").joinpath("grammar.lark").read_text("utf-8")


def build_lark(lexer: str | type[PolicyLexer] = PolicyLexer, **options: Any) -> Lark:
    """The parser as configured for pdp. Tests build it with `strict=True` to catch conflicts,
    and with Lark's own `lexer="contextual"` to check that PolicyLexer agrees with it."""
    return Lark(grammar_text(), parser="lalr", lexer=lexer, **options)


class _Parser:
    """Lark with our AST builder inlined. Building it takes tens of milliseconds, so it is built
    once; the builder holds per-file state, so parses take turns."""

    def __init__(self) -> None:
        self.builder = AstBuilder()
        self.lark = build_lark(transformer=self.builder)
        self.lock = threading.Lock()

    def parse(self, file: str, text: str) -> tuple[list[ast.Declaration], list[Diagnostic]]:
        with self.lock:
            self.builder.begin(file)
            declarations: list[ast.Declaration] = self.lark.parse(text)  # type: ignore[assignment]
            return declarations, list(self.builder.diagnostics)

    def terminal_display(self, name: str) -> str:
        return _terminal_display(self.lark, name)


_parser: _Parser | None = None
_parser_lock = threading.Lock()


def _get_parser() -> _Parser:
    global _parser  # noqa: PLW0603 - a lazily built, process-wide singleton
    with _parser_lock:
        if _parser is None:
            _parser = _Parser()
        return _parser


def parse_source(source: Source) -> ParseResult:
    """Parse one file. Always returns a PolicyFile: declarations that could not be parsed, or
    that nest too deeply to process safely, are left out and reported as diagnostics."""
    parser = _get_parser()
    text, syntax_errors = _prescan(source)
    while True:
        try:
            declarations, literal_errors = parser.parse(source.name, text)
            break
        except UnexpectedInput as error:
            syntax_errors.append(_syntax_diagnostic(parser, source, error))
            blanked = _blank_broken_declaration(text, error)
            if blanked is None or len(syntax_errors) >= MAX_SYNTAX_ERRORS_PER_FILE:
                declarations, literal_errors = [], []
                if blanked is not None:
                    syntax_errors.append(
                        _at(source, len(text), "syntax", "too many syntax errors; stopped here")
                    )
                break
            text = blanked
    kept, depth_errors = _drop_too_deep(declarations)
    return ParseResult(
        ast.PolicyFile(source.name, tuple(kept)),
        tuple(syntax_errors + literal_errors + depth_errors),
    )


# --- limits checked before parsing --------------------------------------------------------------

_PRESCAN = re.compile(
    r'(?P<skip>\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*")|(?P<open>[(\[{])|(?P<close>[)\]}])|(?P<token>\w+|.)'
)


def _prescan(source: Source) -> tuple[str, list[Diagnostic]]:
    """Blank out declarations that nest brackets too deeply or have too many tokens.

    Lark spends about ten microseconds a token, so a hostile file of 100,000 nested parentheses
    would cost seconds before the AST's depth could be checked. This scan costs a fraction of that.
    """
    text = source.text
    starts = [
        m.start() + len(m.group(0)) - len(m.group(0).lstrip())
        for m in _DECLARATION_START.finditer(text)
    ]
    boundaries = [*starts, len(text)]
    diagnostics: list[Diagnostic] = []
    blanks: list[tuple[int, int]] = []
    index = 0
    depth = tokens = 0
    declaration_start = 0
    failed = False
    for match in _PRESCAN.finditer(text):
        position = match.start()
        while index < len(boundaries) and position >= boundaries[index]:
            declaration_start = boundaries[index]
            index += 1
            depth = tokens = 0
            failed = False
        kind = match.lastgroup
        if kind == "skip" or failed:
            continue
        tokens += 1
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth -= 1
        problem = None
        if depth > MAX_BRACKET_DEPTH:
            problem = f"brackets nested too deeply (the limit is {MAX_BRACKET_DEPTH} levels)"
        elif tokens > MAX_TOKENS_PER_DECLARATION:
            problem = f"declaration too long (the limit is {MAX_TOKENS_PER_DECLARATION} tokens)"
        if problem is not None:
            failed = True
            diagnostics.append(_at(source, position, "limit", problem))
            end = boundaries[index] if index < len(boundaries) else len(text)
            blanks.append((declaration_start, end))
    for begin, end in blanks:
        text = text[:begin] + re.sub(r"[^\n]", " ", text[begin:end]) + text[end:]
    return text, diagnostics


# --- error recovery ------------------------------------------------------------------------------

_DECLARATION_START = re.compile(r"^[ \t]*(?:permit|forbid|const)\b", re.MULTILINE)


def _error_offset(text: str, error: UnexpectedInput) -> int:
    if isinstance(error, UnexpectedEOF):
        return len(text)
    if isinstance(error, UnexpectedToken) and error.token.type == "$END":
        return len(text)
    position = error.pos_in_stream
    return len(text) if position is None or position < 0 else int(position)


def _blank_broken_declaration(text: str, error: UnexpectedInput) -> str | None:
    """Replace the declaration holding the error with spaces; None when no progress is possible."""
    offset = _error_offset(text, error)
    starts = [m.end() - len(m.group(0).lstrip()) for m in _DECLARATION_START.finditer(text)]
    if offset in starts:
        # The error is at the start of a declaration: the one before it was never closed.
        begin = max((s for s in starts if s < offset), default=0)
        end = offset
    else:
        begin = max((s for s in starts if s <= offset), default=0)
        end = min((s for s in starts if s > offset), default=len(text))
    if end <= begin or not text[begin:end].strip():
        return None
    blank = re.sub(r"[^\n]", " ", text[begin:end])
    return text[:begin] + blank + text[end:]


# --- messages ------------------------------------------------------------------------------------

_TERMINAL_WORDS = {
    "NAME": "a name",
    "RULE_ID": "a rule id",
    "STRING": "a string",
    "INT": "a number",
    "DECIMAL": "a number",
    "COMP_OP": "a comparison",
    "EFFECT": "`permit` or `forbid`",
    "$END": "end of file",
}


def _terminal_display(lark: Lark, name: str) -> str:
    if name in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[name]
    try:
        pattern = lark.get_terminal(name).pattern
    except KeyError:
        return name.lower()
    return f"`{pattern.value}`" if pattern.type == "str" else name.lower()


def _describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    text = str(token)
    return f"`{text}`" if len(text) <= 40 else f"`{text[:40]}...`"


def _describe_char(char: str) -> str:
    if char.isprintable() and not char.isspace():
        return f"`{char}`"
    return f"character U+{ord(char):04X}"


_EXPRESSION_START = set(
    [
        "NAME",
        "STRING",
        "INT",
        "DECIMAL",
        "TRUE",
        "FALSE",
        "ANY",
        "ALL",
        "LPAR",
        "LSQB",
        "MINUS",
        "NOT",
    ]
)
_OPERATORS = set(
    [
        "AND",
        "OR",
        "COMP_OP",
        "IN",
        "NOT",
        "CONTAINS",
        "STARTS",
        "ENDS",
        "MATCHES",
        "HAS",
        "PLUS",
        "MINUS",
        "STAR",
        "SLASH",
        "PERCENT",
        "DOT",
        "LSQB",
        "LPAR",
    ]
)


def _expected(parser: _Parser, error: UnexpectedToken | UnexpectedEOF) -> str:
    """What the parser would have accepted, in words: operand and operator sets are summarised."""
    names = set(getattr(error, "accepts", None) or error.expected)
    words: list[str] = []
    if {"NAME", "INT", "STRING"} <= names:
        words.append("an expression")
        names -= _EXPRESSION_START
    if {"PLUS", "STAR", "COMP_OP"} <= names:
        words.append("an operator")
        names -= _OPERATORS
        names -= {name for name in names if parser.terminal_display(name) == "`??`"}
    words.extend(sorted({parser.terminal_display(name) for name in names}))
    if len(words) > 8:
        words = [*words[:8], "..."]
    if len(words) <= 1:
        return "".join(words) or "nothing more"
    return ", ".join(words[:-1]) + " or " + words[-1]


def _syntax_diagnostic(parser: _Parser, source: Source, error: UnexpectedInput) -> Diagnostic:
    text = source.text
    if isinstance(error, UnexpectedCharacters):
        offset = _error_offset(text, error)
        char = text[offset] if offset < len(text) else " "
        return _at(source, offset, "syntax", f"unexpected {_describe_char(char)}")
    if isinstance(error, UnexpectedToken) and error.token.type != "$END":
        message = f"unexpected {_describe_token(error.token)}; expected {_expected(parser, error)}"
        offset = error.token.start_pos or 0
        if error.token.type in ("EFFECT", "CONST") and _DECLARATION_START.match(text, offset):
            message += " (the declaration before it is not finished)"
        return _at(source, offset, "syntax", message, len(str(error.token)))
    if isinstance(error, UnexpectedToken | UnexpectedEOF):
        message = f"unexpected end of file; expected {_expected(parser, error)}"
        # Point just past the last real character: the line after it may not exist.
        return _at(source, len(text.rstrip()), "syntax", message)
    return _at(source, 0, "syntax", "syntax error")  # pragma: no cover - lark raises only the above


def _at(source: Source, offset: int, code: str, message: str, width: int = 1) -> Diagnostic:
    line = source.text.count("\n", 0, offset) + 1
    column = offset - (source.text.rfind("\n", 0, offset) + 1) + 1
    span = Span(source.name, line, column, line, column + max(1, width), offset, offset + width)
    return Diagnostic(code, message, span)


# --- depth ---------------------------------------------------------------------------------------


def _expressions(declaration: ast.Declaration) -> list[ast.Expr]:
    if isinstance(declaration, ast.Const):
        return [declaration.value]
    found: list[ast.Expr] = []
    if declaration.condition is not None:
        found.append(declaration.condition)
    if declaration.reason is not None:
        found.extend(part for part in declaration.reason.parts if not isinstance(part, str))
    return found


def _too_deep(expr: ast.Expr) -> ast.Expr | None:
    """The first node nested deeper than the limit, found without recursion."""
    stack = [(expr, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            return node
        stack.extend((child, depth + 1) for child in ast.children(node))
    return None


def _drop_too_deep(
    declarations: list[ast.Declaration],
) -> tuple[list[ast.Declaration], list[Diagnostic]]:
    # Everything after parsing (checking, compiling, equality) may recurse over the tree, so a
    # declaration that nests too deeply is reported and never passed on.
    kept: list[ast.Declaration] = []
    errors: list[Diagnostic] = []
    for declaration in declarations:
        culprit = next(
            (node for node in map(_too_deep, _expressions(declaration)) if node is not None), None
        )
        if culprit is None:
            kept.append(declaration)
        else:
            errors.append(
                Diagnostic(
                    "limit",
                    f"expression nested too deeply (the limit is {MAX_EXPRESSION_DEPTH} levels)",
                    culprit.span,
                )
            )
    return kept, errors

"""Random policies for the formatter's property tests.

`PolicyGenerator` builds random declarations as ASTs (seeded, so every run sees the same ones);
`SourceWriter` writes them out as policy text, with the fewest parentheses precedence allows, in
a tidy layout or a random one (odd spacing, line breaks anywhere, number and string spellings
that vary), optionally with redundant parentheses and with comments in odd places.

The writer is deliberately separate from pdp/language/formatter.py (its own precedence table and
escaping), and `SourceWriter.write` is checked against the parser by the tests, so a shared
mistake cannot hide.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from decimal import Decimal

from pdp.language import ast

ROOTS = ("subject", "resource", "context", "data", "action")
CONSTANTS = ("LIMIT", "SHIP_COUNTRIES", "OFFICE", "MAX_AGE")
VARIABLES = ("x", "item", "line")
# Attribute names that are keywords elsewhere: the contextual lexer must read them as names.
ATTRIBUTES = (
    "age", "country", "tier", "account", "roles", "amount", "any", "all", "action", "resource",
    "in", "not", "when", "has", "true", "contains", "reason", "const", "permit",
)  # fmt: skip
FUNCTIONS = ("lower", "upper", "length", "hour", "date", "cidr", "years_since", "now")
TARGETS = ("read", "write", "purchase", "Document", "Order", "when", "all", "permit", "not")
ODD_TARGETS = ("export-pdf", "move to trash", "any", "a.b", "", "ünïcode")
COMPARISONS = (
    "==", "!=", "<", "<=", ">", ">=", "in", "not in", "contains", "starts with", "ends with",
    "matches",
)  # fmt: skip
TEXT_ALPHABET = 'abc XYZ 019 #{}"\\/\t\n\r\b\f\u00e9\u00a0\u2028\u200b\x01\x7f\U0001f600\U000e0001'


# --- ASTs ----------------------------------------------------------------------------------------


class PolicyGenerator:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def declarations(self) -> list[ast.Declaration]:
        count = self.random.randint(1, 5)
        found: list[ast.Declaration] = []
        for index in range(count):
            if self.random.random() < 0.35:
                found.append(ast.Const(self.random.choice(CONSTANTS), self.expr(3)))
            else:
                found.append(self.rule(index))
        return found

    def rule(self, index: int) -> ast.Rule:
        pick = self.random
        rule_id = pick.choice(("r", "read-order", "orders:read", "legal.hold-2026", "a_b"))
        return ast.Rule(
            effect=pick.choice(list(ast.Effect)),
            id=f"{rule_id}{index}",
            actions=self.target(),
            resources=self.target(),
            condition=self.expr(pick.randint(1, 5)) if pick.random() < 0.85 else None,
            reason=self.template() if pick.random() < 0.6 else None,
        )

    def target(self) -> ast.Target:
        roll = self.random.random()
        if roll < 0.2:
            return ast.Target(None)
        names = TARGETS + ODD_TARGETS
        if roll < 0.6:
            return ast.Target((self.random.choice(names),))
        return ast.Target(
            tuple(self.random.choice(names) for _ in range(self.random.randint(1, 4)))
        )

    def template(self) -> ast.Template:
        parts: list[str | ast.Expr] = []
        for _ in range(self.random.randint(0, 4)):
            if self.random.random() < 0.5:
                text = self.text(8)
                if text and parts and isinstance(parts[-1], str):
                    parts[-1] += text  # the parser joins neighbouring text
                elif text:
                    parts.append(text)
            else:
                parts.append(self.path())
        return ast.Template(tuple(parts))

    def text(self, longest: int) -> str:
        return "".join(
            self.random.choice(TEXT_ALPHABET) for _ in range(self.random.randint(0, longest))
        )

    def path(self) -> ast.Expr:
        expr: ast.Expr = ast.Name(self.random.choice(ROOTS + CONSTANTS))
        for _ in range(self.random.randint(0, 3)):
            expr = ast.Attr(expr, self.random.choice(ATTRIBUTES))
        return expr

    def literal(self) -> ast.Literal:
        pick = self.random
        roll = pick.random()
        if roll < 0.25:
            return ast.Literal(self.text(12))
        if roll < 0.35:
            return ast.Literal(pick.random() < 0.5)
        sign = -1 if pick.random() < 0.3 else 1
        if roll < 0.7:
            magnitude = pick.choice((0, 1, 7, 18, 999, 1000, 10_000, 123_456_789, 2**63 - 1))
            return ast.Literal(sign * magnitude if magnitude else 0)
        digits = "".join(pick.choice("0123456789") for _ in range(pick.randint(1, 12)))
        fraction = "".join(pick.choice("0123456789") for _ in range(pick.randint(1, 6)))
        value = Decimal(f"{digits}.{fraction}")
        return ast.Literal(-value if sign < 0 and value else value)

    def leaf(self) -> ast.Expr:
        roll = self.random.random()
        if roll < 0.45:
            return self.path()
        if roll < 0.55:
            return ast.Name(self.random.choice(VARIABLES))
        return self.literal()

    def expr(self, depth: int) -> ast.Expr:
        pick = self.random
        if depth <= 0 or pick.random() < 0.15:
            return self.leaf()
        sub = depth - 1
        kind = pick.choice(
            (
                "and", "or", "not", "compare", "compare", "arith", "arith", "negate", "default",
                "has", "quantifier", "call", "list", "index", "attr",
            )
        )  # fmt: skip
        match kind:
            case "and" | "or":
                count = pick.randint(2, 4)
                return ast.BoolOp(kind, tuple(self.expr(sub) for _ in range(count)))
            case "not":
                return ast.Not(self.expr(sub))
            case "compare":
                return ast.Compare(pick.choice(COMPARISONS), self.expr(sub), self.expr(sub))
            case "arith":
                return ast.Arith(pick.choice("+-*/%"), self.expr(sub), self.expr(sub))
            case "negate":
                operand = self.expr(sub)
                if isinstance(operand, ast.Literal) and not isinstance(operand.value, str | bool):
                    operand = self.path()  # `-5` is a literal, never a negation
                return ast.Negate(operand)
            case "default":
                return ast.Default(self.expr(sub), self.expr(sub))
            case "has":
                if pick.random() < 0.3:
                    path: tuple[str, ...] = (pick.choice(("odd-name", "a.b", "", "x y", "age")),)
                else:
                    path = tuple(pick.choice(ATTRIBUTES) for _ in range(pick.randint(1, 3)))
                return ast.Has(self.expr(sub), path)
            case "quantifier":
                return ast.Quantifier(
                    pick.choice(("any", "all")),
                    pick.choice(VARIABLES),
                    self.expr(sub),
                    self.expr(sub),
                )
            case "call":
                args = tuple(self.expr(sub) for _ in range(pick.randint(0, 3)))
                return ast.Call(pick.choice(FUNCTIONS), args)
            case "list":
                if pick.random() < 0.15:  # long enough to break
                    return ast.ListExpr(tuple(ast.Literal("item-" * 3 + str(n)) for n in range(9)))
                return ast.ListExpr(tuple(self.expr(sub) for _ in range(pick.randint(0, 4))))
            case "index":
                return ast.Index(self.expr(sub), self.expr(sub))
        return ast.Attr(self.expr(sub), pick.choice(ATTRIBUTES))


# --- source text ---------------------------------------------------------------------------------

# Loosest first. An operand needs parentheses when its level is below the one required.
OR, AND, NOT, COMPARE, SUM, PRODUCT, UNARY, DEFAULT, POSTFIX, ATOM = range(1, 11)


def level(node: ast.Expr) -> int:
    if isinstance(node, ast.BoolOp):
        return OR if node.op == "or" else AND
    if isinstance(node, ast.Not):
        return NOT
    if isinstance(node, ast.Compare | ast.Has):
        return COMPARE
    if isinstance(node, ast.Arith):
        return SUM if node.op in "+-" else PRODUCT
    if isinstance(node, ast.Negate):
        return UNARY
    if isinstance(node, ast.Literal) and not isinstance(node.value, bool | str) and node.value < 0:
        return UNARY
    if isinstance(node, ast.Default):
        return DEFAULT
    if isinstance(node, ast.Attr | ast.Index):
        return POSTFIX
    return ATOM


@dataclass
class SourceWriter:
    """Writes declarations as policy text.

    tidy: single spaces, one declaration a line block, canonical spellings. Otherwise random
    spacing and line breaks between tokens, numbers with `_` and leading zeros, strings with
    needless escapes. `redundant_parens`: extra (sometimes doubled) parentheses. `comments`:
    comments between tokens, both at the end of lines and on lines of their own.
    """

    seed: int
    tidy: bool = False
    redundant_parens: bool = False
    comments: bool = False
    blank_lines: bool = False
    """Always one blank line between declarations (whether there is one between two constants
    is the author's choice, which the formatter keeps)."""
    random: random.Random = field(init=False)
    comment_texts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def write(self, declarations: list[ast.Declaration]) -> str:
        chunks: list[str] = []
        if self.comments:
            chunks.append(self.own_line_comment())
        for declaration in declarations:
            tokens = self.declaration(declaration)
            chunks.append(self.join(tokens))
            blank = self.tidy or self.blank_lines or self.random.random() < 0.7
            chunks.append("\n\n" if blank else "\n")
            if self.comments and self.random.random() < 0.4:
                chunks.append(self.own_line_comment())
        return "".join(chunks)

    # layout

    def join(self, tokens: list[str]) -> str:
        out = [tokens[0]]
        for before, after in itertools.pairwise(tokens):
            out.append(self.separator(before, after))
            out.append(after)
        if self.comments and self.random.random() < 0.5:
            out.append(self.trailing_comment())
        return "".join(out)

    def separator(self, before: str, after: str) -> str:
        wordy = _wordy_end(before) and _wordy_start(after)
        if self.tidy:
            return " " if wordy or (before not in "([." and after not in ")],.") else ""
        if self.comments and self.random.random() < 0.12:
            if self.random.random() < 0.5:
                return self.trailing_comment() + self.random.choice(("", "  ", "\t"))
            return "\n" + self.own_line_comment() + self.random.choice(("", "    ", "\t "))
        choice = self.random.choice((" ", " ", "", "", "\n", "\n        ", "  \t", "\n\n"))
        return " " if wordy and not choice else choice

    def comment_text(self) -> str:
        number = len(self.comment_texts)
        body = "".join(self.random.choice('ab #"{}()é\t') for _ in range(self.random.randint(0, 8)))
        text = f"#c{number}:{body}".rstrip()
        self.comment_texts.append(text)
        return text

    def trailing_comment(self) -> str:
        return self.random.choice((" ", "   ", "")) + self.comment_text() + "\n"

    def own_line_comment(self) -> str:
        return self.random.choice(("", "  ", "\t")) + self.comment_text() + "\n"

    # tokens

    def declaration(self, declaration: ast.Declaration) -> list[str]:
        if isinstance(declaration, ast.Const):
            return ["const", declaration.name, "=", *self.expr(declaration.value, OR)]
        tokens = [declaration.effect.value, declaration.id, "{"]
        tokens += ["action", *self.target(declaration.actions)]
        tokens += ["resource", *self.target(declaration.resources)]
        if declaration.condition is not None:
            tokens += ["when", *self.expr(declaration.condition, OR)]
        if declaration.reason is not None:
            tokens += ["reason", self.template(declaration.reason)]
        return [*tokens, "}"]

    def target(self, target: ast.Target) -> list[str]:
        if target.names is None:
            return ["any"]
        names = [self.target_name(name) for name in target.names]
        if len(names) == 1 and self.random.random() < 0.6:
            return names
        tokens = ["["]
        for index, name in enumerate(names):
            tokens += [",", name] if index else [name]
        if not self.tidy and self.random.random() < 0.3:
            tokens.append(",")
        return [*tokens, "]"]

    def target_name(self, name: str) -> str:
        bare = name.isidentifier() and name.isascii() and name != "any"
        if bare and (self.tidy or self.random.random() < 0.7):
            return name
        return self.string(name)

    def template(self, template: ast.Template) -> str:
        out = ['"']
        for part in template.parts:
            if isinstance(part, str):
                out.append(self.escape(part).replace("{", "{{").replace("}", "}}"))
            else:
                path = ".".join(ast.attribute_path(part) or ())
                pad = "" if self.tidy else self.random.choice(("", " "))
                out.append("{" + pad + path + pad + "}")
        return "".join(out) + '"'

    def escape(self, text: str) -> str:
        out = []
        for char in text:
            code = ord(char)
            if char == '"':
                out.append('\\"')
            elif char == "\\":
                out.append("\\\\")
            elif char in "\n\r" or code == 0 or (not self.tidy and self.random.random() < 0.2):
                if char == "/" and not self.tidy:
                    out.append("\\/")
                elif code <= 0xFFFF and not 0xD800 <= code <= 0xDFFF:
                    out.append(f"\\u{code:04X}" if self.random.random() < 0.5 else f"\\u{code:04x}")
                else:
                    out.append(char)  # no escape outside the BMP
            else:
                out.append(char)
        return "".join(out)

    def string(self, text: str) -> str:
        return f'"{self.escape(text)}"'

    def number(self, value: int | Decimal) -> list[str]:
        negative = value < 0
        text = str(abs(value)) if isinstance(value, int) else format(abs(value), "f")
        if not self.tidy:
            if self.random.random() < 0.3:
                text = "0" * self.random.randint(1, 2) + text
            text = "".join(
                char
                + ("_" if char.isdigit() and after.isdigit() and self.random.random() < 0.2 else "")
                for char, after in zip(text, text[1:] + " ", strict=True)
            )
        return ["-", text] if negative else [text]

    def expr(self, node: ast.Expr, required: int) -> list[str]:
        tokens = self.bare(node)
        if level(node) < required:
            return ["(", *tokens, ")"]
        if self.redundant_parens and self.random.random() < 0.15:
            doubled = self.random.random() < 0.3
            return ["(", "(", *tokens, ")", ")"] if doubled else ["(", *tokens, ")"]
        return tokens

    def bare(self, node: ast.Expr) -> list[str]:
        match node:
            case ast.Literal(value=bool() as value):
                return ["true" if value else "false"]
            case ast.Literal(value=str() as value):
                return [self.string(value)]
            case ast.Literal(value=int() | Decimal() as value):
                return self.number(value)
            case ast.Name(name=name):
                return [name]
            case ast.ListExpr(items=items):
                return ["[", *self.items(items), "]"]
            case ast.Attr(obj=obj, name=name):
                return [*self.expr(obj, POSTFIX), ".", name]
            case ast.Index(obj=obj, key=key):
                return [*self.expr(obj, POSTFIX), "[", *self.expr(key, OR), "]"]
            case ast.Call(function=function, args=args):
                return [function, "(", *self.items(args), ")"]
            case ast.Not(operand=operand):
                return ["not", *self.expr(operand, NOT)]
            case ast.Negate(operand=operand):
                return ["-", *self.expr(operand, UNARY)]
            case ast.BoolOp(op=op, operands=operands):
                tokens = self.expr(operands[0], level(node) + 1)
                for operand in operands[1:]:
                    tokens += [op, *self.expr(operand, level(node) + 1)]
                return tokens
            case ast.Compare(op=op, left=left, right=right):
                return [*self.expr(left, SUM), *op.split(), *self.expr(right, SUM)]
            case ast.Arith(op=op, left=left, right=right):
                return [*self.expr(left, level(node)), op, *self.expr(right, level(node) + 1)]
            case ast.Default(value=value, fallback=fallback):
                return [*self.expr(value, DEFAULT), "??", *self.expr(fallback, POSTFIX)]
            case ast.Has(obj=obj, path=path):
                names = all(part.isidentifier() and part.isascii() for part in path)
                quoted = len(path) == 1 and (not names or self.random.random() < 0.3)
                written = [self.string(path[0])] if quoted else _dotted(path)
                return [*self.expr(obj, SUM), "has", *written]
            case ast.Quantifier(kind=kind, var=var, collection=collection, body=body):
                collection_tokens = self.expr(collection, OR)
                return [kind, "(", var, "in", *collection_tokens, ":", *self.expr(body, OR), ")"]
        raise TypeError(type(node).__name__)

    def items(self, items: tuple[ast.Expr, ...]) -> list[str]:
        tokens: list[str] = []
        for index, item in enumerate(items):
            tokens += [",", *self.expr(item, OR)] if index else self.expr(item, OR)
        if items and not self.tidy and self.random.random() < 0.2:
            tokens.append(",")
        return tokens


def _dotted(path: tuple[str, ...]) -> list[str]:
    tokens = [path[0]]
    for name in path[1:]:
        tokens += [".", name]
    return tokens


def _wordy_end(token: str) -> bool:
    return bool(token) and (token[-1].isalnum() or token[-1] in '_"')


def _wordy_start(token: str) -> bool:
    return bool(token) and (token[0].isalnum() or token[0] in '_"')

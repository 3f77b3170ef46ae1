"""Parsing: source text -> AST, positions, and syntax errors reported all at once."""

from __future__ import annotations

from decimal import Decimal

import pytest

from pdp.language import ast
from pdp.language.parser import build_lark, parse_source
from pdp.language.source import Source, attach_source_lines


def parse(text: str) -> ast.PolicyFile:
    result = parse_source(Source("t.policy", text))
    assert result.diagnostics == ()
    return result.file


def errors(text: str) -> list[str]:
    result = parse_source(Source("t.policy", text))
    return [d.headline() for d in result.diagnostics]


def condition(text: str) -> ast.Expr:
    rule = parse(f"permit r {{ action a resource T when {text} }}").rules[0]
    assert rule.condition is not None
    return rule.condition


def test_grammar_has_no_conflicts_in_strict_mode() -> None:
    # strict=True turns LALR conflicts and terminal collisions into errors, so a grammar change
    # that introduces one fails here rather than parsing something unexpected.
    build_lark(lexer="contextual", strict=True)


def test_a_full_rule() -> None:
    policy = parse(
        """
        # a comment
        const ADULT = 18
        permit purchase-alcohol {
            action   [purchase, "gift:send"]
            resource Product
            when     subject.age >= ADULT and resource.category == "alcohol"
            reason   "{subject.sub} may buy"
        }
        """
    )
    assert policy.consts == (ast.Const("ADULT", ast.Literal(18)),)
    assert policy.rules == (
        ast.Rule(
            effect=ast.Effect.PERMIT,
            id="purchase-alcohol",
            actions=ast.Target(("purchase", "gift:send")),
            resources=ast.Target(("Product",)),
            condition=ast.BoolOp(
                "and",
                (
                    ast.Compare(">=", ast.Attr(ast.Name("subject"), "age"), ast.Name("ADULT")),
                    ast.Compare(
                        "==",
                        ast.Attr(ast.Name("resource"), "category"),
                        ast.Literal("alcohol"),
                    ),
                ),
            ),
            reason=ast.Template((ast.Attr(ast.Name("subject"), "sub"), " may buy")),
        ),
    )


def test_targets_any_one_and_list() -> None:
    rules = parse(
        "forbid a { action any resource any }\n"
        'permit b { action read resource "Doc::File" }\n'
        "permit c { action [read, write,] resource [A, B] }\n"
    ).rules
    assert [(r.actions.names, r.resources.names) for r in rules] == [
        (None, None),
        (("read",), ("Doc::File",)),
        (("read", "write"), ("A", "B")),
    ]


@pytest.mark.parametrize("rule_id", ["purchase-alcohol", "orders:read", "v1.docs.read", "r_2"])
def test_rule_ids(rule_id: str) -> None:
    assert parse(f"permit {rule_id} {{ action a resource T }}").rules[0].id == rule_id


def test_precedence() -> None:
    assert condition("not a == 1 or b and c") == ast.BoolOp(
        "or",
        (
            ast.Not(ast.Compare("==", ast.Name("a"), ast.Literal(1))),
            ast.BoolOp("and", (ast.Name("b"), ast.Name("c"))),
        ),
    )
    assert condition("1 + 2 * -x ?? 3 > 4") == ast.Compare(
        ">",
        ast.Arith(
            "+",
            ast.Literal(1),
            ast.Arith("*", ast.Literal(2), ast.Negate(ast.Default(ast.Name("x"), ast.Literal(3)))),
        ),
        ast.Literal(4),
    )


def test_and_or_chains_are_flat() -> None:
    # n-ary nodes keep long chains shallow, so they never hit the depth limit.
    node = condition(" and ".join(["true"] * 200))
    assert isinstance(node, ast.BoolOp) and len(node.operands) == 200


def test_operators() -> None:
    spelled = {
        "x not in y": "not in",
        "x contains y": "contains",
        "x starts with y": "starts with",
        "x ends with y": "ends with",
        'x matches "a+"': "matches",
        "x in y": "in",
        "x != y": "!=",
    }
    for text, op in spelled.items():
        node = condition(text)
        assert isinstance(node, ast.Compare) and node.op == op


def test_has_paths() -> None:
    assert condition("subject has address.city") == ast.Has(
        ast.Name("subject"), ("address", "city")
    )
    assert condition('subject has "x-custom"') == ast.Has(ast.Name("subject"), ("x-custom",))


def test_postfix_calls_indexes_and_quantifiers() -> None:
    assert condition('any(g in subject.groups: lower(g) starts with "eng")') == ast.Quantifier(
        "any",
        "g",
        ast.Attr(ast.Name("subject"), "groups"),
        ast.Compare("starts with", ast.Call("lower", (ast.Name("g"),)), ast.Literal("eng")),
    )
    assert condition("data.limits[subject.tier].max > 0") == ast.Compare(
        ">",
        ast.Attr(
            ast.Index(ast.Attr(ast.Name("data"), "limits"), ast.Attr(ast.Name("subject"), "tier")),
            "max",
        ),
        ast.Literal(0),
    )


def test_keywords_are_names_where_the_grammar_expects_a_name() -> None:
    node = condition("resource.action == action and subject.any has when")
    assert node == ast.BoolOp(
        "and",
        (
            ast.Compare("==", ast.Attr(ast.Name("resource"), "action"), ast.Name("action")),
            ast.Has(ast.Attr(ast.Name("subject"), "any"), ("when",)),
        ),
    )


def test_literals() -> None:
    node = condition('[1_000, 12.50, -3, true, false, "a\\"b\\u00e9\\n"] == x')
    assert isinstance(node, ast.Compare) and isinstance(node.left, ast.ListExpr)
    assert [item.value for item in node.left.items] == [  # type: ignore[attr-defined]
        1000,
        Decimal("12.50"),
        -3,
        True,
        False,
        'a"b\u00e9\n',
    ]


def test_most_negative_integer_can_be_written() -> None:
    assert condition("x == -9223372036854775808") == ast.Compare(
        "==", ast.Name("x"), ast.Literal(-(2**63))
    )


def test_spans_point_at_the_source() -> None:
    text = "permit r {\n  action a resource T\n  when subject.age >= 18\n}"
    rule = parse(text).rules[0]
    assert rule.condition is not None
    span = rule.condition.span
    assert (span.line, span.column, span.end_line, span.end_column) == (3, 8, 3, 25)
    assert text[span.start : span.end] == "subject.age >= 18"
    assert str(rule.span) == "t.policy:1:1"
    assert (rule.id_span.line, rule.id_span.column) == (1, 8)


def test_spans_do_not_take_part_in_equality() -> None:
    one = parse("permit r { action a resource T when x == 1 }")
    two = parse("\n\npermit   r {\n action a\n resource T\n when x==1\n}")
    assert one.rules == two.rules


def test_reason_templates() -> None:
    rule = parse('permit r { action a resource T reason "a {subject.x} b {{c}} \\u007b" }').rules[0]
    assert rule.reason == ast.Template(("a ", ast.Attr(ast.Name("subject"), "x"), " b {c} {"))


# --- errors ------------------------------------------------------------------------------------


def test_syntax_errors_are_all_reported_and_good_rules_kept() -> None:
    text = (
        "permit a { action x resource y when subject.age >= }\n"
        "permit b { action x resource y }\n"
        "permit c { action x resource y when 1 < 2 < 3 }\n"
        "permit d { action x resource y when @ }\n"
        "permit e { action x resource y }\n"
    )
    result = parse_source(Source("t.policy", text))
    assert [d.headline() for d in result.diagnostics] == [
        "t.policy:1:52: error: unexpected `}`; expected an expression",
        "t.policy:3:43: error: unexpected `<`; expected `+`, `-`, `and`, `or`, `reason` or `}`",
        "t.policy:4:37: error: unexpected `@`",
    ]
    assert [rule.id for rule in result.file.rules] == ["b", "e"]


def test_an_unclosed_rule_is_blamed_on_the_next_declaration() -> None:
    assert errors("permit a { action x resource y\npermit b { action x resource y }") == [
        "t.policy:2:1: error: unexpected `permit`; expected `reason`, `when` or `}` "
        "(the declaration before it is not finished)"
    ]


def test_unexpected_end_of_file() -> None:
    assert errors("permit a { action x resource y when x ==") == [
        "t.policy:1:41: error: unexpected end of file; expected an expression"
    ]


def test_literal_errors() -> None:
    assert errors('permit a { action x resource y when "\\q" == 99999999999999999999 }') == [
        't.policy:1:38: error: invalid escape `\\q` (use \\", \\\\, \\n, \\t, \\r or \\uXXXX)',
        "t.policy:1:45: error: integer literal out of range (integers are 64-bit)",
    ]
    assert errors('permit a { action x resource y reason "{oops" }') == [
        "t.policy:1:40: error: unclosed `{` in reason (write `{{` for a brace)"
    ]
    assert errors('permit a { action x resource y reason "{subject.x + 1}" }') == [
        "t.policy:1:40: error: a reason can only interpolate an attribute path such as "
        "`{subject.account}`"
    ]


def test_carets_are_rendered_under_the_problem() -> None:
    source = Source("t.policy", "permit a {\n  action x resource y\n  when subject.age >= }\n")
    [diagnostic] = attach_source_lines(list(parse_source(source).diagnostics), {"t.policy": source})
    assert diagnostic.render() == (
        "t.policy:3:23: error: unexpected `}`; expected an expression\n"
        "    3 |   when subject.age >= }\n"
        "      |                       ^"
    )


def test_negative_decimal_literals_keep_every_digit() -> None:
    # `-` on a Decimal rounds to the context's 28 digits; literals allow 38.
    [const] = parse("const A = -1.2345678901234567890123456789012345").consts
    assert const.value == ast.Literal(Decimal("-1.2345678901234567890123456789012345"))


def test_literal_equality_includes_the_type() -> None:
    # In Python True == 1 == Decimal(1); in the language these are different values.
    assert ast.Literal(True) != ast.Literal(1)
    assert ast.Literal(1) != ast.Literal(Decimal(1))
    assert ast.Literal(1) == ast.Literal(1)
    assert len({ast.Literal(True), ast.Literal(1), ast.Literal(Decimal(1))}) == 3


def test_carets_use_the_line_the_position_counts() -> None:
    # U+2028 is allowed raw in a comment; splitlines() would see a line break there, Lark not.
    source = Source("t.policy", "const A = 1  # a\u2028b\npermit r { action a resource b when }\n")
    [diagnostic] = attach_source_lines(list(parse_source(source).diagnostics), {"t.policy": source})
    assert diagnostic.render().splitlines()[1] == "    2 | permit r { action a resource b when }"

"""Explain mode: for each candidate rule whose condition did not hold, the first sub-condition
that failed, with the values it saw: `purchase-alcohol: subject.age >= 18 was false
(subject.age = 16)`.

It runs only when asked for, after the decision is made, and evaluates sub-conditions with
closures compiled by the same compiler as the rule itself, so an explanation can never disagree
with the decision it explains.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from pdp.engine.compiler import Compiler, Env
from pdp.engine.decision import Explanation
from pdp.engine.errors import EvaluationError, MissingValueError, TypeMismatchError
from pdp.engine.values import render, type_name
from pdp.language import ast
from pdp.language.source import Source

if TYPE_CHECKING:
    from pdp.engine.policy_set import PolicySet
    from pdp.engine.rule import CompiledRule


def explain_rules(
    policy_set: PolicySet, rules: Iterable[CompiledRule], env: Env
) -> tuple[Explanation, ...]:
    found = []
    for rule in rules:
        explanation = explain_rule(rule, env, policy_set.sources)
        if explanation is not None:
            found.append(explanation)
    return tuple(found)


class _Outcome:
    __slots__ = ("error", "value")

    def __init__(self, value: Any = None, error: EvaluationError | None = None) -> None:
        self.value = value
        self.error = error

    @property
    def held(self) -> bool:
        return self.error is None and self.value is True


def _evaluate(compiler: Compiler, expr: ast.Expr, env: Env, operator: str = "") -> _Outcome:
    """Evaluate a condition, or an operand of `and` / `or` when `operator` names it."""
    try:
        value = compiler.compile(expr).fn(env)
    except EvaluationError as error:
        return _Outcome(error=error)
    if value is not True and value is not False:
        # As in the decision, and in its words: a non-boolean is an error, never "false".
        if operator:
            problem = f"`{operator}` needs booleans, not {type_name(value)}"
        else:
            problem = f"the condition is {type_name(value)}, not a boolean"
        return _Outcome(error=TypeMismatchError(problem, expr.span))
    return _Outcome(value)


def explain_rule(rule: CompiledRule, env: Env, sources: dict[str, Source]) -> Explanation | None:
    """None when the rule's condition holds (or it has none)."""
    node = rule.rule.condition
    if node is None:
        return None
    outcome = _evaluate(rule.compiler, node, env)
    if outcome.held:
        return None
    # Walk down to the first operand that did not hold, in evaluation order.
    while isinstance(node, ast.BoolOp):
        child = _first_failure(rule.compiler, node, env, outcome)
        if child is None:
            break
        node, outcome = child
    values = tuple(
        (expression_text(operand, sources), _shown(rule.compiler, operand, env))
        for operand in _operands(node)
    )
    return Explanation(
        rule=rule.id,
        effect=rule.effect.value,
        expression=expression_text(node, sources),
        outcome="error" if outcome.error is not None else "false",
        values=values,
        source=str(node.span),
        detail=outcome.error.message if outcome.error is not None else "",
    )


def _first_failure(
    compiler: Compiler, node: ast.BoolOp, env: Env, outcome: _Outcome
) -> tuple[ast.Expr, _Outcome] | None:
    """The operand of an `and` that was false or failed, or of an `or` that failed; None when
    the node itself is the best explanation (an `or` whose operands were all false)."""
    for operand in node.operands:
        result = _evaluate(compiler, operand, env, node.op)
        if result.error is not None:
            return operand, result
        if node.op == "and" and result.value is False:
            return operand, result
        if node.op == "or" and result.value is True:  # pragma: no cover - the `or` held then
            return None
    return None


def _operands(node: ast.Expr) -> list[ast.Expr]:
    """The sub-expressions whose values explain `node`: each side of a comparison that is an
    attribute, a name or a call; otherwise the attribute paths and calls inside it."""
    if isinstance(node, ast.Has):
        return []
    if isinstance(node, ast.Compare | ast.Arith):
        sides: list[ast.Expr] = []
        for side in (node.left, node.right):
            constant_call = isinstance(side, ast.Call) and all(
                isinstance(arg, ast.Literal) for arg in side.args
            )
            if constant_call and side.function != "now":  # type: ignore[union-attr]
                continue
            if isinstance(side, ast.Attr | ast.Name | ast.Call | ast.Index):
                sides.append(side)
            elif not isinstance(side, ast.Literal | ast.ListExpr):
                sides.extend(_paths_and_calls(side))
        return sides
    return _paths_and_calls(node)


def _paths_and_calls(node: ast.Expr) -> list[ast.Expr]:
    """Attribute paths and calls inside `node`, in source order, without those that read a
    quantifier's variable (its value changes per item, so it has no one value to show)."""
    found: list[ast.Expr] = []
    seen: set[str] = set()
    stack: list[tuple[ast.Expr, frozenset[str]]] = [(node, frozenset())]
    while stack:
        current, bound = stack.pop()
        if isinstance(current, ast.Quantifier):
            inner = bound | {current.var}
            stack.append((current.body, inner))
            stack.append((current.collection, bound))
            continue
        if isinstance(current, ast.Call) and all(
            isinstance(arg, ast.Literal) for arg in current.args
        ):
            continue  # `cidr("10.0.0.0/8")` shows its value already
        if isinstance(current, ast.Attr | ast.Call | ast.Name) and not _reads(current, bound):
            if isinstance(current, ast.Name) and current.name in ast.ROOTS:
                continue  # a whole root (`subject`) is too much to show
            key = repr(current)
            if key not in seen:
                seen.add(key)
                found.append(current)
            continue
        stack.extend((child, bound) for child in reversed(ast.children(current)))
    return found


def _reads(expr: ast.Expr, names: frozenset[str]) -> bool:
    return any(isinstance(node, ast.Name) and node.name in names for node in ast.walk(expr))


def _shown(compiler: Compiler, expr: ast.Expr, env: Env) -> str:
    try:
        return render(compiler.compile(expr).fn(env))
    except MissingValueError:
        return "missing"
    except EvaluationError as error:
        return f"error: {error.message}"


# Strings are matched first so that a `#` inside one is not taken for a comment.
_STRING_OR_COMMENT = re.compile(r'("(?:[^"\\\n]|\\.)*")|#[^\n]*')
_SPACE = re.compile(r"\s+")


def expression_text(expr: ast.Expr, sources: dict[str, Source]) -> str:
    """The expression as the author wrote it, on one line, without comments."""
    span = expr.span
    source = sources.get(span.file)
    if source is None or span.end <= span.start:
        return type(expr).__name__
    text = _STRING_OR_COMMENT.sub(lambda m: m.group(1) or "", source.text[span.start : span.end])
    return _without_outer_parentheses(_SPACE.sub(" ", text).strip())


def _without_outer_parentheses(text: str) -> str:
    """`(a or b)` -> `a or b`, but `(a) + (b)` stays: the pair must enclose the whole text."""
    if not (text.startswith("(") and text.endswith(")")):
        return text
    # Blank out string contents (same length) so that a parenthesis inside one does not count.
    masked = _STRING_OR_COMMENT.sub(lambda m: "_" * len(m.group(0)), text)
    depth = 0
    for position, char in enumerate(masked):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return text[1:-1].strip() if position == len(text) - 1 else text
    return text

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
from pdp.engine.errors import EvaluationError, MissingValueError
from pdp.engine.values import render
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


def _evaluate(compiler: Compiler, expr: ast.Expr, env: Env) -> _Outcome:
    try:
        return _Outcome(compiler.compile(expr).fn(env))
    except EvaluationError as error:
        return _Outcome(error=error)


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
        (_text(operand, sources), _shown(rule.compiler, operand, env))
        for operand in _operands(node)
    )
    return Explanation(
        rule=rule.id,
        effect=rule.effect.value,
        expression=_text(node, sources),
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
        result = _evaluate(compiler, operand, env)
        if result.error is not None:
            return operand, result
        if node.op == "and" and result.value is not True:
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
            if isinstance(side, ast.Attr | ast.Name | ast.Call | ast.Index):
                sides.append(side)
            elif not isinstance(side, ast.Literal | ast.ListExpr):
                sides.extend(_paths_and_calls(side))
        return sides
    return _paths_and_calls(node)


def _paths_and_calls(node: ast.Expr) -> list[ast.Expr]:
    found: list[ast.Expr] = []
    seen: set[str] = set()
    stack: list[ast.Expr] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Quantifier):
            stack.append(current.collection)  # the body reads a variable bound per item
            continue
        if isinstance(current, ast.Attr | ast.Call) and ast.attribute_path(current) != ("data",):
            key = repr(current)
            if key not in seen:
                seen.add(key)
                found.append(current)
            continue
        stack.extend(reversed(ast.children(current)))
    return found


def _shown(compiler: Compiler, expr: ast.Expr, env: Env) -> str:
    try:
        return render(compiler.compile(expr).fn(env))
    except MissingValueError:
        return "missing"
    except EvaluationError as error:
        return f"error: {error.message}"


_SPACE = re.compile(r"\s+")


def _text(expr: ast.Expr, sources: dict[str, Source]) -> str:
    """The expression as the author wrote it, on one line."""
    span = expr.span
    source = sources.get(span.file)
    if source is None or span.end <= span.start:
        return type(expr).__name__
    return _SPACE.sub(" ", source.text[span.start : span.end]).strip()

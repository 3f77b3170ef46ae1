"""Coverage of a policy set by its test cases: which rules the cases made match, and which
condition operands they saw true and false.

An operand is each operand of every `and` / `or`, and every comparison, `has`, `not`, quantifier
and boolean leaf (an attribute, call, constant... in a place where a boolean is expected: a
whole condition, an operand, the operand of `not`, the body of a quantifier) inside a
condition. For every case whose request hits a rule's target, every operand of the rule is
evaluated on its own, whatever short-circuit would skip, with closures from the rule's own
compiler: the semantics are exactly the engine's, as in explain mode. An operand inside a
quantifier's body is evaluated once per item of the collection, with the variable bound to it.
An evaluation error (or a non-boolean value) counts as neither true nor false.

A permit counts as matched when some case made its condition hold; a forbid when some case
made it deny: its condition held, or could not be evaluated (a forbid fails closed).

The total is (operand outcomes seen + rules matched) / (2 x operands + rules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pdp.engine.authorizer import environment
from pdp.engine.compiler import Closure, Env
from pdp.engine.decision import Request
from pdp.engine.errors import EvaluationError

# An operand reads exactly as explain mode writes the same expression.
from pdp.engine.explain import expression_text
from pdp.engine.policy_set import PolicySet
from pdp.engine.rule import CompiledRule
from pdp.language import ast

_TESTS = (ast.Compare, ast.Has, ast.Not, ast.Quantifier)
"""Nodes that are operands wherever they appear."""


@dataclass(frozen=True, slots=True)
class OperandCoverage:
    text: str
    source: str
    """`file:line:col` of the operand."""
    seen_true: bool
    seen_false: bool

    @property
    def outcomes_seen(self) -> int:
        return int(self.seen_true) + int(self.seen_false)

    def to_dict(self) -> dict[str, Any]:
        return {
            "expression": self.text,
            "source": self.source,
            "true": self.seen_true,
            "false": self.seen_false,
        }


@dataclass(frozen=True, slots=True)
class RuleCoverage:
    id: str
    effect: str
    source: str
    has_condition: bool
    cases: int
    """Cases whose request hit the rule's target."""
    matched: int
    """Cases in which the condition held (or there is none)."""
    errors: int
    """Cases in which the condition could not be evaluated."""
    operands: tuple[OperandCoverage, ...]

    @property
    def is_forbid(self) -> bool:
        return self.effect == "forbid"

    @property
    def triggered_by(self) -> int:
        """Cases the rule took part in deciding: matched, or for a forbid also failed."""
        return self.matched + (self.errors if self.is_forbid else 0)

    @property
    def triggered(self) -> bool:
        return self.triggered_by > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.id,
            "effect": self.effect,
            "source": self.source,
            "cases": self.cases,
            "matched": self.matched,
            "errors": self.errors,
            "triggered": self.triggered,
            "operands": [operand.to_dict() for operand in self.operands],
        }


@dataclass(frozen=True, slots=True)
class CoverageReport:
    rules: tuple[RuleCoverage, ...]

    @property
    def untriggered_forbids(self) -> tuple[RuleCoverage, ...]:
        return tuple(rule for rule in self.rules if rule.is_forbid and not rule.triggered)

    @property
    def outcomes_seen(self) -> int:
        return sum(operand.outcomes_seen for rule in self.rules for operand in rule.operands)

    @property
    def outcomes_total(self) -> int:
        return 2 * sum(len(rule.operands) for rule in self.rules)

    @property
    def rules_triggered(self) -> int:
        return sum(1 for rule in self.rules if rule.triggered)

    @property
    def percent(self) -> float:
        total = self.outcomes_total + len(self.rules)
        if total == 0:
            return 100.0
        return 100.0 * (self.outcomes_seen + self.rules_triggered) / total

    @property
    def percent_text(self) -> str:
        """One decimal, rounded down: `100.0%` only when nothing is missing."""
        return f"{math.floor(self.percent * 10) / 10:.1f}%"

    def to_dict(self) -> dict[str, Any]:
        return {
            "percent": self.percent,
            "operand_outcomes_seen": self.outcomes_seen,
            "operand_outcomes": self.outcomes_total,
            "rules_triggered": self.rules_triggered,
            "rules": len(self.rules),
            "untriggered_forbids": [rule.id for rule in self.untriggered_forbids],
            "by_rule": [rule.to_dict() for rule in self.rules],
        }


@dataclass(slots=True)
class _Operand:
    node: ast.Expr
    evaluate: Closure
    seen_true: bool = False
    seen_false: bool = False


@dataclass(slots=True)
class _RuleTally:
    rule: CompiledRule
    operands: dict[int, _Operand]
    """By id() of the AST node: the walk meets the nodes themselves."""
    collections: dict[int, Closure] = field(default_factory=dict)
    """The collection of each quantifier, by id() of the quantifier node."""
    cases: int = 0
    matched: int = 0
    errors: int = 0


class CoverageCollector:
    """Record requests with `record()`, then read the `report()`."""

    def __init__(self, policy_set: PolicySet) -> None:
        self.policy_set = policy_set
        self._tallies = {rule.id: _tally(rule) for rule in policy_set.rules}

    def record(self, request: Request, now: datetime) -> None:
        candidates = self.policy_set.index.candidates(request.action, request.resource_type)
        for rule in candidates.all:
            tally = self._tallies[rule.id]
            tally.cases += 1
            verdict = _verdict(rule, environment(request, now))
            if verdict is True:
                tally.matched += 1
            elif verdict is None:
                tally.errors += 1
            condition = rule.rule.condition
            if condition is not None:
                _visit(tally, condition, environment(request, now))

    def report(self) -> CoverageReport:
        sources = self.policy_set.sources
        rules = []
        for tally in self._tallies.values():
            rule = tally.rule
            operands = tuple(
                OperandCoverage(
                    expression_text(operand.node, sources),
                    str(operand.node.span),
                    operand.seen_true,
                    operand.seen_false,
                )
                for operand in tally.operands.values()
            )
            rules.append(
                RuleCoverage(
                    id=rule.id,
                    effect=rule.effect.value,
                    source=rule.location,
                    has_condition=rule.condition is not None,
                    cases=tally.cases,
                    matched=tally.matched,
                    errors=tally.errors,
                    operands=operands,
                )
            )
        return CoverageReport(tuple(rules))


def _verdict(rule: CompiledRule, env: Env) -> bool | None:
    """The rule's own outcome, as the authorizer reaches it: None when it cannot be evaluated."""
    if rule.condition is None:
        return True
    try:
        result = rule.condition(env)
    except EvaluationError:
        return None
    if result is True or result is False:
        return result
    return None  # a non-boolean condition is an error to the authorizer too


def operand_nodes(condition: ast.Expr) -> list[ast.Expr]:
    """The operands of a condition (see the module docstring), parents before children, in
    source order, each once."""
    connective_operands: set[int] = set()
    # Places where a boolean is expected. An `and` / `or` there is not an operand itself (its
    # own operands are): `when a and b` has two operands, not three.
    boolean_places = {id(condition)}
    found: list[ast.Expr] = []
    for node in ast.walk(condition):  # parents first, so the sets are filled in time
        if isinstance(node, ast.BoolOp):
            connective_operands.update(id(operand) for operand in node.operands)
        elif isinstance(node, ast.Not):
            boolean_places.add(id(node.operand))
        elif isinstance(node, ast.Quantifier):
            boolean_places.add(id(node.body))
        is_leaf = id(node) in boolean_places and not isinstance(node, ast.BoolOp)
        if id(node) in connective_operands or isinstance(node, _TESTS) or is_leaf:
            found.append(node)
    return found


def _tally(rule: CompiledRule) -> _RuleTally:
    condition = rule.rule.condition
    operands: dict[int, _Operand] = {}
    collections: dict[int, Closure] = {}
    if condition is not None:
        compile_ = rule.compiler.compile
        for node in operand_nodes(condition):
            operands[id(node)] = _Operand(node, compile_(node).fn)
        for node in ast.walk(condition):
            if isinstance(node, ast.Quantifier):
                collections[id(node)] = compile_(node.collection).fn
    return _RuleTally(rule, operands, collections)


_UNSET = object()


def _visit(tally: _RuleTally, node: ast.Expr, env: Env) -> None:
    """Evaluate every operand at or below `node` in `env`; below a quantifier, once per item.
    (Recursion is as deep as the condition, which the parser bounds.)"""
    operand = tally.operands.get(id(node))
    if operand is not None:
        try:
            value = operand.evaluate(env)
        except EvaluationError:
            value = None
        if value is True:
            operand.seen_true = True
        elif value is False:
            operand.seen_false = True
    if not isinstance(node, ast.Quantifier):
        for child in ast.children(node):
            _visit(tally, child, env)
        return
    _visit(tally, node.collection, env)
    try:
        items = tally.collections[id(node)](env)
    except EvaluationError:
        return
    if not isinstance(items, list | tuple):
        return
    variables = env.variables
    saved = variables.get(node.var, _UNSET)
    try:
        for item in items:
            variables[node.var] = item
            _visit(tally, node.body, env)
    finally:
        if saved is _UNSET:
            variables.pop(node.var, None)
        else:
            variables[node.var] = saved

"""Reasoning about what conditions can be true: presence facts, conditions that can never hold,
and permits that a forbid always overrides.

Only sure findings are reported: a contradiction is found between comparisons of one attribute
path with literals inside one `and` (`subject.age > 5 and subject.age < 3`), and a permit is
shadowed only by a forbid without a condition whose target covers the permit's.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from pdp.language import ast
from pdp.language.source import Diagnostic

REQUEST_ROOTS = ast.RECORD_ROOTS


# --- presence ------------------------------------------------------------------------------------


def proven_present(operand: ast.Expr, holds: bool) -> frozenset[tuple[str, ...]]:
    """Attribute paths that are present once `operand` evaluated to `holds`.

    `subject has address.city` held: ("subject", "address") and ("subject", "address", "city")
    are present. `not (subject has tier)` failed: ("subject", "tier") is.
    """
    if not holds:
        return _has_paths(operand.operand) if isinstance(operand, ast.Not) else frozenset()
    if isinstance(operand, ast.BoolOp) and operand.op == "and":
        return frozenset().union(*(proven_present(o, True) for o in operand.operands))
    return _has_paths(operand)


def _has_paths(node: ast.Expr) -> frozenset[tuple[str, ...]]:
    if not isinstance(node, ast.Has):
        return frozenset()
    base = ast.attribute_path(node.obj)
    if base is None or base[0] not in REQUEST_ROOTS:
        return frozenset()
    full = (*base, *node.path)
    return frozenset(full[:length] for length in range(2, len(full) + 1))


# --- conditions that can never hold --------------------------------------------------------------

Number = int | Decimal
Scalar = str | bool | Number


@dataclass
class _Facts:
    """What the conjuncts of one `and` require of one attribute path."""

    equal: list[tuple[Scalar, ast.Expr]] = field(default_factory=list)
    unequal: list[tuple[Scalar, ast.Expr]] = field(default_factory=list)
    within: list[tuple[frozenset[Scalar], ast.Expr]] = field(default_factory=list)
    lower: list[tuple[Number, bool, ast.Expr]] = field(default_factory=list)
    """(bound, inclusive, conjunct)"""
    upper: list[tuple[Number, bool, ast.Expr]] = field(default_factory=list)


_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}


def _key(value: Scalar) -> tuple[str, Scalar]:
    # True == 1 in Python; in the language they are different values.
    return ("boolean" if type(value) is bool else "other", value)


def _constraint(node: ast.Expr) -> tuple[tuple[str, ...], str, object] | None:
    """(path, operator, literal value) for `path op literal` and its mirror image."""
    if isinstance(node, ast.Not):
        inner = _constraint(node.operand)
        if inner is not None and inner[1] in ("==", "in"):
            return inner[0], "!=" if inner[1] == "==" else "not in", inner[2]
        return None
    if not isinstance(node, ast.Compare):
        return None
    left, right, op = node.left, node.right, node.op
    if isinstance(left, ast.Literal | ast.ListExpr) and op in _FLIP:
        left, right, op = right, left, _FLIP[op]
    path = ast.attribute_path(left)
    if path is None or path[0] not in REQUEST_ROOTS or len(path) < 2:
        return None
    if isinstance(right, ast.Literal):
        return path, op, right.value
    if isinstance(right, ast.ListExpr) and all(isinstance(i, ast.Literal) for i in right.items):
        return path, op, tuple(i.value for i in right.items)  # type: ignore[union-attr]
    return None


def _conflict(facts: _Facts) -> tuple[ast.Expr, ast.Expr] | None:
    """Two conjuncts that cannot both hold, or None."""
    first_equal = facts.equal[0] if facts.equal else None
    if first_equal is not None:
        value, where = first_equal
        for other, other_where in facts.equal[1:]:
            if _key(other) != _key(value):
                return where, other_where
        for other, other_where in facts.unequal:
            if _key(other) == _key(value):
                return where, other_where
        for allowed, other_where in facts.within:
            if _key(value) not in {_key(v) for v in allowed}:
                return where, other_where
        if type(value) in (int, Decimal):
            for bound, inclusive, other_where in facts.lower:
                if value < bound or (value == bound and not inclusive):  # type: ignore[operator]
                    return where, other_where
            for bound, inclusive, other_where in facts.upper:
                if value > bound or (value == bound and not inclusive):  # type: ignore[operator]
                    return where, other_where
    for low, low_inclusive, low_where in facts.lower:
        for high, high_inclusive, high_where in facts.upper:
            if low > high or (low == high and not (low_inclusive and high_inclusive)):
                return low_where, high_where
    if facts.within:
        common = {_key(v) for v in facts.within[0][0]}
        for allowed, where in facts.within[1:]:
            common &= {_key(v) for v in allowed}
            if not common:
                return facts.within[0][1], where
        for value, where in facts.unequal:
            common.discard(_key(value))
            if not common:
                return facts.within[0][1], where
    return None


def _contradiction(node: ast.BoolOp) -> tuple[ast.Expr, ast.Expr] | None:
    facts: dict[tuple[str, ...], _Facts] = {}
    for operand in node.operands:
        found = _constraint(operand)
        if found is None:
            continue
        path, op, value = found
        fact = facts.setdefault(path, _Facts())
        numeric = type(value) in (int, Decimal)
        if op == "==" and isinstance(value, str | bool | int | Decimal):
            fact.equal.append((value, operand))
        elif op == "!=" and isinstance(value, str | bool | int | Decimal):
            fact.unequal.append((value, operand))
        elif op == "in" and isinstance(value, tuple):
            fact.within.append((frozenset(value), operand))
        elif op == "not in" and isinstance(value, tuple):
            fact.unequal.extend((item, operand) for item in value)
        elif op in (">", ">=") and numeric:
            fact.lower.append((value, op == ">=", operand))  # type: ignore[arg-type]
        elif op in ("<", "<=") and numeric:
            fact.upper.append((value, op == "<=", operand))  # type: ignore[arg-type]
    for fact in facts.values():
        conflict = _conflict(fact)
        if conflict is not None:
            return conflict
    return None


def describe(node: ast.Expr) -> str:
    """A short rendering of a simple comparison, for messages."""
    found = _constraint(node)
    if found is None:
        return "a condition"
    path, op, value = found
    shown = (
        "[" + ", ".join(_literal(v) for v in value) + "]"
        if isinstance(value, tuple)
        else _literal(value)
    )
    return f"{'.'.join(path)} {op} {shown}"


def _literal(value: object) -> str:
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is str:
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def never_holds(condition: ast.Expr) -> Iterator[Diagnostic]:
    """A diagnostic for each `and` in `condition` whose conjuncts contradict each other, and
    for a condition that is the literal `false`."""
    if isinstance(condition, ast.Literal) and condition.value is False:
        yield Diagnostic("never", "this condition is always false", condition.span)
        return
    for node in ast.walk(condition):
        if isinstance(node, ast.BoolOp) and node.op == "and":
            conflict = _contradiction(node)
            if conflict is not None:
                a, b = conflict
                yield Diagnostic(
                    "never",
                    f"this condition can never hold: `{describe(a)}` and `{describe(b)}` "
                    "cannot both be true",
                    node.span,
                )


# --- permits that can never take effect ----------------------------------------------------------


def _covers(outer: ast.Target, inner: ast.Target) -> bool:
    if outer.names is None:
        return True
    return inner.names is not None and set(inner.names) <= set(outer.names)


def _always(rule: ast.Rule) -> bool:
    condition = rule.condition
    return condition is None or (isinstance(condition, ast.Literal) and condition.value is True)


def shadowed_permits(rules: Sequence[ast.Rule]) -> Iterator[Diagnostic]:
    forbids = [r for r in rules if r.effect is ast.Effect.FORBID and _always(r)]
    for permit in rules:
        if permit.effect is not ast.Effect.PERMIT:
            continue
        for forbid in forbids:
            if _covers(forbid.actions, permit.actions) and _covers(
                forbid.resources, permit.resources
            ):
                yield Diagnostic(
                    "shadowed",
                    f"permit `{permit.id}` can never take effect: forbid `{forbid.id}` "
                    f"(at {forbid.span}) applies, without a condition, to every request it "
                    "targets",
                    permit.id_span,
                )
                break


def analyse_rules(files: Sequence[ast.PolicyFile]) -> list[Diagnostic]:
    rules = [rule for policy_file in files for rule in policy_file.rules]
    found: list[Diagnostic] = []
    for rule in rules:
        if rule.condition is not None:
            found.extend(never_holds(rule.condition))
    found.extend(shadowed_permits(rules))
    return found

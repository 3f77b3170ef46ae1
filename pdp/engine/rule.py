"""A rule ready to evaluate: its compiled condition and reason, and what it came from."""

from __future__ import annotations

from dataclasses import dataclass

from pdp.engine.compiler import Closure, Compiler
from pdp.engine.decision import FORBID, PERMIT, Reason
from pdp.language import ast


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    effect: ast.Effect
    ordinal: int
    """Position in the policy set (files sorted by path, then source order): reasons follow it."""
    condition: Closure | None
    """None for a rule without `when`: it always holds once its target matches."""
    message: Closure | str
    location: str
    """`file:line:col` of the rule, as reasons and errors report it."""
    rule: ast.Rule
    compiler: Compiler
    """Kept so that explain mode can compile sub-conditions with the same constants."""
    static_reason: Reason | None
    """The reason, built once, when the message has no interpolation."""

    @property
    def is_forbid(self) -> bool:
        return self.effect is ast.Effect.FORBID

    def reason(self, message: str) -> Reason:
        return make_reason(self.rule, message, self.location)


def make_reason(rule: ast.Rule, message: str, location: str) -> Reason:
    code = FORBID if rule.effect is ast.Effect.FORBID else PERMIT
    return Reason(code, rule.id, message, location)


def default_message(rule: ast.Rule) -> str:
    verb = "forbidden" if rule.effect is ast.Effect.FORBID else "permitted"
    return f"{verb} by rule `{rule.id}`"

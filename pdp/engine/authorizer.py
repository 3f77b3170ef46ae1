"""The decision rule, written once (evaluate -> decide step of the flow).

    1. Default deny.
    2. A forbid that matches denies, whatever else matches.
    3. A forbid whose condition cannot be evaluated also denies: we fail closed. (Cedar skips such
       a forbid, so a broken forbid silently lets requests through; we do not.)
    4. Otherwise, allow when at least one permit matches. A permit that cannot be evaluated does
       not match; its error is still reported.

Only rules whose target names the request's action and resource type are evaluated (see index.py).
Every candidate is evaluated, so every matching rule and every error is reported.
"""

from __future__ import annotations

from datetime import datetime

from pdp.engine.compiler import Env
from pdp.engine.decision import DEFAULT_DENY, FORBID_ERROR, Decision, Reason, Request, RuleError
from pdp.engine.errors import EvaluationError
from pdp.engine.explain import explain_rules
from pdp.engine.policy_set import PolicySet
from pdp.engine.rule import CompiledRule
from pdp.engine.values import type_name

_NO_PERMIT = Reason(DEFAULT_DENY, "", "no permit rule matched")


def authorize(
    policy_set: PolicySet, request: Request, now: datetime, explain: bool = False
) -> Decision:
    """Decide `request` at time `now` (timezone-aware; the engine never reads the clock)."""
    env = environment(request, now)
    candidates = policy_set.index.candidates(request.action, request.resource_type)
    errors: list[RuleError] = []

    failed: list[CompiledRule] = []
    forbids = _matching(candidates.forbids, env, errors, failed)
    permits = _matching(candidates.permits, env, errors, [])

    reasons: tuple[Reason, ...]
    if forbids or failed:
        allowed = False
        # In declaration order, matched and failed forbids alike.
        deciding = sorted([*forbids, *failed], key=lambda rule: rule.ordinal)
        failures = {error.rule: error for error in errors if error.effect == "forbid"}
        reasons = tuple(
            _failure_reason(failures[rule.id]) if rule in failed else _reason(rule, env)
            for rule in deciding
        )
    elif permits:
        allowed = True
        reasons = tuple(_reason(rule, env) for rule in permits)
    else:
        allowed = False
        reasons = (_NO_PERMIT,)

    explanations = explain_rules(policy_set, candidates.all, env) if explain else ()
    return Decision(allowed, reasons, tuple(errors), explanations, policy_set.revision)


def environment(request: Request, now: datetime) -> Env:
    """What a rule's condition reads for `request` at `now`. A fresh one per evaluation:
    quantifiers bind their variables in it."""
    return Env(
        request.subject,
        request.action,
        request.resource,
        request.context,
        now,
        caller=request.caller,
    )


def _matching(
    rules: tuple[CompiledRule, ...],
    env: Env,
    errors: list[RuleError],
    failed: list[CompiledRule],
) -> list[CompiledRule]:
    """The rules whose condition holds; the others that could not be evaluated are appended to
    `failed`, and why to `errors`."""
    matched = []
    for rule in rules:
        condition = rule.condition
        if condition is None:
            matched.append(rule)
            continue
        try:
            result = condition(env)
        except EvaluationError as error:
            errors.append(RuleError(rule.id, rule.effect.value, error.message, str(error.span)))
            failed.append(rule)
            continue
        if result is True:
            matched.append(rule)
        elif result is not False:
            # The checker rejects non-boolean conditions whose type it knows; this catches the
            # rest, e.g. `when subject.flag` where the claim turns out to be a string.
            failed.append(rule)
            errors.append(
                RuleError(
                    rule.id,
                    rule.effect.value,
                    f"the condition is {type_name(result)}, not a boolean",
                    rule.location,
                )
            )
    return matched


def _failure_reason(error: RuleError) -> Reason:
    message = (
        f"forbid rule `{error.rule}` could not be evaluated, so the request is denied: "
        f"{error.message}"
    )
    return Reason(FORBID_ERROR, error.rule, message, error.source)


def _reason(rule: CompiledRule, env: Env) -> Reason:
    if rule.static_reason is not None:
        return rule.static_reason
    message = rule.message
    return rule.reason(message if isinstance(message, str) else message(env))

"""Static checks: every diagnostic has a test with its exact message and position."""

from __future__ import annotations

from typing import Any

import pytest

from pdp.engine.policy_set import PolicySetError, build_policy_set
from pdp.language.source import Source


def problems(text: str, data: dict[str, Any] | None = None) -> list[str]:
    """The headlines of every diagnostic (errors and warnings) for one file."""
    try:
        policy_set = build_policy_set([Source("t.policy", text)], data)
    except PolicySetError as error:
        return [d.headline() for d in error.diagnostics]
    return [d.headline() for d in policy_set.warnings]


def when(condition: str) -> str:
    return f"permit r {{ action a resource T when {condition} }}"


# Column 37 is where the condition starts in `when(...)`.
CASES = {
    "unknown root, with a suggestion": (
        when("subjct.age >= 18"),
        ["t.policy:1:37: error: unknown name `subjct`; did you mean `subject`?"],
    ),
    "unknown name without a close match": (
        when("zzz == 1"),
        ["t.policy:1:37: error: unknown name `zzz`"],
    ),
    "unknown function, with a suggestion": (
        when("huor(now()) == 1"),
        ["t.policy:1:37: error: unknown function `huor`; did you mean `hour`?"],
    ),
    "wrong arity": (
        when('lower("a", "b") == "a"'),
        ["t.policy:1:37: error: `lower` takes 1 argument, got 2"],
    ),
    "wrong arity with optional arguments": (
        when('hour(now(), "UTC", 1) == 1'),
        ["t.policy:1:37: error: `hour` takes 1 to 2 arguments, got 3"],
    ),
    "argument of the wrong type": (
        when("lower(1) == 1"),
        [
            "t.policy:1:37: error: `==` between string and integer is always false",
            "t.policy:1:43: error: argument 1 of `lower` needs string, not integer",
        ],
    ),
    "equality between literal types that never meet": (
        when('"a" == 1'),
        ["t.policy:1:37: error: `==` between string and integer is always false"],
    ),
    "inequality between literal types that never meet": (
        when('subject.x != 1 and "a" != true'),
        ["t.policy:1:56: error: `!=` between string and boolean is always true"],
    ),
    "ordering strings": (
        when('"a" < "b"'),
        [
            "t.policy:1:37: error: `<` needs two numbers, dates, datetimes or durations, "
            "not string and string"
        ],
    ),
    "arithmetic on a string": (
        when('subject.x + "a" > 1'),
        ["t.policy:1:37: error: `+` does not apply to a string"],
    ),
    "membership of the wrong type": (
        when('3 in ["a", "b"]'),
        ["t.policy:1:37: error: `in` looks for integer in a list of string: never true"],
    ),
    "membership in a string": (
        when('"a" in "abc"'),
        ["t.policy:1:37: error: `in` needs a list, record or CIDR range; use `contains` for text"],
    ),
    "a condition that is not a boolean": (
        when("1 + 2"),
        ["t.policy:1:37: error: a condition must be a boolean, not integer"],
    ),
    "and with a non-boolean": (
        when("subject.ok and 3"),
        ["t.policy:1:52: error: `and` needs boolean, not integer"],
    ),
    "attributes of the action name": (
        when('action.name == "x"'),
        ["t.policy:1:37: error: `action` is the action's name (a string); it has no attributes"],
    ),
    "attribute of a literal": (
        when('"abc".size == 1'),
        ["t.policy:1:37: error: `.size` needs a record, not string"],
    ),
    "invalid regex": (
        when('subject.email matches "(a"'),
        ["t.policy:1:59: error: invalid regex `(a`: missing ): (a"],
    ),
    "backreferences are refused (re2 is linear-time)": (
        when('subject.email matches "(a)\\\\1"'),
        ["t.policy:1:59: error: invalid regex `(a)\\1`: invalid escape sequence: \\1"],
    ),
    "a regex that is not a literal": (
        when("subject.email matches subject.pattern"),
        [
            "t.policy:1:59: error: the pattern of `matches` must be a string literal or "
            "constant, so that it is checked and compiled when policies load"
        ],
    ),
    "invalid CIDR literal": (
        when('context.ip in cidr("10.0.0.0/33")'),
        [
            "t.policy:1:56: error: invalid CIDR range `10.0.0.0/33` "
            "('10.0.0.0/33' does not appear to be an IPv4 or IPv6 network)"
        ],
    ),
    "CIDR literal with host bits": (
        when('context.ip in cidr("10.0.0.1/8")'),
        ["t.policy:1:56: error: invalid CIDR range `10.0.0.1/8` (10.0.0.1/8 has host bits set)"],
    ),
    "invalid IP literal": (
        when('context.ip == ip("10.0.0.300")'),
        ["t.policy:1:54: error: invalid IP address `10.0.0.300`"],
    ),
    "invalid date literal": (
        when('date(subject.birthdate) < date("2026-02-30")'),
        ["t.policy:1:68: error: invalid date `2026-02-30` (no such day)"],
    ),
    "badly formed date literal": (
        when('date(subject.birthdate) < date("30/01/2026")'),
        ["t.policy:1:68: error: invalid date `30/01/2026` (expected YYYY-MM-DD)"],
    ),
    "datetime literal without an offset": (
        when('now() < datetime("2026-11-23T10:00:00")'),
        [
            "t.policy:1:54: error: invalid datetime `2026-11-23T10:00:00` (expected RFC 3339 "
            "with an offset, e.g. 2026-11-23T10:00:00Z)"
        ],
    ),
    "invalid duration literal": (
        when('now() - datetime(subject.login) < duration("1 hour")'),
        [
            "t.policy:1:80: error: invalid duration `1 hour` "
            "(expected e.g. 90s, 15m, 1h30m, 2d, 250ms)"
        ],
    ),
    "unknown time zone literal": (
        when('hour(now(), "Mars/Olympus") > 1'),
        ["t.policy:1:49: error: unknown time zone `Mars/Olympus`"],
    ),
    "a constant that reads the request": (
        "const X = subject.age\n" + when("X > 1"),
        [
            "t.policy:1:11: error: a constant cannot read `subject`: constants are fixed when "
            "policies load"
        ],
    ),
    "a constant that reads the clock": (
        "const X = now()\n" + when("X > now()"),
        ["t.policy:1:11: error: a constant cannot call `now`: it depends on the evaluation time"],
    ),
    "a constant that fails to evaluate": (
        "const X = 1 / 0\n" + when("X > 1"),
        ["t.policy:1:11: error: division by zero"],
    ),
    "a reserved constant name": (
        "const subject = 1\n" + when("true"),
        ["t.policy:1:1: error: `subject` is a reserved name"],
    ),
    "a constant defined twice": (
        "const X = 1\nconst X = 2\n" + when("X == 1"),
        ["t.policy:2:1: error: constant `X` is already defined (at t.policy:1:1)"],
    ),
    "an unused constant is a warning": (
        "const X = 1\n" + when("true"),
        ["t.policy:1:1: warning: constant `X` is never used"],
    ),
    "a quantifier variable that shadows a name": (
        when("any(subject in subject.groups: true)"),
        ["t.policy:1:41: error: `subject` is already a name here; choose another"],
    ),
    "a quantifier over a non-list": (
        when("any(x in 3: true)"),
        ["t.policy:1:46: error: `any(...)` needs list, not integer"],
    ),
    "unknown data, with a suggestion": (
        when("subject.account in data.blocked_acounts"),
        [
            "t.policy:1:56: error: no data at `data.blocked_acounts`; did you mean "
            "`blocked_accounts`?"
        ],
    ),
    "an interpolated name that does not exist": (
        'permit r { action a resource T reason "hello {subjcet.name}" }',
        ["t.policy:1:47: error: unknown name `subjcet`; did you mean `subject`?"],
    ),
    "an empty action name": (
        'permit r { action "" resource T }',
        ["t.policy:1:19: error: an empty action name matches nothing"],
    ),
    "a repeated action is a warning": (
        "permit r { action [read, read] resource T }",
        ["t.policy:1:19: warning: action `read` is listed twice"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_diagnostic(name: str) -> None:
    text, expected = CASES[name]
    assert problems(text, {"blocked_accounts": ["a"]}) == expected


def test_duplicate_rule_ids_across_files() -> None:
    sources = [
        Source("a.policy", "permit same { action a resource T }"),
        Source("b.policy", "\n\nforbid same { action b resource U }"),
    ]
    with pytest.raises(PolicySetError) as caught:
        build_policy_set(sources)
    assert [d.headline() for d in caught.value.diagnostics] == [
        "b.policy:3:8: error: duplicate rule id `same` (first defined at a.policy:1:8)"
    ]


def test_all_errors_are_reported_at_once_and_sorted() -> None:
    sources = [
        Source("b.policy", when("zzz == 1") + "\n" + when("lower() == 1").replace(" r ", " s ")),
        Source("a.policy", "\n" + when('"a" == 1').replace(" r ", " t ")),
    ]
    with pytest.raises(PolicySetError) as caught:
        build_policy_set(sources)
    assert [d.headline() for d in caught.value.diagnostics] == [
        "a.policy:2:37: error: `==` between string and integer is always false",
        "b.policy:1:37: error: unknown name `zzz`",
        "b.policy:2:37: error: `==` between string and integer is always false",
        "b.policy:2:37: error: `lower` takes 1 argument, got 0",
    ]


def test_a_clean_set_has_no_diagnostics() -> None:
    assert problems(when('subject.age >= 18 and context.ip in cidr("10.0.0.0/8")')) == []

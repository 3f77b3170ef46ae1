"""Hostile policy input gets a clean error quickly: never a RecursionError, a hang or a crash.

Each case runs in a forked child so that a hang cannot stall the suite: the child reports the
diagnostics and how long it took, and the test requires a clean outcome in under a second (the
issue's bound; the cases here take well under half of it).
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from pdp.engine.decision import Request, RequestError
from pdp.engine.policy_set import PolicySetError
from pdp.language.limits import MAX_FILE_BYTES
from pdp.language.parser import parse_source
from pdp.language.source import Source
from pdp.policy_store import load_policy_set
from tests.helpers import decide

N = 100_000
BOUND_SECONDS = 1.0


def _rule(condition: str) -> str:
    return f"permit hostile {{ action read resource Document when {condition} }}\n"


def _child(target: Callable[[], list[str]], conn: Connection) -> None:
    started = time.perf_counter()
    try:
        outcome: object = target()
    except BaseException as error:  # report anything, including RecursionError
        outcome = f"{type(error).__name__}: {error}"[:300]
    conn.send((outcome, time.perf_counter() - started))
    conn.close()


def run_bounded(target: Callable[[], list[str]]) -> list[str]:
    """Run `target` in a forked child; return its diagnostics; fail on crash, hang or slowness."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(target, sender))
    child.start()
    sender.close()
    if not receiver.poll(3 * BOUND_SECONDS):
        child.kill()
        child.join()
        pytest.fail("hostile input hung")
    outcome, elapsed = receiver.recv()
    child.join()
    assert isinstance(outcome, list), f"crashed instead of reporting: {outcome}"
    assert elapsed < BOUND_SECONDS, f"took {elapsed:.2f}s"
    return outcome


@pytest.fixture(autouse=True)
def warm_parser() -> None:
    # Build the parser before forking, so each child measures handling the input, not start-up.
    parse_source(Source("warm.policy", ""))


def load_errors(folder: Path) -> Callable[[], list[str]]:
    def target() -> list[str]:
        try:
            load_policy_set(folder)
        except PolicySetError as error:
            return [d.headline() for d in error.diagnostics]
        return []

    return target


def write(tmp_path: Path, text: str | bytes, name: str = "hostile.policy") -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, "utf-8")
    return tmp_path


DEEP = {
    "parentheses": _rule("(" * N + "true" + ")" * N),
    "lists": _rule("[" * N + "]" * N + " == []"),
    "calls": _rule("lower(" * N + '"a"' + ")" * N + ' == "a"'),
}

LONG = {
    "not chain": _rule("not " * N + "true"),
    "unary minus chain": _rule("-" * N + "1 > 0"),
    "attribute chain": _rule("subject" + ".a" * N + " == 1"),
    "index chain": _rule("subject" + "[0]" * N + " == 1"),
    "addition chain": _rule(" + ".join(["1"] * N) + " > 0"),
    "default chain": _rule("subject.a" + " ?? 1" * N + " == 1"),
    "and chain": _rule(" and ".join(["true"] * N)),
}


@pytest.mark.parametrize("name", list(DEEP))
def test_deep_brackets(tmp_path: Path, name: str) -> None:
    errors = run_bounded(load_errors(write(tmp_path, DEEP[name])))
    assert len(errors) == 1
    assert errors[0].endswith("error: brackets nested too deeply (the limit is 64 levels)")


@pytest.mark.parametrize("name", list(LONG))
def test_long_declarations(tmp_path: Path, name: str) -> None:
    errors = run_bounded(load_errors(write(tmp_path, LONG[name])))
    assert len(errors) == 1
    assert errors[0].endswith("error: declaration too long (the limit is 10000 tokens)")


@pytest.mark.parametrize(
    "condition",
    ["not " * 3000 + "true", "-" * 3000 + "subject.x > 0", "subject.x" + " ?? 1" * 3000 + " > 0"],
)
def test_deep_operators_below_the_token_limit(tmp_path: Path, condition: str) -> None:
    errors = run_bounded(load_errors(write(tmp_path, _rule(condition))))
    assert len(errors) == 1
    assert errors[0].endswith("error: expression nested too deeply (the limit is 64 levels)")


def test_good_rules_around_a_hostile_one_are_still_checked(tmp_path: Path) -> None:
    text = (
        "permit before { action read resource Document when zzz }\n"
        + DEEP["parentheses"]
        + "permit after { action read resource Document when yyy }\n"
    )
    errors = run_bounded(load_errors(write(tmp_path, text)))
    assert [error.split(": ", 1)[1] for error in errors] == [
        "error: unknown name `zzz`",
        "error: brackets nested too deeply (the limit is 64 levels)",
        "error: unknown name `yyy`",
    ]


def test_huge_integer_literal(tmp_path: Path) -> None:
    errors = run_bounded(load_errors(write(tmp_path, _rule("1" + "0" * 500_000 + " > 0"))))
    assert errors == [
        f"{tmp_path}/hostile.policy:1:53: error: integer literal out of range (integers are 64-bit)"
    ]


def test_huge_decimal_literal(tmp_path: Path) -> None:
    errors = run_bounded(load_errors(write(tmp_path, _rule("1." + "1" * 500_000 + " > 0"))))
    assert errors == [
        f"{tmp_path}/hostile.policy:1:53: error: decimal literal has more than 38 "
        "significant digits"
    ]


def test_huge_string_literal_is_just_a_string(tmp_path: Path) -> None:
    big = "x" * 900_000
    folder = write(tmp_path, _rule(f'subject.name == "{big}"'))

    def target() -> list[str]:
        policy_set = load_policy_set(folder)
        return [rule.id for rule in policy_set.rules]

    assert run_bounded(target) == ["hostile"]


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    folder = write(tmp_path, "#" * (MAX_FILE_BYTES + 1))
    assert run_bounded(load_errors(folder)) == [
        f"{folder}/hostile.policy:1:1: error: file is larger than the limit of "
        f"{MAX_FILE_BYTES} bytes"
    ]


def test_binary_garbage(tmp_path: Path) -> None:
    garbage = random.Random(7).randbytes(200_000)
    errors = run_bounded(load_errors(write(tmp_path, garbage)))
    assert len(errors) == 1
    assert "error: file is not UTF-8 text (byte " in errors[0]


def test_nul_bytes(tmp_path: Path) -> None:
    errors = run_bounded(load_errors(write(tmp_path, "permit a {\0 }")))
    assert errors == [f"{tmp_path}/hostile.policy:1:11: error: file contains a NUL byte (byte 10)"]


def test_text_garbage_stops_after_twenty_syntax_errors(tmp_path: Path) -> None:
    rng = random.Random(11)
    lines = []
    for _ in range(3000):
        word = "".join(rng.choice("{}[]()=!<>?:,.\"'abc xyz 123 permit forbid") for _ in range(40))
        lines.append(("permit " if rng.random() < 0.5 else "") + word)
    errors = run_bounded(load_errors(write(tmp_path, "\n".join(lines))))
    assert 1 <= len(errors) <= 21
    assert all(": error: " in error for error in errors)


def test_catastrophic_regex_runs_in_linear_time() -> None:
    def target() -> list[str]:
        decision = decide(
            'permit r { action read resource Document when subject.name matches "^(a+)+$" }',
            subject={"name": "a" * 50_000 + "b"},
        )
        return [decision.outcome]

    assert run_bounded(target) == ["deny"]


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("(a)\\\\1", "invalid escape sequence: \\1"),
        ("(a{1000}){1000}", "invalid repetition size: {1000}"),
        ("a" * 1001, "regex is longer than 1000 characters"),
    ],
)
def test_regexes_that_could_blow_up_are_refused(tmp_path: Path, pattern: str, message: str) -> None:
    errors = run_bounded(load_errors(write(tmp_path, _rule(f'subject.x matches "{pattern}"'))))
    assert len(errors) == 1 and errors[0].endswith(message)


def test_deeply_nested_data_file(tmp_path: Path) -> None:
    write(tmp_path, "[" * N + "]" * N, "data/deep.json")
    write(tmp_path, "permit ok { action read resource Document }\n")
    errors = run_bounded(load_errors(tmp_path))
    assert errors == [f"{tmp_path}/data/deep.json:1:1: error: unusable data: nested too deeply"]


def test_deeply_nested_request() -> None:
    def target() -> list[str]:
        nested: dict[str, object] = {}
        inner = nested
        for _ in range(1000):
            inner["x"] = {}
            inner = inner["x"]  # type: ignore[assignment]
        try:
            Request.from_json(
                {"subject": nested, "action": "read", "resource": {"type": "Document"}}
            )
        except RequestError as error:
            return [str(error)]
        return []

    assert run_bounded(target) == ["`subject`: input is nested more than 32 levels deep"]


def test_the_bounded_runner_catches_crashes() -> None:
    # The harness itself must be able to fail, or every test above would pass vacuously.
    def crash() -> list[str]:
        raise RecursionError("boom")

    with pytest.raises(AssertionError, match="crashed instead of reporting"):
        run_bounded(crash)


def test_the_bounded_runner_catches_hangs() -> None:
    def hang() -> list[str]:
        time.sleep(60)
        return []

    with pytest.raises(pytest.fail.Exception, match="hung"):
        run_bounded(hang)

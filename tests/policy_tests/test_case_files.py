"""Reading `*.test.toml` files: the format, strict validation, and where problems are."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pdp.policy_store import load_policy_set
from pdp.policy_tests.cases import (
    DEFAULT_NOW,
    CaseFileError,
    find_case_files,
    load_cases,
    parse_case_file,
)

FIXTURES = Path(__file__).parent / "fixtures"

GOOD = """\
# a comment
[[case]]
name = "an adult may buy alcohol"
now = "2026-11-23T13:00:00+01:00"
action = "purchase"
subject = { sub = "u-1", age = 30, score = 0.5 }
resource = { type = "Product", id = "p-1", category = "alcohol" }
context = { hour = 13 }
expect = "allow"
rules = ["purchase-alcohol"]
reason_codes = ["rule.permit"]

[[case]]
name = "the default time"
action = "read"
resource = { type = "Doc" }
expect = "deny"
"""


def problems_of(text: str, name: str = "t.test.toml") -> list[str]:
    with pytest.raises(CaseFileError) as caught:
        parse_case_file(name, text)
    return [str(problem) for problem in caught.value.problems]


def test_a_valid_file_gives_its_cases_with_requests_as_the_engine_sees_them() -> None:
    first, second = parse_case_file("t.test.toml", GOOD)
    assert first.id == "t.test.toml::an adult may buy alcohol"
    assert first.line == 3
    assert first.now == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert first.request.action == "purchase"
    # A TOML float becomes a decimal, as a JSON float does.
    assert first.request.subject == {"sub": "u-1", "age": 30, "score": Decimal("0.5")}
    assert first.request.resource == {"type": "Product", "id": "p-1", "category": "alcohol"}
    assert first.request.context == {"hour": 13}
    assert (first.expect, first.rules, first.reason_codes) == (
        "allow",
        ("purchase-alcohol",),
        ("rule.permit",),
    )
    assert second.line == 14
    assert second.now == DEFAULT_NOW == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert second.request.subject == {}
    assert (second.rules, second.reason_codes) == (None, None)


def test_now_may_be_a_toml_offset_datetime() -> None:
    text = GOOD.replace('now = "2026-11-23T13:00:00+01:00"', "now = 2026-11-23T13:00:00+01:00")
    assert parse_case_file("t.test.toml", text)[0].now == datetime(2026, 11, 23, 12, tzinfo=UTC)


CASE = """\
[[case]]
name = "c"
action = "read"
resource = { type = "Doc" }
expect = "allow"
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            CASE + 'expected = "allow"\n',
            [
                't.test.toml:6: error: case "c": unknown key `expected` (known: name, now, '
                "action, subject, resource, context, caller, expect, rules, reason_codes)"
            ],
            id="unknown key",
        ),
        pytest.param(
            CASE.replace('name = "c"\n', ""),
            ["t.test.toml:1: error: case #1: `name` is required"],
            id="no name",
        ),
        pytest.param(
            CASE.replace('name = "c"', "name = 3"),
            ["t.test.toml:2: error: case #1: `name` must be a non-empty string"],
            id="name not a string",
        ),
        pytest.param(
            CASE.replace('expect = "allow"\n', ""),
            ['t.test.toml:2: error: case "c": `expect` is required ("allow" or "deny")'],
            id="no expect",
        ),
        pytest.param(
            CASE.replace('expect = "allow"', 'expect = "permit"'),
            ['t.test.toml:5: error: case "c": `expect` must be "allow" or "deny", not "permit"'],
            id="expect not an outcome",
        ),
        pytest.param(
            CASE.replace('action = "read"\n', ""),
            ['t.test.toml:2: error: case "c": `action` is required'],
            id="no action",
        ),
        pytest.param(
            CASE.replace('action = "read"', 'action = ["read"]'),
            ['t.test.toml:3: error: case "c": `action` must be a non-empty string'],
            id="action not a string",
        ),
        pytest.param(
            CASE.replace('resource = { type = "Doc" }\n', ""),
            [
                't.test.toml:2: error: case "c": `resource` is required (a table with at '
                "least `type`)"
            ],
            id="no resource",
        ),
        pytest.param(
            CASE.replace('resource = { type = "Doc" }', 'resource = { id = "d-1" }'),
            ['t.test.toml:4: error: case "c": `resource.type` is required'],
            id="no resource type",
        ),
        pytest.param(
            CASE.replace('resource = { type = "Doc" }', 'resource = { type = "" }'),
            ['t.test.toml:4: error: case "c": `resource.type` must be a non-empty string'],
            id="empty resource type",
        ),
        pytest.param(
            CASE.replace('resource = { type = "Doc" }', 'resource = { type = "Doc", id = 7 }'),
            ['t.test.toml:4: error: case "c": `resource.id` must be a string'],
            id="resource id not a string",
        ),
        pytest.param(
            CASE + 'subject = "alice"\n',
            ['t.test.toml:6: error: case "c": `subject` must be a table'],
            id="subject not a table",
        ),
        pytest.param(
            CASE + "context = { hour = nan }\n",
            ['t.test.toml:6: error: case "c": invalid request: `context`: numbers must be finite'],
            id="not finite",
        ),
        pytest.param(
            CASE + "subject = { birthdate = 2008-05-01 }\n",
            [
                't.test.toml:6: error: case "c": `subject.birthdate` is a TOML date or time, '
                'which a JSON request cannot hold: write it as a string ("2008-05-01")'
            ],
            id="TOML date",
        ),
        pytest.param(
            CASE + 'now = "tomorrow"\n',
            [
                't.test.toml:6: error: case "c": `now`: invalid datetime `tomorrow` (expected '
                "RFC 3339 with an offset, e.g. 2026-11-23T10:00:00Z)"
            ],
            id="now not a time",
        ),
        pytest.param(
            CASE + "now = 2026-11-23T12:00:00\n",
            ['t.test.toml:6: error: case "c": `now` needs an offset (e.g. 2026-11-23T12:00:00Z)'],
            id="now without offset",
        ),
        pytest.param(
            CASE + 'rules = "read-doc"\n',
            ['t.test.toml:6: error: case "c": `rules` must be an array of strings'],
            id="rules not a list",
        ),
        pytest.param(
            CASE + "reason_codes = [1]\n",
            ['t.test.toml:6: error: case "c": `reason_codes` must be an array of strings'],
            id="reason codes not strings",
        ),
        pytest.param(
            CASE + "\n" + CASE,
            ['t.test.toml:8: error: case "c": a case of that name is already at line 2'],
            id="duplicate name",
        ),
        pytest.param(
            "",
            ["t.test.toml:1: error: no [[case]] in the file"],
            id="empty file",
        ),
        pytest.param(
            'title = "shop"\n' + CASE,
            ["t.test.toml:1: error: unknown key `title` (use [[case]])"],
            id="unknown top-level key",
        ),
        pytest.param(
            '[case]\nname = "c"\n',
            ["t.test.toml:1: error: `case` must be an array of tables"],
            id="case is a table",
        ),
        pytest.param(
            CASE + "subject = {\n",
            ["t.test.toml:6:12: error: invalid TOML: Invalid initial character for a key part"],
            id="TOML syntax",
        ),
    ],
)
def test_malformed_files_are_reported_at_their_line(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


def test_every_problem_of_every_case_is_reported_in_line_order() -> None:
    text = CASE + "\n" + CASE.replace('"c"', '"d"').replace('"allow"', '"yes"') + "colour = 1\n"
    assert problems_of(text) == [
        't.test.toml:11: error: case "d": `expect` must be "allow" or "deny", not "yes"',
        't.test.toml:12: error: case "d": unknown key `colour` (known: name, now, action, '
        "subject, resource, context, caller, expect, rules, reason_codes)",
    ]


def test_problems_in_sub_tables_and_dotted_keys_point_at_them() -> None:
    text = (
        '[[case]]\nname = "c"\naction = "read"\nexpect = "allow"\n'
        'subject.age = 2008-05-01\n\n[case.resource]\nid = "d-1"\n'
    )
    assert problems_of(text) == [
        't.test.toml:5: error: case "c": `subject.age` is a TOML date or time, which a JSON '
        'request cannot hold: write it as a string ("2008-05-01")',
        't.test.toml:7: error: case "c": `resource.type` is required',
    ]


def test_keys_of_a_sub_table_are_not_taken_for_the_case_s_own() -> None:
    text = (
        '[[case]]\naction = "read"\nexpect = "allow"\n\n'
        '[case.subject]\nname = "Alice"\n\n[case.resource]\ntype = "Doc"\n'
    )
    assert problems_of(text) == ["t.test.toml:1: error: case #1: `name` is required"]


def test_cases_written_as_an_inline_array_are_found_by_name() -> None:
    text = (
        "case = [\n"
        '  { name = "first", action = "read", resource = { type = "Doc" }, expect = "allow" },\n'
        '  { name = "second", action = "read", resource = { type = "Doc" }, expect = "no" },\n'
        "]\n"
    )
    assert problems_of(text) == [
        't.test.toml:3: error: case "second": `expect` must be "allow" or "deny", not "no"'
    ]
    fixed = text.replace('"no"', '"deny"')
    assert [case.line for case in parse_case_file("t.test.toml", fixed)] == [2, 3]


def test_test_files_are_found_recursively_in_path_order_skipping_hidden_ones(
    tmp_path: Path,
) -> None:
    for name in ["b/z.test.toml", "a.test.toml", "b/a.test.toml", ".hidden/x.test.toml"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(CASE)
    (tmp_path / "b" / "notes.toml").write_text("")
    (tmp_path / ".dot.test.toml").write_text(CASE)
    found = [path.relative_to(tmp_path).as_posix() for path in find_case_files(tmp_path)]
    assert found == ["a.test.toml", "b/a.test.toml", "b/z.test.toml"]


def test_load_cases_reports_the_problems_of_every_file(tmp_path: Path) -> None:
    (tmp_path / "a.test.toml").write_text(CASE.replace('"allow"', '"x"'))
    (tmp_path / "b.test.toml").write_text("[[case]]\n")
    (tmp_path / "c.test.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(CaseFileError) as caught:
        load_cases(tmp_path)
    assert [(Path(p.file).name, p.line) for p in caught.value.problems] == [
        ("a.test.toml", 5),
        ("b.test.toml", 1),
        ("b.test.toml", 1),
        ("b.test.toml", 1),
        ("b.test.toml", 1),
        ("c.test.toml", 1),
    ]
    assert str(caught.value) == "6 problems in the test files"
    assert caught.value.problems[-1].message == "not UTF-8 text"


def test_the_policy_loader_ignores_test_files() -> None:
    policy_set = load_policy_set(FIXTURES / "tiny")
    assert [Path(name).name for name in policy_set.sources] == ["tiny.policy"]

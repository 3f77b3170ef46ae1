"""The runner API: cases decided by the real authorizer, compared with what they expect."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdp.engine.policy_set import PolicySetError
from pdp.policy_tests.cases import CaseFileError, parse_case_file
from pdp.policy_tests.runner import Mismatch, NoCasesError, run_case, run_folder, select
from tests.helpers import policy_set

FIXTURES = Path(__file__).parent / "fixtures"


def test_passing_and_failing_cases_and_what_differs() -> None:
    result = run_folder(FIXTURES / "failing")
    assert [(r.case.name, r.passed) for r in result.results] == [
        ("level 2 reads", True),
        ("level 1 reads (wrongly expected)", False),
        ("level 5 reads, but the expected rule is wrong", False),
    ]
    assert (result.passed, result.failed, result.deselected) == (1, 2, 0)
    assert result.results[1].mismatches == (
        Mismatch("decision", "allow", "deny"),
        Mismatch("rules", ("read-doc",), ()),
        Mismatch("reason codes", ("rule.permit",), ("default.deny",)),
    )
    assert result.results[2].mismatches == (Mismatch("rules", ("read-anything",), ("read-doc",)),)
    # Decided in explain mode, so a failure can say why.
    assert [e.message for e in result.results[1].decision.explanations] == [
        "read-doc: subject.level >= 2 was false (subject.level = 1)"
    ]
    assert result.coverage is None


def test_k_selects_by_a_substring_of_file_and_name_ignoring_case() -> None:
    result = run_folder(FIXTURES / "failing", keyword="LEVEL 1")
    assert [r.case.name for r in result.results] == ["level 1 reads (wrongly expected)"]
    assert result.deselected == 2
    by_file = run_folder(FIXTURES / "failing", keyword="failing.test.toml::level 2")
    assert [r.case.name for r in by_file.results] == ["level 2 reads"]
    with pytest.raises(NoCasesError, match="no case matches -k 'nothing like it'"):
        run_folder(FIXTURES / "failing", keyword="nothing like it")


def test_select_without_a_keyword_keeps_every_case() -> None:
    cases = parse_case_file(
        "t.test.toml",
        '[[case]]\nname = "a"\naction = "read"\nresource = { type = "Doc" }\nexpect = "deny"\n',
    )
    assert select(cases, None) == cases == select(cases, "")


def test_a_case_is_decided_at_its_now_or_at_the_documented_default() -> None:
    rules = policy_set(
        'permit at-noon { action read resource Doc when now() == datetime("2026-11-23T12:00:00Z") }'
    )
    text = (
        '[[case]]\nname = "default"\naction = "read"\nresource = { type = "Doc" }\n'
        'expect = "allow"\n\n'
        '[[case]]\nname = "an hour later"\nnow = "2026-11-23T13:00:00Z"\naction = "read"\n'
        'resource = { type = "Doc" }\nexpect = "allow"\n'
    )
    default, later = parse_case_file("t.test.toml", text)
    assert run_case(rules, default).passed
    assert run_case(rules, later).mismatches == (Mismatch("decision", "allow", "deny"),)


def test_a_case_without_a_resource_id_has_the_id_the_server_gives_it() -> None:
    # The gRPC service sends "" for a resource without an id; a case must see the same.
    rules = policy_set('permit listing { action read resource Doc when resource.id == "" }')
    (case,) = parse_case_file(
        "t.test.toml",
        '[[case]]\nname = "c"\naction = "read"\nresource = { type = "Doc" }\nexpect = "allow"\n',
    )
    result = run_case(rules, case)
    assert result.passed, result.mismatches
    assert result.decision.errors == ()


def test_a_folder_without_test_files_has_nothing_to_run(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text("permit r { action read resource Doc }\n")
    with pytest.raises(NoCasesError, match=r"no \*\.test\.toml file under"):
        run_folder(tmp_path)


def test_a_policy_set_that_does_not_load_runs_nothing() -> None:
    with pytest.raises(PolicySetError) as caught:
        run_folder(FIXTURES / "broken_policy")
    assert [d.headline() for d in caught.value.diagnostics] == [
        f"{FIXTURES / 'broken_policy' / 'broken.policy'}:5:1: error: unexpected `}}`; "
        "expected an expression"
    ]


def test_malformed_test_files_run_nothing() -> None:
    with pytest.raises(CaseFileError) as caught:
        run_folder(FIXTURES / "malformed")
    assert [(p.line, p.message) for p in caught.value.problems] == [
        (9, 'case "a typo in a key": `expect` is required ("allow" or "deny")'),
        (
            12,
            'case "a typo in a key": unknown key `expected` (known: name, now, action, subject, '
            "resource, context, caller, expect, rules, reason_codes)",
        ),
        (17, 'case "no resource type": `resource.type` is required'),
        (18, 'case "no resource type": `expect` must be "allow" or "deny", not "maybe"'),
    ]


def test_the_report_as_data() -> None:
    document = run_folder(FIXTURES / "failing", coverage=True).to_dict()
    assert document["summary"]["passed"] == 1
    assert document["summary"]["failed"] == 2
    failed = document["cases"][1]
    assert failed["status"] == "failed"
    assert failed["expected"] == {
        "decision": "allow",
        "rules": ["read-doc"],
        "reason_codes": ["rule.permit"],
    }
    assert failed["mismatches"][1] == {"what": "rules", "expected": ["read-doc"], "got": []}
    assert document["coverage"]["percent"] == 100.0


def test_cases_must_send_what_the_schema_declares(tmp_path: Path) -> None:
    (tmp_path / "p.policy").write_text(
        "permit r { action read resource Doc\n"
        '    when context has country and context.country == "SE" }\n'
    )
    (tmp_path / "schema.toml").write_text(
        '[subject]\nsub = "string"\nage = "integer?"\n\n[context]\ncountry = "string?"\n\n'
        '[resources.Doc]\nactions = ["read"]\nattributes = { owner = "string?" }\n'
    )
    (tmp_path / "p.test.toml").write_text(
        '[[case]]\nname = "a typo"\naction = "read"\nsubject = { sub = "u" }\n'
        'resource = { type = "Doc", id = "d", ownr = "u" }\ncontext = { contry = "SE" }\n'
        'expect = "allow"\n\n'
        '[[case]]\nname = "a wrong type"\naction = "read"\nsubject = { sub = "u", age = "ten" }\n'
        'resource = { type = "Doc", id = "d" }\nexpect = "deny"\n\n'
        '[[case]]\nname = "fine"\naction = "read"\nsubject = { sub = "u", extra_claim = 1 }\n'
        'resource = { type = "Doc", id = "d" }\ncontext = { country = "SE" }\nexpect = "allow"\n'
    )
    with pytest.raises(CaseFileError) as refused:
        run_folder(tmp_path)
    file = str(tmp_path / "p.test.toml")
    assert [str(problem) for problem in refused.value.problems] == [
        f'{file}:2: error: case "a typo": `context.contry` is not in the schema; '
        "did you mean `country`?",
        f'{file}:2: error: case "a typo": `resource.ownr` is not in the schema; '
        "did you mean `owner`?",
        f'{file}:10: error: case "a wrong type": `subject.age` must be an integer, not string',
        f'{file}:17: error: case "fine": `subject.extra_claim` is not in the schema',
    ]

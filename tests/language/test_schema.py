"""Schema checking (pdp validate) and request-time validation: exact messages and positions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pdp.engine.decision import Request
from pdp.engine.policy_set import PolicySetError, build_policy_set
from pdp.engine.validation import validate_request
from pdp.language.schema import Schema, load_schema
from pdp.language.source import Source

SCHEMA = """
[subject]
sub = "string"
age = "integer?"
name = "string"
role = { enum = ["customer", "support", "admin"] }
groups = "list of string?"
address = { type = "record", optional = true, attributes = { city = "string", zip = "string?" } }
birthdate = "date?"

[context]
ip = "ip?"
hour = "integer"

[resources.Order]
actions = ["read", "refund"]
attributes = { owner = "string", amount = "integer?" }

[resources.Product]
actions = ["read", "purchase"]
attributes = { owner = "string", category = "string?" }
"""


def schema() -> Schema:
    found, problems = load_schema([Source("schema.toml", SCHEMA)])
    assert problems == [] and found is not None
    return found


def problems(policy: str, with_schema: bool = True) -> list[str]:
    try:
        built = build_policy_set(
            [Source("t.policy", policy)], schema=schema() if with_schema else None
        )
    except PolicySetError as error:
        return [d.headline() for d in error.diagnostics]
    return [d.headline() for d in built.warnings]


def problems_with(schema_text: str, policy: str) -> list[str]:
    found, schema_problems = load_schema([Source("schema.toml", schema_text)])
    assert schema_problems == [] and found is not None
    try:
        built = build_policy_set([Source("t.policy", policy)], schema=found)
    except PolicySetError as error:
        return [d.headline() for d in error.diagnostics]
    return [d.headline() for d in built.warnings]


def rule(condition: str, target: str = "action read resource Order") -> str:
    # The condition starts at column 44 with the default target.
    return f"permit r {{ {target} when {condition} }}"


CASES = {
    "unknown subject attribute, with a suggestion": (
        rule("subject.agee > 1"),
        ["t.policy:1:44: error: unknown attribute `subject.agee`; did you mean `age`?"],
    ),
    "unknown context attribute": (
        rule("context.hours > 1"),
        ["t.policy:1:44: error: unknown attribute `context.hours`; did you mean `hour`?"],
    ),
    "unknown resource attribute of the rule's type": (
        rule('resource.ownr == "x"'),
        [
            "t.policy:1:44: error: `resource.ownr` is not an attribute of `Order`; "
            "did you mean `owner`?"
        ],
    ),
    "an attribute one of the rule's types lacks": (
        rule('resource.category == "x"', "action read resource [Order, Product]"),
        ["t.policy:1:55: error: `resource.category` is not an attribute of `Order`"],
    ),
    "unknown nested attribute": (
        rule('subject has address and subject.address.cty == "x"'),
        ["t.policy:1:68: error: unknown attribute `subject.address.cty`; did you mean `city`?"],
    ),
    "a presence test for an unknown attribute": (
        rule("subject has agee"),
        ["t.policy:1:44: error: unknown attribute `subject.agee`; did you mean `age`?"],
    ),
    "type mismatch": (
        rule("subject.name > 3"),
        [
            "t.policy:1:44: error: `>` needs two numbers, dates, datetimes or durations, "
            "not string and integer"
        ],
    ),
    "comparison of incompatible types": (
        rule("context.hour == subject.name"),
        ["t.policy:1:44: error: `==` between integer and string is always false"],
    ),
    "a value outside an enumeration, with a suggestion": (
        rule('subject.role == "suport"'),
        [
            "t.policy:1:60: error: `suport` is not one of the values the schema allows "
            "(`customer`, `support`, `admin`); did you mean `support`?"
        ],
    ),
    "an enumeration value in a list": (
        rule('subject.role in ["admin", "root"]'),
        [
            "t.policy:1:70: error: `root` is not one of the values the schema allows "
            "(`customer`, `support`, `admin`)"
        ],
    ),
    "an optional attribute read without a presence test": (
        rule("subject.age >= 18"),
        [
            "t.policy:1:44: warning: optional attribute `subject.age` is read without a "
            "presence test; guard it with `subject has age` or give a default with `??`"
        ],
    ),
    "an optional record read without a presence test": (
        rule('subject.address.city == "Oslo"'),
        [
            "t.policy:1:44: warning: optional attribute `subject.address` is read without a "
            "presence test; guard it with `subject has address` or give a default with `??`"
        ],
    ),
    "a resource type the schema does not declare": (
        rule("true", "action read resource Ordr"),
        [
            "t.policy:1:33: error: resource type `Ordr` is not declared in the schema; "
            "did you mean `Order`?"
        ],
    ),
    "an action that applies to none of the rule's types": (
        rule("true", "action refnd resource Order"),
        [
            "t.policy:1:19: error: action `refnd` does not apply to `Order` (its actions: "
            "read, refund); did you mean `refund`?"
        ],
    ),
    "an action no type takes, with any resource": (
        rule("true", "action launch resource any"),
        [
            "t.policy:1:19: error: action `launch` does not apply to any resource type "
            "(its actions: purchase, read, refund)"
        ],
    ),
    "a type that takes none of the rule's actions": (
        rule("true", "action [refund, purchase] resource [Order, Product]"),
        [],
    ),
    "a condition that can never hold (bounds)": (
        rule("context.hour > 5 and context.hour < 3"),
        [
            "t.policy:1:44: error: this condition can never hold: `context.hour > 5` and "
            "`context.hour < 3` cannot both be true"
        ],
    ),
    "a condition that can never hold (equalities)": (
        rule('subject.role == "admin" and subject.name == "x" and subject.role == "support"'),
        [
            't.policy:1:44: error: this condition can never hold: `subject.role == "admin"` '
            'and `subject.role == "support"` cannot both be true'
        ],
    ),
    "a condition that can never hold (lists)": (
        rule('subject.role in ["admin"] and not (subject.role == "admin")'),
        [
            "t.policy:1:44: error: this condition can never hold: "
            '`subject.role in ["admin"]` and `subject.role != "admin"` cannot both be true'
        ],
    ),
    "a touching interval that can still hold": (
        rule("context.hour >= 5 and context.hour <= 5"),
        [],
    ),
    "a condition that is always false": (
        rule("false"),
        ["t.policy:1:44: error: this condition is always false"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_schema_diagnostic(name: str) -> None:
    policy, expected = CASES[name]
    assert problems(policy) == expected


@pytest.mark.parametrize(
    "condition",
    [
        "subject has age and subject.age >= 18",
        "subject.age ?? 0 >= 18",
        "not (subject has age) or subject.age >= 18",
        'subject has address.zip and subject.address.zip == "x"',
        '(subject has age and subject has groups) and subject.age > 1 and "a" in subject.groups',
    ],
)
def test_guarded_reads_are_not_warned(condition: str) -> None:
    assert problems(rule(condition)) == []


def test_a_reason_may_read_optional_attributes() -> None:
    policy = 'permit r { action read resource Order reason "age {subject.age}" }'
    assert problems(policy) == []


def test_subject_auth_is_declared_without_the_schema() -> None:
    assert problems(rule('subject.auth.method == "jwt"')) == []


def test_a_permit_that_a_forbid_always_overrides() -> None:
    policy = (
        "forbid freeze { action any resource Order }\n"
        'permit r { action read resource Order when subject.name == "x" }\n'
        'permit other { action read resource Product when subject.name == "x" }\n'
    )
    assert problems(policy) == [
        "t.policy:2:8: error: permit `r` can never take effect: forbid `freeze` (at "
        "t.policy:1:1) applies, without a condition, to every request it targets"
    ]


def test_a_forbid_with_a_condition_does_not_shadow() -> None:
    policy = (
        "forbid freeze { action any resource Order when context.hour > 20 }\n"
        'permit r { action read resource Order when subject.name == "x" }\n'
    )
    assert problems(policy) == []


def test_without_a_schema_only_the_general_checks_apply() -> None:
    assert problems(rule("subject.agee > 1 and subject.agee < 0"), with_schema=False) == [
        "t.policy:1:44: error: this condition can never hold: `subject.agee > 1` and "
        "`subject.agee < 0` cannot both be true"
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[subject]\nage = "int"\n', "schema.toml:2:1: error: `subject.age`: unknown type `int`"),
        ("[subjects]\n", "schema.toml:1:2: error: unknown section `subjects`"),
        (
            "[subject]\nrole = { enum = [] }\n",
            "schema.toml:2:1: error: `subject.role.enum`: must be",
        ),
        (
            '[resources.Order]\nactons = ["read"]\n',
            "schema.toml:1:12: error: `resources.Order`: unknown key `actons`",
        ),
        ("[subject\n", "schema.toml:1:1: error: invalid TOML"),
        (
            '[subject]\naddress = { attributes = { city = "string" } }\n',
            "schema.toml:2:1: error: `subject.address`: only a record has attributes: "
            'add type = "record"',
        ),
        (
            '[subject]\ngroups = { items = "string" }\n',
            'schema.toml:2:1: error: `subject.groups`: only a list has items: add type = "list"',
        ),
        (
            "[subject]\nflag = { optional = true }\n",
            "schema.toml:2:1: error: `subject.flag`: give `type` or `enum`",
        ),
        (
            '[subject]\nsub = "string"\nauth = { type = "record" }\n',
            "schema.toml:3:1: error: `subject.auth` is set by pdp for every verified subject",
        ),
        (
            # The position of the nearest key that is written out: `items` is implied.
            '[subject]\nsub = "string"\ngroups = { type = "list" }\n',
            "schema.toml:3:1: error: `subject.groups.items`: a type is a string or a table",
        ),
    ],
)
def test_schema_file_problems(text: str, message: str) -> None:
    _, found = load_schema([Source("schema.toml", text)])
    assert len(found) == 1
    assert found[0].headline().startswith(message), found[0].headline()


def test_schema_files_are_merged_and_conflicts_refused() -> None:
    one = Source("a/schema.toml", '[subject]\nage = "integer"\n')
    two = Source("b/schema.toml", '[subject]\nage = "string"\nname = "string"\n')
    _, found = load_schema([one, two])
    assert [d.headline() for d in found] == [
        "b/schema.toml:2:1: error: `subject.age` is declared twice, as integer and as string"
    ]
    merged, found = load_schema([one, Source("b/schema.toml", '[subject]\nname = "string"\n')])
    assert found == [] and merged is not None and set(merged.subject or {}) == {"age", "name"}


def test_two_files_must_agree_on_a_records_attributes() -> None:
    record = '[subject]\naddress = {{ type = "record", attributes = {{ {} = "string" }} }}\n'
    one = Source("a/schema.toml", record.format("city"))
    _, found = load_schema([one, Source("b/schema.toml", record.format("zip"))])
    assert [d.headline() for d in found] == [
        "b/schema.toml:2:1: error: `subject.address` is declared twice, as record (city) and "
        "as record (zip)"
    ]
    _, same = load_schema([one, Source("b/schema.toml", record.format("city"))])
    assert same == []


def test_a_resource_type_without_actions_says_so() -> None:
    built = problems_with(
        '[resources.Doc]\nattributes = { owner = "string" }\n',
        "permit r { action read resource Doc }",
    )
    assert built == [
        "t.policy:1:19: error: action `read` does not apply to `Doc` "
        "(the schema lists no actions for it)"
    ]


# --- request-time validation -------------------------------------------------------------------


def violations(
    subject: dict[str, object], resource: dict[str, object], context: dict[str, object]
) -> list[str]:
    request = Request.from_json(
        {"subject": subject, "action": "read", "resource": resource, "context": context}
    )
    return [v.message for v in validate_request(schema(), request)]


def test_a_matching_request_has_no_violations() -> None:
    subject = {
        "sub": "u",
        "name": "n",
        "role": "admin",
        "age": 3,
        "birthdate": "2000-01-31",
        "groups": ["a"],
        "address": {"city": "Oslo"},
        "extra": "claims are allowed",
    }
    assert (
        violations(subject, {"type": "Order", "id": "o", "owner": "u"}, {"hour": 3, "ip": "::1"})
        == []
    )


def test_violations_name_the_attribute() -> None:
    subject = {
        "sub": "u",
        "role": "root",
        "age": "3",
        "birthdate": "31/01/2000",
        "groups": ["a", 1],
        "address": {"zip": "x"},
    }
    assert violations(subject, {"type": "Order", "id": "o", "amount": 1.5}, {"ip": "nope"}) == [
        "`subject.age` must be an integer, not string",
        "`subject.name` is required by the schema",
        "`subject.role` must be one of `customer`, `support`, `admin`",
        "`subject.groups[1]` must be a string, not integer",
        "`subject.address.city` is required by the schema",
        "`subject.birthdate` must be a date in text form",
        "`context.ip` must be an ip in text form",
        "`context.hour` is required by the schema",
        "`resource.owner` is required by the schema",
        "`resource.amount` must be an integer, not decimal",
    ]


def test_an_undeclared_resource_type_is_a_violation() -> None:
    subject = {"sub": "u", "name": "n", "role": "admin"}
    assert violations(subject, {"type": "Invoice", "id": "i"}, {"hour": 1}) == [
        "resource type `Invoice` is not declared in the schema"
    ]


# --- pdp validate ------------------------------------------------------------------------------


def pdp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_validate_reports_with_carets_and_strict_fails_on_warnings(tmp_path: Path) -> None:
    (tmp_path / "schema.toml").write_text(SCHEMA)
    (tmp_path / "a.policy").write_text(rule("subject.age >= 18") + "\n")
    result = pdp("validate", str(tmp_path))
    assert result.returncode == 0
    assert result.stdout.splitlines()[1:3] == [
        "    1 | permit r { action read resource Order when subject.age >= 18 }",
        "      |                                            ^^^^^^^^^^^",
    ]
    assert result.stdout.endswith("valid: 0 errors, 1 warning\n")
    strict = pdp("validate", str(tmp_path), "--strict")
    assert strict.returncode == 1
    assert strict.stdout.endswith("not valid: 0 errors, 1 warning\n")


def test_validate_fails_on_errors_and_without_a_schema(tmp_path: Path) -> None:
    (tmp_path / "a.policy").write_text(rule("subject.agee >= 18") + "\n")
    result = pdp("validate", str(tmp_path))
    assert result.returncode == 2
    assert "no schema.toml to validate against" in result.stderr
    (tmp_path / "schema.toml").write_text(SCHEMA)
    result = pdp("validate", str(tmp_path))
    assert result.returncode == 1
    assert "unknown attribute `subject.agee`; did you mean `age`?" in result.stdout


def test_the_example_policies_are_valid() -> None:
    root = Path(__file__).resolve().parents[2]
    result = pdp("validate", str(root / "policies"), "--strict")
    assert result.returncode == 0, result.stdout

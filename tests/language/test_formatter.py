"""The policy formatter (pdp/language/formatter.py) and `pdp fmt` (pdp/cli/fmt.py).

What must hold for any input: the output parses to the same declarations (literal kinds and
written decimals included), every comment survives once and in order, and formatting the output
again changes nothing. These are checked on the example policies, on every `pdp` block of
docs/language.md and on a few hundred generated policies (tests/language/policy_generator.py).
Golden tests pin the layout itself.
"""

from __future__ import annotations

import os
import re
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from pdp.cli import fmt as fmt_command
from pdp.cli import main
from pdp.language import ast, formatter
from pdp.language.formatter import FormatError, UnsafeFormatError, format_text
from pdp.language.parser import parse_source
from pdp.language.source import Source
from tests.language.policy_generator import PolicyGenerator, SourceWriter

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICIES = sorted((ROOT / "policies").rglob("*.policy"))
DOCS = (ROOT / "docs" / "language.md").read_text("utf-8")
DOC_BLOCKS = re.findall(r"^```pdp[^\n]*\n(.*?)^```", DOCS, re.MULTILINE | re.DOTALL)


# --- helpers -------------------------------------------------------------------------------------


def parse(text: str) -> ast.PolicyFile:
    result = parse_source(Source("t.policy", text))
    assert result.diagnostics == (), [d.headline() for d in result.diagnostics]
    return result.file


def literal_forms(file: ast.PolicyFile) -> list[str]:
    """AST equality is Python's ==, for which true == 1 and 12.50 == 12.5; reasons show 12.50
    and 12.5 differently, so the kind and the exact decimal are compared too."""
    forms = []
    for declaration in file.declarations:
        roots = [declaration.value] if isinstance(declaration, ast.Const) else []
        if isinstance(declaration, ast.Rule) and declaration.condition is not None:
            roots.append(declaration.condition)
        for root in roots:
            forms += [
                f"{type(n.value).__name__} {n.value!r}"
                for n in ast.walk(root)
                if isinstance(n, ast.Literal)
            ]
    return forms


def comments(text: str) -> list[str]:
    """The comments of policy text, in order: `#` to the end of the line, outside strings."""
    found = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == '"':
            index += 1
            while index < len(text) and text[index] not in '"\n':
                index += 2 if text[index] == "\\" else 1
        elif char == "#":
            end = text.find("\n", index)
            end = len(text) if end < 0 else end
            found.append(text[index:end].rstrip())
            index = end
        index += 1
    return found


def assert_safe_and_stable(text: str) -> str:
    formatted = format_text(text)
    before, after = parse(text), parse(formatted)
    assert after.declarations == before.declarations
    assert literal_forms(after) == literal_forms(before)
    assert comments(formatted) == comments(text)
    assert format_text(formatted) == formatted, "formatting is not idempotent"
    return formatted


# --- meaning and comments are kept, on real and generated policies -------------------------------


def test_the_examples_and_the_docs_are_found() -> None:
    assert len(EXAMPLE_POLICIES) >= 2
    assert len(DOC_BLOCKS) >= 25


@pytest.mark.parametrize("path", EXAMPLE_POLICIES, ids=lambda p: p.name)
def test_example_policies_keep_their_meaning_and_comments(path: Path) -> None:
    formatted = assert_safe_and_stable(path.read_text("utf-8"))
    assert len(comments(formatted)) > 10
    assert all(len(line) <= formatter.WIDTH for line in formatted.splitlines())


@pytest.mark.parametrize("index", range(len(DOC_BLOCKS)))
def test_docs_examples_keep_their_meaning_or_are_refused(index: int) -> None:
    text = DOC_BLOCKS[index]
    if parse_source(Source("t.policy", text)).diagnostics:
        # The syntax-error examples: refused with the parser's diagnostics.
        with pytest.raises(FormatError) as refused:
            format_text(text)
        assert refused.value.diagnostics
        return
    assert_safe_and_stable(text)


GENERATED = range(320)


@pytest.mark.parametrize("seed", GENERATED)
def test_generated_policies_keep_their_meaning_and_comments(seed: int) -> None:
    declarations = PolicyGenerator(seed).declarations()
    writer = SourceWriter(seed, redundant_parens=seed % 2 == 0, comments=seed % 4 != 0)
    text = writer.write(declarations)
    assert list(parse(text).declarations) == declarations, "the generator wrote something else"
    formatted = assert_safe_and_stable(text)
    assert comments(formatted) == writer.comment_texts


@pytest.mark.parametrize("seed", range(0, 320, 2))
def test_the_same_declarations_are_formatted_the_same_however_written(seed: int) -> None:
    # Without redundant parentheses, layout, spelling of numbers and strings, quoting of names
    # and trailing commas make no difference.
    declarations = PolicyGenerator(seed).declarations()
    tidy = SourceWriter(seed, tidy=True).write(declarations)
    messy = SourceWriter(seed + 1, blank_lines=True).write(declarations)
    assert messy != tidy
    assert format_text(messy) == format_text(tidy)


@pytest.mark.parametrize("seed", range(0, 320, 8))
def test_printed_tokens_carry_source_offsets_in_order(seed: int) -> None:
    # Comments are placed by bisecting these offsets, which is only right if they never go back.
    writer = SourceWriter(seed, redundant_parens=True, comments=True)
    text = writer.write(PolicyGenerator(seed).declarations())
    tokens = formatter._Tokens(formatter._scan(text))
    for declaration in parse(text).declarations:
        builder = formatter._Builder(tokens)
        if isinstance(declaration, ast.Rule):
            builder.rule(declaration)
        else:
            builder.const(declaration)
        tags = [e.tag for e in builder.out if isinstance(e, formatter._Text) and e.tag is not None]
        assert tags == sorted(tags)
        assert declaration.span.start <= tags[0] and tags[-1] < declaration.span.end


def test_the_generator_covers_the_language() -> None:
    kinds: set[str] = set()
    ops: set[str] = set()
    for seed in GENERATED:
        for declaration in PolicyGenerator(seed).declarations():
            roots = [declaration.value] if isinstance(declaration, ast.Const) else []
            if isinstance(declaration, ast.Rule) and declaration.condition is not None:
                roots.append(declaration.condition)
            for root in roots:
                for node in ast.walk(root):
                    kinds.add(type(node).__name__)
                    ops.add(getattr(node, "op", ""))
    assert kinds >= {
        "BoolOp", "Not", "Compare", "Arith", "Negate", "Default", "Has", "Quantifier", "Call",
        "ListExpr", "Index", "Attr", "Name", "Literal",
    }  # fmt: skip
    assert ops >= {"and", "or", "in", "not in", "starts with", "matches", "-", "%", "=="}


# --- golden layouts ------------------------------------------------------------------------------


def test_a_rule_in_any_layout_gets_the_canonical_one() -> None:
    text = """permit   read-order{action read resource[Order ,"Invoice",]
when subject.account==resource.account and(subject.role=="support"or subject.role=="admin")
reason "order {resource.id}"}"""
    assert format_text(text) == (
        "permit read-order {\n"
        "    action   read\n"
        "    resource [Order, Invoice]\n"
        "    when     subject.account == resource.account\n"
        '             and (subject.role == "support" or subject.role == "admin")\n'
        '    reason   "order {resource.id}"\n'
        "}\n"
    )


def test_a_long_chain_in_parentheses_breaks_aligned_after_the_parenthesis() -> None:
    text = (
        "forbid kids-bedtime { action watch resource Video "
        'when subject.profile_kind ?? "standard" == "kids" and '
        '(hour(now(), subject.timezone ?? "UTC") < KIDS_FIRST_HOUR '
        'or hour(now(), subject.timezone ?? "UTC") >= KIDS_END_HOUR) }'
    )
    assert format_text(text) == (
        "forbid kids-bedtime {\n"
        "    action   watch\n"
        "    resource Video\n"
        '    when     subject.profile_kind ?? "standard" == "kids"\n'
        '             and (hour(now(), subject.timezone ?? "UTC") < KIDS_FIRST_HOUR\n'
        '                  or hour(now(), subject.timezone ?? "UTC") >= KIDS_END_HOUR)\n'
        "}\n"
    )


def test_a_condition_stays_on_one_line_up_to_100_columns() -> None:
    def formatted(name_length: int) -> list[str]:
        condition = f"subject.a and subject.{'b' * name_length}"
        return format_text(f"permit r {{ action a resource b when {condition} }}").splitlines()

    fits = formatted(65)[3]
    assert len(fits) == 100
    assert fits.startswith("    when     subject.a and subject.bbb")
    assert formatted(66)[3:5] == ["    when     subject.a", f"             and subject.{'b' * 66}"]


def test_a_condition_of_three_operands_or_more_is_one_operand_per_line() -> None:
    def when(condition: str) -> list[str]:
        lines = format_text(f"permit r {{ action a resource b when {condition} }}").splitlines()
        return lines[3:-1]

    assert when("a and b") == ["    when     a and b"]
    assert when("a and b and c") == ["    when     a", "             and b", "             and c"]
    assert when("a or (b and c and d)") == ["    when     a or (b and c and d)"]
    assert format_text("const A = a and b and c\n") == "const A = a and b and c\n"


def test_an_and_chain_inside_an_or_chain_stays_on_one_line() -> None:
    # Broken, `a and b or c` would show `and` and `or` in one column, as if they were one chain.
    long = "subject.attribute_with_a_long_name"
    text = f"permit r {{ action a resource b when {long} == 1 and {long} == 2 or {long} == 3 }}"
    assert format_text(text).splitlines()[3:5] == [
        f"    when     {long} == 1 and {long} == 2",
        f"             or {long} == 3",
    ]


def test_constants_lists_and_blank_lines() -> None:
    items = ", ".join(f'"country-{n}"' for n in range(12))
    text = f"""

# The header.



# Countries.
const SHIP = ["US","CA"]
const LONG = [{items}]
const EMPTY = [ ]


const AFTER_BLANK = 1
permit r {{ action any resource any }}
# The end.
"""
    long_items = "".join(f'    "country-{n}",\n' for n in range(12))
    assert format_text(text) == (
        "# The header.\n"
        "\n"
        "# Countries.\n"
        'const SHIP = ["US", "CA"]\n'
        f"const LONG = [\n{long_items}]\n"
        "const EMPTY = []\n"
        "\n"
        "const AFTER_BLANK = 1\n"
        "\n"
        "permit r {\n"
        "    action   any\n"
        "    resource any\n"
        "}\n"
        "\n"
        "# The end.\n"
    )


def test_comments_stay_with_the_clause_or_operand_they_precede_or_trail() -> None:
    text = """permit r { # header
  action read  # what
  # about the resource
  resource Doc
  when a # first
    and b
    # before c
    and c
  reason "x #{resource.id}" # why
  # closing
} # after
"""
    assert format_text(text) == (
        "permit r {  # header\n"
        "    action   read  # what\n"
        "    # about the resource\n"
        "    resource Doc\n"
        "    when     a  # first\n"
        "             and b\n"
        "             # before c\n"
        "             and c\n"
        '    reason   "x #{resource.id}"  # why\n'
        "    # closing\n"
        "}  # after\n"
    )


def test_a_comment_inside_an_operand_ends_its_line_there() -> None:
    text = "const A = f(x, # in a call\n y) and [1, # one\n 2]\n"
    assert format_text(text) == (
        "const A = f(x,  # in a call\n"
        "            y)\n"
        "          and [\n"
        "              1,  # one\n"
        "              2,\n"
        "          ]\n"
    )


def test_an_end_of_line_comment_moves_past_closing_punctuation() -> None:
    # Written before a `,` or `)`, it follows them, so the line does not break before them.
    assert format_text("const A = [1 # one\n, 2]\nconst B = f(a # a\n)\n") == (
        "const A = [\n    1,  # one\n    2,\n]\nconst B = f(a)  # a\n"
    )


def test_literals_in_canonical_form() -> None:
    text = r"""const S = "caf\u00e9 \/ \"q\" \u0001 tab	\u00a0"
const N = [0_0012, 1000000, 12.50, -2_500, 0.015, 00.10, 12345.678_9]
permit r { action ["export-pdf", any, read] resource "any" reason "{ subject.name } {{x}} \u007b" }
"""
    assert format_text(text) == (
        r'const S = "café / \"q\" \u0001 tab\t\u00a0"' + "\n"
        "const N = [12, 1_000_000, 12.50, -2500, 0.015, 0.10, 12_345.6789]\n"
        "\n"
        "permit r {\n"
        '    action   ["export-pdf", "any", read]\n'
        '    resource "any"\n'
        '    reason   "{subject.name} {{x}} {{"\n'
        "}\n"
    )


def test_parentheses_where_needed_or_around_operators_the_author_wrote() -> None:
    text = """const A = ((a + b)) * -(c ?? 1) - (d - e)
const B = (subject.age)
const C = ((x or y))
const D = not (a == b) and (c) and (f(x)).y
const E = (-5) ?? x ?? (-5) + a - (-5)
const F = a - b - c + (a - b) - (a - (b - c))
"""
    assert format_text(text) == (
        "const A = (a + b) * -(c ?? 1) - (d - e)\n"
        "const B = subject.age\n"
        "const C = x or y\n"
        "const D = not (a == b) and c and f(x).y\n"
        "const E = (-5) ?? x ?? (-5) + a - -5\n"
        "const F = a - b - c + (a - b) - (a - (b - c))\n"
    )


def test_a_negative_decimal_keeps_every_digit_written() -> None:
    # 35 significant digits: more than Python's default decimal precision (28).
    text = "const D = -1.2345678901234567890123456789012345\n"
    assert format_text(text) == text


def test_line_endings_byte_order_mark_and_empty_files() -> None:
    assert format_text("\ufeffconst A = 1\r\n\r\n\r\nconst B = 2 # two\r\n") == (
        "const A = 1\n\nconst B = 2  # two\n"
    )
    assert format_text("") == ""
    assert format_text("\n \n\t\n") == ""
    assert format_text("# only\n\n\n# comments") == "# only\n\n# comments\n"


def test_a_file_that_does_not_parse_is_refused_with_diagnostics() -> None:
    text = 'permit r {\n    action read\n    resource Doc\n    when a ==\n}\nconst S = "\\q"\n'
    with pytest.raises(FormatError) as refused:
        format_text(text, "bad.policy")
    rendered = [d.render() for d in refused.value.diagnostics]
    assert rendered[0].splitlines() == [
        "bad.policy:5:1: error: unexpected `}`; expected an expression",
        "    5 | }",
        "      | ^",
    ]
    assert any("invalid escape" in r for r in rendered)


def test_the_safety_net_refuses_output_that_changes_meaning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(formatter, "number_text", lambda value, written=None: "7")
    with pytest.raises(UnsafeFormatError, match="change the declarations"):
        format_text("const A = 12\n")


def test_the_safety_net_refuses_output_that_loses_a_comment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    place = formatter._place_comments
    monkeypatch.setattr(formatter, "_place_comments", lambda base, found: place(base, found[1:]))
    with pytest.raises(UnsafeFormatError, match="comments"):
        format_text("const A = f(1, # one\n 2) # two\n")


def test_the_safety_net_refuses_output_that_turns_a_boolean_into_a_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # AST equality tells `true` from `1` (the literal's type takes part); the safety net must
    # refuse such output either way.
    original = formatter._Builder.literal

    def literal(self: formatter._Builder, node: ast.Literal, value: ast.LiteralValue) -> str:
        return "1" if value is True else original(self, node, value)

    monkeypatch.setattr(formatter._Builder, "literal", literal)
    assert parse("const A = true").declarations != parse("const A = 1").declarations
    with pytest.raises(UnsafeFormatError):
        format_text("const A = true\n")


def test_number_text_groups_digits_and_keeps_decimal_places() -> None:
    assert formatter.number_text(1234) == "1234"
    assert formatter.number_text(12345) == "12_345"
    assert formatter.number_text(-(2**63)) == "-9_223_372_036_854_775_808"
    assert formatter.number_text(Decimal("-1000.50")) == "-1000.50"
    assert formatter.number_text(Decimal("123456.0")) == "123_456.0"
    assert formatter.number_text(7, "0_007") == "7"


# --- pdp fmt -------------------------------------------------------------------------------------

UNFORMATTED = "permit r{action read resource Doc when a==1 # why\n}\n"
FORMATTED = "permit r {\n    action   read\n    resource Doc\n    when     a == 1  # why\n}\n"


def fmt(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["fmt", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_fmt_check_passes_on_the_repository_policies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = fmt(capsys, "--check", str(ROOT / "policies"))
    assert (code, out) == (0, ""), err


def test_fmt_rewrites_files_in_folders_recursively(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    (nested / "one.policy").write_text(UNFORMATTED)
    (tmp_path / "two.policy").write_text(FORMATTED)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "three.policy").write_text(UNFORMATTED)
    (tmp_path / "notes.txt").write_text(UNFORMATTED)
    code, out, err = fmt(capsys, str(tmp_path))
    assert code == 0
    assert out == f"reformatted {nested / 'one.policy'}\n"
    assert "1 file reformatted, 1 already formatted" in err
    assert (nested / "one.policy").read_text() == FORMATTED
    assert (tmp_path / "two.policy").read_text() == FORMATTED
    assert (tmp_path / ".hidden" / "three.policy").read_text() == UNFORMATTED
    assert (tmp_path / "notes.txt").read_text() == UNFORMATTED
    # A file named explicitly is formatted whatever its name.
    assert fmt(capsys, str(tmp_path / "notes.txt"))[0] == 0
    assert (tmp_path / "notes.txt").read_text() == FORMATTED


def test_fmt_check_lists_the_files_that_would_change_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bad.policy").write_text(UNFORMATTED)
    (tmp_path / "good.policy").write_text(FORMATTED)
    code, out, _err = fmt(capsys, "--check", str(tmp_path))
    assert (code, out) == (1, f"{tmp_path / 'bad.policy'}\n")
    assert (tmp_path / "bad.policy").read_text() == UNFORMATTED
    assert fmt(capsys, str(tmp_path))[0] == 0
    assert fmt(capsys, "--check", str(tmp_path))[:2] == (0, "")


def test_fmt_diff_prints_a_unified_diff_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.policy"
    path.write_text(UNFORMATTED.rstrip("\n"))  # no final newline: the diff says so
    code, out, _err = fmt(capsys, "--diff", str(path))
    assert code == 0
    assert path.read_text() == UNFORMATTED.rstrip("\n")
    lines = out.splitlines()
    assert lines[:3] == [f"--- {path}", f"+++ {path} (formatted)", "@@ -1,2 +1,5 @@"]
    assert "-permit r{action read resource Doc when a==1 # why" in lines
    assert "+    when     a == 1  # why" in lines
    assert "\\ No newline at end of file" in lines
    assert fmt(capsys, "--diff", "--check", str(path))[0] == 1


def test_fmt_reports_syntax_errors_and_leaves_the_file_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.policy"
    broken.write_text("permit r {\n    action read\n    resource Doc\n    when a ==\n}\n")
    other = tmp_path / "other.policy"
    other.write_text(UNFORMATTED)
    code, out, err = fmt(capsys, str(tmp_path))
    assert code == 2
    assert broken.read_text() == "permit r {\n    action read\n    resource Doc\n    when a ==\n}\n"
    assert (
        f"{broken}:5:1: error: unexpected `}}`; expected an expression\n    5 | }}\n      | ^"
        in err
    )
    assert other.read_text() == FORMATTED  # the other files are still formatted
    assert out == f"reformatted {other}\n"
    assert fmt(capsys, "--check", str(tmp_path))[0] == 2


def test_fmt_reports_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    latin1 = tmp_path / "latin1.policy"
    latin1.write_bytes(b'const A = "caf\xe9"\n')
    code, _out, err = fmt(capsys, str(latin1), str(tmp_path / "missing"))
    assert code == 2
    assert f"{tmp_path / 'missing'}:1:1: error: no such file or folder" in err
    assert f"{latin1}:1:1: error: file is not UTF-8 text (byte 14)" in err
    assert latin1.read_bytes() == b'const A = "caf\xe9"\n'


def test_fmt_writes_atomically_keeping_permissions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.policy"
    path.write_text(UNFORMATTED)
    path.chmod(0o640)
    inode = path.stat().st_ino
    assert fmt(capsys, str(path))[0] == 0
    assert path.read_text() == FORMATTED
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.stat().st_ino != inode  # replaced by a rename, not rewritten in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.policy"]


def test_fmt_leaves_the_file_whole_when_the_write_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "r.policy"
    path.write_text(UNFORMATTED)

    def failing_replace(source: str, target: str) -> None:
        assert Path(source).read_text() == FORMATTED  # the new text was complete
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fmt_command.os, "replace", failing_replace)
    code, _out, err = fmt(capsys, str(path))
    assert code == 2
    assert f"{path}: cannot write: No space left on device" in err
    assert path.read_text() == UNFORMATTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.policy"]  # no temporary file left


def test_fmt_through_a_symbolic_link_rewrites_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "real.policy"
    target.write_text(UNFORMATTED)
    link = tmp_path / "link.policy"
    link.symlink_to(target)
    assert fmt(capsys, str(link))[0] == 0
    assert link.is_symlink()
    assert target.read_text() == FORMATTED


def test_fmt_refuses_to_write_output_that_would_change_meaning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formatter, "number_text", lambda value, written=None: "7")
    path = tmp_path / "r.policy"
    path.write_text("const A = 12\n")
    code, _out, err = fmt(capsys, str(path))
    assert code == 2
    assert "internal error, file left untouched" in err
    assert path.read_text() == "const A = 12\n"


def test_fmt_needs_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["fmt"])
    assert usage.value.code == 2
    assert "PATH" in capsys.readouterr().err


def test_fmt_keeps_a_file_that_is_already_formatted_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "r.policy"
    path.write_text(FORMATTED)
    before = os.stat(path)
    assert fmt(capsys, str(path))[:2] == (0, "")
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)

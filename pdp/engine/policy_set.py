"""A policy set ready to answer requests: parse -> check -> compile -> index, all or nothing.

Building never half-succeeds: either every file is clean and a PolicySet comes back, or
PolicySetError carries every diagnostic, sorted by file, line and column.
"""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pdp.engine.compiler import Compiler
from pdp.engine.index import RuleIndex
from pdp.engine.rule import CompiledRule, default_message, make_reason
from pdp.language import ast
from pdp.language.checker import check_policy_set
from pdp.language.parser import ParseResult, parse_source
from pdp.language.schema import Schema
from pdp.language.source import Diagnostic, Source, attach_source_lines


class PolicySetError(Exception):
    """A policy set that cannot be used; `diagnostics` says why, all at once."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = tuple(diagnostics)
        errors = sum(1 for d in self.diagnostics if d.severity == "error")
        super().__init__(f"{errors} error{'s' if errors != 1 else ''} in the policy set")

    def render(self) -> str:
        return "\n".join(diagnostic.render() for diagnostic in self.diagnostics)


@dataclass(frozen=True, slots=True)
class PolicySet:
    revision: str
    """Changes whenever any policy or data file changes; reported with every decision."""
    rules: tuple[CompiledRule, ...]
    index: RuleIndex = field(repr=False)
    data: Mapping[str, Any] = field(repr=False)
    sources: dict[str, Source] = field(repr=False)
    warnings: tuple[Diagnostic, ...] = ()
    subject_claims_read: frozenset[str] | None = frozenset()
    """Subject claims the rules read; None when any claim may matter."""
    schema: Schema | None = None
    """The folder's schema, if it has one (for request-time validation)."""

    def rule(self, rule_id: str) -> CompiledRule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)


def revision_of(sources: Sequence[Source], extra: Sequence[Source] = (), root: str = "") -> str:
    """A digest of every file's name and text. Names count from `root`, so the same policies
    have the same revision wherever the folder sits (on every host of a fleet, say)."""
    digest = hashlib.sha256()
    named = sorted(
        (Path(os.path.relpath(s.name, root)).as_posix() if root else s.name, s.text)
        for s in [*sources, *extra]
    )
    for name, text in named:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()[:16]


Parse = Callable[[Source], ParseResult]


def build_policy_set(
    sources: Sequence[Source],
    data: Mapping[str, Any] | None = None,
    data_sources: Sequence[Source] = (),
    problems: Sequence[Diagnostic] = (),
    *,
    parse: Parse = parse_source,
    root: str = "",
    schema: Schema | None = None,
) -> PolicySet:
    """Parse, check and compile `sources` (in the order given) with reference `data`.

    `problems` are diagnostics found before parsing (unreadable files, bad data), reported with
    the rest. `data_sources` only contribute to the revision. `parse` lets a caller reuse the
    parse of files that did not change (see pdp.policy_store). `root` is the folder that file
    names are relative to, for the revision.
    """
    with _collector_paused():
        return _build(
            sources, data or {}, data_sources, problems, parse=parse, root=root, schema=schema
        )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Building allocates about a hundred objects per rule, nearly all of which live on. The
    cyclic garbage collector would walk the growing heap again and again, about a fifth of
    the time of a large load; reference counting still frees everything short-lived."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _build(
    sources: Sequence[Source],
    data: Mapping[str, Any],
    data_sources: Sequence[Source],
    problems: Sequence[Diagnostic],
    *,
    parse: Parse,
    root: str,
    schema: Schema | None,
) -> PolicySet:
    diagnostics = list(problems)
    files: list[ast.PolicyFile] = []
    for source in sources:
        result = parse(source)
        diagnostics.extend(result.diagnostics)
        files.append(result.file)
    # Checked even when some declarations did not parse (they are left out of `files`), so an
    # author sees syntax and semantic errors in one pass.
    diagnostics.extend(check_policy_set(files, data, schema))
    by_name = {source.name: source for source in sources}
    if any(d.severity == "error" for d in diagnostics):
        raise PolicySetError(attach_source_lines(diagnostics, by_name))

    rules: list[CompiledRule] = []
    for policy_file in files:
        compiler = Compiler(data)
        for declaration in policy_file.declarations:
            if isinstance(declaration, ast.Const):
                compiler.define_const(declaration)
            else:
                rules.append(_compile_rule(declaration, len(rules), compiler))
        diagnostics.extend(compiler.diagnostics)
    if any(d.severity == "error" for d in diagnostics):
        raise PolicySetError(attach_source_lines(diagnostics, by_name))

    return PolicySet(
        revision=revision_of(sources, data_sources, root),
        rules=tuple(rules),
        index=RuleIndex(rules),
        data=data,
        sources=by_name,
        warnings=tuple(attach_source_lines(diagnostics, by_name)),
        subject_claims_read=_subject_claims_read(files),
        schema=schema,
    )


def _subject_claims_read(files: Sequence[ast.PolicyFile]) -> frozenset[str] | None:
    """The names of the subject claims any rule reads (`subject.age`, `subject has tier`), or
    None when some rule reads `subject` as a whole or by a computed key, so any claim may
    matter. The audit log records exactly these, enough to evaluate the decision again."""
    names: set[str] = set()
    for policy_file in files:
        for rule in policy_file.rules:
            expressions = [rule.condition] if rule.condition is not None else []
            if rule.reason is not None:
                expressions.extend(p for p in rule.reason.parts if not isinstance(p, str))
            for expression in expressions:
                for node in ast.walk(expression):
                    for child in ast.children(node):
                        if not (isinstance(child, ast.Name) and child.name == "subject"):
                            continue
                        if isinstance(node, ast.Attr):
                            names.add(node.name)
                        elif isinstance(node, ast.Has) and node.obj is child:
                            names.add(node.path[0])
                        else:
                            return None
                    if isinstance(node, ast.Name) and node.name == "subject" and node is expression:
                        return None
    return frozenset(names)


def _compile_rule(rule: ast.Rule, ordinal: int, compiler: Compiler) -> CompiledRule:
    message = compiler.template(rule.reason) if rule.reason is not None else default_message(rule)
    location = str(rule.span)
    return CompiledRule(
        id=rule.id,
        effect=rule.effect,
        ordinal=ordinal,
        condition=compiler.condition(rule.condition) if rule.condition is not None else None,
        message=message,
        location=location,
        rule=rule,
        compiler=compiler,
        # Built once: most reasons have no interpolation, and this keeps them off the hot path.
        static_reason=make_reason(rule, message, location) if isinstance(message, str) else None,
    )

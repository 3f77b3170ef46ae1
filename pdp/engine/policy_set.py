"""A policy set ready to answer requests: parse -> check -> compile -> index, all or nothing.

Building never half-succeeds: either every file is clean and a PolicySet comes back, or
PolicySetError carries every diagnostic, sorted by file, line and column.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pdp.engine.compiler import Compiler
from pdp.engine.index import RuleIndex
from pdp.engine.rule import CompiledRule, default_message, make_reason
from pdp.language import ast
from pdp.language.checker import check_policy_set
from pdp.language.parser import parse_source
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

    def rule(self, rule_id: str) -> CompiledRule | None:
        return next((rule for rule in self.rules if rule.id == rule_id), None)


def revision_of(sources: Sequence[Source], extra: Sequence[Source] = ()) -> str:
    digest = hashlib.sha256()
    for source in sorted([*sources, *extra], key=lambda s: s.name):
        digest.update(source.name.encode() + b"\0" + source.text.encode() + b"\0")
    return digest.hexdigest()[:16]


def build_policy_set(
    sources: Sequence[Source],
    data: Mapping[str, Any] | None = None,
    data_sources: Sequence[Source] = (),
    problems: Sequence[Diagnostic] = (),
) -> PolicySet:
    """Parse, check and compile `sources` (in the order given) with reference `data`.

    `problems` are diagnostics found before parsing (unreadable files, bad data), reported with
    the rest. `data_sources` only contribute to the revision.
    """
    with _collector_paused():
        return _build(sources, data or {}, data_sources, problems)


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
) -> PolicySet:
    diagnostics = list(problems)
    files: list[ast.PolicyFile] = []
    for source in sources:
        result = parse_source(source)
        diagnostics.extend(result.diagnostics)
        files.append(result.file)
    # Checked even when some declarations did not parse (they are left out of `files`), so an
    # author sees syntax and semantic errors in one pass.
    diagnostics.extend(check_policy_set(files, data))
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
        revision=revision_of(sources, data_sources),
        rules=tuple(rules),
        index=RuleIndex(rules),
        data=data,
        sources=by_name,
        warnings=tuple(attach_source_lines(diagnostics, by_name)),
    )


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

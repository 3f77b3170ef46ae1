"""Which rules can apply to a request: an index by (action, resource type).

A request only visits rules whose target names its action (or any action) and its resource type
(or any type), so decision time does not grow with the size of the policy set.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from pdp.engine.rule import CompiledRule

# Candidate lists are built on first use per (action, type) pair and kept. Pairs are mapped to
# names the policy set knows (anything else shares one entry), so callers cannot grow the cache
# by inventing names; the cap bounds it even for huge sets.
_CACHE_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Candidates:
    forbids: tuple[CompiledRule, ...]
    permits: tuple[CompiledRule, ...]

    @property
    def all(self) -> tuple[CompiledRule, ...]:
        return tuple(sorted(self.forbids + self.permits, key=lambda rule: rule.ordinal))


class RuleIndex:
    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self._exact: dict[tuple[str, str], list[CompiledRule]] = defaultdict(list)
        self._any_type: dict[str, list[CompiledRule]] = defaultdict(list)
        self._any_action: dict[str, list[CompiledRule]] = defaultdict(list)
        self._anything: list[CompiledRule] = []
        for rule in rules:
            actions, types = rule.rule.actions.names, rule.rule.resources.names
            if actions is None and types is None:
                self._anything.append(rule)
            elif actions is None:
                for resource_type in dict.fromkeys(types or ()):
                    self._any_action[resource_type].append(rule)
            elif types is None:
                for action in dict.fromkeys(actions):
                    self._any_type[action].append(rule)
            else:
                for action in dict.fromkeys(actions):
                    for resource_type in dict.fromkeys(types):
                        self._exact[(action, resource_type)].append(rule)
        self._actions = frozenset(self._any_type) | {action for action, _ in self._exact}
        self._types = frozenset(self._any_action) | {kind for _, kind in self._exact}
        self._cache: dict[tuple[str | None, str | None], Candidates] = {}

    def candidates(self, action: str, resource_type: str) -> Candidates:
        key = (
            action if action in self._actions else None,
            resource_type if resource_type in self._types else None,
        )
        found = self._cache.get(key)
        if found is None:
            found = self._build(*key)
            if len(self._cache) < _CACHE_LIMIT:
                self._cache[key] = found
        return found

    def _build(self, action: str | None, resource_type: str | None) -> Candidates:
        rules = list(self._anything)
        if action is not None:
            rules += self._any_type.get(action, ())
        if resource_type is not None:
            rules += self._any_action.get(resource_type, ())
        if action is not None and resource_type is not None:
            rules += self._exact.get((action, resource_type), ())
        rules.sort(key=lambda rule: rule.ordinal)
        return Candidates(
            forbids=tuple(rule for rule in rules if rule.is_forbid),
            permits=tuple(rule for rule in rules if not rule.is_forbid),
        )

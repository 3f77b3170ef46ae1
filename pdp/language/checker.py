"""Static checks over a parsed policy set (AST -> check step of the flow).

Finds every problem it can before anything runs: unknown names and functions (with a did-you-mean),
wrong arity, duplicate rule ids, type clashes between values whose types are known, invalid
regexes and invalid typed literals. Attribute types are unknown here unless they come from
`data`; a schema can make them known.

Recursion over expressions is safe: the parser refuses trees deeper than MAX_EXPRESSION_DEPTH.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Any

from pdp.language import ast, literals
from pdp.language.analysis import analyse_rules, proven_present
from pdp.language.limits import INT_MAX, INT_MIN
from pdp.language.schema import AttributeType, Schema
from pdp.language.source import Diagnostic, Span
from pdp.language.types import (
    ANY,
    BOOLEAN,
    CIDR,
    DATE,
    DATETIME,
    DECIMAL,
    DURATION,
    INTEGER,
    IP,
    NUMERIC_KINDS,
    RECORD,
    SIGNATURES,
    STRING,
    Type,
    join,
    list_of,
    ordered,
    same_family,
)

RESERVED_NAMES = frozenset(ast.ROOTS) | frozenset({"true", "false", "any", "all", "not"})


def check_policy_set(
    files: Sequence[ast.PolicyFile],
    data: Mapping[str, Any] | None = None,
    schema: Schema | None = None,
) -> list[Diagnostic]:
    """Every diagnostic for the set, unsorted. `data` is the loaded reference data; `schema`,
    when the folder has one, declares the attributes and their types."""
    diagnostics: list[Diagnostic] = []
    first_seen: dict[str, Span] = {}
    for policy_file in files:
        _FileChecker(policy_file, data or {}, diagnostics, schema).run()
        for rule in policy_file.rules:
            if rule.id in first_seen:
                diagnostics.append(
                    Diagnostic(
                        "duplicate-rule",
                        f"duplicate rule id `{rule.id}` (first defined at {first_seen[rule.id]})",
                        rule.id_span,
                    )
                )
            else:
                first_seen[rule.id] = rule.id_span
    diagnostics.extend(analyse_rules(files))
    return diagnostics


def value_type(value: object) -> Type:
    """The static type of a concrete value (a constant or loaded data)."""
    match value:
        case bool():
            return BOOLEAN
        case int():
            return INTEGER
        case Decimal():
            return DECIMAL
        case str():
            return STRING
        case datetime():
            return DATETIME
        case date():
            return DATE
        case timedelta():
            return DURATION
        case IPv4Address() | IPv6Address():
            return IP
        case IPv4Network() | IPv6Network():
            return CIDR
        case dict():
            return RECORD
        case list() | tuple():
            element = ANY
            for index, item in enumerate(value):
                element = value_type(item) if index == 0 else join(element, value_type(item))
            return list_of(element)
    return ANY


def suggest(name: str, candidates: Iterable[str]) -> str:
    """`; did you mean `x`?` or nothing."""
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


@dataclass
class _Scope:
    consts: dict[str, Type]
    variables: dict[str, Type] = field(default_factory=dict)
    constant_only: bool = False
    """Inside a `const` declaration: only literals, other constants and `data` are allowed."""
    used_consts: set[str] = field(default_factory=set)
    resource_types: tuple[str, ...] | None = None
    """The rule's resource types (None: any), for looking up `resource.*` in the schema."""
    present: frozenset[tuple[str, ...]] = frozenset()
    """Attribute paths known to be present here (`subject has x and ...`)."""
    tolerant: bool = False
    """Reading an absent attribute is handled here (left of `??`, in a reason)."""


class _FileChecker:
    def __init__(
        self,
        policy_file: ast.PolicyFile,
        data: Mapping[str, Any],
        out: list[Diagnostic],
        schema: Schema | None = None,
    ) -> None:
        self.file = policy_file
        self.data = data
        self.out = out
        self.schema = schema
        self.consts: dict[str, Type] = {}
        self.const_spans: dict[str, Span] = {}
        self.used: set[str] = set()

    def error(self, code: str, message: str, span: Span) -> None:
        self.out.append(Diagnostic(code, message, span))

    def warning(self, code: str, message: str, span: Span) -> None:
        self.out.append(Diagnostic(code, message, span, severity="warning"))

    def run(self) -> None:
        for declaration in self.file.declarations:
            if isinstance(declaration, ast.Const):
                self.check_const(declaration)
            else:
                self.check_rule(declaration)
        for name, span in self.const_spans.items():
            if name not in self.used:
                self.warning("unused-const", f"constant `{name}` is never used", span)

    def check_const(self, const: ast.Const) -> None:
        if const.name in RESERVED_NAMES:
            self.error("name", f"`{const.name}` is a reserved name", const.span)
            return
        if const.name in self.consts:
            self.error(
                "duplicate-const",
                f"constant `{const.name}` is already defined (at {self.const_spans[const.name]})",
                const.span,
            )
            return
        scope = _Scope(dict(self.consts), constant_only=True)
        value_type_ = self.infer(const.value, scope)
        self.used |= scope.used_consts
        self.consts[const.name] = value_type_
        self.const_spans[const.name] = const.span

    def check_rule(self, rule: ast.Rule) -> None:
        for target, what in ((rule.actions, "action"), (rule.resources, "resource type")):
            names = target.names or ()
            for name in {n for n in names if names.count(n) > 1}:
                self.warning("target", f"{what} `{name}` is listed twice", target.span)
            if any(not name for name in names):
                self.error("target", f"an empty {what} name matches nothing", target.span)
        self.check_target(rule)
        scope = _Scope(dict(self.consts), resource_types=rule.resources.names)
        if rule.condition is not None:
            condition_type = self.infer(rule.condition, scope)
            if condition_type.known and condition_type != BOOLEAN:
                self.error(
                    "type",
                    f"a condition must be a boolean, not {condition_type}",
                    rule.condition.span,
                )
        if rule.reason is not None:
            # A reason shows an absent value as <missing>: reading it there is fine.
            tolerant = dataclasses.replace(scope, tolerant=True)
            for part in rule.reason.parts:
                if not isinstance(part, str):
                    self.infer(part, tolerant)
        self.used |= scope.used_consts

    def check_target(self, rule: ast.Rule) -> None:
        """With a schema that declares resources: the rule's types and actions must exist."""
        resources = self.schema.resources if self.schema is not None else None
        if resources is None:
            return
        types = rule.resources.names
        for name in types or ():
            if name not in resources:
                hint = suggest(name, resources)
                self.error(
                    "target",
                    f"resource type `{name}` is not declared in the schema{hint}",
                    rule.resources.span,
                )
        # A target is every (action, type) pair of its lists; pairs that never occur are harmless,
        # but an action that applies to none of the rule's types (or a type that takes none of
        # its actions) can never be matched.
        declared = [resources[name] for name in types or resources if name in resources]
        if not declared:
            return
        actions = rule.actions.names
        for action in actions or ():
            if not any(action in resource.actions for resource in declared):
                every = sorted({a for r in declared for a in r.actions})
                scope = (
                    "any resource type"
                    if types is None
                    else " or ".join(f"`{r.name}`" for r in declared)
                )
                listed = (
                    f"its actions: {', '.join(every)}"
                    if every
                    else "the schema lists no actions for it"
                )
                self.error(
                    "target",
                    f"action `{action}` does not apply to {scope} "
                    f"({listed}){suggest(action, every)}",
                    rule.actions.span,
                )
        known = actions is not None and all(
            any(action in resource.actions for resource in declared) for action in actions
        )
        if known and types is not None:
            # (With an unknown action, the error above already says what is wrong.)
            for resource in declared:
                if not set(actions or ()) & set(resource.actions):
                    self.error(
                        "target",
                        f"resource type `{resource.name}` takes none of the rule's actions "
                        f"(its actions: {', '.join(resource.actions)})",
                        rule.resources.span,
                    )

    # --- type inference ------------------------------------------------------------------------

    def infer(self, expr: ast.Expr, scope: _Scope) -> Type:
        # A table lookup rather than `match`: a large set has hundreds of thousands of nodes.
        method: Callable[[_FileChecker, Any, _Scope], Type] = _INFER[type(expr)]
        return method(self, expr, scope)

    def infer_literal(self, expr: ast.Literal, scope: _Scope) -> Type:
        value = expr.value
        if type(value) is int and not INT_MIN <= value <= INT_MAX:
            self.error("literal", "integer literal out of range (integers are 64-bit)", expr.span)
        return value_type(value)

    def infer_list(self, expr: ast.ListExpr, scope: _Scope) -> Type:
        element = ANY
        for position, item in enumerate(expr.items):
            item_type = self.infer(item, scope)
            element = item_type if position == 0 else join(element, item_type)
        return list_of(element)

    def infer_index(self, expr: ast.Index, scope: _Scope) -> Type:
        obj_type, key_type = self.infer(expr.obj, scope), self.infer(expr.key, scope)
        if obj_type.kind == "list":
            self.expect(key_type, {"integer"}, "a list index", expr.key.span)
            return obj_type.element or ANY
        if obj_type.kind == "record":
            self.expect(key_type, {"string"}, "a record key", expr.key.span)
            return ANY
        if obj_type.known:
            self.error("type", f"cannot index a {obj_type} with `[...]`", expr.span)
        return ANY

    def infer_not(self, expr: ast.Not, scope: _Scope) -> Type:
        self.expect(self.infer(expr.operand, scope), {"boolean"}, "`not`", expr.operand.span)
        return BOOLEAN

    def infer_negate(self, expr: ast.Negate, scope: _Scope) -> Type:
        operand_type = self.infer(expr.operand, scope)
        kinds = {"integer", "decimal", "duration"}
        self.expect(operand_type, kinds, "`-`", expr.operand.span)
        return operand_type

    def infer_bool_op(self, expr: ast.BoolOp, scope: _Scope) -> Type:
        # `a and b` evaluates b only when a held, `a or b` only when a failed: what a proved
        # about presence holds while b is evaluated.
        present = scope.present
        for operand in expr.operands:
            inner = dataclasses.replace(scope, present=present) if present else scope
            self.expect(self.infer(operand, inner), {"boolean"}, f"`{expr.op}`", operand.span)
            present = present | proven_present(operand, holds=expr.op == "and")
        return BOOLEAN

    def infer_compare(self, expr: ast.Compare, scope: _Scope) -> Type:
        self.check_compare(expr, scope)
        return BOOLEAN

    def infer_has(self, expr: ast.Has, scope: _Scope) -> Type:
        self.expect(self.infer(expr.obj, scope), {"record"}, "`has`", expr.obj.span)
        base = ast.attribute_path(expr.obj)
        if base is not None and len(base) == 1 and base[0] in ast.RECORD_ROOTS:
            # Testing for an attribute the schema does not know is a typo as much as reading it.
            tolerant = dataclasses.replace(scope, tolerant=True)
            self.attribute_type((*base, *expr.path), expr, tolerant)
        return BOOLEAN

    def infer_default(self, expr: ast.Default, scope: _Scope) -> Type:
        tolerant = dataclasses.replace(scope, tolerant=True)
        return join(self.infer(expr.value, tolerant), self.infer(expr.fallback, scope))

    def expect(self, actual: Type, kinds: set[str], where: str, span: Span) -> None:
        if actual.known and actual.kind not in kinds:
            wanted = " or ".join(sorted(kinds))
            self.error("type", f"{where} needs {wanted}, not {actual}", span)

    def infer_name(self, expr: ast.Name, scope: _Scope) -> Type:
        name = expr.name
        if name in scope.variables:
            return scope.variables[name]
        if name in scope.consts:
            scope.used_consts.add(name)
            return scope.consts[name]
        if name in ast.ROOTS:
            if scope.constant_only and name != "data":
                self.error(
                    "const",
                    f"a constant cannot read `{name}`: constants are fixed when policies load",
                    expr.span,
                )
            return STRING if name == "action" else RECORD
        candidates = [*ast.ROOTS, *scope.consts, *scope.variables]
        self.error("name", f"unknown name `{name}`{suggest(name, candidates)}", expr.span)
        return ANY

    def infer_attr(self, expr: ast.Attr, scope: _Scope) -> Type:
        inner = expr.obj
        root = inner.name if isinstance(inner, ast.Name) else None
        if root in ast.RECORD_ROOTS and not scope.constant_only:
            # The common case, answered without walking the path.
            return self.attribute_type((root, expr.name), expr, scope)
        path = ast.attribute_path(expr)
        if path is not None and path[0] in ast.RECORD_ROOTS and not scope.constant_only:
            return self.attribute_type(path, expr, scope)
        if path is not None and path[0] == "data":
            return self.infer_data_path(expr, path)
        obj_type = self.infer(inner, scope)
        if obj_type.kind == "string" and path is not None and path[0] == "action":
            self.error(
                "type",
                "`action` is the action's name (a string); it has no attributes",
                expr.span,
            )
        elif obj_type.known and obj_type.kind != "record":
            self.error("type", f"`.{expr.name}` needs a record, not {obj_type}", expr.span)
        return ANY

    def attribute_type(self, path: tuple[str, ...], expr: ast.Expr, scope: _Scope) -> Type:
        """The type of a request attribute path, from the schema when it declares it."""
        root, name = path[0], path[1]
        if root == "resource" and name in ("type", "id"):
            return STRING
        declared = self.declared(root, name, expr, scope)
        if declared is None:
            return ANY
        shown = f"{root}.{name}"
        self.check_presence(declared, path[:2], expr, scope)
        for depth, key in enumerate(path[2:], start=2):
            attributes = declared.attributes if declared.kind == "record" else None
            if attributes is None:
                if declared.kind != "record":
                    self.error(
                        "type", f"`{shown}` is {declared.describe()}, not a record", expr.span
                    )
                return ANY
            if key not in attributes:
                hint = suggest(key, attributes)
                self.error("schema", f"unknown attribute `{shown}.{key}`{hint}", expr.span)
                return ANY
            declared = attributes[key]
            shown = f"{shown}.{key}"
            self.check_presence(declared, path[: depth + 1], expr, scope)
        return declared.static_type()

    def declared(self, root: str, name: str, expr: ast.Expr, scope: _Scope) -> AttributeType | None:
        """The schema's declaration of `root.name`; None when the schema does not say (an
        error is reported when the schema should say and does not)."""
        schema = self.schema
        if schema is None:
            return None
        if root == "resource":
            if schema.resources is None or scope.resource_types is None:
                return None
            found: list[AttributeType] = []
            for type_name in scope.resource_types:
                resource = schema.resources.get(type_name)
                if resource is None:
                    return None  # reported as an undeclared target
                if name not in resource.attributes:
                    hint = suggest(name, resource.attributes)
                    self.error(
                        "schema",
                        f"`resource.{name}` is not an attribute of `{type_name}`{hint}",
                        expr.span,
                    )
                    return None
                found.append(resource.attributes[name])
            first = found[0]
            if any(other.static_type() != first.static_type() for other in found[1:]):
                return None  # declared differently by the rule's types: not checked further
            return AttributeType(
                first.kind,
                any(d.optional for d in found),
                first.element,
                first.values,
                first.attributes,
            )
        section = schema.root(root)
        if section is None:
            return None
        if name not in section:
            hint = suggest(name, section)
            self.error("schema", f"unknown attribute `{root}.{name}`{hint}", expr.span)
            return None
        return section[name]

    def check_presence(
        self, declared: AttributeType, path: tuple[str, ...], expr: ast.Expr, scope: _Scope
    ) -> None:
        if declared.optional and not scope.tolerant and path not in scope.present:
            shown = ".".join(path)
            self.warning(
                "optional",
                f"optional attribute `{shown}` is read without a presence test; guard it with "
                f"`{path[0]} has {'.'.join(path[1:])}` or give a default with `??`",
                expr.span,
            )

    def infer_data_path(self, expr: ast.Expr, path: tuple[str, ...]) -> Type:
        value: Any = self.data
        for depth, name in enumerate(path[1:], start=1):
            if not isinstance(value, dict) or name not in value:
                shown = ".".join(path[: depth + 1])
                hint = suggest(name, value) if isinstance(value, dict) else ""
                self.error("data", f"no data at `{shown}`{hint}", expr.span)
                return ANY
            value = value[name]
        return value_type(value)

    def infer_call(self, expr: ast.Call, scope: _Scope) -> Type:
        arg_types = [self.infer(arg, scope) for arg in expr.args]
        signature = SIGNATURES.get(expr.function)
        if signature is None:
            hint = suggest(expr.function, SIGNATURES)
            self.error("function", f"unknown function `{expr.function}`{hint}", expr.name_span)
            return ANY
        if not signature.accepts(len(expr.args)):
            self.error(
                "arity",
                f"`{expr.function}` takes {signature.arity()}, got {len(expr.args)}",
                expr.span,
            )
            return signature.returns
        if scope.constant_only and signature.reads_clock:
            self.error(
                "const",
                f"a constant cannot call `{expr.function}`: it depends on the evaluation time",
                expr.span,
            )
        for position, (arg, arg_type) in enumerate(zip(expr.args, arg_types, strict=True)):
            kinds = signature.params[position]
            self.expect(
                arg_type, set(kinds), f"argument {position + 1} of `{expr.function}`", arg.span
            )
            check = signature.literal_checks[position] if signature.literal_checks else None
            if check is not None and isinstance(arg, ast.Literal) and type(arg.value) is str:
                try:
                    check(arg.value)
                except ValueError as error:
                    self.error("literal", str(error), arg.span)
        return signature.returns

    def check_compare(self, expr: ast.Compare, scope: _Scope) -> None:
        op = expr.op
        left, right = self.infer(expr.left, scope), self.infer(expr.right, scope)
        span = expr.span
        self.check_enum(expr, left, right)
        if op in ("==", "!="):
            if not same_family(left, right):
                outcome = "true" if op == "!=" else "false"
                self.error("type", f"`{op}` between {left} and {right} is always {outcome}", span)
        elif op in ("<", "<=", ">", ">="):
            if not ordered(left, right):
                self.error(
                    "type",
                    f"`{op}` needs two numbers, dates, datetimes or durations, "
                    f"not {_pair(left, right)}",
                    span,
                )
        elif op in ("in", "not in"):
            self.check_membership(op, left, right, span)
        elif op == "contains":
            if left.kind == "string":
                self.expect(right, {"string"}, "`contains` on a string", expr.right.span)
            elif left.kind == "list":
                self.check_membership("contains", right, left, span)
            else:
                self.expect(left, {"string", "list", "record"}, "`contains`", expr.left.span)
        elif op in ("starts with", "ends with"):
            self.expect(left, {"string"}, f"`{op}`", expr.left.span)
            self.expect(right, {"string"}, f"`{op}`", expr.right.span)
        elif op == "matches":
            self.expect(left, {"string"}, "`matches`", expr.left.span)
            self.check_pattern(expr.right, right, scope)

    def check_enum(self, expr: ast.Compare, left: Type, right: Type) -> None:
        """`subject.role == "suport"` when the schema says role is customer, support or admin."""
        pairs = [(left, expr.right), (right, expr.left)]
        if expr.op in ("==", "!=", "in", "not in"):
            for typed, other in pairs[:1] if expr.op in ("in", "not in") else pairs:
                if not typed.values:
                    continue
                literals = [other] if isinstance(other, ast.Literal) else []
                if isinstance(other, ast.ListExpr):
                    literals = [i for i in other.items if isinstance(i, ast.Literal)]
                for literal in literals:
                    value = literal.value
                    if type(value) is str and value not in typed.values:
                        allowed = ", ".join(f"`{v}`" for v in typed.values)
                        self.error(
                            "type",
                            f"`{value}` is not one of the values the schema allows "
                            f"({allowed}){suggest(value, typed.values)}",
                            literal.span,
                        )

    def check_membership(self, op: str, element: Type, collection: Type, span: Span) -> None:
        if collection.kind == "list":
            member = collection.element or ANY
            if member.kind == "cidr" and element.kind in ("ip", "string"):
                return
            if not same_family(element, member):
                self.error(
                    "type", f"`{op}` looks for {element} in a {collection}: never true", span
                )
        elif collection.kind == "record":
            self.expect(element, {"string"}, f"`{op}` on a record (a key)", span)
        elif collection.kind == "cidr":
            self.expect(element, {"ip", "string"}, f"`{op}` on a CIDR range", span)
        elif collection.kind == "string":
            self.error(
                "type", f"`{op}` needs a list, record or CIDR range; use `contains` for text", span
            )
        elif collection.known:
            self.error("type", f"`{op}` needs a list, record or CIDR range, not {collection}", span)

    def check_pattern(self, pattern: ast.Expr, pattern_type: Type, scope: _Scope) -> None:
        text: object = None
        if isinstance(pattern, ast.Literal):
            text = pattern.value
        elif isinstance(pattern, ast.Name) and pattern.name in scope.consts:
            text = self.const_literal(pattern.name)
        if not isinstance(text, str):
            if pattern_type.known and pattern_type != STRING:
                self.error(
                    "type", f"`matches` needs a string pattern, not {pattern_type}", pattern.span
                )
            else:
                self.error(
                    "regex",
                    "the pattern of `matches` must be a string literal or constant, "
                    "so that it is checked and compiled when policies load",
                    pattern.span,
                )
            return
        try:
            literals.compile_pattern(text)
        except ValueError as error:
            self.error("regex", str(error), pattern.span)

    def const_literal(self, name: str) -> object:
        for declaration in self.file.consts:
            if declaration.name == name and isinstance(declaration.value, ast.Literal):
                return declaration.value.value
        return None

    def infer_arith(self, expr: ast.Arith, scope: _Scope) -> Type:
        left, right = self.infer(expr.left, scope), self.infer(expr.right, scope)
        result = arithmetic_result(expr.op, left, right)
        if result is None:
            self.error("type", f"`{expr.op}` does not apply to {_pair(left, right)}", expr.span)
            return ANY
        return result

    def infer_quantifier(self, expr: ast.Quantifier, scope: _Scope) -> Type:
        collection = self.infer(expr.collection, scope)
        self.expect(collection, {"list"}, f"`{expr.kind}(...)`", expr.collection.span)
        if expr.var in RESERVED_NAMES or expr.var in scope.consts or expr.var in scope.variables:
            self.error(
                "name", f"`{expr.var}` is already a name here; choose another", expr.var_span
            )
        inner = dataclasses.replace(
            scope, variables={**scope.variables, expr.var: collection.element or ANY}
        )
        body = self.infer(expr.body, inner)
        self.expect(body, {"boolean"}, f"the body of `{expr.kind}(...)`", expr.body.span)
        return BOOLEAN


_INFER: dict[type, Callable[[_FileChecker, Any, _Scope], Type]] = {
    ast.Literal: _FileChecker.infer_literal,
    ast.ListExpr: _FileChecker.infer_list,
    ast.Name: _FileChecker.infer_name,
    ast.Attr: _FileChecker.infer_attr,
    ast.Index: _FileChecker.infer_index,
    ast.Call: _FileChecker.infer_call,
    ast.Not: _FileChecker.infer_not,
    ast.Negate: _FileChecker.infer_negate,
    ast.BoolOp: _FileChecker.infer_bool_op,
    ast.Compare: _FileChecker.infer_compare,
    ast.Arith: _FileChecker.infer_arith,
    ast.Has: _FileChecker.infer_has,
    ast.Default: _FileChecker.infer_default,
    ast.Quantifier: _FileChecker.infer_quantifier,
}


def _pair(left: Type, right: Type) -> str:
    """`string and integer`, or `a string` when only one side's type is known."""
    if left.known and right.known:
        return f"{left} and {right}"
    known = left if left.known else right
    return f"a {known}" if known.kind != "integer" else "an integer"


def arithmetic_result(op: str, left: Type, right: Type) -> Type | None:
    """The type of `left op right`, ANY when unknown, None when the operation never applies."""
    kinds = (left.kind, right.kind)
    numeric = left.kind in NUMERIC_KINDS and right.kind in NUMERIC_KINDS
    if numeric:
        if op == "/":
            return DECIMAL
        if op == "%":
            return INTEGER if kinds == ("integer", "integer") else None
        return join(left, right)
    if op == "+" and kinds in (("datetime", "duration"), ("duration", "datetime")):
        return DATETIME
    if op in "+-" and kinds == ("date", "duration"):
        return DATE
    if op == "-" and kinds in (("datetime", "datetime"), ("date", "date")):
        return DURATION
    if op == "-" and kinds == ("datetime", "duration"):
        return DATETIME
    if op in "+-" and kinds == ("duration", "duration"):
        return DURATION
    if op == "*" and kinds in (("duration", "integer"), ("integer", "duration")):
        return DURATION
    if not left.known or not right.known:
        known = right if not left.known else left
        usable = NUMERIC_KINDS | {"datetime", "date", "duration"}
        return ANY if known.kind in usable or not known.known else None
    return None

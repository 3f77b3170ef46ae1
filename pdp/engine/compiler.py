"""AST -> Python closures (the compile step of the flow).

Each expression becomes a function of one argument, the request environment, so evaluation makes
no decisions about node types at run time. Constant sub-expressions are computed once here, and
common shapes get specialised closures: an attribute compared with a literal, membership in a
constant list (a frozenset lookup), a regex compiled once.

Semantics live here and nowhere else; docs/language.md describes them for authors. The rules:
- reading an absent attribute raises MissingValueError; `??` and `has` are the ways to tolerate it;
- operators check types strictly and raise TypeMismatchError instead of guessing;
- integers are 64-bit: arithmetic that leaves the range raises InvalidValueError.

The checker has run before this and the parser bounds nesting, so recursion here is shallow.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, DivisionByZero, InvalidOperation
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from types import MappingProxyType
from typing import Any

from pdp.engine.errors import (
    EvaluationError,
    InvalidValueError,
    MissingValueError,
    TypeMismatchError,
)
from pdp.engine.functions import IMPLEMENTATIONS
from pdp.engine.values import MAX_RENDERED, equal, render_text, type_name
from pdp.language import ast, literals
from pdp.language.limits import INT_MAX, INT_MIN
from pdp.language.source import Diagnostic, Span
from pdp.language.types import SIGNATURES

_NO_CALLER: Mapping[str, Any] = MappingProxyType({})


class Env:
    """One request as the closures see it. `now` is given by the caller, never read here."""

    __slots__ = ("action", "caller", "context", "now", "resource", "subject", "variables")

    def __init__(
        self,
        subject: Mapping[str, Any],
        action: str,
        resource: Mapping[str, Any],
        context: Mapping[str, Any],
        now: datetime,
        *,
        caller: Mapping[str, Any] = _NO_CALLER,
    ) -> None:
        self.subject = subject
        self.action = action
        self.resource = resource
        self.context = context
        self.now = now
        self.caller = caller
        self.variables: dict[str, Any] = {}


Closure = Callable[[Env], Any]

# Folded closures never read the request or the clock (the compiler only folds those that
# cannot), but functions take `now` as a parameter, so folding needs an environment to pass.
_FOLDING_ENV = Env({}, "", {}, {}, datetime(1970, 1, 1, tzinfo=UTC))


class Compiled:
    """A compiled expression: its closure, and its value when it is a constant."""

    __slots__ = ("constant", "fn", "value")

    def __init__(self, fn: Closure, constant: bool = False, value: Any = None) -> None:
        self.fn = fn
        self.constant = constant
        self.value = value


def constant(value: Any) -> Compiled:
    return Compiled(lambda env: value, True, value)


_NUMBERS = (int, Decimal)
_IPS = (IPv4Address, IPv6Address)
_NETWORKS = (IPv4Network, IPv6Network)
_ORDER = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def describe(expr: ast.Expr) -> str:
    """How messages name an expression: `subject.age` for paths, else the kind of node."""
    path = ast.attribute_path(expr)
    if path is not None:
        return ".".join(path)
    if isinstance(expr, ast.Index):
        return f"{describe(expr.obj)}[...]"
    if isinstance(expr, ast.Call):
        return f"{expr.function}(...)"
    return "the value"


class Compiler:
    """Compiles the expressions of one file. Holds the file's constants and the set's data."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.consts: dict[str, Compiled] = {}
        self.diagnostics: list[Diagnostic] = []

    def define_const(self, const: ast.Const) -> None:
        # The checker has made sure the value is constant. If computing it failed, fold() has
        # reported why and left a closure, so nothing that uses it is folded into a second error.
        self.consts[const.name] = self.compile(const.value)

    def condition(self, expr: ast.Expr) -> Closure:
        return self.compile(expr).fn

    def template(self, template: ast.Template) -> Closure | str:
        """A reason message: a plain string, or a closure that renders its interpolations."""
        if all(isinstance(part, str) for part in template.parts):
            return "".join(part for part in template.parts if isinstance(part, str))
        # One str.format call per render: the text parts become the format string (braces
        # doubled), each interpolation a `{}` slot.
        layout = "".join(
            part.replace("{", "{{").replace("}", "}}") if isinstance(part, str) else "{}"
            for part in template.parts
        )
        getters = tuple(
            self.compile(part).fn for part in template.parts if not isinstance(part, str)
        )

        def render(env: Env) -> str:
            values = []
            for get in getters:
                try:
                    value = get(env)
                except EvaluationError:
                    # A reason is for people; an absent value must not make the rule fail.
                    values.append("<missing>")
                    continue
                short_text = type(value) is str and len(value) <= MAX_RENDERED
                values.append(value if short_text else render_text(value))
            return layout.format(*values)

        return render

    # --- expressions ---------------------------------------------------------------------------

    def compile(self, expr: ast.Expr) -> Compiled:
        # A table lookup rather than `match`: loading 10,000 rules compiles ~150,000 nodes.
        method: Callable[[Compiler, Any], Compiled] = _COMPILERS[type(expr)]
        return method(self, expr)

    def literal(self, expr: ast.Literal) -> Compiled:
        return constant(expr.value)

    def fold(self, compiled: Compiled, span: Span) -> Compiled:
        """Evaluate a closure whose inputs are all constant, once, at load time."""
        try:
            return constant(compiled.fn(_FOLDING_ENV))
        except MissingValueError:
            # `[1, 2][5] ?? 0` is fine: an absent value is for `??` to catch at run time.
            return compiled
        except EvaluationError as error:
            where = error.span if error.span.line else span
            self.diagnostics.append(Diagnostic("constant", error.message, where))
            return compiled

    def list_expr(self, expr: ast.ListExpr) -> Compiled:
        compiled = [self.compile(item) for item in expr.items]
        if all(item.constant for item in compiled):
            return constant(tuple(item.value for item in compiled))
        fns = tuple(item.fn for item in compiled)
        return Compiled(lambda env: [fn(env) for fn in fns])

    def name(self, expr: ast.Name) -> Compiled:
        name = expr.name
        if name in self.consts:
            return self.consts[name]
        if name == "data":
            return constant(self.data)
        if name == "subject":
            return Compiled(lambda env: env.subject)
        if name == "resource":
            return Compiled(lambda env: env.resource)
        if name == "context":
            return Compiled(lambda env: env.context)
        if name == "action":
            return Compiled(lambda env: env.action)
        if name == "caller":
            return Compiled(lambda env: env.caller)
        return Compiled(lambda env: env.variables[name])  # a quantifier variable

    def attr(self, expr: ast.Attr) -> Compiled:
        inner = expr.obj
        if isinstance(inner, ast.Name) and inner.name in ast.RECORD_ROOTS:
            return Compiled(_root_attribute(inner.name, expr.name, expr.span))
        obj = self.compile(inner)
        obj_text = describe(inner)
        key, text, span = expr.name, f"{obj_text}.{expr.name}", expr.span
        get = obj.fn

        def read(env: Env) -> Any:
            record = get(env)
            if type(record) is not dict:
                raise TypeMismatchError(
                    f"`{obj_text}` is {type_name(record)}, not a record, so it has no `{key}`",
                    span,
                )
            try:
                return record[key]
            except KeyError:
                raise MissingValueError(f"`{text}` is missing", span) from None

        compiled = Compiled(read)
        return self.fold(compiled, span) if obj.constant else compiled

    def index(self, expr: ast.Index) -> Compiled:
        obj, key = self.compile(expr.obj), self.compile(expr.key)
        get_obj, get_key, span, text = obj.fn, key.fn, expr.span, describe(expr.obj)

        def read(env: Env) -> Any:
            container, item = get_obj(env), get_key(env)
            kind = type(container)
            if kind is dict:
                if type(item) is not str:
                    raise TypeMismatchError(
                        f"a record key must be a string, not {type_name(item)}", span
                    )
                try:
                    return container[item]
                except KeyError:
                    raise MissingValueError(f"`{text}` has no key {item!r}", span) from None
            if kind is list or kind is tuple:
                if type(item) is not int:
                    raise TypeMismatchError(
                        f"a list index must be an integer, not {type_name(item)}", span
                    )
                if not 0 <= item < len(container):
                    raise MissingValueError(f"`{text}` has no item {item}", span)
                return container[item]
            raise TypeMismatchError(
                f"`{text}` is {type_name(container)}; it cannot be indexed", span
            )

        compiled = Compiled(read)
        return self.fold(compiled, span) if obj.constant and key.constant else compiled

    def call(self, expr: ast.Call) -> Compiled:
        implementation = IMPLEMENTATIONS[expr.function]
        args = [self.compile(arg) for arg in expr.args]
        fns = tuple(arg.fn for arg in args)
        span = expr.span

        def located(error: EvaluationError) -> EvaluationError:
            if error.span.line == 0:
                error.span = span
            return error

        if not fns:

            def call(env: Env) -> Any:
                return implementation(env.now)
        elif len(fns) == 1:
            only = fns[0]

            def call(env: Env) -> Any:
                try:
                    return implementation(env.now, only(env))
                except EvaluationError as error:
                    raise located(error) from None
        else:

            def call(env: Env) -> Any:
                try:
                    return implementation(env.now, *[fn(env) for fn in fns])
                except EvaluationError as error:
                    raise located(error) from None

        compiled = Compiled(call)
        if not SIGNATURES[expr.function].reads_clock and all(arg.constant for arg in args):
            return self.fold(compiled, span)
        return compiled

    def not_(self, expr: ast.Not) -> Compiled:
        operand, span = self.compile(expr.operand).fn, expr.span

        def negation(env: Env) -> bool:
            result = operand(env)
            if result is True:
                return False
            if result is False:
                return True
            raise TypeMismatchError(f"`not` needs a boolean, not {type_name(result)}", span)

        return Compiled(negation)

    def negate(self, expr: ast.Negate) -> Compiled:
        operand, span = self.compile(expr.operand).fn, expr.span

        def minus(env: Env) -> Any:
            value = operand(env)
            kind = type(value)
            if kind is int:
                return _checked_int(-value, span)
            if kind is Decimal or kind is timedelta:
                return -value
            raise TypeMismatchError(f"`-` needs a number or duration, not {type_name(value)}", span)

        return Compiled(minus)

    def bool_op(self, expr: ast.BoolOp) -> Compiled:
        fns = tuple(self.compile(operand).fn for operand in expr.operands)
        spans = tuple(operand.span for operand in expr.operands)
        op = expr.op
        # `and` stops at the first false operand, `or` at the first true one.
        stop, go_on = (False, True) if op == "and" else (True, False)
        stopped: bool = stop  # a second name: `result is stop` would narrow `stop` to Any

        def combine(env: Env) -> bool:
            for position, fn in enumerate(fns):
                result = fn(env)
                if result is stop:
                    return stopped
                if result is not go_on:
                    raise TypeMismatchError(
                        f"`{op}` needs booleans, not {type_name(result)}", spans[position]
                    )
            return go_on

        return Compiled(combine)

    def compare(self, expr: ast.Compare) -> Compiled:
        left, right = self.compile(expr.left), self.compile(expr.right)
        op, span = expr.op, expr.span
        if op in ("==", "!="):
            test = _equality(left, right)
        elif op in _ORDER:
            test = _ordering(op, left, right, span)
        elif op in ("in", "not in"):
            test = _membership(left, right, span)
        elif op == "contains":
            test = _contains(left, right, span)
        elif op in ("starts with", "ends with"):
            test = _affix(op, left, right, span)
        elif op == "matches":
            test = _matches(left, right, span)
        else:  # pragma: no cover - the grammar has no other comparison
            raise TypeError(f"unknown comparison {op}")
        if op in ("!=", "not in"):
            positive = test

            def negative(env: Env) -> bool:
                return not positive(env)

            test = negative
        compiled = Compiled(test)
        return self.fold(compiled, span) if left.constant and right.constant else compiled

    def arith(self, expr: ast.Arith) -> Compiled:
        left, right = self.compile(expr.left), self.compile(expr.right)
        get_left, get_right, op, span = left.fn, right.fn, expr.op, expr.span

        def compute(env: Env) -> Any:
            a, b = get_left(env), get_right(env)
            if type(a) is int and type(b) is int and op != "/":
                if op == "%" and b == 0:
                    raise InvalidValueError("division by zero", span)
                return _checked_int(_INT_OPS[op](a, b), span)
            return arithmetic(op, a, b, span)

        compiled = Compiled(compute)
        return self.fold(compiled, span) if left.constant and right.constant else compiled

    def has(self, expr: ast.Has) -> Compiled:
        obj, path, span = self.compile(expr.obj).fn, expr.path, expr.span
        text = describe(expr.obj)

        def present(env: Env) -> bool:
            value = obj(env)
            if type(value) is not dict:
                raise TypeMismatchError(
                    f"`has` needs a record, but `{text}` is {type_name(value)}", span
                )
            for key in path:
                if type(value) is not dict or key not in value:
                    return False
                value = value[key]
            return True

        root = expr.obj.name if isinstance(expr.obj, ast.Name) else ""
        if len(path) == 1 and root in ast.RECORD_ROOTS:
            # The common `subject has tier`: a root is always a record.
            key, get_root = path[0], operator.attrgetter(root)
            return Compiled(lambda env: key in get_root(env))
        return Compiled(present)

    def default(self, expr: ast.Default) -> Compiled:
        fallback = self.compile(expr.fallback).fn
        inner = expr.value
        if (
            isinstance(inner, ast.Attr)
            and isinstance(inner.obj, ast.Name)
            and inner.obj.name in ast.RECORD_ROOTS
        ):
            # `subject.tier ?? "free"`, the common case: a lookup, not a raised exception.
            key, get_root = inner.name, operator.attrgetter(inner.obj.name)
            absent = object()

            def attribute_or_default(env: Env) -> Any:
                found = get_root(env).get(key, absent)
                return fallback(env) if found is absent else found

            return Compiled(attribute_or_default)
        value = self.compile(inner).fn

        def with_default(env: Env) -> Any:
            try:
                return value(env)
            except MissingValueError:
                return fallback(env)

        return Compiled(with_default)

    def quantifier(self, expr: ast.Quantifier) -> Compiled:
        collection, body = self.compile(expr.collection).fn, self.compile(expr.body).fn
        name, kind, span = expr.var, expr.kind, expr.span
        text = describe(expr.collection)
        stop = kind == "any"  # `any` stops at the first true body, `all` at the first false one
        stopped: bool = stop  # a second name: `result is stop` would narrow `stop` to Any
        unset = object()

        def quantify(env: Env) -> bool:
            items = collection(env)
            if type(items) is not list and type(items) is not tuple:
                raise TypeMismatchError(
                    f"`{kind}` needs a list, but `{text}` is {type_name(items)}", span
                )
            variables = env.variables
            saved = variables.get(name, unset)
            try:
                for item in items:
                    variables[name] = item
                    result = body(env)
                    if result is stop:
                        return stopped
                    if result is not (not stop):
                        raise TypeMismatchError(
                            f"the body of `{kind}` needs a boolean, not {type_name(result)}", span
                        )
                return not stop
            finally:
                if saved is unset:
                    variables.pop(name, None)
                else:
                    variables[name] = saved

        return Compiled(quantify)


_COMPILERS: dict[type, Callable[[Compiler, Any], Compiled]] = {
    ast.Literal: Compiler.literal,
    ast.ListExpr: Compiler.list_expr,
    ast.Name: Compiler.name,
    ast.Attr: Compiler.attr,
    ast.Index: Compiler.index,
    ast.Call: Compiler.call,
    ast.Not: Compiler.not_,
    ast.Negate: Compiler.negate,
    ast.BoolOp: Compiler.bool_op,
    ast.Compare: Compiler.compare,
    ast.Arith: Compiler.arith,
    ast.Has: Compiler.has,
    ast.Default: Compiler.default,
    ast.Quantifier: Compiler.quantifier,
}


# --- specialised closures ------------------------------------------------------------------


def _root_attribute(root: str, key: str, span: Span) -> Closure:
    """`subject.age` and friends: the hottest closure of all, so one per root."""
    message = f"`{root}.{key}` is missing"
    if root == "subject":

        def read(env: Env) -> Any:
            try:
                return env.subject[key]
            except KeyError:
                raise MissingValueError(message, span) from None
    elif root == "resource":

        def read(env: Env) -> Any:
            try:
                return env.resource[key]
            except KeyError:
                raise MissingValueError(message, span) from None
    elif root == "caller":

        def read(env: Env) -> Any:
            try:
                return env.caller[key]
            except KeyError:
                raise MissingValueError(message, span) from None
    else:

        def read(env: Env) -> Any:
            try:
                return env.context[key]
            except KeyError:
                raise MissingValueError(message, span) from None

    return read


def _equality(left: Compiled, right: Compiled) -> Closure:
    if left.constant and not right.constant:
        left, right = right, left
    get = left.fn
    if right.constant:
        value = right.value
        kind = type(value)
        if kind is str:
            # A str never equals a value of another type, so Python's == is already strict.
            return lambda env: get(env) == value
        if kind is bool:
            return lambda env: get(env) is value
        if kind is int:

            def equals_int(env: Env) -> bool:
                actual = get(env)
                return actual == value and type(actual) is not bool

            return equals_int
    get_right = right.fn
    return lambda env: equal(get(env), get_right(env))


def _ordering(op: str, left: Compiled, right: Compiled, span: Span) -> Closure:
    compare = _ORDER[op]
    get_left, get_right = left.fn, right.fn
    if right.constant and type(right.value) in _NUMBERS:
        limit = right.value

        def against_number(env: Env) -> bool:
            value = get_left(env)
            if type(value) is int or type(value) is Decimal:
                return compare(value, limit)  # type: ignore[no-any-return]
            raise TypeMismatchError(f"`{op}` needs a number, not {type_name(value)}", span)

        return against_number

    def general(env: Env) -> bool:
        a, b = get_left(env), get_right(env)
        if _comparable(a, b):
            return compare(a, b)  # type: ignore[no-any-return]
        raise TypeMismatchError(f"`{op}` cannot compare {type_name(a)} with {type_name(b)}", span)

    return general


def _comparable(a: object, b: object) -> bool:
    ta, tb = type(a), type(b)
    if ta in _NUMBERS and tb in _NUMBERS:
        return True
    return ta is tb and ta in (date, datetime, timedelta)


def _membership(element: Compiled, collection: Compiled, span: Span) -> Closure:
    """`x in collection`: a list (strict equality, or CIDR containment for IPs), a record's
    keys, or a CIDR range."""
    get = element.fn
    if collection.constant:
        items = collection.value
        kind = type(items)
        if kind is tuple or kind is list:
            if all(type(item) is str for item in items):
                strings = frozenset(items)

                def in_strings(env: Env) -> bool:
                    value = get(env)
                    # A non-string never equals a string: strict equality, as everywhere.
                    return type(value) is str and value in strings

                return in_strings
            return lambda env: _in_list(get(env), items, span)
        if kind is dict:
            keys = items
            return lambda env: _in_record(get(env), keys, span)
        if kind in _NETWORKS:
            network = items
            return lambda env: _in_network(get(env), network, span)
    get_collection = collection.fn
    return lambda env: member(get(env), get_collection(env), span)


def member(value: object, collection: object, span: Span) -> bool:
    kind = type(collection)
    if kind is list or kind is tuple:
        return _in_list(value, collection, span)  # type: ignore[arg-type]
    if kind is dict:
        return _in_record(value, collection, span)  # type: ignore[arg-type]
    if kind in _NETWORKS:
        return _in_network(value, collection, span)  # type: ignore[arg-type]
    raise TypeMismatchError(
        f"`in` needs a list, record or CIDR range, not {type_name(collection)}", span
    )


def _in_list(value: object, items: list[Any] | tuple[Any, ...], span: Span) -> bool:
    networks = []
    for item in items:
        if type(item) in _NETWORKS:
            networks.append(item)
        elif equal(value, item):
            return True
    if networks and (type(value) in _IPS or type(value) is str):
        # Text that is not an IP address raises here rather than being "not in the range":
        # a forbid on a list of ranges must not be dodged by sending garbage.
        return any(_in_network(value, network, span) for network in networks)
    return False


def _in_record(value: object, record: Mapping[str, Any], span: Span) -> bool:
    if type(value) is not str:
        raise TypeMismatchError(f"record keys are strings; `in` got {type_name(value)}", span)
    return value in record


def _in_network(value: object, network: IPv4Network | IPv6Network, span: Span) -> bool:
    if type(value) is str:
        try:
            value = literals.parse_ip(value)
        except ValueError as error:
            raise InvalidValueError(str(error), span) from None
    if not isinstance(value, IPv4Address | IPv6Address):
        raise TypeMismatchError(f"`in` a CIDR range needs an IP, not {type_name(value)}", span)
    # An IPv4 address is simply not inside an IPv6 range (ipaddress would raise instead).
    return value.version == network.version and value in network


def _contains(container: Compiled, item: Compiled, span: Span) -> Closure:
    get_container, get_item = container.fn, item.fn

    def contains(env: Env) -> bool:
        whole, part = get_container(env), get_item(env)
        if type(whole) is str:
            if type(part) is not str:
                raise TypeMismatchError(
                    f"a string can only contain text, not {type_name(part)}", span
                )
            return part in whole
        return member(part, whole, span)

    return contains


def _affix(op: str, left: Compiled, right: Compiled, span: Span) -> Closure:
    get_left, get_right = left.fn, right.fn
    method = str.startswith if op == "starts with" else str.endswith

    def test(env: Env) -> bool:
        text, affix = get_left(env), get_right(env)
        if type(text) is str and type(affix) is str:
            return method(text, affix)
        raise TypeMismatchError(
            f"`{op}` needs two strings, not {type_name(text)} and {type_name(affix)}", span
        )

    return test


def _matches(left: Compiled, right: Compiled, span: Span) -> Closure:
    pattern: Any = literals.compile_pattern(right.value)  # the checker made it a constant
    fullmatch = pattern.fullmatch
    get = left.fn

    def test(env: Env) -> bool:
        text = get(env)
        if type(text) is not str:
            raise TypeMismatchError(f"`matches` needs a string, not {type_name(text)}", span)
        return fullmatch(text) is not None

    return test


# --- arithmetic ----------------------------------------------------------------------------

_INT_OPS: dict[str, Callable[[int, int], int]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "%": operator.mod,  # the result has the sign of the divisor: -7 % 3 == 2
}


def _checked_int(value: int, span: Span) -> int:
    if INT_MIN <= value <= INT_MAX:
        return value
    raise InvalidValueError("integer overflow (integers are 64-bit)", span)


def arithmetic(op: str, a: Any, b: Any, span: Span) -> Any:
    """Every arithmetic case but int (op) int, which the caller handles inline."""
    ta, tb = type(a), type(b)
    try:
        if ta in _NUMBERS and tb in _NUMBERS:
            if op == "/":
                return Decimal(a) / Decimal(b)
            if op == "%":
                if ta is int and tb is int:
                    return a % b
                raise TypeMismatchError("`%` needs two integers", span)
            return _INT_OPS[op](a, b)
        result = _temporal(op, a, b)
        if result is not None:
            return result
    except (ZeroDivisionError, DivisionByZero, InvalidOperation):
        raise InvalidValueError("division by zero", span) from None
    except OverflowError:
        raise InvalidValueError("date or duration out of range", span) from None
    except InvalidValueError as error:
        error.span = span
        raise
    raise TypeMismatchError(f"`{op}` does not apply to {type_name(a)} and {type_name(b)}", span)


def _temporal(op: str, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
    if op == "+":
        if (ta, tb) in ((datetime, timedelta), (date, timedelta), (timedelta, timedelta)):
            return a + b
        if (ta, tb) == (timedelta, datetime):
            return b + a
    elif op == "-":
        if ta is tb and ta in (datetime, date, timedelta):
            return a - b
        if tb is timedelta and ta in (datetime, date):
            return a - b
    elif op == "*":
        if ta is timedelta and tb is int:
            return a * b
        if ta is int and tb is timedelta:
            return b * a
    return None

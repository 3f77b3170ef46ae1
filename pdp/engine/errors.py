"""Evaluation errors: why a rule's condition could not be evaluated for one request.

A permit whose condition raises one of these does not match; a forbid whose condition raises one
denies (fail closed). They are raised on the hot path only when something is wrong, and carry the
span of the sub-expression that failed so the decision can point at it.
"""

from __future__ import annotations

from pdp.language.source import UNKNOWN_SPAN, Span


class EvaluationError(Exception):
    def __init__(self, message: str, span: Span = UNKNOWN_SPAN) -> None:
        super().__init__(message)
        self.message = message
        self.span = span


class MissingValueError(EvaluationError):
    """An attribute, key or list item that the request does not have. `??` catches only this."""


class TypeMismatchError(EvaluationError):
    """A value of the wrong type for an operator or function."""


class InvalidValueError(EvaluationError):
    """A value of the right type that cannot be used: a bad IP string, an unknown time zone,
    integer overflow, division by zero."""

"""Hyperparameter constraints as data (after scikit-learn's ``_parameter_constraints``).

Every model declares, once, what each constructor argument may be::

    _parameter_constraints = {"factors": [Integer(1)], "l2": [Real(0)],
                              "solver": [Options("cholesky", "cg")],
                              "max_history": [Integer(1), None]}

A value is valid when it satisfies any constraint of its list (``None`` in the list admits
``None``). :func:`validate_params` checks them all at ``fit`` (and at ``load``) and raises a
``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong value) naming the model,
the parameter and what it may be.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np


class Constraint:
    """One admissible set of values; ``kind_ok`` decides TypeError versus ValueError."""

    def kind_ok(self, value) -> bool:
        raise NotImplementedError

    def value_ok(self, value) -> bool:
        return True

    def __str__(self) -> str:
        raise NotImplementedError


class _Interval(Constraint):
    def __init__(self, low: float | None = None, high: float | None = None, *,
                 low_open: bool = False, high_open: bool = False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def value_ok(self, value) -> bool:
        if not np.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return not (self.high is not None
                    and (value > self.high or (self.high_open and value == self.high)))

    def _range(self) -> str:
        if self.low is None and self.high is None:
            return "finite"
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high}"
        return (f"in {'(' if self.low_open else '['}{self.low}, {self.high}"
                f"{')' if self.high_open else ']'}")


class Integer(_Interval):
    """An int (not a bool) within the bounds."""

    def kind_ok(self, value) -> bool:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)

    def __str__(self) -> str:
        return f"an int {self._range()}"


class Real(_Interval):
    """A finite int or float within the bounds (NaN and infinities never pass)."""

    def kind_ok(self, value) -> bool:
        return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)

    def __str__(self) -> str:
        return f"a finite number {self._range()}"


class Options(Constraint):
    """One of the listed values, compared with its type (``1`` is not ``True``)."""

    def __init__(self, *values):
        self.values = values

    def kind_ok(self, value) -> bool:
        return any(type(value) is type(v) for v in self.values)

    def value_ok(self, value) -> bool:
        return any(type(value) is type(v) and value == v for v in self.values)

    def __str__(self) -> str:
        return f"one of {', '.join(map(repr, self.values))}"


class Boolean(Constraint):
    def kind_ok(self, value) -> bool:
        return isinstance(value, bool | np.bool_)

    def __str__(self) -> str:
        return "a bool"


class Satisfies(Constraint):
    """Anything ``test`` accepts (for structured values: schedules, samplers, seeds); with
    ``kind``, values of another type are a ``TypeError`` and rejected ones a ``ValueError``."""

    def __init__(self, test: Callable[[Any], bool], description: str, kind: type | None = None):
        self.test, self.description, self.kind = test, description, kind

    def kind_ok(self, value) -> bool:
        return isinstance(value, self.kind) if self.kind else bool(self.test(value))

    def value_ok(self, value) -> bool:
        return bool(self.test(value)) if self.kind else True

    def __str__(self) -> str:
        return self.description


def _is_seed(value) -> bool:
    if isinstance(value, np.random.Generator):
        return True
    return (isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)
            and 0 <= value < 2**63)


#: ``random_state``: None, a nonnegative int seed or a ``numpy.random.Generator``.
RANDOM_STATE = [None, Satisfies(_is_seed, "an int seed >= 0 or a numpy.random.Generator")]
#: ``num_threads``: 0 (all cores) or a positive count.
NUM_THREADS = [Integer(0)]
BOOLEAN = [Boolean()]


def validate_params(owner: str, params: dict[str, Any],
                    constraints: dict[str, list]) -> None:
    """Check every parameter against its constraints (see the module docstring)."""
    for name, value in params.items():
        allowed = constraints.get(name)
        if allowed is None:
            raise TypeError(f"{owner} declares no constraint for parameter {name!r}")
        if value is None and None in allowed:
            continue
        tests = [c for c in allowed if c is not None]
        if any(c.kind_ok(value) and c.value_ok(value) for c in tests):
            continue
        what = " or ".join([str(c) for c in tests] + (["None"] if None in allowed else []))
        error = ValueError if any(c.kind_ok(value) for c in tests) else TypeError
        raise error(f"{owner}: parameter {name}={value!r} is invalid; it must be {what}")


__all__ = ["BOOLEAN", "NUM_THREADS", "RANDOM_STATE", "Boolean", "Constraint", "Integer",
           "Options", "Real", "Satisfies", "validate_params"]

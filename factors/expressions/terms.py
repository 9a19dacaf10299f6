"""The parsed form of a custom-factor expression: the operator table of
ANALYTICS.md section 9, the :class:`Term` tree the parser builds, and the errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

from factorcast.factors.expressions.bars import INPUTS

__all__ = [
    "MAX_WINDOW",
    "OPERATORS",
    "CustomFactorError",
    "ExpressionError",
    "Kind",
    "OpSpec",
    "Term",
]

#: The longest window accepted (a ring of this many bars per symbol and operator).
MAX_WINDOW: Final = 100_000

Kind = Literal["input", "number", "arithmetic", "elementwise", "time_series", "cross_sectional"]


class CustomFactorError(ValueError):
    """A custom factor that cannot be built; the message is one line naming it."""


class ExpressionError(CustomFactorError):
    """A bad expression: ``factor`` and the 1-based ``column`` (None when the
    problem is not at a place in the text, as a taken name)."""

    def __init__(self, factor: str, column: int | None, problem: str) -> None:
        self.factor = factor
        self.column = column
        self.problem = problem
        where = f", column {column}" if column is not None else ""
        super().__init__(f"factor {factor!r}{where}: {problem}")


@dataclass(frozen=True, slots=True)
class OpSpec:
    """An operator: how many expression arguments, whether a window follows them,
    the least window, and an optional trailing number with its default."""

    name: str
    kind: Kind
    arity: int
    window: bool = False
    min_window: int = 1
    optional: tuple[str, float] | None = None

    def signature(self) -> str:
        names = ["x", "y"][: self.arity] if self.name != "signedpower" else ["x", "a"]
        if self.window:
            names.append("d")
        if self.optional:
            names.append(f"{self.optional[0]}={self.optional[1]:g}")
        return f"{self.name}({', '.join(names)})"


def _ops(*specs: OpSpec) -> dict[str, OpSpec]:
    return {s.name: s for s in specs}


#: The operators of ANALYTICS.md section 9.
OPERATORS: Final[dict[str, OpSpec]] = _ops(
    OpSpec("abs", "elementwise", 1),
    OpSpec("log", "elementwise", 1),
    OpSpec("sign", "elementwise", 1),
    OpSpec("sqrt", "elementwise", 1),
    OpSpec("signedpower", "elementwise", 2),
    OpSpec("max", "elementwise", 2),
    OpSpec("min", "elementwise", 2),
    OpSpec("delay", "time_series", 1, window=True),
    OpSpec("delta", "time_series", 1, window=True),
    OpSpec("ts_sum", "time_series", 1, window=True),
    OpSpec("ts_mean", "time_series", 1, window=True),
    OpSpec("ts_std", "time_series", 1, window=True, min_window=2),
    OpSpec("ts_min", "time_series", 1, window=True),
    OpSpec("ts_max", "time_series", 1, window=True),
    OpSpec("ts_rank", "time_series", 1, window=True),
    OpSpec("correlation", "time_series", 2, window=True, min_window=2),
    OpSpec("covariance", "time_series", 2, window=True, min_window=2),
    OpSpec("decay_linear", "time_series", 1, window=True),
    OpSpec("rank", "cross_sectional", 1),
    OpSpec("scale", "cross_sectional", 1, optional=("a", 1.0)),
    OpSpec("zscore", "cross_sectional", 1),
    OpSpec("demean", "cross_sectional", 1),
)


_PRECEDENCE: Final = {"+": 1, "-": 1, "*": 2, "/": 2, "neg": 3, "^": 4}


@dataclass(frozen=True, slots=True)
class Term:
    """A parsed expression: ``op`` is an input name, ``"number"``, one of ``+ - * /
    ^``, ``"neg"`` or an operator name.  ``window`` is the ``d`` of a time-series
    operator, ``value`` a number's value or ``scale``'s ``a``.  ``column`` is
    where it starts in the text (1-based); it takes no part in equality."""

    op: str
    args: tuple[Term, ...] = ()
    window: int | None = None
    value: float | None = None
    column: int = field(default=0, compare=False)

    @property
    def kind(self) -> Kind:
        if self.op in INPUTS:
            return "input"
        if self.op == "number":
            return "number"
        if self.op in OPERATORS:
            return OPERATORS[self.op].kind
        return "arithmetic"

    @property
    def lookback(self) -> int:
        """Bars of history before the first bar that can have a finite value: 0 for
        the bar fields, 1 for ``returns``; ``delay`` and ``delta`` add ``d``, the other
        time-series operators ``d - 1`` to the longest lookback of their arguments."""
        if not self.args:
            return 1 if self.op == "returns" else 0
        inner = max(a.lookback for a in self.args)
        if self.window is None:
            return inner
        return inner + self.window - (0 if self.op in ("delay", "delta") else 1)

    def inputs(self) -> frozenset[str]:
        """The input names this expression reads."""
        if self.op in INPUTS:
            return frozenset((self.op,))
        return frozenset().union(*(a.inputs() for a in self.args))

    def __str__(self) -> str:
        """Canonical text (parentheses only where needed): equal terms, equal text."""
        if self.op == "number":
            return _number(self.value)
        if not self.args:
            return self.op
        if self.op in _PRECEDENCE:
            return self._infix()
        parts = [str(a) for a in self.args]
        if self.window is not None:
            parts.append(str(self.window))
        if self.op == "scale" and self.value != 1.0:
            parts.append(_number(self.value))
        return f"{self.op}({', '.join(parts)})"

    def _infix(self) -> str:
        mine = _PRECEDENCE[self.op]

        def wrap(t: Term, right: bool) -> str:
            theirs = _PRECEDENCE.get(t.op, 9)
            if t.op == "number" and t.value is not None and t.value < 0:
                theirs = _PRECEDENCE["neg"]
            # left-assoc + - * /: parenthesize an equal operator on the right;
            # right-assoc ^: on the left; a negation as a power's base always
            tight = theirs < mine or (theirs == mine and right != (self.op == "^"))
            return f"({t})" if tight else str(t)

        if self.op == "neg":
            return f"-{wrap(self.args[0], True)}"
        left, right = self.args
        return f"{wrap(left, False)} {self.op} {wrap(right, True)}"


def _number(value: float | None) -> str:
    assert value is not None
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)

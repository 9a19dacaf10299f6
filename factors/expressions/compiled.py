"""A compiled expression: the parsed terms as a program of incremental nodes.

``Expression.compile(name, text)`` parses and checks the text (nothing runs);
the nodes are built at the first :meth:`Expression.update`, when the number of
symbols is known, and then each bar costs O(symbols x operators) (``ts_min``,
``ts_max``, ``ts_rank``: x their window).  Equal subexpressions are one node
(``close`` read twice, ``delay(close, 1)`` inside ``returns`` and written out).
Offline evaluation over a panel is the same update in a loop
(:meth:`Expression.evaluate`, :func:`evaluate_panel`), so live and offline agree
by construction.

The value of a symbol without a real bar at the grid time is NaN: it is not in
the cross-section (FACTORS.md, Inputs), even where a delayed input has a value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.expressions.bars import (
    BAR_FIELDS,
    BarLike,
    bars_of_panel,
    raw_inputs,
)
from factorcast.factors.expressions.grammar import check_name, parse
from factorcast.factors.expressions.moments import CovarianceWindow, StdWindow
from factorcast.factors.expressions.nodes import (
    BINARY,
    CROSS_SECTIONAL,
    FINITE,
    UNARY,
    finite_or_nan,
)
from factorcast.factors.expressions.order import MaxWindow, MinWindow, RankWindow
from factorcast.factors.expressions.terms import Term
from factorcast.factors.expressions.windows import (
    DecayLinearWindow,
    DelayWindow,
    SumWindow,
    Window,
)
from factorcast.factors.rolling import UndoExhausted

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["Expression", "evaluate_panel"]

#: ``(values so far, inputs of the bar, present) -> this node's values``
_Step = Callable[[list[FloatArray], dict[str, FloatArray], BoolArray], FloatArray]

_WINDOWS: Final[dict[str, Callable[[int, int], Window]]] = {
    "delay": DelayWindow,
    "ts_sum": SumWindow,
    "ts_mean": lambda n, d: SumWindow(n, d, mean=True),
    "ts_std": StdWindow,
    "ts_min": MinWindow,
    "ts_max": MaxWindow,
    "ts_rank": RankWindow,
    "decay_linear": DecayLinearWindow,
    "covariance": CovarianceWindow,
    "correlation": lambda n, d: CovarianceWindow(n, d, correlation=True),
}
_ONE = Term("number", value=1.0)
_CLOSE = Term("close")
#: Inputs and operators defined by other terms (ANALYTICS.md sections 0 and 9).
_RETURNS = Term("-", (Term("/", (_CLOSE, Term("delay", (_CLOSE,), window=1))), _ONE))
_VWAP = Term("/", (Term("quote_volume"), Term("volume")))
_SPELLED_OUT: Final = {"returns": "close / delay(close, 1) - 1", "vwap": "quote_volume / volume"}


def _expand(t: Term) -> Term:
    """``t`` in primitive nodes: ``returns``, ``vwap`` and ``delta`` spelled out."""
    if t.op == "returns":
        return _RETURNS
    if t.op == "vwap":
        return _VWAP
    args = tuple(_expand(a) for a in t.args)
    if t.op == "delta":
        (x,) = args
        return Term("-", (x, Term("delay", (x,), window=t.window)))
    return Term(t.op, args, window=t.window, value=t.value)


class _Program:
    """The nodes of one expression over ``n`` symbols, in evaluation order."""

    def __init__(self, term: Term, n: int) -> None:
        self.n = n
        self.steps: list[tuple[_Step, tuple[int, ...]]] = []
        self.windows: list[Window] = []
        self._index: dict[Term, int] = {}
        self.fields: tuple[str, ...] = ()
        self.output = self._visit(_expand(term))

    def _visit(self, t: Term) -> int:
        if t in self._index:
            return self._index[t]
        args = tuple(self._visit(a) for a in t.args)
        self.steps.append((self._step(t), args))
        self._index[t] = len(self.steps) - 1
        return len(self.steps) - 1

    def _step(self, t: Term) -> _Step:
        step = self._raw_step(t)
        if t.op in FINITE or t.op in BAR_FIELDS or t.op == "number" or _shrinks(t):
            return step
        return lambda v, inputs, p: finite_or_nan(step(v, inputs, p))  # x / 0, overflow

    def _raw_step(self, t: Term) -> _Step:
        op = t.op
        if op in BAR_FIELDS:
            self.fields = (*self.fields, op)
            return lambda v, inputs, p: inputs[op]
        if op == "number":
            const = np.full(self.n, t.value)
            const.flags.writeable = False
            return lambda v, inputs, p: const
        if op in UNARY:
            f1 = UNARY[op]
            return lambda v, inputs, p: f1(v[0])
        if op in BINARY:
            f2 = BINARY[op]
            left, right = (a.value if a.op == "number" else None for a in t.args)
            if right is not None:  # a number: a scalar, not an array of it
                return lambda v, inputs, p: f2(v[0], right)
            if left is not None:
                return lambda v, inputs, p: f2(left, v[1])
            return lambda v, inputs, p: f2(v[0], v[1])
        if op in CROSS_SECTIONAL:
            fx = CROSS_SECTIONAL[op]
            a = 1.0 if t.value is None else t.value
            return lambda v, inputs, p: fx(v[0], p & np.isfinite(v[0]), a)
        assert t.window is not None, op
        window = _WINDOWS[op](self.n, t.window)
        self.windows.append(window)
        return lambda v, inputs, p: window.push(*v)

    def run(self, bar: BarLike) -> FloatArray:
        present = np.asarray(bar.present, dtype=bool)
        if present.shape != (self.n,):
            raise ValueError(f"a bar of {present.shape} symbols, the expression has {self.n}")
        inputs = raw_inputs(bar, self.fields)
        values: list[FloatArray] = []
        for step, args in self.steps:
            values.append(step([values[i] for i in args], inputs, present))
        out: FloatArray = np.where(present, values[self.output], np.nan)
        return out


class Expression:
    """A custom factor of mode ``expression``: ``lookback``, ``update(bar)`` (the
    raw values of one grid step), undo of the last steps, and :meth:`tree`."""

    def __init__(self, name: str, text: str, term: Term) -> None:
        self.name = name
        self.text = text
        self.term = term
        #: Bars of history before the first bar that can have a finite value.
        self.lookback: int = term.lookback
        self._program: _Program | None = None
        self._depth = 0
        self._undoable = 0
        self.steps = 0

    @classmethod
    def compile(cls, name: str, text: str, taken: Iterable[str] = ()) -> Expression:
        """Parse and check ``text`` as factor ``name``; ``taken``: the names already
        in the factor registry.  Raises :class:`ExpressionError` (one line)."""
        check_name(name, taken)
        return cls(name, text, parse(name, text))

    def fresh(self) -> Expression:
        """The same expression with no state (no bar seen)."""
        return Expression(self.name, self.text, self.term)

    @property
    def inputs(self) -> frozenset[str]:
        """The input names the text reads."""
        return self.term.inputs()

    @property
    def n_symbols(self) -> int | None:
        """The universe size, fixed by the first update (None before it)."""
        return None if self._program is None else self._program.n

    def __repr__(self) -> str:
        return f"Expression({self.name!r}, {str(self.term)!r}, lookback={self.lookback})"

    # -- one grid step -----------------------------------------------------------
    def update(self, bar: BarLike) -> FloatArray:
        """Advance one grid step; the raw values ``(n,)``, NaN where none."""
        with np.errstate(all="ignore"):
            return self.update_unguarded(bar)

    def update_unguarded(self, bar: BarLike) -> FloatArray:
        """:meth:`update` for a caller already under ``np.errstate(all="ignore")`` (the
        factor model: setting it costs more than a node)."""
        if self._program is None:
            self._program = _Program(self.term, len(np.asarray(bar.present)))
            for w in self._program.windows:
                w.keep_undo(self._depth)
        out = self._program.run(bar)
        self.steps += 1
        if self._undoable < self._depth:
            self._undoable += 1
        return out

    def evaluate(self, bars: Iterable[BarLike]) -> FloatArray:
        """The raw values ``(T, n)`` of a fresh copy fed ``bars`` in order (this
        expression's own state is untouched)."""
        fresh = self.fresh()
        rows = [fresh.update(bar) for bar in bars]
        return np.array(rows) if rows else np.zeros((0, 0))

    # -- taking steps back ---------------------------------------------------------
    def keep_undo(self, depth: int) -> None:
        """From now on keep what it takes to undo each of the last ``depth`` updates
        (two ``(symbols, columns)`` copies per time-series node and update)."""
        if depth < 0:
            raise ValueError("undo depth must be >= 0")
        self._depth = depth
        self._undoable = 0
        if self._program is not None:
            for w in self._program.windows:
                w.keep_undo(depth)

    @property
    def undoable(self) -> int:
        """How many of the last updates :meth:`undo` can take back."""
        return self._undoable

    def undo(self, steps: int = 1) -> None:
        """Take back the last ``steps`` updates, bit for bit; raises
        :class:`UndoExhausted` (changing nothing) beyond :attr:`undoable`."""
        if not 0 <= steps <= self._undoable:
            raise UndoExhausted(f"cannot undo {steps} updates, {self._undoable} kept")
        if self._program is not None:
            for w in self._program.windows:
                w.undo(steps)
        self.steps -= steps
        self._undoable -= steps

    # -- for people ------------------------------------------------------------------
    def tree(self) -> str:
        """The operator tree, one node a line, with each node's kind and lookback."""
        rows: list[tuple[str, str, int]] = []

        def walk(t: Term, prefix: str, tail: str) -> None:
            rows.append((prefix + _label(t), t.kind.replace("_", " "), t.lookback))
            for i, arg in enumerate(t.args):
                last = i == len(t.args) - 1
                walk(arg, tail + ("└─ " if last else "├─ "), tail + ("   " if last else "│  "))

        walk(self.term, "", "")
        width = max(len(r[0]) for r in rows) + 2
        head = f"{self.name} = {self.term}   (lookback {self.lookback} bars)"
        body = [f"{label:<{width}}{kind:<17}lookback {lb}" for label, kind, lb in rows]
        return "\n".join([head, *body])


def _shrinks(t: Term) -> bool:
    """``x * c``, ``c * x`` with ``|c| <= 1`` and ``x / c`` with ``|c| >= 1``: finite
    wherever ``x`` is (no :func:`finite_or_nan` needed)."""
    if t.op not in ("*", "/"):
        return False
    left, right = (a.value if a.op == "number" else None for a in t.args)
    if t.op == "/":
        return right is not None and abs(right) >= 1
    scalar = right if right is not None else left
    return scalar is not None and abs(scalar) <= 1


def _label(t: Term) -> str:
    if t.op == "number":
        return str(t)
    if t.op in _SPELLED_OUT:
        return f"{t.op} = {_SPELLED_OUT[t.op]}"
    if t.op == "neg":
        return "-x"
    if t.kind == "arithmetic":
        return f"x {t.op} y"
    if not t.args:
        return t.op
    parts = ["·"] * len(t.args)
    if t.window is not None:
        parts.append(f"d={t.window}")
    if t.op == "scale":
        parts.append(f"a={t.value:g}")
    return f"{t.op}({', '.join(parts)})"


def evaluate_panel(
    expression: Expression, fields: Mapping[str, FloatArray], present: BoolArray
) -> FloatArray:
    """The raw values ``(T, n)`` of ``expression`` (a fresh copy) over a panel on the
    grid: ``fields`` maps bar fields to ``(T, n)`` arrays, one row per grid step."""
    return expression.evaluate(bars_of_panel(fields, present))

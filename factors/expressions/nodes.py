"""The stateless operators of ANALYTICS.md section 9 on one bar's ``(n,)`` arrays.

Conventions chosen here (the specification leaves them open):

* Every result that is not finite becomes NaN: a division by zero, ``log`` of a
  value <= 0, ``sqrt`` of a negative value, ``0 ^ -1``, a negative base to a
  fractional power, an overflow.  So every node's output is finite or NaN, and a
  NaN propagates through arithmetic (``max``/``min`` too: NaN if either is).
* Cross-sectional operators work over the symbols *in the cross-section* (a real
  bar at this grid time) whose value is finite, and give NaN to the others.
  ``rank``: average ranks (ties share the mean of their ranks) divided by their
  count, in (0, 1].  ``scale``: ``a * x / sum|x|``, NaN where ``sum|x| = 0``.
  ``zscore``: ``(x - mean) / std`` with the population std, NaN where all the
  values are equal.  ``demean``: ``x - mean``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["BINARY", "CROSS_SECTIONAL", "FINITE", "UNARY", "finite_or_nan"]


def finite_or_nan(values: FloatArray) -> FloatArray:
    """``values`` with every infinite entry NaN (in place; returned)."""
    infinite = np.isinf(values)
    if infinite.any():
        values[infinite] = np.nan
    return values


#: Operators whose result is finite or NaN wherever their arguments are: no
#: :func:`finite_or_nan` after them.
FINITE: Final = frozenset(
    {"neg", "abs", "sign", "sqrt", "max", "min", "rank", "zscore", "demean", "delay"}
    | {"ts_min", "ts_max", "ts_rank"}
)


#: an argument: an array, or a number of the expression taken as a scalar
Operand = FloatArray | float


def _signedpower(x: Operand, a: Operand) -> FloatArray:
    out: FloatArray = np.sign(x) * np.power(np.abs(x), a)
    return out


#: Elementwise operators of one argument.
UNARY: Final[dict[str, Callable[[FloatArray], FloatArray]]] = {
    "neg": np.negative,
    "abs": np.abs,
    "log": np.log,
    "sign": np.sign,
    "sqrt": np.sqrt,
}

#: Elementwise operators of two arguments.
BINARY: Final[dict[str, Callable[[Operand, Operand], FloatArray]]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "^": np.power,
    "signedpower": _signedpower,
    "max": np.maximum,
    "min": np.minimum,
}


def _rank(x: FloatArray, members: BoolArray, a: float) -> FloatArray:
    """Average ranks (ties share the mean of their positions, as
    ``scipy.stats.rankdata``) of the members, over their count."""
    keyed = np.where(members, x, np.inf)  # the others sort last
    order = np.argsort(keyed)  # the order within a run of ties leaves its mean alone
    m = int(np.count_nonzero(members))
    top = order[:m]
    s = keyed[top]
    out = np.full(x.shape, np.nan)
    if m < 2 or (s[1:] != s[:-1]).all():  # no ties: the 1-based position
        out[top] = np.arange(1.0, m + 1.0) / m
        return out
    new_run = np.empty(m, dtype=bool)
    new_run[0] = True
    np.not_equal(s[1:], s[:-1], out=new_run[1:])
    starts = np.flatnonzero(new_run)
    ends = np.append(starts[1:], m)
    out[top] = np.repeat(0.5 * (starts + ends + 1), ends - starts) / m
    return out


def _scale(x: FloatArray, members: BoolArray, a: float) -> FloatArray:
    total = np.abs(x[members]).sum()
    return np.where(members, a * x / total, np.nan) if total > 0 else np.full(x.shape, np.nan)


def _zscore(x: FloatArray, members: BoolArray, a: float) -> FloatArray:
    v = x[members]
    if v.size == 0 or v.min() == v.max():
        return np.full(x.shape, np.nan)
    mean = v.mean()
    std = np.sqrt(np.mean((v - mean) ** 2))
    return np.where(members, (x - mean) / std, np.nan)


def _demean(x: FloatArray, members: BoolArray, a: float) -> FloatArray:
    v = x[members]
    mean = v.mean() if v.size else np.nan
    return np.where(members, x - mean, np.nan)


#: Cross-sectional operators: ``(x, members, a)`` with ``members`` the symbols in
#: the cross-section with a finite ``x``; ``a`` is ``scale``'s factor (unused by others).
CROSS_SECTIONAL: Final[dict[str, Callable[[FloatArray, BoolArray, float], FloatArray]]] = {
    "rank": _rank,
    "scale": _scale,
    "zscore": _zscore,
    "demean": _demean,
}

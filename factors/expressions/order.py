"""The order-statistic windows of ANALYTICS.md section 9: ``ts_min``, ``ts_max`` and
``ts_rank`` (the ring, the undo log and the conventions are :mod:`.windows`')."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.expressions.windows import Window

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["MaxWindow", "MinWindow", "RankWindow"]


class _ExtremeWindow(Window):
    """``ts_min`` / ``ts_max`` in amortized O(symbols): accumulators ``[extreme of
    the finite values, nan_count]``.  A new value at or beyond the extreme replaces
    it; where the extreme itself leaves and the new value does not replace it, that
    symbol's extreme is read again from its ring (O(d) for that symbol: about one
    symbol in ``d`` per push on continuous data)."""

    m = 2
    __slots__ = ("_stale",)
    #: a NaN's key: +inf for ts_min (never the minimum), -inf for ts_max
    _none: float = np.inf

    def __init__(self, n_symbols: int, d: int) -> None:
        self._stale: BoolArray = np.zeros(n_symbols, dtype=bool)
        super().__init__(n_symbols, d)

    def _better(self, a: FloatArray, b: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _reduce(self, keyed: FloatArray) -> FloatArray:
        raise NotImplementedError

    def _recompute(self) -> None:
        self._refresh(slice(None))

    def _refresh(self, rows: slice | NDArray[np.intp]) -> None:
        ring = self._ring[:, 0, rows]
        finite = np.isfinite(ring)
        self.acc[0, rows] = self._reduce(np.where(finite, ring, self._none))
        self.acc[1, rows] = (~finite).sum(axis=0)

    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        acc = self.acc
        x, o = new[0], leaving[0]
        finite = np.isfinite(x)
        acc[1] += ~finite
        acc[1] -= np.isnan(o)
        keyed = np.where(finite, x, self._none)
        after = self._better(acc[0], keyed)
        # the extreme leaves and the new value is not as good: read the ring again
        self._stale = (o == acc[0]) & (keyed != after)
        acc[0] = after

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        if self._stale.any():  # the ring has the new value now
            self._refresh(np.flatnonzero(self._stale))
        out: FloatArray = np.where(self.acc[1] == 0, self.acc[0], np.nan)
        return out


class MinWindow(_ExtremeWindow):
    """``ts_min(x, d)`` (NaN if any of the ``d`` values is NaN)."""

    __slots__ = ()
    _none = np.inf

    def _better(self, a: FloatArray, b: FloatArray) -> FloatArray:
        out: FloatArray = np.minimum(a, b)
        return out

    def _reduce(self, keyed: FloatArray) -> FloatArray:
        out: FloatArray = keyed.min(axis=0)
        return out


class MaxWindow(_ExtremeWindow):
    """``ts_max(x, d)`` (NaN if any of the ``d`` values is NaN)."""

    __slots__ = ()
    _none = -np.inf

    def _better(self, a: FloatArray, b: FloatArray) -> FloatArray:
        out: FloatArray = np.maximum(a, b)
        return out

    def _reduce(self, keyed: FloatArray) -> FloatArray:
        out: FloatArray = keyed.max(axis=0)
        return out


class RankWindow(Window):
    """``ts_rank(x, d)``: the average rank of the newest value among the ``d``
    values (itself included), over ``d``: ``(below + (equal + 1) / 2) / d``.
    Two comparisons of the ring with the new values, O(symbols x d); accumulator
    ``[nan_count]``."""

    m = 1
    __slots__ = ("_cmp",)

    def __init__(self, n_symbols: int, d: int) -> None:
        self._cmp: BoolArray = np.zeros((d, n_symbols), dtype=bool)
        super().__init__(n_symbols, d)

    def _recompute(self) -> None:
        self.acc[0] = np.isnan(self._ring[:, 0]).sum(axis=0)

    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        self.acc[0] += ~np.isfinite(new[0])
        self.acc[0] -= np.isnan(leaving[0])

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        ring = self._ring[:, 0]
        x = new[0]
        count = np.int32 if self.d < 2**31 else np.int64
        below = np.add.reduce(np.less(ring, x, out=self._cmp), axis=0, dtype=count)
        equal = np.add.reduce(np.equal(ring, x, out=self._cmp), axis=0, dtype=count)
        rank = (below + (equal + 1) / 2.0) / self.d
        out: FloatArray = np.where(self.acc[0] == 0, rank, np.nan)
        return out

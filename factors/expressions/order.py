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
    values (itself included), over ``d``: ``(below + (equal + 1) / 2) / d``;
    accumulator ``[nan_count]``.

    O(symbols x d): the new values are compared with the window, in a float32 copy
    of the ring (half the bytes to read).  Rounding to float32 keeps the order
    (``fl(v) < fl(x)`` only if ``v < x``), so those comparisons are exact wherever
    the values round apart; a symbol whose window holds another value rounding to
    the new one's (a tie, or within float32's precision of it) is counted again in
    float64, from its column of the ring alone.  Where that is more than one symbol
    in eight (ties are common: the input is a rank, a sign...), the whole ring is
    compared in float64, and the next steps do that directly (with a float32 try
    every 16 pushes).  Both ways count the same integers: the value is the same."""

    m = 1
    __slots__ = ("_count", "_exact", "_gt", "_lt", "_ring32")

    def __init__(self, n_symbols: int, d: int) -> None:
        self._ring32: NDArray[np.float32] = np.full((d, n_symbols), np.nan, dtype=np.float32)
        self._lt: BoolArray = np.zeros((d, n_symbols), dtype=bool)
        self._gt: BoolArray = np.zeros((d, n_symbols), dtype=bool)
        #: the narrowest integer that counts to d (a sum of bytes is fast)
        self._count = np.uint8 if d < 2**8 else np.uint16 if d < 2**16 else np.uint32
        self._exact = False  # the last float32 try found too many ties
        super().__init__(n_symbols, d)

    def _recompute(self) -> None:
        self.acc[0] = np.isnan(self._ring[:, 0]).sum(axis=0)

    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        self.acc[0] += ~np.isfinite(new[0])
        self.acc[0] -= np.isnan(leaving[0])
        self._ring32[self._pos] = new[0]

    def undo(self, pushes: int = 1) -> None:
        super().undo(pushes)
        slots = [(self._pos + i) % self.d for i in range(pushes)]
        self._ring32[slots] = self._ring[slots, 0]

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        x = new[0]
        ok = self.acc[0] == 0
        if self._exact and self._pushes % 16:
            return self._rank(*self._counts(self._ring[:, 0], x), ok)
        x32 = x.astype(np.float32)
        below32 = np.add.reduce(np.less(self._ring32, x32, out=self._lt), axis=0, dtype=self._count)
        above32 = np.add.reduce(
            np.greater(self._ring32, x32, out=self._gt), axis=0, dtype=self._count
        )
        below = below32.astype(np.float64)
        equal = np.ones(x.shape)
        # the values that round to the new one's: only itself, or count them in float64
        again = np.flatnonzero(ok & (self.d - below - above32 > 1))
        self._exact = again.size * 8 > x.size
        if self._exact:
            return self._rank(*self._counts(self._ring[:, 0], x), ok)
        if again.size:
            below[again], equal[again] = self._counts(self._ring[:, 0, again], x[again])
        return self._rank(below, equal, ok)

    def _counts(self, ring: FloatArray, x: FloatArray) -> tuple[FloatArray, FloatArray]:
        """The values below ``x`` and equal to it in each column of ``ring``."""
        lt, eq = self._lt[:, : x.size], self._gt[:, : x.size]
        below = np.add.reduce(np.less(ring, x, out=lt), axis=0, dtype=self._count)
        equal = np.add.reduce(np.equal(ring, x, out=eq), axis=0, dtype=self._count)
        return below.astype(np.float64), equal.astype(np.float64)

    def _rank(self, below: FloatArray, equal: FloatArray, ok: BoolArray) -> FloatArray:
        rank = (below + (equal + 1) / 2.0) / self.d
        out: FloatArray = np.where(ok, rank, np.nan)
        return out

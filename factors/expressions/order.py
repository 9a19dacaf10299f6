"""The order-statistic windows of ANALYTICS.md section 9: ``ts_min``, ``ts_max`` and
``ts_rank`` (the ring, the undo log and the conventions are :mod:`.windows`');
``ts_rank`` counts in one compiled pass over its ring."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.expressions.windows import Window
from factorcast.factors.jit import kernel

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

    The counts are one compiled pass over the ring (:func:`_rank_counts`): for each
    of the ``d`` slots, a vector comparison across the symbols (contiguous), with
    no intermediate arrays.  O(symbols x d) but a fraction of a nanosecond per
    value, so nearly flat in ``d`` next to the rest of the step.  The pass reads a
    float32 copy of the ring (half the bytes): rounding to float32 keeps the order
    (``fl(v) < fl(x)`` only if ``v < x``), so the counts are exact wherever the
    values round apart; a symbol whose window holds another value rounding to the
    new one's (a tie, or within float32's precision) is counted again in float64,
    from its column of the ring, and where that is more than one symbol in eight
    (ties are common: the input is a rank, a sign, a price in ticks...) the whole
    ring is counted in float64 instead, and the next pushes do that directly (with
    a float32 try every 16 pushes).  All ways count the same integers: the value
    is exact."""

    m = 1
    __slots__ = ("_exact", "_ring32")

    def __init__(self, n_symbols: int, d: int) -> None:
        self._ring32: NDArray[np.float32] = np.full((d, n_symbols), np.nan, dtype=np.float32)
        self._exact = False  # the last push counted all in float64 (many ties)
        super().__init__(n_symbols, d)
        # compile (or load from numba's cache) now, not inside the first bar
        none, ring32 = np.empty(0), np.empty((d, 0), dtype=np.float32)
        _rank_counts(ring32, np.empty((d, 1, 0)), none, none, none, False)

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
        out: FloatArray = np.empty(new.shape[1])
        # many ties last time: float64 straight away, with a float32 try every 16 pushes
        exact = self._exact and self._pushes % 16 != 0
        self._exact = _rank_counts(self._ring32, self._ring, new[0], self.acc[0], out, exact)
        return out


@kernel
def _rank_counts(
    ring32: NDArray[np.float32],
    ring: FloatArray,
    x: FloatArray,
    nans: FloatArray,
    out: FloatArray,
    exact: bool,
) -> bool:
    """``out``: the rank over ``d`` of ``x`` among each symbol's ``d`` values in
    ``ring`` ``(d, 1, n)`` (holding ``x``; ``ring32`` its float32 copy ``(d, n)``),
    NaN where ``nans`` (the count of NaN in the window) is not 0.  ``exact``: count
    all in float64 at once.  Whether all were counted in float64."""
    d, n = ring.shape[0], ring.shape[2]
    below = np.zeros(n, dtype=np.int32)  # 32 bits: twice the lanes of 64
    equal = np.zeros(n, dtype=np.int32)
    again = n
    if not exact:
        x32 = x.astype(np.float32)
        for t in range(d):
            for s in range(n):
                v = ring32[t, s]
                below[s] += np.int32(v < x32[s])
                equal[s] += np.int32(v > x32[s])  # above, for now
        again = 0
        for s in range(n):
            equal[s] = d - below[s] - equal[s]  # those rounding to x's float32
            again += nans[s] == 0 and equal[s] > 1
    exact = again * 8 > n
    if exact:  # many ties: all in float64
        below[:] = 0
        equal[:] = 0
        for t in range(d):
            for s in range(n):
                v = ring[t, 0, s]
                below[s] += np.int32(v < x[s])
                equal[s] += np.int32(v == x[s])
    elif again:
        for s in range(n):
            if nans[s] == 0 and equal[s] > 1:
                below[s] = 0
                equal[s] = 0
                for t in range(d):
                    v = ring[t, 0, s]
                    below[s] += np.int32(v < x[s])
                    equal[s] += np.int32(v == x[s])
    for s in range(n):
        out[s] = (below[s] + (equal[s] + 1) / 2.0) / d if nans[s] == 0 else np.nan
    return exact

"""The rolling windows of the health tracker (ANALYTICS.md section 2), one push per
grid step: the sums of the ICs and the factor-return track.

Both keep their state in arrays that a push replaces and never changes in place,
so that a checkpoint (the engine's undo log keeps one per step) is a handful of
references and the few values of the ring slot the next push overwrites.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


#: What :meth:`IcWindow.restore` needs: the sums, the slot the next push
#: overwrites, the position and the count of pushes (a tuple: cheaper than an object).
IcWindowToken = tuple[FloatArray, FloatArray | None, int, int]


class IcWindow:
    """Sums of ``[finite, ic, ic^2, hit]`` per factor over the last ``window``
    pushes, O(K) per push; recomputed exactly from the ring every ``window``
    pushes to bound add/subtract drift (as factors/rolling.py does)."""

    __slots__ = ("_k", "_pos", "_pushes", "_ring", "sums", "window")

    def __init__(self, k: int, window: int) -> None:
        self.window = window
        self._k = k
        self._ring: list[FloatArray | None] = [None] * window  # None: nothing pushed there
        self.sums: FloatArray = np.zeros((4, k))
        self._pos = 0
        self._pushes = 0

    def push(self, ic: FloatArray, directions: FloatArray) -> None:
        # K values: plain floats cost less than a numpy call per row
        fin, val, sq, hit = [], [], [], []
        for v, d in zip(ic.tolist(), directions.tolist(), strict=True):
            if math.isfinite(v):
                fin.append(1.0)
                val.append(v)
                sq.append(v * v)
                hit.append(1.0 if (v > 0) - (v < 0) == d else 0.0)  # sign(v) == d
            else:
                fin.append(0.0)
                val.append(0.0)
                sq.append(0.0)
                hit.append(0.0)
        new = np.array((fin, val, sq, hit))
        old = self._ring[self._pos]
        self.sums = self.sums + (new if old is None else new - old)
        self._ring[self._pos] = new
        self._pos = (self._pos + 1) % self.window
        self._pushes += 1
        if self._pushes % self.window == 0:
            self.sums = np.stack([r for r in self._ring if r is not None]).sum(axis=0)

    def checkpoint(self) -> IcWindowToken:
        """The state before the next push: references only."""
        return (self.sums, self._ring[self._pos], self._pos, self._pushes)

    def restore(self, token: IcWindowToken) -> None:
        self.sums, slot, self._pos, self._pushes = token
        self._ring[self._pos] = slot


#: What :meth:`ReturnTrack.restore` needs: the count of pushes, the growth factors of
#: the slot the next push overwrites and which of them were finite, the counts of
#: finite returns, whether every factor has one, the last figures.
ReturnTrackToken = tuple[
    int, FloatArray, BoolArray | None, IntArray, bool, tuple[FloatArray, FloatArray]
]


class ReturnTrack:
    """The factor-return track: over the last ``window`` pushes of ``K`` factor
    returns (NaN ones skipped), the cumulative return and the maximum drawdown of
    :func:`factorcast.factors.analytics.health.drawdown_track`, the same numbers.

    The ring holds the growth factors ``1 + f`` (1 where ``f`` is NaN) as ``K``
    rows, twice over (slot ``s`` and ``s + window``), so that the window, oldest
    first, is always one contiguous slice of each row: a push is one running
    product (after a column of ones, ``E_0 = 1``), one running maximum, a
    division and a minimum over ``window x K`` values, into buffers kept from push
    to push.  A growth factor of 1 changes neither the products nor the maxima, so
    where no finite return enters or leaves the window, the figures are those of
    the previous push, kept.
    """

    __slots__ = (
        "_all",
        "_count",
        "_growth",
        "_ok",
        "_path",
        "_peak",
        "_result",
        "_seen",
        "_steps",
        "window",
    )

    def __init__(self, k: int, window: int) -> None:
        self.window = window
        self._growth: FloatArray = np.ones((k, 2 * window))
        # per slot: which returns were finite (None: none; ``_all``: every one)
        self._ok: list[BoolArray | None] = [None] * window
        self._all: BoolArray = np.ones(k, dtype=bool)
        self._count: IntArray = np.zeros(k, dtype=np.int64)  # finite returns in the window
        self._seen = False  # every factor has one
        self._path: FloatArray = np.ones((k, window + 1))  # E_0 = 1, then E_1 .. E_W
        self._peak: FloatArray = np.empty((k, window + 1))
        nan = np.full(k, np.nan)
        self._result: tuple[FloatArray, FloatArray] = (nan, nan)
        self._steps = 0

    def push(self, returns: FloatArray | None) -> tuple[FloatArray, FloatArray]:
        """The factor returns of the next bar (None: none); the cumulative return
        and maximum drawdown over the window that ends with it."""
        w = self.window
        slot = self._steps % w
        old = self._ok[slot]
        ok: BoolArray | None = None
        growth: FloatArray | None = None  # None: every factor 1
        if returns is not None:
            f = np.asarray(returns, dtype=np.float64)
            ok = np.isfinite(f)
            if ok.all():
                ok, growth = self._all, 1.0 + f
            elif ok.any():
                growth = np.where(ok, 1.0 + f, 1.0)
            else:
                ok = None
        self._growth[:, slot] = 1.0 if growth is None else growth
        self._growth[:, slot + w] = self._growth[:, slot]
        self._ok[slot] = ok
        self._steps += 1
        if ok is None and old is None:  # the window's finite returns are the same
            cum, mdd = self._result
            return cum.copy(), mdd.copy()
        if ok is not self._all or old is not self._all:  # else the counts stay
            count = self._count
            if old is not None:
                count = count - old
            if ok is not None:
                count = count + ok
            self._count = count
            self._seen = bool(count.all())
        start = self._steps % w
        e, p = self._path, self._peak
        np.multiply.accumulate(self._growth[:, start : start + w], axis=1, out=e[:, 1:])
        np.maximum.accumulate(e, axis=1, out=p)
        np.divide(e, p, out=p)
        # min(E / peak) - 1 is min(E / peak - 1): subtracting 1 keeps the order
        cum = e[:, -1] - 1.0
        mdd = p.min(axis=1) - 1.0
        if not self._seen:
            seen = self._count > 0
            cum = np.where(seen, cum, np.nan)
            mdd = np.where(seen, mdd, np.nan)
        self._result = (cum, mdd)
        return cum, mdd

    def checkpoint(self) -> ReturnTrackToken:
        """The state before the next push: the slot it overwrites, and references."""
        slot = self._steps % self.window
        growth = self._growth[:, slot].copy()
        return (self._steps, growth, self._ok[slot], self._count, self._seen, self._result)

    def restore(self, token: ReturnTrackToken) -> None:
        self._steps, growth, ok, self._count, self._seen, self._result = token
        slot = self._steps % self.window
        self._growth[:, slot] = growth
        self._growth[:, slot + self.window] = growth
        self._ok[slot] = ok

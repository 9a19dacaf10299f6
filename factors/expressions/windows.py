"""The time-series operators of ANALYTICS.md section 9 as incremental windows.

Each window keeps, per symbol, a ring of its last ``d`` inputs and a few running
accumulators, so that one bar costs O(symbols) for ``delay``, ``ts_sum``,
``ts_mean``, ``ts_std``, ``covariance``, ``correlation`` and ``decay_linear``,
and O(symbols x d) for ``ts_min``, ``ts_max`` and ``ts_rank`` (which read the ring).

Conventions, from the specification or chosen here:

* Every value is finite or NaN (the nodes feeding a window map non-finite
  results to NaN).  A window's value is NaN if any of its ``d`` values is NaN;
  the ring starts full of NaN, so the first ``d - 1`` pushes give NaN.  Running
  sums add the finite values only and a running count of the NaN ones decides.
* Add/subtract drift is bounded as in :mod:`factors.rolling`: the accumulators
  are recomputed exactly from the ring every ``d`` pushes (amortized O(symbols)),
  a count of the non-zero values makes a window of zeros sum to exactly 0, and a
  symbol whose running sum carries a rounding bound (the absolute values of the
  terms added and taken away since the last recomputation) above
  :data:`REL_ERROR` of its value is recomputed exactly from its ring on that bar:
  O(d) for that symbol only, when a value many orders of magnitude above the
  others has just left the window, or the window sums to nearly nothing.
* The second moments (``ts_std``, ``covariance``, ``correlation``) are in
  :mod:`.moments`: shifted sums, exact constancy from run lengths, and an exact
  recomputation of a symbol whose running moments cannot be trusted to 1e-10.
* ``keep_undo(depth)`` / ``undo(steps)`` take back the last pushes exactly, bit
  for bit, in O(symbols) per push: as :class:`factors.rolling.RollingSums` does,
  each push saves the accumulators before it and the ring slot it overwrites.
"""

from __future__ import annotations

from typing import Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.rolling import UndoExhausted

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = [
    "REL_ERROR",
    "DecayLinearWindow",
    "DelayWindow",
    "MaxWindow",
    "MinWindow",
    "RankWindow",
    "SumWindow",
    "Window",
    "rounding_bound",
    "valid_rows",
]


class Window:
    """A ring of the last ``d`` pushes of ``k`` columns per symbol, ``m`` running
    accumulators per symbol, and an undo log.  Subclasses fill in :meth:`_advance`
    (update the accumulators from the new and the leaving values), :meth:`_recompute`
    (the accumulators from the ring) and :meth:`_value`."""

    k = 1
    m = 0

    __slots__ = ("_pos", "_pushes", "_ring", "_undo_acc", "_undo_slot", "_undoable", "acc", "d")

    def __init__(self, n_symbols: int, d: int) -> None:
        self.d = d
        self._ring: FloatArray = np.full((d, n_symbols, self.k), np.nan)
        self.acc: FloatArray = np.zeros((n_symbols, self.m))
        self._pos = 0  # the slot of the next push, holding the value leaving the window
        self._pushes = 0
        self._undo_acc: list[FloatArray] = []
        self._undo_slot: list[FloatArray] = []
        self._undoable = 0
        self._recompute()

    # -- undo --------------------------------------------------------------------
    def keep_undo(self, depth: int) -> None:
        """Keep what it takes to undo each of the last ``depth`` pushes (0: none)."""
        if depth < 0:
            raise ValueError("undo depth must be >= 0")
        self._undo_acc = [np.zeros(self.acc.shape) for _ in range(depth)]
        self._undo_slot = [np.zeros(self._ring.shape[1:]) for _ in range(depth)]
        self._undoable = 0

    @property
    def undoable(self) -> int:
        return self._undoable

    def undo(self, pushes: int = 1) -> None:
        """Take back the last ``pushes`` pushes: ring, accumulators and position
        exactly as they were before them."""
        if not 0 <= pushes <= self._undoable:
            raise UndoExhausted(f"cannot undo {pushes} pushes, {self._undoable} kept")
        if not pushes:
            return
        depth = len(self._undo_acc)
        for _ in range(pushes):  # latest push first
            self._pushes -= 1
            self._pos = (self._pos - 1) % self.d
            self._ring[self._pos] = self._undo_slot[self._pushes % depth]
        np.copyto(self.acc, self._undo_acc[self._pushes % depth])
        self._undoable -= pushes

    # -- one bar -------------------------------------------------------------------
    def push(self, *columns: FloatArray) -> FloatArray:
        """Take the ``k`` input columns of one bar; the window's value after it."""
        slot = self._ring[self._pos]
        if self._undo_acc:
            depth = len(self._undo_acc)
            j = self._pushes % depth
            np.copyto(self._undo_acc[j], self.acc)
            np.copyto(self._undo_slot[j], slot)
            if self._undoable < depth:
                self._undoable += 1
        new = np.stack(columns, axis=1) if self.k > 1 else columns[0][:, None]
        leaving = slot.copy()
        self._advance(new, leaving)
        slot[...] = new
        self._pos = (self._pos + 1) % self.d
        self._pushes += 1
        if self._pushes % self.d == 0:
            self._recompute()
        return self._value(new, leaving)

    def ordered(self) -> FloatArray:
        """The ring oldest first, ``(d, n, k)`` (a copy)."""
        return np.roll(self._ring, -self._pos, axis=0)

    # -- per operator ------------------------------------------------------------
    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        """Update :attr:`acc` for ``new`` entering and ``leaving`` leaving, ``(n, k)``."""

    def _recompute(self) -> None:
        """Set :attr:`acc` exactly from the ring."""

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        raise NotImplementedError


#: Relative rounding error above which a running accumulator is recomputed exactly
#: from the ring (for that symbol, on that bar).
REL_ERROR: Final = 1e-10
_EPS: Final = float(np.finfo(np.float64).eps)


def rounding_bound(abs_terms: FloatArray, d: int) -> FloatArray:
    """A bound on the rounding error of a running sum whose terms since its last
    exact computation (at most ``2 d + 4`` roundings) add up to ``abs_terms`` in
    absolute value."""
    bound: FloatArray = _EPS * (2 * d + 4) * abs_terms
    return bound


def valid_rows(values: FloatArray) -> BoolArray:
    """Per symbol: all ``k`` columns finite."""
    ok: BoolArray = np.all(np.isfinite(values), axis=-1)
    return ok


class DelayWindow(Window):
    """``delay(x, d)``: the value pushed ``d`` pushes ago, the one leaving the ring."""

    __slots__ = ()

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        out: FloatArray = leaving[:, 0]
        return out


class SumWindow(Window):
    """``ts_sum`` (``mean=False``) and ``ts_mean``.  Accumulators ``[sum, nan_count,
    nonzero_count, abs_terms]``: a window of zeros sums to exactly 0 (no
    add/subtract residue), and a sum whose rounding bound exceeds
    :data:`REL_ERROR` of it (a huge value left the window) is recomputed exactly."""

    m = 4
    __slots__ = ("mean",)

    def __init__(self, n_symbols: int, d: int, mean: bool = False) -> None:
        self.mean = mean
        super().__init__(n_symbols, d)

    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        x, o = new[:, 0], leaving[:, 0]
        fx, fo = np.isfinite(x), np.isfinite(o)
        x0, o0 = np.where(fx, x, 0.0), np.where(fo, o, 0.0)
        acc = self.acc
        acc[:, 0] += x0 - o0
        acc[:, 1] += fo.astype(np.float64) - fx.astype(np.float64)
        acc[:, 2] += (x0 != 0).astype(np.float64) - (o0 != 0).astype(np.float64)
        acc[:, 3] += np.abs(x0) + np.abs(o0)

    def _recompute(self) -> None:
        self._refresh(slice(None))

    def _refresh(self, rows: slice | NDArray[np.intp]) -> None:
        ring = self._ring[:, rows, 0]
        finite = np.isfinite(ring)
        x0 = np.where(finite, ring, 0.0)
        self.acc[rows, 0] = x0.sum(axis=0)
        self.acc[rows, 1] = (~finite).sum(axis=0)
        self.acc[rows, 2] = (x0 != 0).sum(axis=0)
        self.acc[rows, 3] = np.abs(x0).sum(axis=0)

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        acc = self.acc
        ok = acc[:, 1] == 0
        doubtful = ok & (rounding_bound(acc[:, 3], self.d) > REL_ERROR * np.abs(acc[:, 0]))
        if doubtful.any():
            self._refresh(np.flatnonzero(doubtful))
        total = acc[:, 0] / self.d if self.mean else acc[:, 0].copy()
        total[acc[:, 2] == 0] = 0.0
        out: FloatArray = np.where(ok, total, np.nan)
        return out


class DecayLinearWindow(Window):
    """``decay_linear(x, d)``: weights ``d, d-1, ..., 1`` from the newest value back,
    over their sum ``d (d + 1) / 2``.  Accumulators ``[sum, weighted sum,
    nan_count, nonzero_count, abs_terms of the sum, abs_terms of the weighted
    sum]``; the weighted sum steps as ``W_t = W_{t-1} - S_{t-1} + d x_t`` (NaN
    taken as 0 in both sums; the count decides).  A window of zeros is exactly 0;
    a weighted sum whose rounding bound exceeds :data:`REL_ERROR` of it is
    recomputed exactly."""

    m = 6
    __slots__ = ()

    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        x, o = new[:, 0], leaving[:, 0]
        fx, fo = np.isfinite(x), np.isfinite(o)
        x0, o0 = np.where(fx, x, 0.0), np.where(fo, o, 0.0)
        acc = self.acc
        acc[:, 5] += self.d * np.abs(x0) + np.abs(acc[:, 0])
        acc[:, 1] += self.d * x0 - acc[:, 0]
        acc[:, 0] += x0 - o0
        acc[:, 2] += fo.astype(np.float64) - fx.astype(np.float64)
        acc[:, 3] += (x0 != 0).astype(np.float64) - (o0 != 0).astype(np.float64)
        acc[:, 4] += np.abs(x0) + np.abs(o0)

    def _recompute(self) -> None:
        self._refresh(slice(None))

    def _refresh(self, rows: slice | NDArray[np.intp]) -> None:
        ring = np.roll(self._ring[:, rows, 0], -self._pos, axis=0)  # oldest first
        finite = np.isfinite(ring)
        x0 = np.where(finite, ring, 0.0)
        weights = np.arange(1, self.d + 1, dtype=np.float64)
        acc = self.acc
        acc[rows, 0] = x0.sum(axis=0)
        acc[rows, 1] = weights @ x0
        acc[rows, 2] = (~finite).sum(axis=0)
        acc[rows, 3] = (x0 != 0).sum(axis=0)
        acc[rows, 4] = np.abs(x0).sum(axis=0)
        acc[rows, 5] = weights @ np.abs(x0)

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        acc = self.acc
        ok = acc[:, 2] == 0
        bound = rounding_bound(acc[:, 5] + self.d * acc[:, 4], self.d)
        doubtful = ok & (bound > REL_ERROR * np.abs(acc[:, 1]))
        if doubtful.any():
            self._refresh(np.flatnonzero(doubtful))
        total = self.d * (self.d + 1) / 2.0
        value = np.where(acc[:, 3] == 0, 0.0, acc[:, 1] / total)
        out: FloatArray = np.where(ok, value, np.nan)
        return out


class MinWindow(Window):
    """``ts_min(x, d)``, O(d) per symbol (NaN propagates)."""

    __slots__ = ()

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        out: FloatArray = self._ring[:, :, 0].min(axis=0)
        return out


class MaxWindow(Window):
    """``ts_max(x, d)``, O(d) per symbol (NaN propagates)."""

    __slots__ = ()

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        out: FloatArray = self._ring[:, :, 0].max(axis=0)
        return out


class RankWindow(Window):
    """``ts_rank(x, d)``: the average rank of the newest value among the ``d``
    values (itself included), over ``d``: ``(below + (equal + 1) / 2) / d``."""

    __slots__ = ()

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        ring = self._ring[:, :, 0]
        x = new[:, 0]
        below = (ring < x).sum(axis=0)
        equal = (ring == x).sum(axis=0)
        rank = (below + (equal + 1) / 2.0) / self.d
        out: FloatArray = np.where(np.isfinite(ring).all(axis=0), rank, np.nan)
        return out

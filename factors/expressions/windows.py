"""The time-series operators of ANALYTICS.md section 9 as incremental windows.

Each window keeps, per symbol, a ring of its last ``d`` inputs and a few running
accumulators, so that one bar costs O(symbols) for ``delay``, ``ts_sum``,
``ts_mean``, ``ts_std``, ``covariance``, ``correlation`` and ``decay_linear``,
amortized O(symbols) for ``ts_min`` and ``ts_max`` (a symbol's ring is read again
only when its extreme leaves the window), and O(symbols x d) for ``ts_rank`` (one
compiled pass of comparisons over the ring, a fraction of a nanosecond per value);
those three are in :mod:`.order`.

Conventions, from the specification or chosen here:

* Every value is finite or NaN (the nodes feeding a window map non-finite
  results to NaN).  A window's value is NaN if any of its ``d`` values is NaN;
  the ring starts full of NaN, so the first ``d - 1`` pushes give NaN.  Running
  sums add the finite values only and a running count of the NaN ones decides.
* Add/subtract drift is bounded as in :mod:`factors.rolling`: the accumulators
  are recomputed exactly from the ring every ``max(d, MIN_PERIOD)`` pushes
  (amortized O(symbols); a short window is not recomputed at every other push),
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
    "MIN_PERIOD",
    "REL_ERROR",
    "DecayLinearWindow",
    "DelayWindow",
    "SumWindow",
    "Window",
    "rounding_bound",
    "valid_rows",
]


#: The fewest pushes between two exact recomputations of a window's accumulators.
MIN_PERIOD: Final = 16
#: Relative rounding error above which a running accumulator is recomputed exactly
#: from the ring (for that symbol, on that bar).
REL_ERROR: Final = 1e-10
_EPS: Final = float(np.finfo(np.float64).eps)


class Window:
    """A ring of the last ``d`` pushes of ``k`` columns per symbol, ``m`` running
    accumulators per symbol, and an undo log.  Subclasses fill in :meth:`_advance`
    (update the accumulators from the new and the leaving values), :meth:`_recompute`
    (the accumulators from the ring) and :meth:`_value`.

    Every array keeps the symbols on its last, contiguous axis (ring ``(d, k, n)``,
    accumulators ``(m, n)``): a row of one accumulator for all symbols is one
    contiguous vector, and a step is a few dozen numpy calls on such vectors."""

    k = 1
    m = 0

    __slots__ = (
        "_io",
        "_period",
        "_pos",
        "_pushes",
        "_ring",
        "_undo_acc",
        "_undo_slot",
        "_undoable",
        "acc",
        "d",
    )

    def __init__(self, n_symbols: int, d: int) -> None:
        self.d = d
        #: pushes between two exact recomputations of the accumulators
        self._period = max(d, MIN_PERIOD)
        self._ring: FloatArray = np.full((d, self.k, n_symbols), np.nan)
        #: the entering (``[0]``) and the leaving (``[1]``) values of the push under way
        self._io: FloatArray = np.empty((2, self.k, n_symbols))
        self.acc: FloatArray = np.zeros((self.m, n_symbols))
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
        io = self._io
        for c, column in enumerate(columns):
            io[0, c] = column
        io[1] = slot
        new, leaving = io
        self._advance(new, leaving)
        slot[...] = new
        self._pos = (self._pos + 1) % self.d
        self._pushes += 1
        if self._pushes % self._period == 0:
            self._recompute()
        return self._value(new, leaving)

    def ordered(self) -> FloatArray:
        """The ring oldest first, ``(d, k, n)`` (a copy)."""
        return np.roll(self._ring, -self._pos, axis=0)

    # -- per operator ------------------------------------------------------------
    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        """Update :attr:`acc` for ``new`` entering and ``leaving`` leaving, ``(k, n)``
        (views of one buffer: ``self._io``, ``(2, k, n)``).  ``_value`` returns a new
        array (the buffer and the accumulators change at the next push)."""

    def _recompute(self) -> None:
        """Set :attr:`acc` exactly from the ring."""

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        raise NotImplementedError


def rounding_bound(abs_terms: FloatArray, d: int) -> FloatArray:
    """A bound on the rounding error of a running sum whose terms since its last
    exact computation (at most ``2 d + 4`` roundings, ``d`` the pushes between two
    recomputations) add up to ``abs_terms`` in absolute value."""
    bound: FloatArray = _EPS * (2 * d + 4) * abs_terms
    return bound


def valid_rows(values: FloatArray) -> BoolArray:
    """Per symbol: all ``k`` columns finite (``values`` ``(..., k, n)``)."""
    finite = np.isfinite(values)
    if finite.shape[-2] == 1:
        one: BoolArray = finite[..., 0, :]
        return one
    ok: BoolArray = np.logical_and.reduce(finite, axis=-2)
    return ok


def _pair(io: FloatArray) -> tuple[FloatArray, BoolArray]:
    """The entering and the leaving value of a one-column window as ``(2, n)``: the
    values (NaN as 0) and where they are finite."""
    both = io[:, 0]
    finite = np.isfinite(both)
    return np.where(finite, both, 0.0), finite


class DelayWindow(Window):
    """``delay(x, d)``: the value pushed ``d`` pushes ago, the one leaving the ring."""

    __slots__ = ()

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        out: FloatArray = leaving[0].copy()
        return out


#: ``err > _ULPS_PER_REL * |value|``: an error bound in units of :data:`_EPS` over
#: :data:`REL_ERROR` of the value
_ULPS_PER_REL: Final = REL_ERROR / _EPS


class SumWindow(Window):
    """``ts_sum`` (``mean=False``) and ``ts_mean``.  Accumulators ``[sum, nan_count,
    nonzero_count, err]``: a window of zeros sums to exactly 0 (no add/subtract
    residue), and ``err`` bounds the rounding error of the running sum (in units of
    the machine epsilon: ``d sum|x|`` at an exact computation, then ``|x - o| +
    |sum|`` more per push, the two roundings of ``sum += x - o``); a sum whose
    bound exceeds :data:`REL_ERROR` of it is recomputed exactly."""

    m = 4
    __slots__ = ("mean",)

    def __init__(self, n_symbols: int, d: int, mean: bool = False) -> None:
        self.mean = mean
        super().__init__(n_symbols, d)

    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        z, finite = _pair(self._io)
        acc = self.acc
        step = z[0] - z[1]
        acc[0] += step
        acc[3] += np.abs(step, out=step)
        acc[3] += np.abs(acc[0])
        acc[1] += finite[1]
        acc[1] -= finite[0]
        nonzero = z != 0
        acc[2] += nonzero[0]
        acc[2] -= nonzero[1]

    def _recompute(self) -> None:
        self._refresh(slice(None))

    def _refresh(self, rows: slice | NDArray[np.intp]) -> None:
        ring = self._ring[:, 0, rows]
        finite = np.isfinite(ring)
        x0 = np.where(finite, ring, 0.0)
        self.acc[0, rows] = x0.sum(axis=0)
        self.acc[1, rows] = (~finite).sum(axis=0)
        self.acc[2, rows] = (x0 != 0).sum(axis=0)
        self.acc[3, rows] = self.d * np.abs(x0).sum(axis=0)

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        acc = self.acc
        ok = acc[1] == 0
        doubtful = ok & (acc[3] > _ULPS_PER_REL * np.abs(acc[0]))
        if doubtful.any():
            self._refresh(np.flatnonzero(doubtful))
        total = acc[0] / self.d if self.mean else acc[0].copy()
        total[acc[2] == 0] = 0.0
        out: FloatArray = np.where(ok, total, np.nan)
        return out


class DecayLinearWindow(Window):
    """``decay_linear(x, d)``: weights ``d, d-1, ..., 1`` from the newest value back,
    over their sum ``d (d + 1) / 2``.  Accumulators ``[sum S, weighted sum W,
    nan_count, nonzero_count, err of S, err of W]``; the weighted sum steps as
    ``W_t = W_{t-1} - S_{t-1} + d x_t`` (NaN taken as 0 in both sums; the count
    decides), so its error bound grows by that of ``S`` and by its own three
    roundings each push (the bounds in units of the machine epsilon, as in
    :class:`SumWindow`).  A window of zeros is exactly 0; a weighted sum whose
    bound exceeds :data:`REL_ERROR` of it is recomputed exactly."""

    m = 6
    __slots__ = ()

    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        z, finite = _pair(self._io)
        x0, o0 = z
        acc = self.acc
        scaled = self.d * x0
        change = scaled - acc[0]
        acc[1] += change
        np.abs(scaled, out=scaled)
        scaled += np.abs(change, out=change)
        scaled += np.abs(acc[1])
        scaled += acc[4]
        acc[5] += scaled
        step = x0 - o0
        acc[0] += step
        acc[4] += np.abs(step, out=step)
        acc[4] += np.abs(acc[0])
        acc[2] += finite[1]
        acc[2] -= finite[0]
        nonzero = z != 0
        acc[3] += nonzero[0]
        acc[3] -= nonzero[1]

    def _recompute(self) -> None:
        self._refresh(slice(None))

    def _refresh(self, rows: slice | NDArray[np.intp]) -> None:
        ring = np.roll(self._ring[:, 0, rows], -self._pos, axis=0)  # oldest first
        finite = np.isfinite(ring)
        x0 = np.where(finite, ring, 0.0)
        weights = np.arange(1, self.d + 1, dtype=np.float64)
        acc = self.acc
        acc[0, rows] = x0.sum(axis=0)
        acc[1, rows] = weights @ x0
        acc[2, rows] = (~finite).sum(axis=0)
        acc[3, rows] = (x0 != 0).sum(axis=0)
        absx = np.abs(x0)
        acc[4, rows] = self.d * absx.sum(axis=0)
        acc[5, rows] = self.d * (weights @ absx)

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        acc = self.acc
        ok = acc[2] == 0
        doubtful = ok & (acc[5] > _ULPS_PER_REL * np.abs(acc[1]))
        if doubtful.any():
            self._refresh(np.flatnonzero(doubtful))
        total = self.d * (self.d + 1) / 2.0
        value = np.where(acc[3] == 0, 0.0, acc[1] / total)
        out: FloatArray = np.where(ok, value, np.nan)
        return out

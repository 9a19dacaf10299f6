"""Incremental rolling sums over a panel of per-symbol ring buffers.

One bar close costs O(symbols x columns), independent of the window length:
the sums are updated by adding the new contribution and subtracting the one that
leaves the window.  Floating-point drift from add/subtract is bounded by
recomputing the sums exactly from the ring every ``window`` pushes, which keeps
the amortized cost O(symbols) and the sums within a few ulps of a fresh sum.

Both structures can take back their last ``depth`` pushes (``keep_undo``), so the
live engine can take back the last few bars and push them again with a late bar in
(strategy/engine.py), bit for bit as if they had been pushed with it the first time.
Add/subtract in floating point cannot be reversed exactly, so an undo does not
subtract: :class:`RollingSums` keeps, per push, its sums before it and the ring slot
it overwrote (two ``(symbols, k)`` copies per push: an engine step takes about 5%
longer at 500 symbols, 3% at 100, bench/replay.py), and :class:`LagRing` holds
``depth`` slots more than it reads, so that no push overwrites a value an undo
brings back.  (Tried and measured no cheaper: a ring longer than the window instead
of saved slots, as the slot a push writes is then not the slot it reads, one more
cache miss per push; sums written into a rotation of arrays instead of copied.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class UndoExhausted(IndexError):
    """More pushes taken back than the undo log holds."""


class RollingSums:
    """Sums of ``k`` columns per symbol over the last ``window`` pushes.

    A push takes ``k`` per-symbol columns of contributions; an invalid
    observation contributes zeros (callers put a 0/1 validity column among the
    columns to count observations).
    """

    __slots__ = (
        "_new",
        "_pos",
        "_pushes",
        "_ring",
        "_undo_slots",
        "_undo_sums",
        "_undoable",
        "sums",
        "window",
    )

    def __init__(self, n_symbols: int, window: int, k: int) -> None:
        self.window = window
        self._ring: FloatArray = np.zeros((window, n_symbols, k))
        self._new: FloatArray = np.zeros((n_symbols, k))
        self.sums: FloatArray = np.zeros((n_symbols, k))
        self._pos = 0
        self._pushes = 0
        # undo log: per push, the sums before it and the ring slot it overwrote
        self._undo_sums: list[FloatArray] = []
        self._undo_slots: list[FloatArray] = []
        self._undoable = 0

    def keep_undo(self, depth: int) -> None:
        """Keep what it takes to undo each of the last ``depth`` pushes (0: none)."""
        self._undo_sums = [np.zeros(self.sums.shape) for _ in range(depth)]
        self._undo_slots = [np.zeros(self.sums.shape) for _ in range(depth)]
        self._undoable = 0

    def push(self, *columns: NDArray[np.float64] | NDArray[np.bool_]) -> None:
        new = self._new
        for j, column in enumerate(columns):
            new[:, j] = column
        slot = self._ring[self._pos]
        if self._undo_sums:
            depth = len(self._undo_sums)
            j = self._pushes % depth
            self._undo_sums[j][...] = self.sums
            self._undo_slots[j][...] = slot
            if self._undoable < depth:
                self._undoable += 1
        self.sums -= slot
        self.sums += new
        slot[...] = new
        self._pos += 1
        if self._pos == self.window:
            self._pos = 0
        self._pushes += 1
        if self._pushes % self.window == 0:
            np.sum(self._ring, axis=0, out=self.sums)

    def undo(self, pushes: int = 1) -> None:
        """Take back the last ``pushes`` pushes: ring, sums and position exactly as
        they were before them."""
        if not 0 <= pushes <= self._undoable:
            raise UndoExhausted(f"cannot undo {pushes} pushes, {self._undoable} kept")
        if not pushes:
            return
        depth = len(self._undo_sums)
        for _ in range(pushes):  # the overwritten slots back, latest push first
            self._pushes -= 1
            self._pos = (self._pos - 1) % self.window
            self._ring[self._pos] = self._undo_slots[self._pushes % depth]
        np.copyto(self.sums, self._undo_sums[self._pushes % depth])
        self._undoable -= pushes


class LagRing:
    """The last ``depth`` values per symbol, for reading a value ``k`` pushes back."""

    __slots__ = ("_pos", "_pushes", "_ring", "_undo_depth", "_undoable", "depth")

    def __init__(self, n_symbols: int, depth: int) -> None:
        self.depth = depth
        self._ring: FloatArray = np.full((depth, n_symbols), np.nan)
        self._pos = 0  # slot of the next push
        self._pushes = 0
        self._undo_depth = 0
        self._undoable = 0

    def keep_undo(self, depth: int) -> None:
        """Keep what it takes to undo each of the last ``depth`` pushes (0: none):
        ``depth`` more slots, so that no push overwrites a value an undo brings back."""
        capacity = self.depth + depth
        ring, old, n = np.full((capacity, self._ring.shape[1]), np.nan), self._ring, self._pushes
        for back in range(1, min(n, self.depth) + 1):  # the lags, in their new slots
            ring[(n - back) % capacity] = old[(self._pos - back) % len(old)]
        self._ring, self._pos = ring, n % capacity
        self._undo_depth = depth
        self._undoable = 0

    def push(self, values: FloatArray) -> None:
        self._ring[self._pos] = values
        self._pos = (self._pos + 1) % len(self._ring)
        self._pushes += 1
        if self._undoable < self._undo_depth:
            self._undoable += 1

    def undo(self, pushes: int = 1) -> None:
        """Take back the last ``pushes`` pushes."""
        if not 0 <= pushes <= self._undoable:
            raise UndoExhausted(f"cannot undo {pushes} pushes, {self._undoable} kept")
        self._undoable -= pushes
        self._pushes -= pushes
        self._pos = (self._pos - pushes) % len(self._ring)

    def ago(self, k: int) -> FloatArray:
        """Values pushed ``k`` pushes before the latest one (``k=0``: the latest)."""
        if not 0 <= k < self.depth:
            raise IndexError(f"lag {k} outside ring depth {self.depth}")
        row: FloatArray = self._ring[(self._pos - 1 - k) % len(self._ring)]
        return row

"""Incremental rolling sums over a panel of per-symbol ring buffers.

One bar close costs O(symbols x columns), independent of the window length:
the sums are updated by adding the new contribution and subtracting the one that
leaves the window.  Floating-point drift from add/subtract is bounded by
recomputing the sums exactly from the ring every ``window`` pushes, which keeps
the amortized cost O(symbols) and the sums within a few ulps of a fresh sum.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class RollingSums:
    """Sums of ``k`` columns per symbol over the last ``window`` pushes.

    A push takes ``k`` per-symbol columns of contributions; an invalid
    observation contributes zeros (callers put a 0/1 validity column among the
    columns to count observations).
    """

    __slots__ = ("_new", "_pos", "_pushes", "_ring", "sums", "window")

    def __init__(self, n_symbols: int, window: int, k: int) -> None:
        self.window = window
        self._ring: FloatArray = np.zeros((window, n_symbols, k))
        self._new: FloatArray = np.zeros((n_symbols, k))
        self.sums: FloatArray = np.zeros((n_symbols, k))
        self._pos = 0
        self._pushes = 0

    def push(self, *columns: NDArray[np.float64] | NDArray[np.bool_]) -> None:
        new = self._new
        for j, column in enumerate(columns):
            new[:, j] = column
        slot = self._ring[self._pos]
        self.sums -= slot
        self.sums += new
        slot[...] = new
        self._pos += 1
        if self._pos == self.window:
            self._pos = 0
        self._pushes += 1
        if self._pushes % self.window == 0:
            np.sum(self._ring, axis=0, out=self.sums)


class LagRing:
    """The last ``depth`` values per symbol, for reading a value ``k`` pushes back."""

    __slots__ = ("_pos", "_ring", "depth")

    def __init__(self, n_symbols: int, depth: int) -> None:
        self.depth = depth
        self._ring: FloatArray = np.full((depth, n_symbols), np.nan)
        self._pos = 0  # slot of the next push

    def push(self, values: FloatArray) -> None:
        self._ring[self._pos] = values
        self._pos = (self._pos + 1) % self.depth

    def ago(self, k: int) -> FloatArray:
        """Values pushed ``k`` pushes before the latest one (``k=0``: the latest)."""
        if not 0 <= k < self.depth:
            raise IndexError(f"lag {k} outside ring depth {self.depth}")
        row: FloatArray = self._ring[(self._pos - 1 - k) % self.depth]
        return row

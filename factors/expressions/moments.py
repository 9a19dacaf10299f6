"""The second-moment windows of ANALYTICS.md section 9: ``ts_std`` (ddof=1),
``covariance`` (ddof=1) and ``correlation`` (Pearson) over the last ``d`` bars,
O(symbols) per bar (:mod:`.windows` describes the windows and their undo).

* The running sums are of ``x - K`` with a per-symbol shift ``K`` (the window
  mean at the last recomputation), which avoids the catastrophic cancellation of
  ``sum x^2 - (sum x)^2 / d`` for values far from zero (prices): close to ``K``,
  ``x - K`` is exact.
* A window is *constant* when its ``d`` values are all equal, known exactly from
  the run length of equal consecutive values: ``ts_std`` and ``covariance`` are
  then exactly 0, ``correlation`` NaN (as specified).  A correlation is clipped
  to ``[-1, 1]`` (rounding may step past it).
* A symbol whose running moments carry a rounding bound above 1e-10 of their
  value (the window's dispersion collapsed after a jump) is recomputed exactly
  from its ring on that bar, O(d) for that symbol only.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.expressions.windows import REL_ERROR, Window, rounding_bound, valid_rows

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

__all__ = ["CovarianceWindow", "StdWindow"]


class _Moments(Window):
    """Shifted first and second moments of ``k`` columns (1 or 2) over the rows where
    all are finite, the count of the other rows, per column the run length of equal
    consecutive values, and the sums of the absolute values of every term added to
    or taken from the moments since their last exact computation (a bound on their
    rounding error).  Accumulators, in this order: ``K (k), s (k), q (nq), sabs (k),
    qabs (nq), bad (1), run (k)``, with ``q`` = ``[xx]`` or ``[xx, yy, xy]``: the
    sums ``[s, q]`` and their bounds ``[sabs, qabs]`` are one ``(2, k + nq, n)``
    block, updated at once by a push.

    A running second moment loses digits when the window's dispersion collapses
    far below the spread of the values it has seen since the last recomputation
    (a jump, then a near-flat window): the centered sums are then differences of
    much larger numbers.  Where the rounding bound exceeds :data:`REL_ERROR` of a
    centered sum (for ``xy``: of ``sqrt(xx yy)``), that symbol's moments are
    recomputed exactly from its ring, O(d) for that symbol on that bar.

    ``_value`` runs under the caller's ``np.errstate`` (a compiled expression
    ignores floating-point warnings: NaN and a division by zero are handled here).
    """

    __slots__ = ("_bad", "_block", "_k", "_nq", "_run", "_terms")

    def __init__(self, n_symbols: int, d: int) -> None:
        k = self.k
        nq = 1 if k == 1 else 3
        self._nq = nq
        assert self.m == 4 * k + 2 * nq + 1, self.m
        self._k = slice(0, k)
        self._block = slice(k, 2 * (k + nq) + k)  # [s, q, sabs, qabs]
        self._bad = 2 * (k + nq) + k
        self._run = slice(self._bad + 1, self._bad + 1 + k)
        #: the terms of the entering and the leaving row: deviations, then products
        self._terms: FloatArray = np.empty((2, k + nq, n_symbols))
        super().__init__(n_symbols, d)

    def _sums(self) -> FloatArray:
        """``[[s, q], [sabs, qabs]]``, ``(2, k + nq, n)`` (a view of the accumulators)."""
        block: FloatArray = self.acc[self._block].reshape(2, self.k + self._nq, -1)
        return block

    def _products(self, dev: FloatArray, out: FloatArray) -> None:
        """``(..., k, n)`` deviations -> ``(..., nq, n)`` products in ``q`` order."""
        if self.k == 1:
            np.multiply(dev, dev, out=out)
            return
        x, y = dev[..., 0, :], dev[..., 1, :]
        np.multiply(dev, dev, out=out[..., :2, :])
        np.multiply(x, y, out=out[..., 2, :])

    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        acc, k = self.acc, self.k
        both = self._io  # (2, k, n): entering, leaving
        valid = valid_rows(both)  # (2, n)
        terms = self._terms
        dev = terms[:, :k]
        np.subtract(both, acc[self._k], out=dev)
        np.copyto(dev, 0.0, where=~valid[:, None])
        self._products(dev, terms[:, k:])
        sums = self._sums()
        sums[0] += terms[0] - terms[1]
        np.abs(terms, out=terms)
        sums[1] += terms[0] + terms[1]
        acc[self._bad] += valid[1]
        acc[self._bad] -= valid[0]
        previous = self._ring[(self._pos - 1) % self.d]  # the push before this one
        runs = acc[self._run]
        acc[self._run] = np.where(new == previous, np.minimum(runs + 1.0, self.d), 1.0)

    def _recompute(self) -> None:
        self._refresh(slice(None))

    def _refresh(self, rows: slice | NDArray[np.intp]) -> None:
        """The moments of the symbols ``rows`` exactly from the ring (two passes),
        shifted by their window mean."""
        k, nq = self.k, self._nq
        ring = self._ring[:, :, rows]  # (d, k, r)
        valid = valid_rows(ring)  # (d, r)
        count = valid.sum(axis=0)
        acc = self.acc
        shift = acc[self._k, rows]
        sums = np.where(valid[:, None], ring, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(count > 0, sums / count, shift)
        terms = np.empty((ring.shape[0], k + nq, ring.shape[2]))
        dev = terms[:, :k]
        np.copyto(dev, np.where(valid[:, None], ring - shift, 0.0))
        self._products(dev, terms[:, k:])
        acc[self._k, rows] = shift
        block = np.concatenate((terms.sum(axis=0), np.abs(terms).sum(axis=0)))
        acc[self._block, rows] = block
        acc[self._bad, rows] = self.d - count

    def _centered(self) -> tuple[FloatArray, BoolArray, BoolArray]:
        """``(centered sums of products, ok, constant)``: ``q - s s' / d`` in ``q``
        order (a new array; exact again where rounding could matter), the symbols
        whose window is all finite, and those whose window is constant (a column's
        ``d`` values all equal)."""
        centered, bound = self._centered_raw()
        acc, d = self.acc, self.d
        ok = acc[self._bad] == 0
        runs = acc[self._run]
        constant = runs[0] >= d
        if self.k == 2:
            constant |= runs[1] >= d
            scale = centered.copy()
            np.multiply(centered[0], centered[1], out=scale[2])
            np.sqrt(np.abs(scale[2], out=scale[2]), out=scale[2])
            scale *= REL_ERROR
            over = bound > scale
            doubtful = over[0] | over[1] | over[2]
        else:
            doubtful = bound[0] > REL_ERROR * centered[0]
        doubtful &= ok
        doubtful &= ~constant
        if doubtful.any():
            rows = np.flatnonzero(doubtful)
            self._refresh(rows)
            centered[:, rows] = self._centered_raw()[0][:, rows]
        return centered, ok, constant

    def _centered_raw(self) -> tuple[FloatArray, FloatArray]:
        """Centered sums and a bound on their rounding error, ``(nq, n)`` each."""
        k, d = self.k, self.d
        sums = self._sums()
        both = np.empty((2, self._nq, sums.shape[2]))  # [s s', sabs sabs']
        self._products(sums[:, :k], both)
        both /= d
        centered: FloatArray = sums[0, k:] - both[0]
        both[1] += sums[1, k:]
        return centered, rounding_bound(both[1], self._period)


class StdWindow(_Moments):
    """``ts_std(x, d)``, ddof=1."""

    m = 7
    __slots__ = ()

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        centered, ok, constant = self._centered()
        var: FloatArray = np.maximum(centered[0], 0.0)
        var /= self.d - 1
        var[constant] = 0.0
        np.sqrt(var, out=var)
        var[~ok] = np.nan
        return var


class CovarianceWindow(_Moments):
    """``covariance(x, y, d)`` (ddof=1) and, with ``correlation=True``, Pearson's
    correlation (NaN when either window is constant)."""

    k = 2
    m = 15
    __slots__ = ("correlation",)

    def __init__(self, n_symbols: int, d: int, correlation: bool = False) -> None:
        self.correlation = correlation
        super().__init__(n_symbols, d)

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        centered, ok, constant = self._centered()
        cxx, cyy, cxy = centered
        if not self.correlation:
            cov: FloatArray = cxy / (self.d - 1)
            cov[constant] = 0.0
            cov[~ok] = np.nan
            return cov
        spread = cxx * cyy  # > 0: both > 0 (each is >= 0 up to the rounding checked above)
        corr: FloatArray = cxy / np.sqrt(spread)
        np.minimum(np.maximum(corr, -1.0, out=corr), 1.0, out=corr)
        corr[~(ok & ~constant & (spread > 0))] = np.nan
        return corr

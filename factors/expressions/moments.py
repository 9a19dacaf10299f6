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
    rounding error).  Accumulators, in this order: ``K (k), s (k), q (nq), bad (1),
    run (k), qabs (nq), sabs (k)``, with ``q`` = ``[xx]`` or ``[xx, yy, xy]``.

    A running second moment loses digits when the window's dispersion collapses
    far below the spread of the values it has seen since the last recomputation
    (a jump, then a near-flat window): the centered sums are then differences of
    much larger numbers.  Where the rounding bound exceeds :data:`REL_ERROR` of a
    centered sum (for ``xy``: of ``sqrt(xx yy)``), that symbol's moments are
    recomputed exactly from its ring, O(d) for that symbol on that bar.
    """

    __slots__ = ("_bad", "_cols")

    def __init__(self, n_symbols: int, d: int) -> None:
        k = self.k
        nq = 1 if k == 1 else 3
        names = [("K", k), ("s", k), ("q", nq), ("bad", 1), ("run", k), ("qabs", nq), ("sabs", k)]
        cols, at = {}, 0
        for name, width in names:
            cols[name] = slice(at, at + width)
            at += width
        assert at == self.m, (at, self.m)
        self._cols = cols
        self._bad = cols["bad"].start
        super().__init__(n_symbols, d)

    @staticmethod
    def _products(dev: FloatArray) -> FloatArray:
        if dev.shape[-1] == 1:
            return dev * dev
        x, y = dev[..., 0], dev[..., 1]
        return np.stack([x * x, y * y, x * y], axis=-1)

    def _advance(self, new: FloatArray, leaving: FloatArray) -> None:
        c = self._cols
        acc = self.acc
        shift = acc[:, c["K"]]
        fn, fo = valid_rows(new), valid_rows(leaving)
        dn = np.where(fn[:, None], new - shift, 0.0)
        do = np.where(fo[:, None], leaving - shift, 0.0)
        pn, po = self._products(dn), self._products(do)
        acc[:, c["s"]] += dn - do
        acc[:, c["q"]] += pn - po
        acc[:, c["sabs"]] += np.abs(dn) + np.abs(do)
        acc[:, c["qabs"]] += np.abs(pn) + np.abs(po)
        acc[:, self._bad] += fo.astype(np.float64) - fn.astype(np.float64)
        previous = self._ring[(self._pos - 1) % self.d]  # the push before this one
        runs = acc[:, c["run"]]
        acc[:, c["run"]] = np.where(new == previous, np.minimum(runs + 1.0, self.d), 1.0)

    def _recompute(self) -> None:
        self._refresh(slice(None))

    def _refresh(self, rows: slice | NDArray[np.intp]) -> None:
        """The moments of the symbols ``rows`` exactly from the ring (two passes),
        shifted by their window mean."""
        c = self._cols
        ring = self._ring[:, rows]
        valid = valid_rows(ring)  # (d, r)
        count = valid.sum(axis=0)
        acc = self.acc
        shift = acc[rows, c["K"]]
        sums = np.where(valid[:, :, None], ring, 0.0).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            shift = np.where(count[:, None] > 0, sums / count[:, None], shift)
        dev = np.where(valid[:, :, None], ring - shift[None], 0.0)
        products = self._products(dev)
        acc[rows, c["K"]] = shift
        acc[rows, c["s"]] = dev.sum(axis=0)
        acc[rows, c["q"]] = products.sum(axis=0)
        acc[rows, c["sabs"]] = np.abs(dev).sum(axis=0)
        acc[rows, c["qabs"]] = np.abs(products).sum(axis=0)
        acc[rows, self._bad] = self.d - count

    def _centered(self) -> tuple[FloatArray, BoolArray, FloatArray]:
        """``(centered sums of products, ok, runs)``: ``q - s s' / d`` in ``q`` order
        (exact again where rounding could matter), the symbols whose window is all
        finite, and the run lengths."""
        centered, bound = self._centered_raw()
        acc, c = self.acc, self._cols
        ok = acc[:, self._bad] == 0
        constant = (acc[:, c["run"]] >= self.d).any(axis=1)
        scale = centered.copy()
        if self.k == 2:
            scale[:, 2] = np.sqrt(np.abs(centered[:, 0] * centered[:, 1]))
        doubtful = ok & ~constant & (bound > REL_ERROR * scale).any(axis=1)
        if doubtful.any():
            rows = np.flatnonzero(doubtful)
            self._refresh(rows)
            centered[rows] = self._centered_raw()[0][rows]
        return centered, ok, acc[:, c["run"]]

    def _centered_raw(self) -> tuple[FloatArray, FloatArray]:
        """Centered sums and a bound on their rounding error."""
        acc, c, d = self.acc, self._cols, self.d
        s, q, sabs, qabs = acc[:, c["s"]], acc[:, c["q"]], acc[:, c["sabs"]], acc[:, c["qabs"]]
        if self.k == 1:
            ss, sa = s * s, sabs * sabs
        else:
            sx, sy, ax, ay = s[:, 0:1], s[:, 1:2], sabs[:, 0:1], sabs[:, 1:2]
            ss = np.concatenate([sx * sx, sy * sy, sx * sy], axis=1)
            sa = np.concatenate([ax * ax, ay * ay, ax * ay], axis=1)
        bound = rounding_bound(qabs + sa / d, d)
        return q - ss / d, bound


class StdWindow(_Moments):
    """``ts_std(x, d)``, ddof=1."""

    m = 7
    __slots__ = ()

    def _value(self, new: FloatArray, leaving: FloatArray) -> FloatArray:
        centered, ok, runs = self._centered()
        var = np.maximum(centered[:, 0], 0.0) / (self.d - 1)
        var = np.where(runs[:, 0] >= self.d, 0.0, var)
        out: FloatArray = np.where(ok, np.sqrt(var), np.nan)
        return out


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
        centered, ok, runs = self._centered()
        cxx, cyy, cxy = centered[:, 0], centered[:, 1], centered[:, 2]
        constant = (runs >= self.d).any(axis=1)
        if not self.correlation:
            cov = np.where(constant, 0.0, cxy / (self.d - 1))
            out: FloatArray = np.where(ok, cov, np.nan)
            return out
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = np.clip(cxy / np.sqrt(cxx * cyy), -1.0, 1.0)
        spread = (cxx > 0) & (cyy > 0)
        out = np.where(ok & ~constant & spread, corr, np.nan)
        return out

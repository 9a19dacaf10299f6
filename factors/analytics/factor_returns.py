"""Factor returns: the cross-sectional regression of ANALYTICS.md section 1.

At the close of bar ``t`` the simple returns of bar ``t`` are regressed on the
exposures known one bar earlier::

    R[i,t] = f_universe[t] + sum_k X[i,k,t-1] * f_k[t] + u[i,t]

:class:`FactorReturns` is fed one bar at a time (live and offline alike: the
engine's analytics, :mod:`.pipeline`, feed it every grid step) and keeps
the closes, exposures and weights of the previous bar.  Pure numpy: arrays in,
arrays out, no I/O, no clock.

Choices ANALYTICS.md leaves open, made here:

* The caller feeds every grid step, an empty one (:meth:`FactorReturns.skip`, or
  an update with no symbol present) for a grid time without any bar, so that
  ``t-1`` is always the previous grid step; after such a step the next bar has no
  returns and its sample is empty.
* With a subset of factors (``factors.analytics.factors``), ``K`` is the size of
  the subset: the sample needs finite exposures to those factors only, and
  ``too_few_symbols`` means fewer than ``K + 2`` symbols.
* ``adv``/``cap`` weighting: a symbol without a (finite, positive) FACTORS.md
  weight at ``t-1`` is left out of the sample, as it is left out of ``m[t]`` and
  of ``mu`` in FACTORS.md.
* The regression is solved from the normal equations ``X'VX f = X'VR`` (one
  compiled pass over the symbols and a Cholesky factor: wls.py) where ``X'VX`` is
  well conditioned: ``trace(X'VX) trace((X'VX)^-1)``, at least its condition
  number, below 10^4.  Then the weighted design ``V^(1/2) X`` has a condition
  number below 100, its smallest singular value is far above
  ``numpy.linalg.matrix_rank``'s tolerance (``max(n, K + 1)`` ulps of the
  largest), and the solution agrees with an SVD's to about 10^-12 of the returns.
  Elsewhere (near collinear exposures, few symbols) it is ``numpy.linalg.lstsq``
  on the design and returns multiplied row-wise by ``sqrt(v_i)``, after
  ``numpy.linalg.matrix_rank`` (default tolerance) on that weighted design says
  it has full column rank.
* Weighted ``R^2`` is statsmodels' ``WLS(...).rsquared`` (with a constant):
  ``1 - sum_i v_i u_i^2 / sum_i v_i (R_i - Rbar)^2`` with the weighted mean
  ``Rbar = sum_i v_i R_i / sum_i v_i``.  NaN when the returns of the sample are
  all equal (the total sum of squares is 0).
* When there is no regression (``too_few_symbols``, ``singular``), every factor
  return, every residual and ``R^2`` are NaN; ``n`` is still the sample size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.wls import (
    NEEDS_SVD,
    SOLVED,
    TOO_FEW,
    wls_bar,
    wls_fit,
    wls_normal,
)
from factorcast.factors.params import Weighting
from factorcast.factors.reasons import Reason
from factorcast.factors.registry import UNIVERSE

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


#: the reasons of a factor-return bar, from the one Reason enum of the project:
#: ``too_few_symbols`` (fewer than ``K + 2`` in the sample, also the first bar and a
#: bar after a gap) and ``singular``
_OK = int(Reason.OK)
_TOO_FEW = int(Reason.TOO_FEW_SYMBOLS)
_SINGULAR = int(Reason.SINGULAR)
_REASON_OK = Reason.OK


class FactorReturnBar(NamedTuple):
    """The regression of one bar.

    ``returns`` has one entry per name of ``names`` (``universe`` first, then the
    regression's factors in model order); ``residuals`` one per symbol, NaN
    outside the sample (and everywhere when ``reason`` is not ``OK``), as are
    ``asset_returns``, NaN where a symbol has no return.

    A named tuple: immutable, and made at every grid step for a fraction of the
    cost of a frozen dataclass.
    """

    names: tuple[str, ...]
    returns: FloatArray
    residuals: FloatArray
    r2: float
    n: int
    reason: Reason
    #: the symbols' returns of the bar that were regressed (NaN where missing)
    asset_returns: FloatArray


class FactorReturns:
    """The incremental factor-return regression over a fixed universe.

    ``names`` are the model's factors (``FactorSnapshot.names``: the columns of
    the exposure matrices fed to :meth:`update`); ``factors`` optionally restricts
    the regression to some of them (their order is the model's).
    """

    __slots__ = (
        "_columns",
        "_every_column",
        "_prev_close",
        "_prev_v",
        "_prev_x",
        "model_names",
        "n_symbols",
        "names",
        "weighting",
    )

    def __init__(
        self,
        n_symbols: int,
        names: Sequence[str],
        weighting: Weighting = "equal",
        factors: Sequence[str] | None = None,
    ) -> None:
        model_names = tuple(names)
        if len(set(model_names)) != len(model_names):
            raise ValueError("duplicate factor names")
        if factors is None:
            chosen = model_names
        else:
            unknown = [f for f in factors if f not in model_names]
            if unknown:
                raise ValueError(f"unknown factor(s) {', '.join(unknown)}")
            if len(set(factors)) != len(factors):
                raise ValueError("a factor is named twice")
            chosen = tuple(f for f in model_names if f in factors)
        if weighting not in ("equal", "adv", "cap"):
            raise ValueError(f"unknown weighting {weighting!r}")
        self.n_symbols = n_symbols
        self.model_names = model_names
        self.weighting: Weighting = weighting
        self.names: tuple[str, ...] = (UNIVERSE, *chosen)
        self._columns = np.array([model_names.index(f) for f in chosen], dtype=np.intp)
        self._prev_close: FloatArray = np.full(n_symbols, np.nan)
        # the previous bar's exposures as a row per regression factor (K, n_symbols)
        self._prev_x: FloatArray = np.full((len(chosen), n_symbols), np.nan)
        # what it keeps is read-only, as what it is handed (see update_rows)
        self._prev_close.flags.writeable = self._prev_x.flags.writeable = False
        self._prev_v: FloatArray | None = None
        self._every_column = chosen == model_names

    @property
    def k(self) -> int:
        """The number of model factors in the regression (``universe`` not counted)."""
        return int(self._columns.size)

    def checkpoint(self) -> tuple[FloatArray, FloatArray, FloatArray | None]:
        """What :meth:`restore` needs to put the regression back as it is now: the
        previous bar's arrays (replaced, never changed in place, by :meth:`update`)."""
        return self._prev_close, self._prev_x, self._prev_v

    def restore(self, token: tuple[FloatArray, FloatArray, FloatArray | None]) -> None:
        self._prev_close, self._prev_x, self._prev_v = token

    def skip(self) -> FactorReturnBar:
        """A grid step without any bar: nothing to regress, and no previous bar
        for the next one."""
        n = self.n_symbols
        nan = np.full(n, np.nan)
        return self.update(nan, np.full((n, len(self.model_names)), np.nan), nan)

    def update(
        self,
        close: FloatArray,
        exposure: FloatArray,
        weights: FloatArray | None = None,
        present: BoolArray | None = None,
    ) -> FactorReturnBar:
        """Take bar ``t``: its closes (NaN or ``present=False`` where no bar), its
        exposures ``(n_symbols, n_model_factors)`` and, for ``adv``/``cap``
        weighting, FACTORS.md's weights at ``t`` (NaN where none).  Returns the
        regression of bar ``t`` on the exposures of ``t-1``."""
        n = self.n_symbols
        close = np.asarray(close, dtype=np.float64)
        exposure = np.asarray(exposure, dtype=np.float64)
        if close.shape != (n,) or exposure.shape != (n, len(self.model_names)):
            raise ValueError("close or exposure does not fit the universe and the factors")
        if present is not None:
            close = np.where(present, close, np.nan)
        # a row per factor (for the model's exposures, stored by factor, a plain copy)
        xt = np.array(exposure.T, order="C")
        close = np.array(close, order="C")  # its own copy, which it keeps
        close.flags.writeable = xt.flags.writeable = False
        return self.update_rows(close, xt, weights)

    def update_rows(
        self,
        close: FloatArray,
        xt: FloatArray,
        weights: FloatArray | None = None,
    ) -> FactorReturnBar:
        """:meth:`update` with the exposures as a row per model factor, ``xt``
        ``(n_model_factors, n_symbols)`` C-contiguous float64, and float64 contiguous
        closes (NaN where no bar), both read-only: they are kept as they are (and the
        compiled calls, which numba compiles apart for a read-only argument, always
        see the same kind of array); their shapes are not checked again (:meth:`update`
        does).  The bar's returns over the previous closes are the result's
        ``asset_returns``."""
        v: FloatArray | None = None  # equal weights
        if self.weighting != "equal":
            n = self.n_symbols
            if weights is None:
                raise ValueError(f"{self.weighting} weighting needs the weights of every bar")
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (n,):
                raise ValueError("weights must have one entry per symbol")
            with np.errstate(invalid="ignore"):
                v = np.where(np.isfinite(w) & (w > 0), np.sqrt(w), np.nan)
        if not self._every_column:
            xt = xt[self._columns]
            xt.flags.writeable = False  # kept: read-only, as what it was handed
        # the returns and the regression on the previous bar in one compiled call
        prev_v = _EQUAL if self._prev_v is None else self._prev_v
        fit = wls_bar(close, self._prev_close, self._prev_x, prev_v, _MAX_CONDITION_BOUND)
        if fit[0] == SOLVED:  # nearly every bar: the figures as they are
            result = FactorReturnBar(self.names, fit[4], fit[5], fit[6], fit[1], _REASON_OK, fit[3])
        else:
            result = _bar_of(self.names, self._prev_x, prev_v, fit)
        self._prev_close, self._prev_x, self._prev_v = close, xt, v
        return result


def regress(
    r: FloatArray, x: FloatArray, v: FloatArray | None, names: tuple[str, ...]
) -> FactorReturnBar:
    """One cross-sectional WLS: returns ``r`` (n,), exposures ``x`` (n, K) and
    regression weights ``v`` (n,), NaN where missing (``None``: equal weights);
    minimizes ``sum v_i u_i^2`` over the symbols where all three are finite."""
    return _regress_rows(r, np.array(np.asarray(x, dtype=np.float64).T, order="C"), v, names)


#: the normal equations are solved where ``trace(X'VX) * trace((X'VX)^-1)`` (at
#: least the condition number of ``X'VX``, at most ``(K + 1)^2`` times it) is below
#: this, else the weighted design goes through the SVD (see the module docstring)
_MAX_CONDITION_BOUND = 1e4


def _regress_rows(
    r: FloatArray, xt: FloatArray, v: FloatArray | None, names: tuple[str, ...]
) -> FactorReturnBar:
    """:func:`regress` with the exposures as a C-contiguous row per factor (K, n)."""
    y = np.ascontiguousarray(r, dtype=np.float64)
    w = _EQUAL if v is None else np.ascontiguousarray(v, dtype=np.float64)
    outcome, _, n, mean, f, residuals, r2 = wls_normal(y, xt, w, _MAX_CONDITION_BOUND)
    return _bar_of(names, xt, w, (outcome, n, mean, y, f, residuals, r2))


def _bar_of(
    names: tuple[str, ...],
    xt: FloatArray,
    w: FloatArray,
    fit: tuple[int, int, float, FloatArray, FloatArray, FloatArray, float],
) -> FactorReturnBar:
    """The bar from a fit (:func:`~factorcast.factors.analytics.wls.wls_bar`'s
    figures) of the returns ``y`` on ``xt`` with the weights ``w`` (empty: equal);
    where the normal equations were not clearly well conditioned, solved again by
    the SVD."""
    outcome, n, mean, y, f, residuals, r2 = fit
    k, n_sym = xt.shape
    if outcome == TOO_FEW:
        return _no_regression(names, n_sym, n, _TOO_FEW, y)
    if outcome == NEEDS_SVD:
        sample = np.isfinite(y) & np.isfinite(xt).all(axis=0)
        if w.size:
            sample &= np.isfinite(w)
        design = np.empty((n, k + 1))
        design[:, 0] = 1.0
        design[:, 1:] = xt[:, sample].T
        solved = _solve_svd(design, y[sample], None if not w.size else w[sample])
        if solved is None:
            return _no_regression(names, n_sym, n, _SINGULAR, y)
        f = np.ascontiguousarray(solved)
        r2 = wls_fit(y, xt, w, sample, f, mean, residuals)
    return FactorReturnBar(names, f, residuals, r2, n, _REASON_OK, y)


#: the weights of ``equal`` weighting, for the kernels: none (every ``v_i`` is 1)
_EQUAL: FloatArray = np.empty(0)


def _solve_svd(design: FloatArray, y: FloatArray, vs: FloatArray | None) -> FloatArray | None:
    """``lstsq`` on the design and returns multiplied row-wise by ``sqrt(v_i)``,
    None where ``numpy.linalg.matrix_rank`` says that design is rank-deficient."""
    if vs is None:
        wdesign, wy = design, y
    else:
        sw = np.sqrt(vs)
        wdesign, wy = design * sw[:, None], y * sw
    f, _, _, sv = np.linalg.lstsq(wdesign, wy, rcond=None)
    if not _full_rank(wdesign, np.asarray(sv, dtype=np.float64)):
        return None
    return np.asarray(f, dtype=np.float64)


def _no_regression(
    names: tuple[str, ...], n_sym: int, n: int, code: int, y: FloatArray
) -> FactorReturnBar:
    nan = np.full(len(names), np.nan)
    return FactorReturnBar(names, nan, np.full(n_sym, np.nan), np.nan, n, Reason(code), y)


def _full_rank(a: FloatArray, sv: FloatArray) -> bool:
    """``numpy.linalg.matrix_rank(a) == a.shape[1]``, mostly without its SVD.

    ``sv`` are the singular values ``lstsq`` computed (LAPACK ``gelsd``); those of
    ``matrix_rank`` (``gesdd``) agree with them to a few ulps of the largest, while
    its tolerance is ``max(a.shape)`` ulps of the largest.  So a smallest singular
    value above 4 times that tolerance is full rank by either, and only below it is
    ``matrix_rank`` asked (the decision is always its own)."""
    tol = sv.max() * max(a.shape) * np.finfo(np.float64).eps
    if sv.min() > 4.0 * tol:
        return True
    return bool(np.linalg.matrix_rank(a) == a.shape[1])

"""The risk model of ANALYTICS.md section 3, updated one bar at a time.

:class:`RiskModel` is fed, at the close of each bar ``T``, the factor returns
``f[T]`` (``K + 1`` of them: ``universe`` first, then the model factors in
registry order; all NaN when the regression had a reason) and the residuals
``u[:, T]`` (one per symbol, NaN outside the regression's sample).  Over the
last ``window`` bars it keeps

- the zero-mean factor covariance ``F = sum_t a_t f[t] f[t]'`` with
  ``a_t = 2^(-(T-t)/H)`` normalized to sum 1 over the bars whose factor returns
  are *all* finite (fewer than ``min_obs`` such bars: no model, reason
  ``insufficient_history``);
- the specific variances ``D_i = sum_t b_t u[i,t]^2`` over the bars where
  ``u[i,t]`` exists, the same weights renormalized over those bars; a symbol
  with fewer than ``min_residuals`` (30) residuals in the window gets the
  cross-sectional median of the other ``D_j`` instead, flagged in ``fallback``.

Incremental, O(symbols + factors^2) per bar.  Rather than weigh the window
afresh at every bar, the sums are kept *decayed*: with ``g = 2^(-1/H)``,

    S[T] = g * S[T-1] + [f[T] finite] f[T] f[T]' - g^W [f[T-W] finite] f[T-W] f[T-W]'

and likewise the normalizer ``Z = sum_t [f[t] finite] g^(T-t)`` and the count of
finite bars.  The bar ``T-W`` leaves at ``T`` (the window is ``T-W+1 .. T``); it
went in with weight 1 and has been decayed ``W`` times since, so it is taken out
with weight ``g^W = 2^(-W/H)``.  Per symbol the same three sums are kept over the
residuals: ``sum g^(T-t) u^2``, ``sum g^(T-t)`` and the count.  The normalization
of the contract cancels in the ratios ``F = S / Z`` and ``D_i = Su_i / Sw_i``, so
nothing needs renormalizing per bar.  A ring of the last ``W`` factor-return and
residual vectors supplies the terms that leave.

Choices this page makes where the contract leaves them open:

- Floating-point drift from decay/add/subtract is bounded as in
  ``factors/rolling.py``: every ``W`` bars every sum is recomputed exactly from the
  ring with the weights ``2^(-(T-t)/H)`` computed directly (amortized O(symbols +
  factors^2) per bar).  Between recomputes the error stays small because the
  rounding error of every add decays with ``g`` like the term itself: a term
  leaving has weight ``2^(-W/H)`` (0.02 at the defaults), so an outlier 500 times
  the typical residual leaves an error near 1e-14 relative; only outliers many
  orders of magnitude larger are visible until the next recompute.  A count that
  falls to 0 resets its sums to exactly 0, so that no rounding residue of departed
  terms is read as a value.
- "The ``D_j`` that exist" for the fallback median are those of the symbols with
  at least ``min_residuals`` residuals of their own (a fallback value is not a
  sample of the cross-section).  With none, every ``D_i`` is NaN (all flagged).
- Without a factor covariance (``reason`` not ``OK``) the covariance is all NaN;
  the specific variances, which have their own rule, are still reported.
- The set of symbols is fixed per instance (a symbol outside the sample has a NaN
  residual); the bars before the first update count as bars without factor
  returns or residuals.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.reasons import Reason
from factorcast.factors.registry import UNIVERSE

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: ANALYTICS.md section 3 defaults (``risk.window``, ``risk.half_life``, ``risk.min_obs``).
DEFAULT_WINDOW = 500
DEFAULT_HALF_LIFE = 90.0
DEFAULT_MIN_OBS = 60
#: Fewer residuals than this in the window: the specific variance falls back to the median.
MIN_RESIDUALS = 30


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """The risk model at one bar.

    ``covariance[j, k]`` is the covariance of the factor returns named
    ``names[j]`` and ``names[k]`` (``universe`` first), all NaN unless ``reason``
    is ``Reason.OK``; ``n_obs`` the number of bars in the window with all factor
    returns finite.  ``specific[i]`` is the specific variance of symbol ``i``,
    ``fallback[i]`` True where it is the cross-sectional median
    (``specific_fallback``), ``n_residuals[i]`` the residuals it had in the window.
    """

    names: tuple[str, ...]
    covariance: FloatArray
    reason: Reason
    n_obs: int
    specific: FloatArray
    fallback: BoolArray
    n_residuals: NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class _RiskToken:
    pos: int
    pushes: int
    f_sum: FloatArray
    f_z: float
    f_count: int
    u_sq: FloatArray
    u_w: FloatArray
    u_count: NDArray[np.int64]
    f_row: FloatArray
    u_row: FloatArray


class RiskModel:
    """Exponentially weighted factor covariance and specific variances over a
    rolling window, one bar per :meth:`update` (see the module docstring)."""

    __slots__ = (
        "_d",
        "_decay",
        "_f_count",
        "_f_ring",
        "_f_sum",
        "_f_z",
        "_leave",
        "_pos",
        "_pushes",
        "_u_count",
        "_u_ring",
        "_u_sq",
        "_u_w",
        "half_life",
        "min_obs",
        "min_residuals",
        "n_symbols",
        "names",
        "window",
    )

    def __init__(
        self,
        factor_names: Sequence[str],
        n_symbols: int,
        *,
        window: int = DEFAULT_WINDOW,
        half_life: float = DEFAULT_HALF_LIFE,
        min_obs: int = DEFAULT_MIN_OBS,
        min_residuals: int = MIN_RESIDUALS,
    ) -> None:
        if window < 1 or half_life <= 0 or min_obs < 1 or min_residuals < 1 or n_symbols < 0:
            raise ValueError(
                "risk model: window, half_life, min_obs, min_residuals must be positive"
            )
        self.names: tuple[str, ...] = (UNIVERSE, *factor_names)
        self.n_symbols = n_symbols
        self.window = window
        self.half_life = float(half_life)
        self.min_obs = min_obs
        self.min_residuals = min_residuals
        d = len(self.names)
        self._d = d
        self._decay = float(np.exp2(-1.0 / self.half_life))
        self._leave = float(np.exp2(-window / self.half_life))
        self._f_ring: FloatArray = np.full((window, d), np.nan)
        self._u_ring: FloatArray = np.full((window, n_symbols), np.nan)
        self._f_sum: FloatArray = np.zeros((d, d))
        self._f_z = 0.0
        self._f_count = 0
        self._u_sq: FloatArray = np.zeros(n_symbols)
        self._u_w: FloatArray = np.zeros(n_symbols)
        self._u_count: NDArray[np.int64] = np.zeros(n_symbols, dtype=np.int64)
        self._pos = 0
        self._pushes = 0

    def update(self, factor_returns: FloatArray, residuals: FloatArray) -> RiskSnapshot:
        """Take bar ``T``'s factor returns (``K + 1``) and residuals (symbols); return
        the risk model at ``T``."""
        f = np.asarray(factor_returns, dtype=np.float64)
        u = np.asarray(residuals, dtype=np.float64)
        if f.shape != (self._d,):
            raise ValueError(f"factor returns: expected shape ({self._d},), got {f.shape}")
        if u.shape != (self.n_symbols,):
            raise ValueError(f"residuals: expected shape ({self.n_symbols},), got {u.shape}")
        g = self._decay
        old_f = self._f_ring[self._pos]
        old_u = self._u_ring[self._pos]
        # factor covariance sums
        self._f_sum *= g
        self._f_z *= g
        if np.isfinite(old_f).all():
            self._f_sum -= self._leave * np.outer(old_f, old_f)
            self._f_z -= self._leave
            self._f_count -= 1
        if np.isfinite(f).all():
            self._f_sum += np.outer(f, f)
            self._f_z += 1.0
            self._f_count += 1
        if self._f_count == 0:
            self._f_sum[...] = 0.0
            self._f_z = 0.0
        # specific variance sums
        self._u_sq *= g
        self._u_w *= g
        leaving = np.isfinite(old_u)
        self._u_sq[leaving] -= self._leave * old_u[leaving] ** 2
        self._u_w[leaving] -= self._leave
        self._u_count[leaving] -= 1
        entering = np.isfinite(u)
        self._u_sq[entering] += u[entering] ** 2
        self._u_w[entering] += 1.0
        self._u_count[entering] += 1
        gone = self._u_count == 0
        self._u_sq[gone] = 0.0
        self._u_w[gone] = 0.0
        # ring
        old_f[...] = f
        old_u[...] = u
        self._pos += 1
        if self._pos == self.window:
            self._pos = 0
        self._pushes += 1
        if self._pushes % self.window == 0:
            self._recompute()
        return self.snapshot()

    def checkpoint(self) -> _RiskToken:
        """What :meth:`restore` needs to put the model back as it is now, before the
        next :meth:`update`: O(symbols + factors^2), never the window."""
        return _RiskToken(
            self._pos,
            self._pushes,
            self._f_sum.copy(),
            self._f_z,
            self._f_count,
            self._u_sq.copy(),
            self._u_w.copy(),
            self._u_count.copy(),
            self._f_ring[self._pos].copy(),
            self._u_ring[self._pos].copy(),
        )

    def restore(self, token: _RiskToken) -> None:
        self._pos, self._pushes = token.pos, token.pushes
        self._f_sum = token.f_sum.copy()
        self._f_z, self._f_count = token.f_z, token.f_count
        self._u_sq = token.u_sq.copy()
        self._u_w = token.u_w.copy()
        self._u_count = token.u_count.copy()
        self._f_ring[self._pos] = token.f_row
        self._u_ring[self._pos] = token.u_row

    def _recompute(self) -> None:
        """All sums afresh from the ring (bounds the drift of add/subtract)."""
        # slot (pos - 1 - j) mod W holds bar T - j
        age = (self._pos - 1 - np.arange(self.window)) % self.window
        weight = np.empty(self.window)
        weight[age] = np.exp2(-np.arange(self.window) / self.half_life)
        f_ok = np.isfinite(self._f_ring).all(axis=1)
        fw = self._f_ring[f_ok]
        self._f_sum = (fw * weight[f_ok, None]).T @ fw
        self._f_z = float(weight[f_ok].sum())
        self._f_count = int(f_ok.sum())
        u_ok = np.isfinite(self._u_ring)
        usq = np.where(u_ok, self._u_ring, 0.0) ** 2
        self._u_sq = weight @ usq
        self._u_w = weight @ u_ok.astype(np.float64)
        self._u_count = u_ok.sum(axis=0).astype(np.int64)

    def snapshot(self) -> RiskSnapshot:
        """The risk model at the last bar updated."""
        if self._f_count >= self.min_obs:
            cov = self._f_sum / self._f_z
            cov = 0.5 * (cov + cov.T)
            reason = Reason.OK
        else:
            cov = np.full((self._d, self._d), np.nan)
            reason = Reason.INSUFFICIENT_HISTORY
        specific = np.full(self.n_symbols, np.nan)
        own = self._u_count >= self.min_residuals
        specific[own] = self._u_sq[own] / self._u_w[own]
        fallback = ~own
        if own.any() and fallback.any():
            specific[fallback] = np.median(specific[own])
        return RiskSnapshot(
            names=self.names,
            covariance=cov,
            reason=reason,
            n_obs=self._f_count,
            specific=specific,
            fallback=fallback,
            n_residuals=self._u_count.copy(),
        )


def loadings(exposures: FloatArray) -> FloatArray:
    """``B`` with ``B[i] = [1, X[i, :]]``: the universe loading 1, then the exposures."""
    x = np.asarray(exposures, dtype=np.float64)
    return np.hstack([np.ones((x.shape[0], 1)), x])


def asset_covariance(
    covariance: FloatArray, specific: FloatArray, exposures: FloatArray
) -> FloatArray:
    """``V = B F B' + diag(D)`` with ``B[i] = [1, X[i, :, T]]`` (``exposures`` is
    symbols x K).  A symbol with a missing exposure or specific variance has NaN
    in its row and column."""
    b = loadings(exposures)
    v: FloatArray = b @ covariance @ b.T
    v[np.diag_indices_from(v)] += specific
    return v


@dataclass(frozen=True, slots=True)
class RiskDecomposition:
    """Euler decomposition of a portfolio's one-bar variance ``w'Vw``.

    ``exposure`` is ``x = B'w`` (``universe`` first); ``factor[k] = x_k (F x)_k /
    variance`` and ``specific[i] = w_i^2 D_i / variance`` are shares of the
    variance, summing to 1 (Euler's identity for the homogeneous ``w'Vw``).
    """

    variance: float
    exposure: FloatArray
    factor: FloatArray
    specific: FloatArray


def risk_decomposition(
    covariance: FloatArray, specific: FloatArray, exposures: FloatArray, weights: FloatArray
) -> RiskDecomposition:
    """The Euler decomposition of ``w'Vw`` into factor and specific shares.

    Only the held symbols (``w_i != 0``) enter; each must have finite exposures
    and a finite specific variance (ANALYTICS.md section 4 leaves the others out
    of the portfolio before it gets here), else ``ValueError``.
    """
    w = np.asarray(weights, dtype=np.float64)
    d = np.asarray(specific, dtype=np.float64)
    b = loadings(exposures)
    held = w != 0
    if not (np.isfinite(b[held]).all() and np.isfinite(d[held]).all()):
        raise ValueError("risk decomposition: a held symbol has a missing exposure or variance")
    if not np.isfinite(covariance).all():
        raise ValueError("risk decomposition: no factor covariance")
    x = b[held].T @ w[held]
    fx = covariance @ x
    factor_var = x * fx
    specific_var = np.zeros(w.shape)
    specific_var[held] = w[held] ** 2 * d[held]
    variance = float(factor_var.sum() + specific_var.sum())
    return RiskDecomposition(
        variance=variance,
        exposure=x,
        factor=factor_var / variance,
        specific=specific_var / variance,
    )

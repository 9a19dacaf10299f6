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
nothing needs renormalizing per bar.  A ring of the last ``W`` factor-return
vectors and residual vectors supplies the terms that leave (a residual's are the
row ``[u^2; 1; 1]``, zero where ``u`` is missing): the three residual sums move together, one decay
``[g; g; 1]`` and one leaving weight ``[g^W; g^W; 1]`` per row.  An update is one
compiled call (risk_kernels.py).  It replaces the sums rather than change them in
place and writes one ring slot, so that a checkpoint (the engine's undo log) is a
handful of references and that slot: a copy, or (with :meth:`RiskModel.keep_undo`)
saved by the update itself, in the same compiled call.

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

from factorcast.factors.analytics.risk_kernels import risk_update, specific_variances
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

_OK = Reason.OK
_INSUFFICIENT = Reason.INSUFFICIENT_HISTORY


class RiskSnapshot:
    """The risk model at one bar.

    ``covariance[j, k]`` is the covariance of the factor returns named
    ``names[j]`` and ``names[k]`` (``universe`` first), all NaN unless ``reason``
    is ``Reason.OK``; ``n_obs`` the number of bars in the window with all factor
    returns finite.  ``specific[i]`` is the specific variance of symbol ``i``,
    ``fallback[i]`` True where it is the cross-sectional median
    (``specific_fallback``), ``n_residuals[i]`` the residuals it had in the window.

    The covariance is the second layer of the model's ``factor`` array of that bar
    (its sums ``S`` and the covariance); the last three are read off the model's
    residual sums of that bar at their first access.  Both are kept by reference
    (an update replaces them, never changes them): the same numbers whenever they
    are read; the snapshot is read-only.
    """

    __slots__ = ("_factor", "_figures", "_min_residuals", "_u_sums", "n_obs", "names", "reason")

    def __init__(
        self,
        names: tuple[str, ...],
        factor: FloatArray,
        reason: Reason,
        n_obs: int,
        u_sums: FloatArray,
        min_residuals: int,
    ) -> None:
        self.names = names
        self._factor = factor
        self.reason = reason
        self.n_obs = n_obs
        self._u_sums = u_sums
        self._min_residuals = min_residuals
        self._figures: tuple[FloatArray, BoolArray, NDArray[np.int64]] | None = None

    @property
    def covariance(self) -> FloatArray:
        covariance: FloatArray = self._factor[1]
        return covariance

    def _specific_figures(self) -> tuple[FloatArray, BoolArray, NDArray[np.int64]]:
        if self._figures is None:
            self._figures = specific_variances(self._u_sums, self._min_residuals)
        return self._figures

    @property
    def specific(self) -> FloatArray:
        return self._specific_figures()[0]

    @property
    def fallback(self) -> BoolArray:
        return self._specific_figures()[1]

    @property
    def n_residuals(self) -> NDArray[np.int64]:
        return self._specific_figures()[2]

    def __repr__(self) -> str:
        return f"RiskSnapshot(names={self.names!r}, reason={self.reason!r}, n_obs={self.n_obs})"


#: The risk model's sums after a bar: the factor sums ``S`` with the covariance
#: ``(2, K + 1, K + 1)``, their normalizer ``Z`` and count, and the residual sums
#: ``(3, n)`` (risk_kernels.py's ``risk_update``).
_Sums = tuple[FloatArray, float, int, FloatArray]

#: What :meth:`RiskModel.restore` needs: position and pushes, the sums, and the ring
#: slot the next update overwrites (its factor returns, whether they were finite, its
#: residuals), or None where the update saves that slot itself
#: (:meth:`RiskModel.keep_undo`).
_RiskToken = tuple[int, int, _Sums, tuple[FloatArray, bool, FloatArray] | None]


class RiskModel:
    """Exponentially weighted factor covariance and specific variances over a
    rolling window, one bar per :meth:`update` (see the module docstring)."""

    __slots__ = (
        "_d",
        "_decay",
        "_f_ok",
        "_f_ring",
        "_least",
        "_leave",
        "_pos",
        "_pushes",
        "_rates",
        "_ring",
        "_saved",
        "_sums",
        "_u_ring",
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
        # the ring: per slot, the bar's factor returns, whether they were all finite, and
        # its residuals (NaN where none, or no bar)
        self._f_ring: FloatArray = np.full((window, d), np.nan)
        self._f_ok: BoolArray = np.zeros(window, dtype=np.bool_)
        self._u_ring: FloatArray = np.full((window, n_symbols), np.nan)
        # the decayed sums of f f' (with the covariance: none yet), their normalizer and
        # count; of u^2, of 1, and the count; replaced at each update
        factor = np.zeros((2, d, d))
        factor[1] = np.nan
        self._sums: _Sums = (factor, 0.0, 0, np.zeros((3, n_symbols)))
        self._pos = 0
        self._pushes = 0
        # the compiled update's fixed arguments: the ring, the rates, the least counts
        self._ring = (self._f_ring, self._f_ok, self._u_ring)
        self._rates = (self._decay, self._leave, self.half_life)
        self._least = (self.min_obs, self.min_residuals)
        # the ring slots the last updates overwrote, update p's at p % depth (none kept)
        self._saved = _saved_slots(0, d, n_symbols)

    def keep_undo(self, depth: int) -> None:
        """From now on each update saves the ring slot it overwrites, for the last
        ``depth`` updates: a :meth:`checkpoint` (taken back within ``depth`` updates)
        is then references alone, never a copy."""
        if depth < 0:
            raise ValueError("undo depth must be >= 0")
        self._saved = _saved_slots(depth, self._d, self.n_symbols)

    def update(self, factor_returns: FloatArray, residuals: FloatArray) -> RiskSnapshot:
        """Take bar ``T``'s factor returns (``K + 1``) and residuals (symbols); return
        the risk model at ``T``.

        The sums are replaced, never changed in place, and one ring slot is written,
        so that :meth:`checkpoint` is a handful of references and that slot."""
        f = np.ascontiguousarray(factor_returns, dtype=np.float64)
        u = np.ascontiguousarray(residuals, dtype=np.float64)
        if f.shape != (self._d,):
            raise ValueError(f"factor returns: expected shape ({self._d},), got {f.shape}")
        if u.shape != (self.n_symbols,):
            raise ValueError(f"residuals: expected shape ({self.n_symbols},), got {u.shape}")
        return self.update_rows(f, u)

    def update_rows(self, f: FloatArray, u: FloatArray) -> RiskSnapshot:
        """:meth:`update` with C-contiguous float64 factor returns ``(K + 1,)`` and
        residuals ``(n,)``, as the factor-return regression gives them (unchecked)."""
        pos = self._pos
        depth = len(self._saved[1])
        save_at = self._pushes % depth if depth else -1
        self._pushes += 1
        self._sums = risk_update(
            f,
            u,
            self._sums,
            self._ring,
            pos,
            self._saved,
            save_at,
            self._rates,
            self._pushes % self.window == 0,  # every W bars, the sums afresh from the ring
            self._least,
        )
        self._pos = 0 if pos + 1 == self.window else pos + 1
        return self.snapshot()

    def checkpoint(self) -> _RiskToken:
        """What :meth:`restore` needs to put the model back as it is now, before the
        next :meth:`update`: references and the ring slot it overwrites (``K + 1``
        factor returns and the residuals), copied unless the update saves it."""
        pos = self._pos
        slot = None
        if not len(self._saved[1]):
            slot = (self._f_ring[pos].copy(), bool(self._f_ok[pos]), self._u_ring[pos].copy())
        return (pos, self._pushes, self._sums, slot)

    def restore(self, token: _RiskToken) -> None:
        pushed = self._pushes > token[1]  # else nothing was updated since the checkpoint
        pos, self._pushes, self._sums, slot = token
        self._pos = pos
        if slot is None and pushed:  # the update saved it
            saved_f, saved_ok, saved_u = self._saved
            at = self._pushes % len(saved_ok)
            slot = (saved_f[at], bool(saved_ok[at]), saved_u[at])
        if slot is not None:
            self._f_ring[pos], self._f_ok[pos], self._u_ring[pos] = slot

    def snapshot(self) -> RiskSnapshot:
        """The risk model at the last bar updated."""
        factor, _, count, u_sums = self._sums
        ok = count >= self.min_obs
        return RiskSnapshot(
            self.names, factor, _OK if ok else _INSUFFICIENT, count, u_sums, self.min_residuals
        )


def _saved_slots(depth: int, d: int, n: int) -> tuple[FloatArray, BoolArray, FloatArray]:
    """Room for ``depth`` ring slots: factor returns, finiteness, residuals."""
    return np.empty((depth, d)), np.empty(depth, dtype=np.bool_), np.empty((depth, n))


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

"""Portfolio risk, VaR and diversification (ANALYTICS.md section 5).

With the risk model of section 3 (factor covariance ``F``, ``universe`` first;
specific variances ``D``) and a portfolio's covered holdings (weights ``w``,
exposures ``X``, ``x = B'w``):

- ``sigma^2 = x'Fx + sum_i w_i^2 D_i`` for one bar; annualized ``sigma *
  sqrt(bars_per_year)``; a horizon of ``h`` bars scales by ``sqrt(h)``.
- Euler contributions to ``sigma`` (they sum to it): factor ``k``: ``x_k (Fx)_k
  / sigma``, specific ``sum_i w_i^2 D_i / sigma``, position ``i``: ``w_i (Vw)_i /
  sigma`` with ``V = B F B' + diag(D)``; each with its share (``/ sigma``).
- VaR and ES are *losses*, positive fractions of NAV: parametric (normal, zero
  mean) ``VaR_a = z_a sigma``, ``ES_a = sigma phi(z_a) / (1 - a)``; historical
  over ``p_s = sum_i w_i R[i,s]`` with today's weights,
  ``VaR_a = -quantile(p, 1 - a)`` (numpy's default linear interpolation),
  ``ES_a = -mean(p_s : p_s <= -VaR_a)``; both one bar times ``sqrt(h)``.
- Diversification ratio ``sum_i |w_i| sqrt(V_ii) / sigma``; score ``(1 - HHI) /
  (1 - 1/m)`` and effective number of bets ``1 / HHI`` with ``HHI = sum_j
  p_j^2``, ``p_j = |RC_j| / sum |RC|`` over the ``m`` Euler components
  (``universe``, each factor, specific).

Choices the contract leaves open, made here:

- No risk model (``F`` not finite, or a covered holding without a specific
  variance): every figure NaN, reason ``insufficient_history``.  No covered
  holding, or only zero weights (``sigma = 0``): NaN, reason ``too_few_symbols``.
- Historical VaR: ``returns`` are the simple returns of the covered holdings
  ending at ``T``; the last ``window`` rows are the window ``T-W+1 .. T``; the
  bars where every holding has a return count.  None: NaN, reason
  ``insufficient_history``.  ``z_a`` is ``scipy.stats.norm.ppf(a)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.risk import asset_covariance, loadings, risk_decomposition
from factorcast.factors.reasons import Reason

FloatArray = NDArray[np.float64]

#: the confidence levels every VaR and ES is reported at
LEVELS: Final[tuple[float, ...]] = (0.95, 0.99)
#: ``risk.var_window``: the bars of the historical VaR
DEFAULT_VAR_WINDOW: Final = 500


@dataclass(frozen=True, slots=True)
class Diversification:
    """Diversification ratio, score and effective number of bets."""

    ratio: float
    score: float
    effective_bets: float


@dataclass(frozen=True, slots=True)
class PortfolioRisk:
    """One-bar risk and its Euler attribution.

    ``names`` as the risk model's (``universe`` first); ``factor_contributions``
    one per name, ``position_contributions`` one per holding passed in; the
    ``*_shares`` are the contributions divided by ``sigma``.  All NaN unless
    ``reason`` is ``OK``.
    """

    names: tuple[str, ...]
    reason: Reason
    sigma: float
    sigma_annual: float
    sigma_horizon: float
    horizon: int
    factor_contributions: FloatArray
    factor_shares: FloatArray
    specific_contribution: float
    specific_share: float
    position_contributions: FloatArray
    position_shares: FloatArray
    diversification: Diversification


def _no_risk(names: tuple[str, ...], m: int, horizon: int, reason: Reason) -> PortfolioRisk:
    nan = float("nan")
    return PortfolioRisk(
        names=names,
        reason=reason,
        sigma=nan,
        sigma_annual=nan,
        sigma_horizon=nan,
        horizon=horizon,
        factor_contributions=np.full(len(names), nan),
        factor_shares=np.full(len(names), nan),
        specific_contribution=nan,
        specific_share=nan,
        position_contributions=np.full(m, nan),
        position_shares=np.full(m, nan),
        diversification=Diversification(nan, nan, nan),
    )


def diversification(
    factor_contributions: FloatArray,
    specific_contribution: float,
    weights: FloatArray,
    asset_variances: FloatArray,
    sigma: float,
) -> Diversification:
    """The section's ratio, score and effective number of bets from the Euler
    contributions (one per risk-model factor, then specific)."""
    rc = np.abs(np.append(factor_contributions, specific_contribution))
    p = rc / rc.sum()
    hhi = float(np.dot(p, p))
    m = rc.size
    ratio = float(np.dot(np.abs(weights), np.sqrt(asset_variances)) / sigma)
    return Diversification(ratio, (1.0 - hhi) / (1.0 - 1.0 / m), 1.0 / hhi)


def portfolio_risk(
    names: Sequence[str],
    covariance: FloatArray,
    specific: FloatArray,
    exposures: FloatArray,
    weights: FloatArray,
    *,
    bars_per_year: float,
    horizon: int = 1,
) -> PortfolioRisk:
    """Risk of the covered holdings: ``weights`` (m,), ``exposures`` (m, K) in
    the model's order, ``specific`` (m,) their specific variances; ``names`` and
    ``covariance`` (K+1, K+1) the risk model's (``RiskSnapshot.names`` /
    ``.covariance``)."""
    names_t = tuple(names)
    w = np.asarray(weights, dtype=np.float64)
    d = np.asarray(specific, dtype=np.float64)
    x = np.asarray(exposures, dtype=np.float64)
    f = np.asarray(covariance, dtype=np.float64)
    m = w.size
    if horizon < 1:
        raise ValueError("horizon must be at least one bar")
    if f.shape != (len(names_t), len(names_t)) or x.shape != (m, len(names_t) - 1):
        raise ValueError("covariance, exposures and names do not fit")
    if d.shape != (m,):
        raise ValueError("specific must have one entry per holding")
    if not (np.isfinite(f).all() and np.isfinite(d).all()):
        return _no_risk(names_t, m, horizon, Reason.INSUFFICIENT_HISTORY)
    if m == 0 or not (w != 0).any():
        return _no_risk(names_t, m, horizon, Reason.TOO_FEW_SYMBOLS)
    dec = risk_decomposition(f, d, x, w)
    sigma = float(np.sqrt(dec.variance))
    factor = dec.factor * sigma  # x_k (Fx)_k / sigma
    spec = float(dec.specific.sum()) * sigma  # sum w_i^2 D_i / sigma
    v = asset_covariance(f, d, x)
    position = w * (v @ w) / sigma
    return PortfolioRisk(
        names=names_t,
        reason=Reason.OK,
        sigma=sigma,
        sigma_annual=sigma * float(np.sqrt(bars_per_year)),
        sigma_horizon=sigma * float(np.sqrt(horizon)),
        horizon=horizon,
        factor_contributions=factor,
        factor_shares=factor / sigma,
        specific_contribution=spec,
        specific_share=spec / sigma,
        position_contributions=position,
        position_shares=position / sigma,
        diversification=diversification(factor, spec, w, np.diag(v), sigma),
    )


def asset_variances(
    covariance: FloatArray, specific: FloatArray, exposures: FloatArray
) -> FloatArray:
    """``V_ii = B_i F B_i' + D_i`` without forming ``V``."""
    b = loadings(exposures)
    out: FloatArray = np.einsum("ij,jk,ik->i", b, covariance, b) + specific
    return out


@dataclass(frozen=True, slots=True)
class TailRisk:
    """VaR and ES (losses, positive fractions of NAV) at ``levels``, for a
    horizon of ``horizon`` bars; ``bars`` the bars a historical estimate used
    (``None`` for parametric).  NaN unless ``reason`` is ``OK``."""

    method: str
    levels: tuple[float, ...]
    horizon: int
    var: FloatArray
    es: FloatArray
    bars: int | None
    reason: Reason


def parametric_tail(
    sigma: float, *, levels: Sequence[float] = LEVELS, horizon: int = 1
) -> TailRisk:
    """Normal, zero-mean VaR ``z_a sigma`` and ES ``sigma phi(z_a) / (1 - a)``,
    times ``sqrt(horizon)``."""
    a = np.asarray(levels, dtype=np.float64)
    if horizon < 1:
        raise ValueError("horizon must be at least one bar")
    reason = Reason.OK if np.isfinite(sigma) else Reason.INSUFFICIENT_HISTORY
    from scipy.stats import norm  # here: scipy.stats takes most of a second to import

    z = norm.ppf(a)
    scale = sigma * np.sqrt(horizon)
    var = np.asarray(z * scale, dtype=np.float64)
    es = np.asarray(scale * norm.pdf(z) / (1.0 - a), dtype=np.float64)
    return TailRisk("parametric", tuple(levels), horizon, var, es, None, reason)


def historical_tail(
    weights: FloatArray,
    returns: FloatArray,
    *,
    window: int = DEFAULT_VAR_WINDOW,
    levels: Sequence[float] = LEVELS,
    horizon: int = 1,
) -> TailRisk:
    """Historical VaR and ES of today's weights (m,) over the last ``window``
    rows of ``returns`` (bars, m) in which every holding has a return."""
    w = np.asarray(weights, dtype=np.float64)
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 2 or r.shape[1] != w.size:
        raise ValueError("returns must be (bars, holdings)")
    if window < 1 or horizon < 1:
        raise ValueError("window and horizon must be at least one bar")
    lv = tuple(levels)
    nan = np.full(len(lv), np.nan)
    if w.size == 0:
        return TailRisk("historical", lv, horizon, nan, nan.copy(), 0, Reason.TOO_FEW_SYMBOLS)
    last = r[-window:]
    usable = last[np.isfinite(last).all(axis=1)]
    if usable.shape[0] == 0:
        return TailRisk("historical", lv, horizon, nan, nan.copy(), 0, Reason.INSUFFICIENT_HISTORY)
    p = usable @ w
    root = float(np.sqrt(horizon))
    var = np.empty(len(lv))
    es = np.empty(len(lv))
    for j, a in enumerate(lv):
        v = -float(np.quantile(p, 1.0 - a))
        var[j] = v * root
        es[j] = -float(p[p <= -v].mean()) * root
    return TailRisk("historical", lv, horizon, var, es, int(usable.shape[0]), Reason.OK)

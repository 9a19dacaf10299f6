"""Regressing a portfolio's returns on factor returns (ANALYTICS.md section 6).

``y[t]`` (the portfolio's return of bar ``t``) on the factor returns ``f[t]`` of
section 1 (``universe`` included), same bar, over the bars where ``y`` and every
``f`` are finite:

- ``ols``: exactly ``statsmodels OLS(y, add_constant(f)).fit(cov_type="HAC",
  cov_kwds={"maxlags": L})``: Newey-West (Bartlett) standard errors with
  ``L = floor(4 * (T/100)^(2/9))`` unless given; statsmodels' HAC defaults
  otherwise (no small-sample correction, normal p-values).
- ``ridge`` (penalty ``lambda``): ``make_pipeline(StandardScaler(),
  Ridge(alpha=lambda))`` of scikit-learn: regressors standardized (mean 0,
  population std), ``y`` centered, ``min ||y_c - Z b||^2 + lambda ||b||^2``;
  loadings ``b / std``, ``alpha = mean(y) - sum loadings * mean(f)``.
- ``alpha`` per bar and annualized (``* bars_per_year``); fewer than ``K + 12``
  usable bars: no regression, reason ``insufficient_history``.
- Position level: each holding's ``R[i,t]`` on the same bars by the same linear
  map, and ``max_disagreement``, the largest ``|sum_i w_i b_i - b|`` over alpha
  and the loadings (below 1e-10 when ``y = sum_i w_i R[i,t]``).

Choices the contract leaves open, made here:

- ``K`` is the number of regressors besides ``universe`` (``names[1:]``).
- The constant is always added (``has_constant="add"``): identical to
  ``add_constant(f)`` unless a factor-return column is constant, where the
  latter would silently drop the intercept.
- Position level: the OLS loadings of every holding are ``pinv(W) @ R`` with
  the pseudo-inverse statsmodels' fit computed for the portfolio (statsmodels'
  ``pinv`` method is exactly this product), and the ridge ones one multi-target
  fit of the same pipeline: the same linear map, so the disagreement is rounding.
  When position returns are given the sample also needs all of them finite
  (always so when ``y`` comes from the same holdings, :func:`holdings_returns`).
- Ridge has no standard errors, t-statistics or p-values (NaN) and no lag;
  its ``R^2`` is ``1 - SSR/SST`` of the fitted values on the sample and its
  adjusted ``R^2`` uses statsmodels' formula with ``K + 1`` regressors.
  A constant regressor is left unscaled by ``StandardScaler`` (loading 0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.reasons import Reason

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
Method = Literal["ols", "ridge"]

METHODS: Final[tuple[Method, ...]] = ("ols", "ridge")
#: the ridge penalty ``lambda`` by default
DEFAULT_PENALTY: Final = 1.0
#: usable bars needed beyond ``K``
EXTRA_BARS: Final = 12


def newey_west_lags(n_obs: int) -> int:
    """The default HAC lag ``floor(4 * (T/100)^(2/9))``."""
    return math.floor(4.0 * math.pow(n_obs / 100.0, 2.0 / 9.0))


def holdings_returns(weights: FloatArray, returns: FloatArray) -> FloatArray:
    """``y[t] = sum_i w_i R[i,t]`` with the weights held constant, NaN at a bar
    where a holding has no return; ``returns`` is (bars, m)."""
    r = np.asarray(returns, dtype=np.float64)
    y: FloatArray = r @ np.asarray(weights, dtype=np.float64)
    y[~np.isfinite(r).all(axis=1)] = np.nan
    return y


@dataclass(frozen=True, slots=True)
class PositionLoadings:
    """The same regression per holding: ``alpha`` (m,), ``loadings`` (m, K+1)."""

    symbols: tuple[str, ...]
    alpha: FloatArray
    loadings: FloatArray
    max_disagreement: float


@dataclass(frozen=True, slots=True)
class ReturnRegression:
    """A regression of returns on factor returns.

    ``names`` are the regressors (``universe`` first); ``loadings``, ``se``,
    ``t``, ``p`` one per name; ``alpha_*`` the intercept's.  ``sample`` marks the
    bars used (``n_obs`` of them).  NaN unless ``reason`` is ``OK``.
    """

    method: Method
    names: tuple[str, ...]
    reason: Reason
    n_obs: int
    maxlags: int | None
    penalty: float | None
    alpha: float
    alpha_annual: float
    alpha_se: float
    alpha_t: float
    alpha_p: float
    loadings: FloatArray
    se: FloatArray
    t: FloatArray
    p: FloatArray
    r2: float
    r2_adj: float
    sample: BoolArray
    positions: PositionLoadings | None


def regress_returns(
    y: FloatArray,
    factor_returns: FloatArray,
    names: Sequence[str],
    *,
    bars_per_year: float,
    method: Method = "ols",
    penalty: float = DEFAULT_PENALTY,
    maxlags: int | None = None,
    position_returns: FloatArray | None = None,
    weights: FloatArray | None = None,
    symbols: Sequence[str] = (),
) -> ReturnRegression:
    """Regress ``y`` (T,) on ``factor_returns`` (T, K+1) named ``names``; with
    ``position_returns`` (T, m) and ``weights`` (m,), each holding too."""
    yv = np.asarray(y, dtype=np.float64)
    f = np.asarray(factor_returns, dtype=np.float64)
    names_t = tuple(names)
    if method not in METHODS:
        raise ValueError(f"unknown regression method {method!r}")
    if f.ndim != 2 or f.shape != (yv.size, len(names_t)):
        raise ValueError("factor returns must be (bars, names) with one row per return")
    if method == "ridge" and not penalty >= 0:
        raise ValueError("ridge penalty must be >= 0")
    if maxlags is not None and maxlags < 0:
        raise ValueError("maxlags must be >= 0")
    sample = np.isfinite(yv) & np.isfinite(f).all(axis=1)
    r: FloatArray | None = None
    w: FloatArray | None = None
    if position_returns is not None:
        r = np.asarray(position_returns, dtype=np.float64)
        if weights is None:
            raise ValueError("position returns need the weights")
        w = np.asarray(weights, dtype=np.float64)
        if r.ndim != 2 or r.shape != (yv.size, w.size) or len(symbols) != w.size:
            raise ValueError("position returns must be (bars, holdings) with a symbol each")
        sample &= np.isfinite(r).all(axis=1)
    n_obs = int(sample.sum())
    k = len(names_t) - 1
    if n_obs < k + EXTRA_BARS:
        return _empty(method, names_t, n_obs, sample, symbols if r is not None else None)
    ys, fs = yv[sample], f[sample]
    rs = None if r is None else r[sample]
    if method == "ols":
        lags = newey_west_lags(n_obs) if maxlags is None else maxlags
        import statsmodels.api as sm  # here: a second to import, for the one command using it

        fit = sm.OLS(ys, sm.add_constant(fs, has_constant="add")).fit(
            cov_type="HAC", cov_kwds={"maxlags": lags}
        )
        params = np.asarray(fit.params, dtype=np.float64)
        se = np.asarray(fit.bse, dtype=np.float64)
        tv = np.asarray(fit.tvalues, dtype=np.float64)
        pv = np.asarray(fit.pvalues, dtype=np.float64)
        r2, r2_adj = float(fit.rsquared), float(fit.rsquared_adj)
        pos_params = None if rs is None else np.asarray(fit.model.pinv_wexog @ rs).T
        used_lags: int | None = lags
        used_penalty: float | None = None
    else:
        params, pos_params, r2, r2_adj = _ridge(ys, fs, rs, penalty)
        se = tv = pv = np.full(k + 2, np.nan)
        used_lags, used_penalty = None, float(penalty)
    positions = None
    if rs is not None and w is not None and pos_params is not None:
        gap = np.abs(w @ pos_params - params)
        positions = PositionLoadings(
            tuple(symbols), pos_params[:, 0].copy(), pos_params[:, 1:].copy(), float(gap.max())
        )
    return ReturnRegression(
        method=method,
        names=names_t,
        reason=Reason.OK,
        n_obs=n_obs,
        maxlags=used_lags,
        penalty=used_penalty,
        alpha=float(params[0]),
        alpha_annual=float(params[0]) * bars_per_year,
        alpha_se=float(se[0]),
        alpha_t=float(tv[0]),
        alpha_p=float(pv[0]),
        loadings=params[1:].copy(),
        se=se[1:].copy(),
        t=tv[1:].copy(),
        p=pv[1:].copy(),
        r2=r2,
        r2_adj=r2_adj,
        sample=sample,
        positions=positions,
    )


def _ridge(
    y: FloatArray, f: FloatArray, r: FloatArray | None, penalty: float
) -> tuple[FloatArray, FloatArray | None, float, float]:
    """The scikit-learn pipeline, fitted to ``y`` and every position at once;
    parameters ``[alpha, loadings...]`` of ``y`` and (m, K+2) of the positions."""
    targets = y[:, None] if r is None else np.column_stack([y, r])
    from sklearn.linear_model import Ridge  # here, as statsmodels above
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = make_pipeline(StandardScaler(), Ridge(alpha=penalty))
    pipe.fit(f, targets)
    scaler, ridge = pipe[0], pipe[-1]
    coef = np.asarray(ridge.coef_, dtype=np.float64).reshape(targets.shape[1], f.shape[1])
    slopes = coef / np.asarray(scaler.scale_, dtype=np.float64)
    alphas = targets.mean(axis=0) - slopes @ f.mean(axis=0)
    params = np.column_stack([alphas, slopes])
    fitted = alphas[0] + f @ slopes[0]
    ssr = float(np.sum((y - fitted) ** 2))
    sst = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - ssr / sst if sst > 0 else float("nan")
    n, p = y.size, f.shape[1]
    r2_adj = 1.0 - (n - 1) / (n - p - 1) * (1.0 - r2)
    return params[0], (params[1:] if r is not None else None), r2, r2_adj


def _empty(
    method: Method,
    names: tuple[str, ...],
    n_obs: int,
    sample: BoolArray,
    symbols: Sequence[str] | None,
) -> ReturnRegression:
    nan = float("nan")
    k1 = len(names)
    positions = None
    if symbols is not None:
        m = len(symbols)
        positions = PositionLoadings(tuple(symbols), np.full(m, nan), np.full((m, k1), nan), nan)
    return ReturnRegression(
        method=method,
        names=names,
        reason=Reason.INSUFFICIENT_HISTORY,
        n_obs=n_obs,
        maxlags=None,
        penalty=None,
        alpha=nan,
        alpha_annual=nan,
        alpha_se=nan,
        alpha_t=nan,
        alpha_p=nan,
        loadings=np.full(k1, nan),
        se=np.full(k1, nan),
        t=np.full(k1, nan),
        p=np.full(k1, nan),
        r2=nan,
        r2_adj=nan,
        sample=sample,
        positions=positions,
    )

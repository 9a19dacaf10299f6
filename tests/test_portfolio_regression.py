"""Regressing returns on factor returns (ANALYTICS.md section 6): OLS against
statsmodels with Newey-West errors, ridge against scikit-learn's pipeline and the
closed form of the contract, the position level and its agreement."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from numpy.typing import NDArray
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from factorcast.factors import CANONICAL, UNIVERSE, Reason
from factorcast.factors.analytics import (
    bars_per_year,
    holdings_returns,
    newey_west_lags,
    regress_returns,
)
from factorcast.factors.analytics.regression import Method

FloatArray = NDArray[np.float64]
K = len(CANONICAL)
NAMES = (UNIVERSE, *CANONICAL)
BPY = bars_per_year(3600)


def data(seed: int, bars: int, m: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Autocorrelated factor returns with holes, holdings' returns loading on
    them, weights."""
    rng = np.random.default_rng(seed)
    e = rng.normal(scale=0.01, size=(bars, K + 1))
    f = e.copy()
    for t in range(1, bars):
        f[t] += 0.3 * f[t - 1]
    f[rng.random(bars) < 0.05] = np.nan
    beta = rng.normal(size=(K + 1, m))
    r = 2e-4 + np.nan_to_num(f) @ beta + rng.normal(scale=0.01, size=(bars, m))
    r[rng.random((bars, m)) < 0.02] = np.nan
    w = rng.dirichlet(np.ones(m)) * 1.2 - 0.05
    return f, r, w


@pytest.mark.parametrize(("n_obs", "lags"), [(100, 4), (1000, 6), (5000, 9), (30, 3)])
def test_newey_west_lag_rule(n_obs: int, lags: int) -> None:
    assert newey_west_lags(n_obs) == math.floor(4 * (n_obs / 100) ** (2 / 9)) == lags


@pytest.mark.parametrize("seed", [0, 1])
def test_ols_matches_statsmodels_hac(seed: int) -> None:
    f, r, w = data(seed, 800, 6)
    y = holdings_returns(w, r)
    got = regress_returns(
        y,
        f,
        NAMES,
        bars_per_year=BPY,
        position_returns=r,
        weights=w,
        symbols=[f"S{i}" for i in range(6)],
    )
    sample = np.isfinite(y) & np.isfinite(f).all(axis=1)
    n = int(sample.sum())
    lags = math.floor(4 * (n / 100) ** (2 / 9))
    fit = sm.OLS(y[sample], sm.add_constant(f[sample])).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags}
    )
    assert got.reason == Reason.OK and got.method == "ols"
    assert got.n_obs == n and got.maxlags == lags
    np.testing.assert_array_equal(got.sample, sample)
    np.testing.assert_allclose(got.alpha, fit.params[0], rtol=1e-10, atol=1e-15)
    assert got.alpha_annual == pytest.approx(fit.params[0] * 8760, rel=1e-10)
    np.testing.assert_allclose(got.loadings, fit.params[1:], rtol=1e-10)
    np.testing.assert_allclose(got.se, fit.bse[1:], rtol=1e-10)
    np.testing.assert_allclose(got.t, fit.tvalues[1:], rtol=1e-10)
    np.testing.assert_allclose(got.p, fit.pvalues[1:], rtol=1e-8, atol=1e-300)
    assert got.alpha_se == pytest.approx(fit.bse[0], rel=1e-10)
    assert got.alpha_p == pytest.approx(fit.pvalues[0], rel=1e-8)
    assert got.r2 == pytest.approx(fit.rsquared, rel=1e-12)
    assert got.r2_adj == pytest.approx(fit.rsquared_adj, rel=1e-12)
    # each position: the same regression, on the same bars
    pos = got.positions
    assert pos is not None
    for i in range(r.shape[1]):
        one = sm.OLS(r[sample, i], sm.add_constant(f[sample])).fit()
        np.testing.assert_allclose(pos.alpha[i], one.params[0], rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(pos.loadings[i], one.params[1:], rtol=1e-9, atol=1e-13)
    gap = max(
        abs(w @ pos.alpha - got.alpha), float(np.max(np.abs(w @ pos.loadings - got.loadings)))
    )
    assert pos.max_disagreement == pytest.approx(gap, abs=1e-15)
    assert pos.max_disagreement < 1e-10


def test_ols_given_lags() -> None:
    f, r, w = data(3, 400, 3)
    y = holdings_returns(w, r)
    got = regress_returns(y, f, NAMES, bars_per_year=BPY, maxlags=0)
    sample = np.isfinite(y) & np.isfinite(f).all(axis=1)
    fit = sm.OLS(y[sample], sm.add_constant(f[sample])).fit(cov_type="HAC", cov_kwds={"maxlags": 0})
    assert got.maxlags == 0 and got.positions is None
    np.testing.assert_allclose(got.se, fit.bse[1:], rtol=1e-10)


@pytest.mark.parametrize("penalty", [1.0, 0.0, 25.0])
def test_ridge_matches_scikit_learn_and_the_closed_form(penalty: float) -> None:
    f, r, w = data(4, 600, 5)
    y = holdings_returns(w, r)
    got = regress_returns(
        y,
        f,
        NAMES,
        bars_per_year=BPY,
        method="ridge",
        penalty=penalty,
        position_returns=r,
        weights=w,
        symbols=[f"S{i}" for i in range(5)],
    )
    sample = np.isfinite(y) & np.isfinite(f).all(axis=1)
    ys, fs = y[sample], f[sample]
    pipe = make_pipeline(StandardScaler(), Ridge(alpha=penalty)).fit(fs, ys)
    std = fs.std(axis=0)  # population std
    sk_loadings = pipe[-1].coef_ / std
    sk_alpha = pipe.predict(np.zeros((1, K + 1)))[0]  # the prediction at f = 0
    # the contract, written plainly
    z = (fs - fs.mean(axis=0)) / std
    b = np.linalg.solve(z.T @ z + penalty * np.eye(K + 1), z.T @ (ys - ys.mean()))
    loadings = b / std
    alpha = ys.mean() - loadings @ fs.mean(axis=0)
    assert got.method == "ridge" and got.penalty == penalty and got.maxlags is None
    np.testing.assert_allclose(got.loadings, sk_loadings, rtol=1e-9)
    np.testing.assert_allclose(got.loadings, loadings, rtol=1e-9)
    assert got.alpha == pytest.approx(sk_alpha, rel=1e-8, abs=1e-14)
    assert got.alpha == pytest.approx(alpha, rel=1e-8, abs=1e-14)
    fitted = pipe.predict(fs)
    r2 = 1 - np.sum((ys - fitted) ** 2) / np.sum((ys - ys.mean()) ** 2)
    assert got.r2 == pytest.approx(r2, rel=1e-10)
    n = ys.size
    assert got.r2_adj == pytest.approx(1 - (1 - r2) * (n - 1) / (n - (K + 1) - 1), rel=1e-10)
    assert np.isnan(got.se).all() and np.isnan(got.t).all() and np.isnan(got.p).all()
    pos = got.positions
    assert pos is not None
    for i in range(r.shape[1]):
        one = make_pipeline(StandardScaler(), Ridge(alpha=penalty)).fit(fs, r[sample, i])
        np.testing.assert_allclose(pos.loadings[i], one[-1].coef_ / std, rtol=1e-8, atol=1e-13)
    assert pos.max_disagreement < 1e-10


@pytest.mark.parametrize("method", ["ols", "ridge"])
def test_too_few_bars(method: Method) -> None:
    f, r, w = data(5, 200, 2)
    y = holdings_returns(w, r)
    ok = np.flatnonzero(np.isfinite(y) & np.isfinite(f).all(axis=1))
    cut = ok[K + 11]  # the bars up to here hold K + 11 usable ones
    few = regress_returns(y[:cut], f[:cut], NAMES, bars_per_year=BPY, method=method)
    assert few.reason == Reason.INSUFFICIENT_HISTORY and few.n_obs == K + 11
    assert math.isnan(few.alpha) and np.isnan(few.loadings).all()
    enough = regress_returns(y[: cut + 1], f[: cut + 1], NAMES, bars_per_year=BPY, method=method)
    assert enough.reason == Reason.OK and enough.n_obs == K + 12


def test_holdings_returns_need_every_holding() -> None:
    r = np.array([[0.01, 0.02], [np.nan, 0.01], [0.03, -0.01]])
    y = holdings_returns(np.array([0.25, 0.75]), r)
    assert y[0] == pytest.approx(0.25 * 0.01 + 0.75 * 0.02, rel=1e-15)
    assert math.isnan(y[1])
    assert y[2] == pytest.approx(0.25 * 0.03 - 0.75 * 0.01, rel=1e-15)

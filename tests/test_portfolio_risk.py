"""Portfolio risk, VaR and diversification (ANALYTICS.md section 5) against a
plain numpy / scipy / pandas recomputation written from the contract."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from scipy import integrate, stats

from factorcast.factors import CANONICAL, UNIVERSE, Reason
from factorcast.factors.analytics import (
    LEVELS,
    bars_per_year,
    historical_tail,
    parametric_tail,
    portfolio_risk,
)

FloatArray = NDArray[np.float64]
K = len(CANONICAL)
NAMES = (UNIVERSE, *CANONICAL)
HOURLY = bars_per_year(3600)


def model(seed: int, m: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """A factor covariance (from simulated factor returns), specific variances,
    exposures and weights of ``m`` holdings."""
    rng = np.random.default_rng(seed)
    f = rng.standard_t(5, size=(400, K + 1)) * rng.uniform(0.002, 0.02, K + 1)
    cov = f.T @ f / f.shape[0]
    specific = rng.uniform(1e-5, 4e-4, m)
    x = np.clip(rng.normal(size=(m, K)), -3, 3)
    w = rng.normal(scale=0.2, size=m)
    return cov, specific, x, w


def plain_v(cov: FloatArray, specific: FloatArray, x: FloatArray) -> FloatArray:
    b = np.column_stack([np.ones(x.shape[0]), x])
    return b @ cov @ b.T + np.diag(specific)


def test_bars_per_year() -> None:
    assert bars_per_year(3600) == 8760.0
    assert bars_per_year(300) == 365 * 288
    with pytest.raises(ValueError, match="positive"):
        bars_per_year(0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_risk_and_euler_contributions(seed: int) -> None:
    cov, specific, x, w = model(seed, 25)
    got = portfolio_risk(NAMES, cov, specific, x, w, bars_per_year=HOURLY, horizon=24)
    v = plain_v(cov, specific, x)
    sigma = math.sqrt(w @ v @ w)
    xp = np.concatenate([[w.sum()], w @ x])
    assert got.reason == Reason.OK
    assert got.sigma == pytest.approx(sigma, rel=1e-12)
    assert got.sigma_annual == pytest.approx(sigma * math.sqrt(8760), rel=1e-12)
    assert got.sigma_horizon == pytest.approx(sigma * math.sqrt(24), rel=1e-12)
    np.testing.assert_allclose(got.factor_contributions, xp * (cov @ xp) / sigma, rtol=1e-10)
    assert got.specific_contribution == pytest.approx(np.sum(w**2 * specific) / sigma, rel=1e-12)
    np.testing.assert_allclose(got.position_contributions, w * (v @ w) / sigma, rtol=1e-10)
    # Euler: each set sums to sigma
    total = math.fsum([*got.factor_contributions, got.specific_contribution])
    assert abs(total - got.sigma) <= 1e-12 * got.sigma
    assert abs(math.fsum(got.position_contributions) - got.sigma) <= 1e-12 * got.sigma
    assert math.fsum([*got.factor_shares, got.specific_share]) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(got.position_shares, got.position_contributions / sigma, rtol=1e-12)
    # diversification, from the contract
    rc = np.abs(np.append(xp * (cov @ xp) / sigma, np.sum(w**2 * specific) / sigma))
    p = rc / rc.sum()
    hhi = float(np.sum(p**2))
    div = got.diversification
    assert div.ratio == pytest.approx(np.sum(np.abs(w) * np.sqrt(np.diag(v))) / sigma, rel=1e-12)
    assert div.score == pytest.approx((1 - hhi) / (1 - 1 / (K + 2)), rel=1e-12)
    assert div.effective_bets == pytest.approx(1 / hhi, rel=1e-12)


def test_no_model_and_no_holdings_have_reasons() -> None:
    cov, specific, x, w = model(3, 5)
    none = portfolio_risk(NAMES, np.full_like(cov, np.nan), specific, x, w, bars_per_year=HOURLY)
    assert none.reason == Reason.INSUFFICIENT_HISTORY and math.isnan(none.sigma)
    assert np.isnan(none.position_contributions).all() and none.position_contributions.size == 5
    empty = portfolio_risk(NAMES, cov, specific[:0], x[:0], w[:0], bars_per_year=HOURLY)
    assert empty.reason == Reason.TOO_FEW_SYMBOLS and math.isnan(empty.sigma)
    zero = portfolio_risk(NAMES, cov, specific, x, 0 * w, bars_per_year=HOURLY)
    assert zero.reason == Reason.TOO_FEW_SYMBOLS


@pytest.mark.parametrize("horizon", [1, 10])
def test_parametric_var_and_es(horizon: int) -> None:
    sigma = 0.0123
    got = parametric_tail(sigma, horizon=horizon)
    assert got.levels == LEVELS == (0.95, 0.99)
    s = sigma * math.sqrt(horizon)
    spec_z = {0.95: 1.6448536, 0.99: 2.3263479}
    for j, a in enumerate(LEVELS):
        z = stats.norm.ppf(a)
        assert z == pytest.approx(spec_z[a], abs=1e-7)
        assert got.var[j] == pytest.approx(z * s, rel=1e-14)
        # ES as the mean loss beyond VaR, by numerical integration of the normal density
        tail, _ = integrate.quad(lambda u: u * stats.norm.pdf(u, scale=s), z * s, np.inf)
        assert got.es[j] == pytest.approx(tail / (1 - a), rel=1e-8)
    assert got.reason == Reason.OK and got.bars is None


@pytest.mark.parametrize(("window", "horizon"), [(500, 1), (120, 4), (10_000, 1)])
def test_historical_var_and_es(window: int, horizon: int) -> None:
    rng = np.random.default_rng(7)
    bars, m = 900, 8
    r = rng.standard_t(3, size=(bars, m)) * 0.01
    r[rng.random((bars, m)) < 0.03] = np.nan
    w = rng.normal(scale=0.3, size=m)
    got = historical_tail(w, r, window=window, horizon=horizon)
    frame = pd.DataFrame(r).iloc[-window:]
    p = frame.dropna().to_numpy() @ w
    assert got.bars == p.size and got.reason == Reason.OK
    for j, a in enumerate(LEVELS):
        var = -np.quantile(p, 1 - a, method="linear")
        es = -p[p <= -var].mean()
        assert got.var[j] == pytest.approx(var * math.sqrt(horizon), rel=1e-14)
        assert got.es[j] == pytest.approx(es * math.sqrt(horizon), rel=1e-14)
        assert got.es[j] >= got.var[j]
    # pandas' quantile (linear by default) agrees
    series = pd.Series(p)
    assert got.var[0] == pytest.approx(-series.quantile(0.05) * math.sqrt(horizon), rel=1e-12)


def test_historical_without_usable_bars() -> None:
    r = np.full((20, 2), 0.01)
    r[:, 1] = np.nan
    got = historical_tail(np.array([0.5, 0.5]), r)
    assert got.reason == Reason.INSUFFICIENT_HISTORY and got.bars == 0
    assert np.isnan(got.var).all() and np.isnan(got.es).all()


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 20), st.data())
def test_permuting_positions_permutes_risk(seed: int, m: int, data: st.DataObject) -> None:
    cov, specific, x, w = model(seed, m)
    perm = np.array(data.draw(st.permutations(range(m))), dtype=np.intp)
    a = portfolio_risk(NAMES, cov, specific, x, w, bars_per_year=HOURLY)
    b = portfolio_risk(NAMES, cov, specific[perm], x[perm], w[perm], bars_per_year=HOURLY)
    assert b.sigma == pytest.approx(a.sigma, rel=1e-12)
    np.testing.assert_allclose(
        b.position_contributions, a.position_contributions[perm], rtol=0, atol=1e-12 * a.sigma
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 20), st.floats(0.01, 100))
def test_scaling_weights_scales_risk(seed: int, m: int, c: float) -> None:
    cov, specific, x, w = model(seed, m)
    a = portfolio_risk(NAMES, cov, specific, x, w, bars_per_year=HOURLY)
    b = portfolio_risk(NAMES, cov, specific, x, c * w, bars_per_year=HOURLY)
    assert b.sigma == pytest.approx(c * a.sigma, rel=1e-12)
    np.testing.assert_allclose(
        b.factor_contributions, c * a.factor_contributions, rtol=0, atol=1e-12 * c * a.sigma
    )
    np.testing.assert_allclose(b.factor_shares, a.factor_shares, rtol=0, atol=1e-12)
    assert b.diversification.ratio == pytest.approx(a.diversification.ratio, rel=1e-12)

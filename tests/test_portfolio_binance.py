"""The portfolio analytics end to end on the recorded Binance candles (126
symbols, 1h, grid gaps, symbols listing late): exposures from the real engine,
factor returns of its steps, the risk model fed every grid step, then a
portfolio of quantities at a bar where some holdings have no exposures, each
result checked against its oracle (pandas, statsmodels, OSQP)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from numpy.typing import NDArray

from factorcast.adapters.files.recorded import load_directory
from factorcast.adapters.files.replay import Panel
from factorcast.factors import CANONICAL, REASON_LABELS, UNIVERSE, FactorModel, FactorParams, Reason
from factorcast.factors.analytics import (
    CASH,
    FactorReturnBar,
    FactorReturns,
    Holding,
    RiskModel,
    RiskSnapshot,
    bars_per_year,
    historical_tail,
    holdings_returns,
    holdings_weights,
    parametric_tail,
    portfolio_exposure,
    portfolio_risk,
    regress_returns,
    scan,
    suggest,
    tilt,
)
from factorcast.factors.model import FactorSnapshot
from factorcast.strategy.app.settings import SignalSettings
from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.strategies import Trend
from tests.test_portfolio_optimizer import osqp_solve, plain_v

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "binance-1h"
AT = 3500  # an engine step with holdings that have no exposures yet
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Real:
    symbols: tuple[str, ...]
    bpy: float
    close: FloatArray  # (grid, n): NaN where no bar, up to AT
    asof: FloatArray  # (n,) the last close at or before AT
    returns: FloatArray  # (grid, n) simple returns on the grid
    factor_returns: FloatArray  # (grid, K + 1)
    names: tuple[str, ...]
    snapshot: FactorSnapshot
    risk: RiskSnapshot


def factor_returns_of_steps(
    steps: list[StepResult], timeframe_ms: int
) -> list[tuple[int, FactorReturnBar]]:
    """The factor returns of each engine step: one skip stands for a gap of grid
    steps without any bar (the next bar then has no previous one)."""
    out: list[tuple[int, FactorReturnBar]] = []
    first = steps[0].factors
    fr = FactorReturns(first.exposure.shape[0], first.names)
    last: int | None = None
    for step in steps:
        if last is not None and step.ts - last > timeframe_ms:
            fr.skip()
        last = step.ts
        close = np.where(step.xs.present, step.xs.close, np.nan)
        out.append((step.ts, fr.update(close, step.factors.exposure, step.factors.weights)))
    return out


@pytest.fixture(scope="module")
def real() -> Real:
    recorded = load_directory(DATA)
    panel = Panel.from_recorded(recorded)
    n, tf = len(panel.symbols), recorded.timeframe_ms
    engine = Engine(
        panel.symbols,
        tf,
        FactorModel(n, FactorParams()),
        Trend(panel.symbols),
        SignalSettings().to_view(),
        clock=lambda: 0.0,
        amend_bars=0,
    )
    steps = [engine.step(panel.cross_section(t)) for t in range(AT + 1)]
    bars: list[tuple[int, FactorReturnBar]] = factor_returns_of_steps(steps, tf)
    grid = np.arange(steps[0].ts, steps[-1].ts + tf, tf)
    assert grid.size > len(steps)  # the data has grid times without any bar
    row = {int(ts): i for i, ts in enumerate(grid)}
    close = np.full((grid.size, n), np.nan)
    f = np.full((grid.size, len(CANONICAL) + 1), np.nan)
    u = np.full((grid.size, n), np.nan)
    for step, (ts, bar) in zip(steps, bars, strict=True):
        close[row[ts]] = np.where(step.xs.present, step.xs.close, np.nan)
        f[row[ts]], u[row[ts]] = bar.returns, bar.residuals
    model = RiskModel(bars[0][1].names[1:], n)
    for t in range(grid.size):
        risk = model.update(f[t], u[t])
    returns = np.full_like(close, np.nan)
    returns[1:] = close[1:] / close[:-1] - 1
    asof = pd.DataFrame(close).ffill().iloc[-1].to_numpy()
    return Real(
        panel.symbols,
        bars_per_year(tf / 1000),
        close,
        asof,
        returns,
        f,
        bars[0][1].names,
        steps[-1].factors,
        risk,
    )


def test_portfolio_on_recorded_binance(real: Real) -> None:
    snap, risk = real.snapshot, real.risk
    assert risk.reason == Reason.OK and risk.names == (UNIVERSE, *CANONICAL)
    missing = ~np.isfinite(snap.exposure).all(axis=1)
    assert missing.any()
    gaps = [i for i in np.flatnonzero(missing) if np.isfinite(real.asof[i])]
    assert gaps, "no uncovered symbol with a close"
    covered = np.flatnonzero(~missing)[::9][:12]
    chosen = [*covered.tolist(), *gaps[:2]]
    qty = {real.symbols[i]: 1000.0 / real.asof[i] for i in chosen}
    qty[real.symbols[chosen[3]]] *= -1.0  # a short
    rows = [*(Holding(s, quantity=q) for s, q in qty.items()), Holding(CASH, quantity=2500.0)]
    weights = holdings_weights(rows, real.symbols, real.asof)
    value = np.array([q * real.asof[i] for q, i in zip(qty.values(), chosen, strict=True)])
    np.testing.assert_allclose(weights.weights, value / (value.sum() + 2500.0), rtol=1e-14)

    # exposures: the covered holdings, contributions summing to the portfolio's
    pf = portfolio_exposure(
        weights.symbols,
        weights.weights,
        CANONICAL,
        snap.exposure[weights.index],
        snap.reason[weights.index],
    )
    frame = pd.DataFrame(snap.exposure[weights.index], index=weights.symbols, columns=CANONICAL)
    ok = frame.notna().all(axis=1)
    w = pd.Series(weights.weights, index=weights.symbols)[ok]
    np.testing.assert_allclose(pf.exposure[1:], frame[ok].mul(w, axis=0).sum(), atol=1e-14)
    assert pf.exposure[0] == pytest.approx(w.sum(), abs=1e-15)
    assert np.abs(pf.contributions.sum(axis=0) - pf.exposure).max() <= 1e-12
    assert set(pf.uncovered) == {real.symbols[i] for i in gaps[:2]}
    for s, reason in pf.uncovered.items():
        i = real.symbols.index(s)
        assert REASON_LABELS[reason] in {REASON_LABELS[c] for c in snap.reason[i] if c}

    # risk and its Euler attribution
    held = weights.index[pf.rows]
    rk = portfolio_risk(
        risk.names,
        risk.covariance,
        risk.specific[held],
        snap.exposure[held],
        pf.weights,
        bars_per_year=real.bpy,
    )
    v = plain_v(risk.covariance, risk.specific[held], snap.exposure[held])
    sigma = math.sqrt(pf.weights @ v @ pf.weights)
    assert rk.sigma == pytest.approx(sigma, rel=1e-12)
    assert abs(math.fsum([*rk.factor_contributions, rk.specific_contribution]) - sigma) <= (
        1e-12 * sigma
    )
    assert abs(math.fsum(rk.position_contributions) - sigma) <= 1e-12 * sigma
    par = parametric_tail(rk.sigma)
    assert par.var[1] == pytest.approx(2.3263479 * sigma, rel=1e-7)
    hist = historical_tail(pf.weights, real.returns[:, held])
    p = pd.DataFrame(real.returns[-500:, held]).dropna().to_numpy() @ pf.weights
    assert hist.bars == p.size > 300
    assert hist.var[0] == pytest.approx(-pd.Series(p).quantile(0.05), rel=1e-12)

    # regression of the held-constant portfolio on the factor returns
    r_all = real.returns[:, weights.index]
    y = holdings_returns(weights.weights, r_all)
    reg = regress_returns(
        y,
        real.factor_returns,
        real.names,
        bars_per_year=real.bpy,
        position_returns=r_all,
        weights=weights.weights,
        symbols=weights.symbols,
    )
    sample = np.isfinite(y) & np.isfinite(real.factor_returns).all(axis=1)
    n_obs = int(sample.sum())
    fit = sm.OLS(y[sample], sm.add_constant(real.factor_returns[sample])).fit(
        cov_type="HAC", cov_kwds={"maxlags": math.floor(4 * (n_obs / 100) ** (2 / 9))}
    )
    assert reg.n_obs == n_obs > 100  # the bars since the latest holding listed
    np.testing.assert_allclose(reg.loadings, fit.params[1:], rtol=1e-9)
    np.testing.assert_allclose(reg.t, fit.tvalues[1:], rtol=1e-9)
    assert reg.positions is not None and reg.positions.max_disagreement < 1e-10

    # tilt, scan and the optimizer over the whole universe at the bar
    words = tilt(pf.names, pf.exposure)
    assert words.sentence.endswith(".") and len(words.factors) == len(CANONICAL)
    want = {"size": -1.0, "momentum": 1.0}
    sc = scan(real.symbols, CANONICAL, snap.exposure, risk.covariance, risk.specific, want)
    assert len(sc.symbols) == int((~missing).sum()) and np.all(np.diff(sc.efficiency) <= 0)
    current = np.zeros(len(real.symbols))
    current[weights.index] = weights.weights
    target = {"size": -0.3, "momentum": 0.3}
    got = suggest(
        real.symbols,
        CANONICAL,
        snap.exposure,
        risk.covariance,
        risk.specific,
        current,
        target,
        bars_per_year=real.bpy,
    )
    keep = ~missing
    v_all = plain_v(risk.covariance, risk.specific[keep], snap.exposure[keep])
    status, other = osqp_solve(v_all, snap.exposure[keep], current[keep], target, 0.25, True)
    assert status == "solved"
    theirs = (other - current[keep]) @ v_all @ (other - current[keep])
    assert got.objective == pytest.approx(theirs, rel=1e-4)
    assert set(got.left_out) == set(pf.uncovered)
    for name, value in target.items():
        assert abs(got.weights @ snap.exposure[keep][:, CANONICAL.index(name)] - value) <= 1e-6
    assert got.weights.min() >= 0 and got.weights.max() <= 0.25 + 1e-6

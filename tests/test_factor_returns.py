"""Factor returns (ANALYTICS.md section 1) against statsmodels WLS, bar by bar, on
the production model's exposures over the shared candles; properties with
hypothesis; the reasons by construction."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from factorcast.adapters.files.recorded import load_directory
from factorcast.adapters.files.replay import Panel
from factorcast.factors import CANONICAL, REASON_LABELS, UNIVERSE, FactorModel, FactorParams, Reason
from factorcast.factors.analytics import (
    FactorReturnBar,
    FactorReturns,
)
from factorcast.factors.analytics import factor_returns as factor_returns_module
from factorcast.factors.params import Weighting
from factorcast.strategy.analytics import AnalyticsHistory, RecordingAnalytics
from factorcast.strategy.app.settings import SignalSettings
from factorcast.strategy.engine import Engine
from factorcast.strategy.strategies import Trend

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
K = len(CANONICAL)
TOL = 1e-9


@dataclass(frozen=True)
class Replay:
    """The production model over recorded candles, one row per grid step (an
    all-missing row for a grid time without any bar)."""

    ts: NDArray[np.int64]  # (T,) the grid times
    close: NDArray[np.float64]  # (T, n), NaN where no bar
    exposure: NDArray[np.float64]  # (T, n, K)
    weights: NDArray[np.float64]  # (T, n)
    listed: NDArray[np.bool_]  # (T, n): the symbol had a bar at or before t


def replay(directory: Path, params: FactorParams) -> Replay:
    recorded = load_directory(directory)
    panel = Panel.from_recorded(recorded)
    n = len(panel.symbols)
    tf = recorded.timeframe_ms
    model = FactorModel(n, params)
    empty_f = np.full(n, np.nan)
    empty_p = np.zeros(n, dtype=bool)
    close, exposure, weights, times = [], [], [], []
    last = None
    for t in range(panel.ts.size):
        xs = panel.cross_section(t)
        if last is not None:  # grid times without any bar, as the engine does them
            for gap in range(1, (xs.ts - last) // tf):
                snap = model.update(empty_f, empty_f, empty_f, empty_p)
                times.append(last + gap * tf)
                close.append(empty_f)
                exposure.append(snap.exposure)
                weights.append(snap.weights)
        last = xs.ts
        times.append(xs.ts)
        snap = model.update(xs.close, xs.volume, xs.quote_volume, xs.present)
        close.append(np.where(xs.present, xs.close, np.nan))
        exposure.append(snap.exposure)
        weights.append(snap.weights)
    c = np.array(close)
    return Replay(
        np.array(times, dtype=np.int64),
        c,
        np.array(exposure),
        np.array(weights),
        np.maximum.accumulate(np.isfinite(c)),
    )


@pytest.fixture(scope="module")
def bittrex() -> Replay:
    return replay(DATA / "bittrex-5m", FactorParams())


@pytest.fixture(scope="module")
def bittrex_adv() -> Replay:
    return replay(DATA / "bittrex-5m", FactorParams(weighting="adv"))


@pytest.fixture(scope="module")
def binance() -> Replay:
    return replay(DATA / "binance-1h", FactorParams())


def close_enough(ours: NDArray[np.float64], oracle: NDArray[np.float64], scale: float) -> bool:
    """Within ``TOL`` relative, entry by entry; entries near 0 within ``1e-3 * TOL``
    of the bar's scale (its largest return)."""
    return bool(np.all(np.abs(ours - oracle) <= TOL * np.abs(oracle) + 1e-3 * TOL * scale))


def check_against_statsmodels(
    data: Replay,
    weighting: Weighting,
    every: int,
    factors: tuple[str, ...] | None = None,
) -> dict[str, int]:
    """Run the class over every grid step; at every ``every``-th step, and at every
    step where a symbol's bar is missing or a symbol lists, compare with statsmodels.
    Returns counts of what the comparison covered."""
    cols = [i for i, f in enumerate(CANONICAL) if factors is None or f in factors]
    k = len(cols)
    fr = FactorReturns(data.close.shape[1], CANONICAL, weighting, factors)
    assert fr.names == (UNIVERSE, *(CANONICAL[i] for i in cols))
    seen = {"ok": 0, "too_few_symbols": 0, "singular": 0, "gap_or_listing": 0}
    missing = ~np.isfinite(data.close)
    for t in range(data.close.shape[0]):
        bar = fr.update(data.close[t], data.exposure[t], data.weights[t])
        if t == 0:
            assert bar.reason == Reason.TOO_FEW_SYMBOLS
            continue
        listed_now = data.listed[t] & ~data.listed[t - 1]
        special = bool((data.listed[t] & missing[t]).any() or listed_now.any())
        if t % every and not special:
            continue
        r = data.close[t] / data.close[t - 1] - 1
        xp = data.exposure[t - 1][:, cols]
        v = np.ones_like(r) if weighting == "equal" else np.sqrt(data.weights[t - 1])
        sample = np.isfinite(r) & np.isfinite(xp).all(axis=1) & np.isfinite(v)
        assert bar.n == sample.sum()
        label = REASON_LABELS[bar.reason]
        seen[label] += 1
        seen["gap_or_listing"] += special
        if bar.n < k + 2:
            assert bar.reason == Reason.TOO_FEW_SYMBOLS
            assert np.isnan(bar.returns).all() and np.isnan(bar.residuals).all()
            continue
        design = sm.add_constant(xp[sample], has_constant="add")
        if np.linalg.matrix_rank(design * np.sqrt(v[sample])[:, None]) < k + 1:
            assert bar.reason == Reason.SINGULAR
            assert np.isnan(bar.returns).all() and np.isnan(bar.residuals).all()
            continue
        assert bar.reason == Reason.OK
        fit = sm.WLS(r[sample], design, weights=v[sample]).fit()
        scale = float(np.abs(r[sample]).max())
        assert close_enough(bar.returns, fit.params, scale), (t, bar.returns, fit.params)
        assert close_enough(bar.residuals[sample], fit.resid, scale), t
        assert np.isnan(bar.residuals[~sample]).all()
        assert abs(bar.r2 - fit.rsquared) <= TOL * max(1.0, abs(fit.rsquared)), t
    return seen


def test_bittrex_equal_weights_match_statsmodels(bittrex: Replay) -> None:
    seen = check_against_statsmodels(bittrex, "equal", every=1)
    assert seen["ok"] > 4000
    assert seen["gap_or_listing"] > 0


def test_bittrex_adv_weights_match_statsmodels(bittrex_adv: Replay) -> None:
    assert np.isfinite(bittrex_adv.weights).any()
    assert (np.nan_to_num(bittrex_adv.weights, nan=1.0) != 1.0).any()
    seen = check_against_statsmodels(bittrex_adv, "adv", every=1)
    assert seen["ok"] > 4000


def test_binance_equal_weights_match_statsmodels(binance: Replay) -> None:
    seen = check_against_statsmodels(binance, "equal", every=5)
    assert seen["ok"] > 500
    assert seen["gap_or_listing"] > 50


def test_binance_factor_subset_matches_statsmodels(binance: Replay) -> None:
    subset = (CANONICAL[3], CANONICAL[0])  # any order in; model order out
    seen = check_against_statsmodels(binance, "equal", every=25, factors=subset)
    assert seen["ok"] > 100


def test_engine_steps_give_the_same_factor_returns(binance: Replay) -> None:
    """The real engine over the recorded candles, its analytics recorded at every grid
    step (the empty ones it fills in included): the same regressions as the class
    fed every grid step, and the same in each step's result."""
    recorded = load_directory(DATA / "binance-1h")
    panel = Panel.from_recorded(recorded)
    n = len(panel.symbols)
    view = SignalSettings().to_view()
    history = AnalyticsHistory((1,))
    engine = Engine(
        panel.symbols,
        recorded.timeframe_ms,
        FactorModel(n, FactorParams()),
        Trend(panel.symbols),
        view,
        clock=lambda: 0.0,
        amend_bars=0,
        analytics=RecordingAnalytics(history, view.names, n, view.directions),
    )
    steps = [engine.step(panel.cross_section(t)) for t in range(panel.ts.size)]
    fr = FactorReturns(n, CANONICAL)
    want = [fr.update(binance.close[t], binance.exposure[t]) for t in range(binance.ts.size)]
    assert binance.ts.size > panel.ts.size  # the data has grid steps without any bar
    assert np.array_equal(history.times, binance.ts)
    returns, r2, count, reason = history.factor_returns()
    for t, bar in enumerate(want):
        assert reason[t] == bar.reason and count[t] == bar.n
        assert np.array_equal(returns[t], bar.returns, equal_nan=True)
        assert np.array_equal(r2[t], bar.r2, equal_nan=True)
    by_ts = dict(zip(binance.ts.tolist(), want, strict=True))
    for step in steps:
        assert step.analytics is not None
        got, bar = step.analytics.returns, by_ts[step.ts]
        assert np.array_equal(got.returns, bar.returns, equal_nan=True)
        assert np.array_equal(got.residuals, bar.residuals, equal_nan=True)


# -- reasons by construction ------------------------------------------------------


def first_bar(x: NDArray[np.float64]) -> FactorReturns:
    """A regression fed its first bar: closes of 100 and exposures ``x``."""
    fr = FactorReturns(x.shape[0], CANONICAL)
    fr.update(np.full(x.shape[0], 100.0), x)
    return fr


def test_too_few_symbols() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(K + 1, K))
    fr = first_bar(x)
    bar = fr.update(np.full(K + 1, 101.0), x)
    assert bar.reason == Reason.TOO_FEW_SYMBOLS and bar.n == K + 1
    assert np.isnan(bar.returns).all() and np.isnan(bar.r2)
    # one more symbol is enough; a NaN exposure takes it out again
    x2 = rng.normal(size=(K + 2, K))
    fr = first_bar(x2)
    assert fr.update(100 + rng.normal(size=K + 2), x2).reason == Reason.OK
    x2[3, 2] = np.nan
    fr = first_bar(x2)
    bar = fr.update(100 + rng.normal(size=K + 2), x2)
    assert bar.reason == Reason.TOO_FEW_SYMBOLS and bar.n == K + 1


@pytest.mark.parametrize("case", ["equal_columns", "constant_column", "combination"])
def test_singular_designs(case: str) -> None:
    rng = np.random.default_rng(2)
    n = 30
    x = rng.normal(size=(n, K))
    if case == "equal_columns":
        x[:, 4] = x[:, 1]
    elif case == "constant_column":  # collinear with the universe intercept
        x[:, 2] = 0.5
    else:
        x[:, 5] = x[:, 0] - 2 * x[:, 3]
    fr = first_bar(x)
    bar = fr.update(100 * (1 + 0.01 * rng.normal(size=n)), x)
    assert bar.reason == Reason.SINGULAR and bar.n == n
    assert np.isnan(bar.returns).all() and np.isnan(bar.residuals).all()


def test_gap_and_missing_weights() -> None:
    rng = np.random.default_rng(3)
    n = 20
    x = rng.normal(size=(n, K))
    fr = FactorReturns(n, CANONICAL, "adv")
    w = rng.uniform(1, 5, size=n)
    w[[0, 1]] = np.nan
    fr.update(np.full(n, 10.0), x, w)
    bar = fr.update(10 + rng.normal(size=n), x, w)
    assert bar.reason == Reason.OK and bar.n == n - 2
    assert np.isnan(bar.residuals[[0, 1]]).all() and np.isfinite(bar.residuals[2:]).all()
    assert fr.skip().n == 0
    after = fr.update(10 + rng.normal(size=n), x, w)
    assert after.reason == Reason.TOO_FEW_SYMBOLS and after.n == 0
    with pytest.raises(ValueError, match="needs the weights"):
        fr.update(np.full(n, 10.0), x)


@pytest.mark.parametrize(
    ("weighting", "noise", "svd"),
    [("equal", 0.3, False), ("adv", 0.3, False), ("equal", 0.003, True), ("adv", 0.003, True)],
)
def test_near_collinear_designs_match_statsmodels(
    weighting: Weighting, noise: float, svd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two factors close to collinear: the normal equations while they are well
    conditioned, the SVD once they are not; statsmodels either way."""
    rng = np.random.default_rng(11)
    n = 60
    x = rng.normal(size=(n, K))
    x[:, 5] = x[:, 0] + noise * rng.normal(size=n)
    w = rng.uniform(0.5, 20.0, size=n)
    w[4] = np.nan  # out of the adv sample
    close = np.stack([np.full(n, 20.0), 20.0 * (1 + 0.01 * rng.normal(size=n) + 0.002 * x[:, 0])])
    through_svd: list[bool] = []
    real = factor_returns_module._solve_svd
    monkeypatch.setattr(
        factor_returns_module,
        "_solve_svd",
        lambda *args: through_svd.append(True) or real(*args),
    )
    fr = FactorReturns(n, CANONICAL, weighting)
    fr.update(close[0], x, w)
    bar = fr.update(close[1], x, w)
    assert bar.reason == Reason.OK and bool(through_svd) == svd
    r = close[1] / close[0] - 1
    v = np.ones(n) if weighting == "equal" else np.sqrt(w)
    sample = np.isfinite(v)
    fit = sm.WLS(r[sample], sm.add_constant(x[sample], has_constant="add"), weights=v[sample]).fit()
    scale = float(np.abs(r[sample]).max())
    assert close_enough(bar.returns, fit.params, scale)
    assert close_enough(bar.residuals[sample], fit.resid, scale)
    assert np.isnan(bar.residuals[~sample]).all()
    assert abs(bar.r2 - fit.rsquared) <= TOL


# -- properties -----------------------------------------------------------------------


@st.composite
def cross_sections(draw: st.DrawFn) -> tuple[NDArray[np.float64], ...]:
    n = draw(st.integers(K + 2, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = np.clip(rng.normal(size=(n, K)), -3, 3)
    r = rng.normal(scale=0.02, size=n) + x @ rng.normal(scale=0.01, size=K)
    w = rng.uniform(0.1, 10.0, size=n)
    holes = rng.random(size=n) < 0.1
    r[holes] = np.nan
    return x, r, w


def run(
    x: NDArray[np.float64], r: NDArray[np.float64], w: NDArray[np.float64], weighting: Weighting
) -> FactorReturnBar:
    """Two bars: closes of 50, then closes that return ``r``; the second's regression."""
    n = x.shape[0]
    fr = FactorReturns(n, CANONICAL, weighting)
    c0 = np.full(n, 50.0)
    fr.update(c0, x, w)
    return fr.update(c0 * (1 + r), x, w)


@settings(max_examples=60, deadline=None)
@given(cross_sections(), st.sampled_from(["equal", "adv"]), st.data())
def test_permuting_symbols_changes_no_factor_return(
    xs: tuple[NDArray[np.float64], ...], weighting: Weighting, data: st.DataObject
) -> None:
    x, r, w = xs
    perm = np.array(data.draw(st.permutations(range(x.shape[0]))))
    a = run(x, r, w, weighting)
    b = run(x[perm], r[perm], w[perm], weighting)
    assert a.reason == b.reason and a.n == b.n
    if a.reason == Reason.OK:
        scale = max(float(np.nanmax(np.abs(r))), 1e-12)
        assert np.all(np.abs(a.returns - b.returns) <= TOL * scale)
        assert np.allclose(a.residuals[perm], b.residuals, rtol=0, atol=TOL * scale, equal_nan=True)
        assert abs(a.r2 - b.r2) <= TOL


@settings(max_examples=60, deadline=None)
@given(
    cross_sections(),
    st.sampled_from(["equal", "adv"]),
    st.floats(-5, 5).filter(lambda c: abs(c) > 1e-3),
)
def test_scaling_returns_scales_factor_returns(
    xs: tuple[NDArray[np.float64], ...], weighting: Weighting, c: float
) -> None:
    x, r, w = xs
    a = run(x, r, w, weighting)
    b = run(x, c * r, w, weighting)
    assert a.reason == b.reason
    if a.reason == Reason.OK:
        scale = abs(c) * float(np.nanmax(np.abs(r)))
        assert np.all(np.abs(c * a.returns - b.returns) <= TOL * scale)

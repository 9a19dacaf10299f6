"""Custom factors in the engine (ANALYTICS.md section 9): expressions, a plug-in and a
model-scored factor, over real Binance 1h candles, bar for bar against batch
evaluation and a pandas recomputation of FACTORS.md's standardization; and late
bars taken in with custom factors, bit for bit."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.linear_model import LinearRegression

from factorcast.adapters.files.custom_models import save_custom_model
from factorcast.factors import FactorModel, FactorParams, Reason
from factorcast.factors.analytics import FactorAnalytics, HealthParams, RiskParams
from factorcast.factors.expressions import Expression, bars_of_panel
from factorcast.factors.expressions.spec import CustomFactorSpec
from factorcast.strategy.app.settings import SignalSettings, load_settings
from factorcast.strategy.app.wiring import build_engine
from factorcast.strategy.engine import Engine, StepResult
from tests import test_late_bars as late
from tests.custom_oracle import Grid, expected_reasons, load_grid, standardize

#: every kind of node, reading every input; NaN after the lookback from 0 / 0, log 0,
#: constant windows (zero-volume stretches)
EXPRESSIONS = {
    "rev": "-1 * ts_sum(returns, 12)",
    "body": "(close - open) / (high - low)",
    "a6": "-1 * correlation(open, volume, 10)",
    "lv": "rank(log(volume)) - 0.5",
    "dk": "decay_linear(vwap / close - 1, 5)",
    "tr": "ts_rank(ts_max(high, 4) / ts_min(low, 4), 7)",
}
# the six keep 0.7 of the view, the custom ones 0.05 each
WEIGHTS = {"market": 0.1, "size": 0.1, "value": 0.1, "momentum": 0.2, "volatility": 0.1}
WEIGHTS |= {"liquidity": 0.1}


@pytest.fixture(scope="module")
def grid() -> Grid:
    return load_grid()


def replay(engine: Engine, grid: Grid) -> dict[int, StepResult]:
    return {xs.ts: engine.step(xs) for xs in grid.cross_sections()}


def settings(custom: dict[str, dict[str, Any]]) -> Any:
    return load_settings(factors={"custom": custom}, signals={"weights": WEIGHTS})


def check_column(
    grid: Grid, steps: dict[int, StepResult], name: str, raw: np.ndarray, lookback: int
) -> int:
    """The engine's column ``name`` at every grid time with a cross-section: raw values
    ``raw`` (``(T, n)``; the same NaN, the other values bit for bit), exposures
    FACTORS.md's over them, reasons.
    Returns the number of finite exposures."""
    runs = grid.runs()
    finite = 0
    for t, ts in enumerate(grid.ts):
        step = steps.get(int(ts))
        if step is None:
            assert not grid.present[t].any()
            continue
        k = step.factors.names.index(name)
        got = step.factors.raw[:, k]
        want_raw = np.where(grid.present[t], raw[t], np.nan)
        assert np.array_equal(np.isnan(got), np.isnan(want_raw)), (name, t)
        finite_raw = ~np.isnan(got)
        assert got[finite_raw].tobytes() == want_raw[finite_raw].tobytes(), (name, t)
        z, row_reason = standardize(pd.Series(got))
        want = np.full(got.size, np.nan)
        want[z.index] = z.to_numpy()
        np.testing.assert_allclose(step.factors.exposure[:, k], want, rtol=1e-12, atol=1e-12)
        reasons = expected_reasons(got, grid.present[t], runs[t], lookback)
        reasons = [r or row_reason for r in reasons]
        assert [Reason(c).label for c in step.factors.reason[:, k]] == reasons, (name, t)
        finite += int(np.isfinite(step.factors.exposure[:, k]).sum())
    return finite


def test_live_incremental_equals_offline_batch_bar_for_bar(grid: Grid) -> None:
    st = settings({name: {"expr": text, "weight": 0.05} for name, text in EXPRESSIONS.items()})
    engine = build_engine(st, grid.symbols, grid.timeframe_ms, amend_bars=0, analytics=False)
    assert engine.model.names[6:] == tuple(EXPRESSIONS)
    assert engine.view.names == engine.model.names
    steps = replay(engine, grid)
    seen: set[str] = set()
    for name, text in EXPRESSIONS.items():
        expression = Expression.compile(name, text)
        batch = expression.evaluate(bars_of_panel(grid.fields, grid.present))
        assert check_column(grid, steps, name, batch, expression.lookback) > 1000
        for step in steps.values():
            k = step.factors.names.index(name)
            seen |= {Reason(c).label for c in step.factors.reason[:, k]}
    assert {"ok", "insufficient_history", "undefined", "missing_bar"} <= seen
    # the signal view has the custom factors with their own weights
    last = steps[max(steps)]
    view = engine.view
    assert np.allclose(view.signed_weights[6:], 0.05)
    score = np.where(np.isfinite(e := np.clip(last.factors.exposure, -1, 1)), e, 0.0)
    np.testing.assert_allclose(last.signals.factor_score, score @ view.signed_weights, atol=1e-12)


def test_a_plugin_factor_end_to_end(grid: Grid) -> None:
    """``mode = "plugin"``: the class named in the configuration, built with its
    params, fed every grid step; its values against pandas."""
    st = settings(
        {
            "rng": {
                "mode": "plugin",
                "class": "tests.custom_plugins:RangeMean",
                "params": {"window": 5},
            }
        }
    )
    engine = build_engine(st, grid.symbols, grid.timeframe_ms, amend_bars=3, analytics=False)
    steps = replay(engine, grid)
    ratio = (grid.fields["high"] - grid.fields["low"]) / grid.fields["close"]
    windows = sliding_window_view(ratio, 5, axis=0)  # whole windows, no running sum
    want = np.vstack([np.full((4, ratio.shape[1]), np.nan), windows.mean(axis=-1)])
    assert check_column(grid, steps, "rng", want_bits(want, steps, grid, "rng", 1e-12), 4) > 1000


def want_bits(
    want: np.ndarray,
    steps: dict[int, StepResult],
    grid: Grid,
    name: str,
    rtol: float,
    atol: float = 0.0,
) -> np.ndarray:
    """``want`` where it equals the engine's raw values to ``rtol`` (a mean summed in
    another order; features that are running sums here and in pandas): then the
    engine's own bits, so that :func:`check_column` checks the NaN pattern, the
    exposures and the reasons on them."""
    out = want.copy()
    for t, ts in enumerate(grid.ts):
        if int(ts) in steps:
            got = steps[int(ts)].factors.raw[:, steps[int(ts)].factors.names.index(name)]
            expected = np.where(grid.present[t], want[t], np.nan)
            np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol)
            out[t] = got
    return out


FEATURES = [
    ("mom", "ts_mean(returns, 6)"),
    ("vol", "ts_std(returns, 12)"),
    ("rng", "(high - low) / close"),
]


def pandas_features(grid: Grid) -> dict[str, pd.DataFrame]:
    """The features from whole windows (no running sums), NaN if any value is."""
    close = grid.frame("close")
    returns = close / close.shift(1) - 1

    def whole(d: int, statistic: Any) -> pd.DataFrame:
        windows = sliding_window_view(returns.to_numpy(), d, axis=0)
        values = np.vstack([np.full((d - 1, close.shape[1]), np.nan), statistic(windows)])
        return pd.DataFrame(values, index=close.index, columns=close.columns)

    return {
        "mom": whole(6, lambda w: w.mean(axis=-1)),
        "vol": whole(12, lambda w: w.std(axis=-1, ddof=1)),
        "rng": (grid.frame("high") - grid.frame("low")) / close,
    }


def test_a_model_factor_end_to_end(grid: Grid, tmp_path: Path) -> None:
    """``mode = "model"``: a scikit-learn model trained here on the first half of the
    candles (next bar's return on three features, fitted on a data frame), saved
    with its metadata, read by the configuration and scored each bar."""
    feats = pandas_features(grid)
    close = grid.frame("close")
    target = (close.shift(-1) / close - 1).stack(future_stack=True)
    table = pd.DataFrame({k: v.stack(future_stack=True) for k, v in feats.items()})
    table["y"] = target
    half = grid.ts[len(grid.ts) // 2]
    train = table[table.index.get_level_values(0) < half].dropna()
    estimator = LinearRegression().fit(train[[n for n, _ in FEATURES]], train["y"])
    meta = tmp_path / "alpha.json"
    save_custom_model(meta, estimator, FEATURES, description="next-bar return, Binance 1h")

    st = settings({"ml1": {"mode": "model", "path": str(meta), "weight": 0.1}})
    engine = build_engine(st, grid.symbols, grid.timeframe_ms, amend_bars=0, analytics=False)
    assert engine.model.history_bars == FactorParams().history_bars  # 12 < 252
    steps = replay(engine, grid)
    X = np.stack([feats[n].to_numpy() for n, _ in FEATURES], axis=-1)  # (T, n, 3)
    rows = np.isfinite(X).all(axis=-1) & grid.present
    want = np.full(grid.present.shape, np.nan)
    frame = pd.DataFrame(X[rows], columns=[n for n, _ in FEATURES])
    want[rows] = estimator.predict(frame)
    # the features are running sums here: the predictions agree to their rounding
    assert check_column(grid, steps, "ml1", want_bits(want, steps, grid, "ml1", 1e-10), 12) > 1000


# -- late bars ---------------------------------------------------------------------------

LATE_CUSTOM = {
    "gap": CustomFactorSpec(expr="open / delay(close, 1) - 1", weight=0.05),
    "hl": CustomFactorSpec(expr="correlation(high / low, vwap, 4) * rank(volume)", weight=0.05),
    "dl": CustomFactorSpec(expr="decay_linear(ts_rank(returns, 3), 3)", direction=-1, weight=0.1),
    "rm": CustomFactorSpec(
        mode="plugin", class_="tests.custom_plugins:RangeMean", params={"window": 3}
    ),
}
LATE_PARAMS = dataclasses.replace(late.SMALL, custom=LATE_CUSTOM)


def late_engine(n: int, amend_bars: int = late.K) -> Engine:
    symbols = [f"S{i}/BTC" for i in range(n)]
    view = SignalSettings(factors_can_initiate=True, weights=dict.fromkeys(WEIGHTS, 0.1)).to_view(
        LATE_CUSTOM
    )
    analytics = FactorAnalytics(
        view.names,
        n,
        view.directions,
        weighting=LATE_PARAMS.weighting,
        health=HealthParams(horizons=(1, 3), window=10, min_obs=3),
        risk=RiskParams(window=12, half_life=4.0, min_obs=3),
    )
    model = FactorModel(n, LATE_PARAMS)
    strategy = late.Trend(symbols, fast=3, slow=7)
    return Engine(symbols, late.TF, model, strategy, view, clock=lambda: 0.0, analytics=analytics)


@pytest.mark.parametrize(
    ("seed", "pattern", "compared"),
    [
        (1, {(30, 2): 31}, 59),
        (2, {(30, 4): 30 + late.K}, 60 - late.K),
        (5, {(40, 0): 43, (40, 3): 43, (40, 6): 41, (41, 2): 43, (42, 0): 45}, 65),
    ],
)
def test_late_bars_with_custom_factors_are_bit_exact(
    seed: int, pattern: dict[tuple[int, int], int], compared: int
) -> None:
    """A late bar taken in: every later step equals, bit for bit, the step of an engine
    fed the complete candles, the custom factors' raw values, exposures and reasons
    included (they read open, high and low, which the six do not)."""
    panel = late.make_panel(7, 70 if seed == 5 else 60, seed=seed, missing=0.0)
    truth = late.run(late_engine(panel.n), late.sections(panel))
    live = late.run(late_engine(panel.n), late.sections(panel, pattern))
    waiting = [(int(panel.ts[r]), int(panel.ts[c])) for (r, _), c in pattern.items()]
    done = 0
    for ts, result in live.items():
        if not any(a <= ts < b for a, b in waiting):
            late.assert_same(result, truth[ts])
            done += 1
    assert done == compared
    last = live[max(live)]
    assert np.isfinite(last.factors.exposure[:, 6:]).any(axis=0).all()


def test_a_late_bar_after_a_gap_longer_than_every_window_with_custom_factors() -> None:
    panel = late.make_panel(4, 80, seed=8, missing=0.0, empty_rows=range(20, 60))
    panel.present[56, 1] = True
    for f in late.FIELDS:
        panel.fields[f][56, 1] = panel.fields[f][19, 1]
    pattern = {(56, 1): 61, (60, 2): 62}
    truth = late.run(late_engine(4), late.sections(panel))
    live = late.run(late_engine(4), late.sections(panel, pattern))
    for ts in panel.ts[62:]:
        late.assert_same(live[int(ts)], truth[int(ts)])


def test_the_engine_steps_the_custom_factors_at_empty_grid_steps() -> None:
    """Replay has no cross-section at a grid time without any bar; the custom factors
    still count it: ``delay(close, 2)`` two steps after a lone empty grid time is the
    close before it."""
    panel = late.make_panel(5, 30, seed=3, missing=0.0, empty_rows=[20])
    custom = {"d2": CustomFactorSpec(expr="delay(close, 2)")}
    symbols = [f"S{i}/BTC" for i in range(5)]
    view = SignalSettings().to_view(custom)
    model = FactorModel(5, dataclasses.replace(late.SMALL, custom=custom))
    engine = Engine(symbols, late.TF, model, late.Trend(symbols), view)
    steps = late.run(engine, late.sections(panel))
    assert int(panel.ts[20]) not in steps
    after = steps[int(panel.ts[21])]
    assert np.array_equal(after.factors.raw[:, 6], panel.fields["close"][19])

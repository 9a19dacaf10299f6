"""The built-in ``trend`` strategy against pandas' own EWM (SIGNALS.md section 1)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from factorcast.factors import FactorModel
from factorcast.strategy.actions import BUY, HOLD, SELL
from factorcast.strategy.events import CrossSection
from factorcast.strategy.strategies import StrategyError, Trend, load_strategy


def test_trend_matches_pandas_ewm_with_missing_bars() -> None:
    rng = np.random.default_rng(5)
    t, n = 300, 6
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, (t, n)), axis=0))
    close[rng.uniform(size=(t, n)) < 0.1] = np.nan
    close[:40, 2] = np.nan  # a late listing
    symbols = [f"S{i}" for i in range(n)]
    trend = Trend(symbols)
    model = FactorModel(n)
    actions, confidences, insufficient = [], [], []
    for i in range(t):
        present = np.isfinite(close[i])
        xs = CrossSection(
            i * 60_000,
            close[i],
            close[i],
            close[i],
            close[i],
            np.ones(n),
            np.full(n, np.nan),
            present,
        )
        snap = model.update(xs.close, xs.volume, xs.quote_volume, xs.present)
        d = trend.decide(xs, snap)
        actions.append(d.action)
        confidences.append(d.confidence)
        insufficient.append(d.insufficient)
    actions_a, conf_a, insuf_a = map(np.array, (actions, confidences, insufficient))

    for j in range(n):
        rows = np.flatnonzero(np.isfinite(close[:, j]))
        series = pd.Series(close[rows, j])  # a missing bar leaves the EMA unchanged
        fast = series.ewm(span=12, adjust=False).mean().to_numpy()
        slow = series.ewm(span=26, adjust=False).mean().to_numpy()
        gap = fast / slow - 1
        count = np.arange(1, rows.size + 1)
        want_action = np.where(count < 26, HOLD, np.sign(gap)).astype(int)
        want_conf = np.where(count < 26, 0.0, np.minimum(1.0, np.abs(gap) / 0.02))
        np.testing.assert_array_equal(actions_a[rows, j], want_action)
        np.testing.assert_allclose(conf_a[rows, j], want_conf, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(insuf_a[rows, j], count < 26)
    assert {BUY, SELL} <= set(np.unique(actions_a).tolist())


def test_load_strategy_by_name_and_dotted_path() -> None:
    assert isinstance(load_strategy("trend", ["A"], {}), Trend)
    s = load_strategy("factorcast.strategy.strategies:Trend", ["A", "B"], {"fast": 5, "slow": 10})
    assert isinstance(s, Trend) and s.slow == 10
    s = load_strategy("factorcast.strategy.strategies.Trend", ["A"], {})
    assert isinstance(s, Trend)
    with pytest.raises(StrategyError, match="has no attribute 'Nope'") as raised:
        load_strategy("factorcast.strategy.strategies:Nope", ["A"], {})
    assert raised.value.field == "name"
    with pytest.raises(StrategyError, match="neither a built-in strategy") as raised:
        load_strategy("nope", ["A"], {})
    assert raised.value.field == "name"
    with pytest.raises(StrategyError, match="unexpected keyword argument 'fats'") as raised:
        load_strategy("trend", ["A"], {"fats": 5})
    assert raised.value.field == "params"
    # every failure, one by one, through the command line: tests/test_cli_strategy.py

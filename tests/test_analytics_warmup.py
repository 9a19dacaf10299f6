"""A restart loses no analytics state: a run that starts ``warmup_bars`` before a bar
(a restarted service's warm-up) has, at that bar and after, the health statistics
and the risk model of a run that never stopped.

What can differ, and why:

- The running sums (the factor model's, hence the exposures and the factor returns,
  and the analytics' own) started at different bars, so they were added up in a
  different order: the floats agree to rounding (1e-12 of the scale of the figures
  compared: a factor return near 0 carries the regression's absolute error), the
  counts ``n`` exactly.
- The health *state* is path-dependent from its start (ANALYTICS.md section 2: the
  path starts ``unknown`` at the first bar of the warm-up).  With the hysteresis, a
  factor whose ``|t_stat|`` stays between ``t_exit`` and ``t_enter`` keeps
  ``working``/``inverted`` in the long run and is ``flat`` in the restarted one, until
  ``|t_stat|`` crosses ``t_enter`` or falls below ``t_exit``; from the first bar
  where the two paths meet they stay together.  (Two runs with the same warm-up
  start, as a live run and an offline one over the same candles, have the same
  states everywhere: tests/integration/test_analytics_live.py.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from factorcast.adapters.files.recorded import load_directory
from factorcast.adapters.files.replay import Panel
from factorcast.factors.analytics.pipeline import AnalyticsBar
from factorcast.strategy.app.settings import Settings, load_settings
from factorcast.strategy.app.wiring import build_engine, warmup_bars

RTOL = 1e-12


def run(
    panel: Panel, tf: int, start: int, stop: int, settings: Settings
) -> dict[int, AnalyticsBar]:
    """The analytics of an engine fed the panel's rows ``start .. stop - 1``."""
    engine = build_engine(settings, panel.symbols, tf, amend_bars=0)
    out: dict[int, AnalyticsBar] = {}
    for t in range(start, stop):
        step = engine.step(panel.cross_section(t))
        assert step.analytics is not None
        out[step.ts] = step.analytics
    return out


def close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal to rounding at the scale of the figures compared (a factor return near
    0 carries the absolute error of the regression of returns of order 1e-3)."""
    finite = np.abs(b[np.isfinite(b)])
    scale = float(finite.max()) if finite.size else 0.0
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * scale)


def same_stats(a: AnalyticsBar, b: AnalyticsBar) -> None:
    for h, sa in a.health.stats.items():
        sb = b.health.stats[h]
        np.testing.assert_array_equal(sa.n, sb.n)
        for field in ("mean_ic", "std_ic", "icir", "t_stat", "hit_rate"):
            close(getattr(sa, field), getattr(sb, field))
    # growth and drawdown are ratios of wealth, reported less 1: compared as wealth
    close(1 + a.health.cum_return, 1 + b.health.cum_return)
    close(1 + a.health.max_drawdown, 1 + b.health.max_drawdown)
    assert a.risk.n_obs == b.risk.n_obs and a.risk.reason == b.risk.reason
    close(a.risk.covariance, b.risk.covariance)
    close(a.risk.specific, b.risk.specific)
    np.testing.assert_array_equal(a.risk.fallback, b.risk.fallback)
    close(a.returns.returns, b.returns.returns)


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # the defaults: health window 200, risk window 500
        {"health": {"window": 60, "min_obs": 10}, "risk": {"window": 80, "min_obs": 20}},
    ],
    ids=["defaults", "short"],
)
def test_a_restart_after_its_warm_up_has_the_uninterrupted_statistics(
    shared_data: Path, overrides: dict[str, object]
) -> None:
    settings = load_settings(**overrides)
    candles = load_directory(shared_data)
    panel = Panel.from_recorded(candles)
    tf = candles.timeframe_ms
    warm = warmup_bars(settings)
    restart = 2 * warm + 37  # the first live bar of the restarted service
    stop = restart + 300
    assert panel.ts.size >= stop
    assert np.all(np.diff(panel.ts) == tf)  # no gap: rows are grid steps
    whole = run(panel, tf, 0, stop, settings)
    again = run(panel, tf, restart - warm, stop, settings)
    live = [int(ts) for ts in panel.ts[restart:stop]]
    for ts in live:
        same_stats(whole[ts], again[ts])
    # a risk model and IC statistics exist there: the comparison was of numbers
    assert whole[live[0]].risk.n_obs >= settings.risk.min_obs
    assert np.isfinite(whole[live[0]].health.stats[1].t_stat).all()

    # states: once the two paths meet they stay together, and they meet in the data
    names = whole[live[0]].health.states
    for k in range(len(names)):
        path = [(whole[ts].health.states[k], again[ts].health.states[k]) for ts in live]
        met = next((j for j, (x, y) in enumerate(path) if x == y), None)
        assert met is not None and met < len(live) - 1
        assert all(x == y for x, y in path[met:])


def test_a_warm_up_only_as_long_as_the_longest_window_is_not_enough(shared_data: Path) -> None:
    """Why the warm-up adds the model's history to the analytics' windows: with the
    longest of the two only, the first factor returns of the window are missing in
    the restarted run (its exposures do not exist yet), so the risk model differs."""
    settings = load_settings()
    candles = load_directory(shared_data)
    panel = Panel.from_recorded(candles)
    tf = candles.timeframe_ms
    short = max(
        settings.factors.history_bars,
        settings.health.window + max(settings.health.horizons) + 1,
        settings.risk.window,
    )
    restart = 2 * warmup_bars(settings)
    full = run(panel, tf, 0, restart + 1, settings)[int(panel.ts[restart])]
    cut = run(panel, tf, restart - short, restart + 1, settings)[int(panel.ts[restart])]
    assert cut.risk.n_obs < full.risk.n_obs

"""Replay throughput: synthetic candles through the full engine (factors, trend,
signal module; no I/O), against a whole-panel vectorized pandas computation of
the same exposures (the batch ceiling).

    python bench/replay.py [--symbols 500] [--bars 3000] [--window 252]

``--window`` sets the beta and size windows and the value lag.  The last line is
a JSON object with bars_per_s, n_symbols, step_us_p50 and step_us_p99.

The engine keeps an undo log of its last ``--amend-bars`` steps to take late bars
in (strategy/engine.py).  Its cost is measured in the same run: a second engine
without the log steps through the same cross-sections, step for step alternating
with the first (so both see the same machine load), and ``undo_log_ratio`` is
the ratio of their median steps.  ``amend_step_us`` is one step that takes in a
bar 1 and ``--amend-bars`` bars late (the steps after it run again).

The analytics (factor returns, health and risk, ANALYTICS.md sections 1-3, as
``factorcast run`` has them) are measured the same way: a third engine, the first
plus the analytics, steps through the same cross-sections in turn with the
others; ``analytics_share`` is ``1 - p50(without) / p50(with)``, the part of the
step the analytics take.  Their windows scale with ``--window`` (health
``200 * window / 252``, risk ``500 * window / 252``, the defaults at 252), so that
``--window 252`` and ``--window 1008`` show whether their cost depends on the
window length (``--compare-windows`` runs both and prints the ratio).

Targets, printed with the figures: the analytics add at most 30 % to the step
(``analytics_added = p50(with) / p50(without) - 1 <= 0.30``; their share of the step
is then at most 23 %), and at ``4 x --window`` they cost at most 1.2 times what they cost at
``--window`` (their per-step work does not grow with the window).  The machine's
load moves every figure: compare the same-run ratios, and medians over runs.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import platform
import time
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from factorcast.adapters.sim.market import SimulatedMarket
from factorcast.factors import CANONICAL, FactorModel, FactorParams
from factorcast.factors.analytics import FactorAnalytics, HealthParams, RiskParams
from factorcast.strategy.app.settings import SignalSettings
from factorcast.strategy.engine import Engine
from factorcast.strategy.events import AMEND_BARS, CrossSection, LateBar
from factorcast.strategy.strategies import Trend


def make_panel(n_symbols: int, n_bars: int, seed: int) -> dict[str, Any]:
    market = SimulatedMarket(n_symbols, seed=seed, timeframe_ms=60_000)
    return market.history_arrays(n_bars)


def cross_sections(panel: dict[str, Any]) -> list[CrossSection]:
    n = panel["close"].shape[1]
    no_late = np.zeros(n, dtype=bool)
    out = []
    for t, ts in enumerate(panel["ts"]):
        present = np.isfinite(panel["close"][t])
        out.append(
            CrossSection(
                int(ts),
                panel["open"][t],
                panel["high"][t],
                panel["low"][t],
                panel["close"][t],
                panel["volume"][t],
                panel["quote_volume"][t],
                present,
                no_late,
            )
        )
    return out


def make_engine(
    n: int, params: FactorParams, amend_bars: int, analytics_window: int | None = None
) -> Engine:
    """The engine of the benchmark; with ``analytics_window``, the analytics too, their
    windows scaled from the defaults by ``analytics_window / 252``."""
    symbols = [f"S{i}" for i in range(n)]
    model = FactorModel(n, params)
    view = SignalSettings().to_view()
    analytics = None
    if analytics_window is not None:
        scale = analytics_window / 252
        analytics = FactorAnalytics(
            view.names,
            n,
            view.directions,
            health=HealthParams(window=round(200 * scale)),
            risk=RiskParams(window=round(500 * scale)),
        )
    return Engine(
        symbols, 60_000, model, Trend(symbols), view, amend_bars=amend_bars, analytics=analytics
    )


def run_engines(
    sections: list[CrossSection], engines: list[Engine]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step times in ns of each engine (a row each), stepping them in turn (who
    goes first alternates: the second finds the cross-section in cache), and the
    exposures of the first engine's last step."""
    times = np.empty((len(engines), len(sections)))
    order = list(enumerate(engines))
    last = None
    gc.collect()
    gc.disable()
    try:
        for t, xs in enumerate(sections):
            for k, engine in order if t % 2 else order[::-1]:
                t0 = time.perf_counter_ns()
                result = engine.step(xs)
                times[k, t] = time.perf_counter_ns() - t0
                if not k:
                    last = result
    finally:
        gc.enable()
    assert last is not None
    return times, last.factors.exposure


def amend_step_us(engine: Engine, last: CrossSection, back: int, repeat: int = 20) -> float:
    """Median time of a step that takes in a bar ``back`` bars late (on copies of the
    engine, each fed the same next cross-section)."""
    i = int(np.argmax(last.present))
    bar = LateBar(last.ts - (back - 1) * 60_000, i, *(float(getattr(last, f)[i]) for f in _ROW))
    xs = replace(last, ts=last.ts + 60_000, amendments=(bar,))
    times = []
    for _ in range(repeat):
        e = copy.deepcopy(engine)
        t0 = time.perf_counter_ns()
        e.step(xs)
        times.append(time.perf_counter_ns() - t0)
    return float(np.median(times)) / 1e3


_ROW = ("open", "high", "low", "close", "volume", "quote_volume")


def batch_exposures(panel: dict[str, Any], p: FactorParams) -> pd.DataFrame:
    """All exposures of the panel at once with pandas rolling windows (equal weights)."""
    close = pd.DataFrame(panel["close"])
    qv = pd.DataFrame(panel["quote_volume"])
    q = qv.where(qv.notna(), close * pd.DataFrame(panel["volume"]))
    lc = pd.DataFrame(np.log(close.to_numpy()))
    r = lc.diff()
    m = r.mean(axis=1)
    mp = r.notna().mul(1.0).replace(0.0, np.nan).mul(m, axis=0)
    beta = (
        r.rolling(p.beta_window, p.beta_min_obs).cov(mp)
        / mp.rolling(p.beta_window, p.beta_min_obs).var()
    )
    size = q.rolling(p.size_window, p.size_min_obs).mean().apply(np.log)
    asof = lc.ffill()
    a_mom, a_val = asof.shift(p.momentum_lag), asof.shift(p.value_lag)
    momentum = lc - a_mom
    value = -(a_mom - a_val)
    vol = r.rolling(p.volatility_window, p.volatility_min_obs).std()
    term = (r.abs() / q.where(q > 0)).where(r.notna())
    liq = -term.rolling(p.liquidity_window, p.liquidity_min_obs).mean().apply(np.log)
    out = {}
    for name, raw in zip(CANONICAL, (beta, size, value, momentum, vol, liq), strict=True):
        x = raw.where(close.notna())
        med = x.median(axis=1)
        mad = x.sub(med, axis=0).abs().median(axis=1)
        half = (p.winsor_k * 1.4826 * mad).where(mad > 0, np.inf)
        x = x.clip(med - half, med + half, axis=0)
        z = x.sub(x.mean(axis=1), axis=0).div(x.std(axis=1, ddof=0), axis=0)
        out[name] = z.clip(-p.clip, p.clip).where(x.notna().sum(axis=1) >= 3, axis=0)
    frame: pd.DataFrame = pd.concat(out, axis=1)
    return frame


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--bars", type=int, default=3000)
    ap.add_argument("--window", type=int, default=252)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--amend-bars", type=int, default=AMEND_BARS)
    ap.add_argument(
        "--compare-windows",
        action="store_true",
        help="the analytics at --window and 4x --window: the ratio of their step costs",
    )
    args = ap.parse_args()
    if args.compare_windows:
        compare_windows(args)
        return
    result = bench(args, args.window)
    print(json.dumps(result))


#: What the analytics add to the engine step, at most (a share of the step without them).
TARGET_ADDED = 0.30
#: Their cost at 4x the window over their cost at the window, at most.
TARGET_WINDOW_RATIO = 1.2


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def analytics_lines(result: dict[str, Any]) -> list[str]:
    """The analytics' figures of one run, in words, with the target."""
    share, added = result["analytics_share"], result["analytics_added"]
    return [
        f"analytics (factor returns, health, risk), {result['n_symbols']} symbols, "
        f"window {result['window']}:",
        f"  step p50 {result['step_us_p50_with_analytics']} us with them, "
        f"{result['step_us_p50']} us without (same run, steps alternating)",
        f"  analytics {result['analytics_us_p50']} us per step: they add {added:.1%} to the "
        f"step ({share:.1%} of the step with them; target: add at most {TARGET_ADDED:.0%}): "
        f"{_verdict(added <= TARGET_ADDED)}",
    ]


def compare_windows(args: argparse.Namespace) -> None:
    short, long = (bench(args, w, quiet=True) for w in (args.window, 4 * args.window))
    ratio = long["analytics_us_p50"] / short["analytics_us_p50"]
    for line in analytics_lines(short) + analytics_lines(long):
        print(line)
    print(
        f"analytics per step at window {long['window']} over window {short['window']}: "
        f"{ratio:.2f} (target: at most {TARGET_WINDOW_RATIO}): "
        f"{_verdict(ratio <= TARGET_WINDOW_RATIO)}"
    )
    print(
        json.dumps(
            {
                "short": short,
                "long": long,
                "analytics_window_ratio": round(ratio, 3),
                "analytics_window_ratio_target": TARGET_WINDOW_RATIO,
            }
        )
    )


def bench(args: argparse.Namespace, w: int, quiet: bool = False) -> dict[str, Any]:
    params = FactorParams(
        beta_window=w,
        size_window=w,
        value_lag=w,
        momentum_lag=min(63, w - 1),
        beta_min_obs=min(100, w),
        size_min_obs=min(100, w),
    )
    panel = make_panel(args.symbols, args.bars, args.seed)
    sections = cross_sections(panel)
    bars = int(sum(int(xs.present.sum()) for xs in sections))

    engines = [make_engine(args.symbols, params, args.amend_bars)]
    if args.amend_bars:
        engines.append(make_engine(args.symbols, params, 0))  # the same, without undo log
    # the first plus the analytics, as `factorcast run` has them
    engines.append(make_engine(args.symbols, params, args.amend_bars, analytics_window=w))
    all_times, last_exposure = run_engines(sections, engines)
    with_analytics = float(np.percentile(all_times[-1, min(all_times.shape[1] // 10, w) :], 50))
    all_times = all_times[:-1]
    engine_s = all_times[0].sum() / 1e9  # the steps of the engine with its undo log
    skip = min(all_times.shape[1] // 10, w)  # after the windows fill
    times = all_times[0]
    steady = times[skip:]
    p50_off = float(np.percentile(all_times[-1, skip:], 50))
    amend = {}
    if args.amend_bars:
        for back in (1, args.amend_bars):
            amend[f"{back}_late"] = round(amend_step_us(engines[0], sections[-1], back), 1)

    t0 = time.perf_counter()
    batch = batch_exposures(panel, params)
    batch_s = time.perf_counter() - t0

    # the two computations must agree, or the comparison means nothing
    batch_last = np.column_stack([batch[name].iloc[-1].to_numpy() for name in CANONICAL])
    both = np.isfinite(batch_last) & np.isfinite(last_exposure)
    agree = float(np.abs(batch_last - last_exposure)[both].max()) if both.any() else float("nan")
    bars_per_s = bars / engine_s
    batch_bars_per_s = bars / batch_s
    result = {
        "n_symbols": args.symbols,
        "n_bars": args.bars,
        "window": w,
        "bars_per_s": round(bars_per_s),
        "step_us_p50": round(float(np.percentile(steady, 50)) / 1e3, 1),
        "step_us_p99": round(float(np.percentile(steady, 99)) / 1e3, 1),
        "amend_bars": args.amend_bars,
        "step_us_p50_without_undo_log": round(p50_off / 1e3, 1),
        "undo_log_ratio": round(float(np.percentile(steady, 50)) / p50_off, 3),
        "amend_step_us": amend,
        "batch_bars_per_s": round(batch_bars_per_s),
        "engine_vs_batch": round(bars_per_s / batch_bars_per_s, 3),
        "max_abs_diff_vs_batch": agree,
        "step_us_p50_with_analytics": round(with_analytics / 1e3, 1),
        "analytics_us_p50": round((with_analytics - float(np.percentile(steady, 50))) / 1e3, 1),
        "analytics_share": round(1 - float(np.percentile(steady, 50)) / with_analytics, 3),
        "analytics_added": round(with_analytics / float(np.percentile(steady, 50)) - 1, 3),
        "analytics_added_target": TARGET_ADDED,
        "python": platform.python_version(),
        "machine": f"{platform.machine()} cpus={__import__('os').cpu_count()}",
    }
    if quiet:
        return result
    for line in analytics_lines(result):
        print(line)
    print(
        f"engine: {bars_per_s:,.0f} bars/s ({args.symbols} symbols x {args.bars} bars, "
        f"window {w}); step p50 {result['step_us_p50']} us, p99 {result['step_us_p99']} us"
    )
    print(
        f"undo log of {args.amend_bars} steps: step p50 {result['step_us_p50']} us against "
        f"{result['step_us_p50_without_undo_log']} us without it, same run "
        f"(ratio {result['undo_log_ratio']}); a step taking a late bar in: {amend} us"
    )
    print(f"batch ceiling (vectorized pandas, whole panel): {batch_bars_per_s:,.0f} bars/s")
    print(
        f"engine / batch: {result['engine_vs_batch']} (last-bar exposures differ by <= {agree:.1e})"
    )
    return result


if __name__ == "__main__":
    main()

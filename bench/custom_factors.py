"""Custom factors' cost: the ten examples of examples/custom_factors.toml (ANALYTICS.md
section 9) in the factor model at 500 symbols, against a pandas recomputation of the
same expressions over their window at every bar.

    python bench/custom_factors.py [--symbols 500] [--bars 1200] [--pandas-bars 60]

Four factor models step through the same synthetic cross-sections in turn (who goes
first alternates, so all see the same machine load), each with the undo log the
live engine keeps: the six factors alone; with the ten examples; with the ten, every
window set to 20; and to 200.  ``extra_us_p50`` is the median step of the second
minus that of the first: what the ten add to a bar (their nodes, their rows'
standardization and reasons).  ``window_ratio`` is the extra step cost at window
200 over that at window 20 (the nodes are incremental: O(symbols) per bar whatever
the window, except ``ts_rank``, which compares the new value with its window:
``without_ts_rank_window_ratio`` is the same ratio for the examples without it).

The pandas recomputation evaluates each expression from the parsed tree with
DataFrame operations (rolling windows, cross-sectional ranks) over the last
``lookback + 1`` bars at each of ``--pandas-bars`` bars and takes the last row;
``pandas_vs_incremental`` is its time per bar over the incremental one (the ten's
own update time per bar, in the same run), and ``max_rel_diff`` how far its last
values are from the engine's.  The last line is a JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from factorcast.adapters.sim.market import SimulatedMarket
from factorcast.factors import FactorModel, FactorParams
from factorcast.factors.expressions import Bar, Expression, Term, parse
from factorcast.factors.expressions.spec import CustomFactorSpec
from factorcast.strategy.events import AMEND_BARS

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "custom_factors.toml"
FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")


def examples(path: Path) -> dict[str, str]:
    table = tomllib.loads(path.read_text())["factors"]["custom"]
    return {name: spec["expr"] for name, spec in table.items()}


def with_window(term: Term, w: int) -> Term:
    """``term`` with every window set to ``w``."""
    args = tuple(with_window(a, w) for a in term.args)
    return Term(term.op, args, window=None if term.window is None else w, value=term.value)


def params_of(exprs: dict[str, str]) -> FactorParams:
    return FactorParams(custom={k: CustomFactorSpec(expr=v) for k, v in exprs.items()})


def make_bars(n: int, bars: int, seed: int) -> list[Bar]:
    h = SimulatedMarket(n, seed=seed, timeframe_ms=60_000).history_arrays(bars)
    present = np.isfinite(h["close"])
    return [Bar(**{f: h[f][t] for f in FIELDS}, present=present[t]) for t in range(bars)]


def step_times(models: list[FactorModel], bars: list[Bar]) -> np.ndarray:
    """ns per step of each model (a row each), stepping them in turn."""
    times = np.empty((len(models), len(bars)))
    order = list(enumerate(models))
    gc.collect()
    gc.disable()
    try:
        for t, bar in enumerate(bars):
            for k, model in order if t % 2 else order[::-1]:
                t0 = time.perf_counter_ns()
                model.step(bar)
                times[k, t] = time.perf_counter_ns() - t0
    finally:
        gc.enable()
    return times


# -- the pandas recomputation ---------------------------------------------------------


def _finite(x: Any) -> Any:
    return x.replace([np.inf, -np.inf], np.nan) if isinstance(x, pd.DataFrame) else x


def pandas_eval(t: Term, f: dict[str, pd.DataFrame], present: pd.DataFrame) -> Any:
    """The values of ``t`` over the frames ``f`` (rows: bars, columns: symbols)."""
    op, d = t.op, t.window or 0
    if op == "number":
        return t.value
    if op == "returns":
        return f["close"] / f["close"].shift(1) - 1
    if op == "vwap":
        return _finite(f["quote_volume"] / f["volume"])
    if op in f:
        return f[op]
    a = [pandas_eval(x, f, present) for x in t.args]
    x: Any = a[0] if a else None
    unary = {"neg": np.negative, "abs": np.abs, "log": np.log, "sign": np.sign, "sqrt": np.sqrt}
    binary = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "^": np.power}
    binary |= {"max": np.maximum, "min": np.minimum}
    if op in unary:
        out = unary[op](x)
    elif op in binary:
        out = binary[op](a[0], a[1])
    elif op == "signedpower":
        out = np.sign(x) * np.abs(x) ** a[1]
    elif op in ("delay", "delta"):
        out = x.shift(d) if op == "delay" else x - x.shift(d)
    elif op in ("ts_sum", "ts_mean", "ts_std", "ts_min", "ts_max"):
        out = getattr(x.rolling(d, min_periods=d), op[3:])()
    elif op == "ts_rank":
        out = x.rolling(d, min_periods=d).rank() / d
    elif op in ("correlation", "covariance"):
        roll = a[0].rolling(d, min_periods=d)
        out = roll.corr(a[1]) if op == "correlation" else roll.cov(a[1])
    elif op == "decay_linear":
        out = sum((d - j) * x.shift(j) for j in range(d)) / (d * (d + 1) / 2)
    elif op == "rank":
        m = x.where(present)
        out = m.rank(axis=1).div(m.count(axis=1), axis=0)
    elif op == "scale":
        m = x.where(present)
        out = m.mul(t.value, axis=0).div(m.abs().sum(axis=1), axis=0)
    elif op in ("zscore", "demean"):
        m = x.where(present)
        out = m.sub(m.mean(axis=1), axis=0)
        out = out.div(m.std(axis=1, ddof=0), axis=0) if op == "zscore" else out
    else:
        raise ValueError(f"no pandas form for {op}")
    return _finite(out)


def pandas_last_rows(
    terms: dict[str, Term], bars: list[Bar], at: list[int]
) -> tuple[float, dict[str, np.ndarray]]:
    """Median seconds per bar to recompute every term over its window at each bar of
    ``at``, and the values at the last of them."""
    n = bars[0].present.size
    full = {f: np.array([getattr(b, f) for b in bars]) for f in FIELDS}
    present_all = np.array([b.present for b in bars])
    q = full["quote_volume"]
    full["quote_volume"] = np.where(np.isfinite(q), q, full["close"] * full["volume"])
    times, last = [], {}
    for t in at:
        t0 = time.perf_counter()
        for name, term in terms.items():
            lo = max(0, t - term.lookback)
            frames = {k: pd.DataFrame(v[lo : t + 1], columns=range(n)) for k, v in full.items()}
            present = pd.DataFrame(present_all[lo : t + 1], columns=range(n))
            frames = {k: v.where(present) for k, v in frames.items()}
            values = pandas_eval(term, frames, present)
            last[name] = np.where(present_all[t], values.iloc[-1].to_numpy(), np.nan)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), last


def incremental_update_s(exprs: dict[str, str], bars: list[Bar], skip: int) -> float:
    """Median seconds per bar of the ten expressions' own updates (no model)."""
    compiled = [Expression.compile(k, v) for k, v in exprs.items()]
    times = []
    for bar in bars:
        t0 = time.perf_counter()
        for e in compiled:
            e.update(bar)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[skip:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--bars", type=int, default=1200)
    ap.add_argument("--pandas-bars", type=int, default=60)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--config", type=Path, default=EXAMPLES)
    args = ap.parse_args()

    exprs = examples(args.config)
    terms = {k: parse(k, v) for k, v in exprs.items()}
    bars = make_bars(args.symbols, args.bars, args.seed)
    # the expressions without ts_rank, the one operator that reads its whole window
    flat = {k: t for k, t in terms.items() if "ts_rank(" not in str(t)}
    variants = [
        FactorParams(),
        params_of(exprs),
        *(params_of({k: str(with_window(t, w)) for k, t in terms.items()}) for w in (20, 200)),
        *(params_of({k: str(with_window(t, w)) for k, t in flat.items()}) for w in (20, 200)),
    ]
    models = [FactorModel(args.symbols, p) for p in variants]
    for m in models:
        m.keep_undo(AMEND_BARS)
    longest = max(m.history_bars for m in models)
    skip = min(longest, args.bars // 2)  # after every window of every variant has filled
    times = step_times(models, bars)[:, skip:]
    p50 = np.median(times, axis=1) / 1e3
    base, ten, w20, w200, flat20, flat200 = (float(x) for x in p50)

    own = incremental_update_s(exprs, bars, skip)
    at = list(np.linspace(skip, args.bars - 1, args.pandas_bars).astype(int))
    pandas_s, pandas_last = pandas_last_rows(terms, bars, at)
    check = [Expression.compile(k, v) for k, v in exprs.items()]
    for bar in bars[: at[-1] + 1]:
        engine_last = {e.name: e.update(bar) for e in check}
    diffs = []
    for name, want in pandas_last.items():
        got = engine_last[name]
        both = np.isfinite(got) & np.isfinite(want)
        scale = np.maximum(np.abs(want[both]), 1e-12)
        diffs.append(float((np.abs(got[both] - want[both]) / scale).max()) if both.any() else 0.0)

    result = {
        "n_symbols": args.symbols,
        "n_bars": args.bars,
        "factors": list(exprs),
        "base_step_us_p50": round(base, 1),
        "step_us_p50": round(ten, 1),
        "extra_us_p50": round(ten - base, 1),
        "ten_updates_us_p50": round(own * 1e6, 1),
        "window_20_extra_us_p50": round(w20 - base, 1),
        "window_200_extra_us_p50": round(w200 - base, 1),
        "window_ratio": round((w200 - base) / (w20 - base), 3),
        "window_step_ratio": round(w200 / w20, 3),
        "without_ts_rank": list(flat),
        "without_ts_rank_window_ratio": round((flat200 - base) / (flat20 - base), 3),
        "pandas_us_per_bar": round(pandas_s * 1e6, 1),
        "pandas_vs_incremental": round(pandas_s / own, 1),
        "max_rel_diff": max(diffs),
        "python": platform.python_version(),
        "machine": f"{platform.machine()} cpus={__import__('os').cpu_count()}",
    }
    print(
        f"ten custom factors at {args.symbols} symbols: step p50 {ten:.0f} us against "
        f"{base:.0f} us without them, same run: +{ten - base:.0f} us per bar "
        f"(their updates alone {own * 1e6:.0f} us)"
    )
    print(
        f"every window 20: +{w20 - base:.0f} us; every window 200: +{w200 - base:.0f} us "
        f"(ratio {result['window_ratio']}; whole step {result['window_step_ratio']}); "
        f"the {len(flat)} without ts_rank: +{flat20 - base:.0f} us and +{flat200 - base:.0f} us "
        f"(ratio {result['without_ts_rank_window_ratio']})"
    )
    print(
        f"pandas recomputation over each window at every bar: {pandas_s * 1e3:.1f} ms per bar, "
        f"{result['pandas_vs_incremental']}x the incremental updates "
        f"(last values agree to {result['max_rel_diff']:.1e} relative)"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()

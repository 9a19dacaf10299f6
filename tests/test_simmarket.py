"""The synthetic market: determinism, valid bars, missing bars, one stream for
single bars and blocks, heavy tails, and recovery of the planted structure.

Recovery uses plain, independent estimators (numpy least squares, scipy rank
correlation), never the project's ``factors/`` code.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy.stats import spearmanr

from factorcast.adapters.sim.market import DEFAULT_START_MS, SimBars, SimulatedMarket

FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")
N, T = 50, 3_000


@pytest.fixture(scope="module")
def sim() -> tuple[SimulatedMarket, dict[str, Any]]:
    """3,000 one-minute bars of 50 symbols, default seed and missing rate."""
    market = SimulatedMarket(N)
    return market, market.history_arrays(T)


def rho(a: Any, b: Any) -> float:
    return float(spearmanr(a, b).statistic)


def log_returns(close: NDArray[np.float64]) -> NDArray[np.float64]:
    """``ln(C_t / C_{t-1})``, NaN where either bar is missing."""
    return np.diff(np.log(close), axis=0)


def ew_market(r: NDArray[np.float64]) -> NDArray[np.float64]:
    valid = np.isfinite(r)
    assert valid.sum(axis=1).min() > N // 2
    m: NDArray[np.float64] = np.where(valid, r, 0.0).sum(axis=1) / valid.sum(axis=1)
    return m


def ols_betas(r: NDArray[np.float64], m: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per symbol: least squares of r_i on [1, m] over its valid bars."""
    betas = []
    for i in range(r.shape[1]):
        ok = np.isfinite(r[:, i])
        x = np.column_stack([np.ones(ok.sum()), m[ok]])
        coef, *_ = np.linalg.lstsq(x, r[ok, i], rcond=None)
        betas.append(coef[1])
    return np.array(betas)


def excess_kurtosis(x: NDArray[np.float64]) -> float:
    d = x - x.mean()
    return float(np.mean(d**4) / np.mean(d**2) ** 2 - 3.0)


def stack(bars: list[SimBars], field: str) -> NDArray[np.float64]:
    return np.vstack([getattr(b, field) for b in bars])


# -- determinism and the universe --------------------------------------------------


def test_same_seed_same_market_other_seed_other_market() -> None:
    a, b, c = (SimulatedMarket(20, seed=s) for s in (11, 11, 12))
    ha, hb, hc = (m.history_arrays(500) for m in (a, b, c))
    assert a.symbols == b.symbols
    for f in ("beta", "log_quote_volume", "idio_vol", "supply"):
        assert np.array_equal(getattr(a.planted, f), getattr(b.planted, f))
    for f in ("ts", *FIELDS):
        assert np.array_equal(ha[f], hb[f], equal_nan=True)
    assert a.symbols != c.symbols
    assert not np.allclose(a.planted.beta, c.planted.beta)
    assert not np.allclose(ha["close"], hc["close"], equal_nan=True)


def test_symbols_are_unique_sorted_readable_pairs() -> None:
    market = SimulatedMarket(500, quote="USDC")
    syms = market.symbols
    assert len(syms) == len(set(syms)) == 500
    assert syms == sorted(syms)
    for s in syms:
        base, quote = s.split("/")
        assert quote == "USDC"
        assert 3 <= len(base) <= 4 and base.isalpha() and base.isupper()


def test_planted_truth_is_aligned_and_in_range(sim: tuple[SimulatedMarket, Any]) -> None:
    pl = sim[0].planted
    for arr in (pl.beta, pl.log_quote_volume, pl.idio_vol, pl.supply, pl.total_vol):
        assert arr.shape == (N,) and np.isfinite(arr).all()
    assert pl.beta.min() >= 0.3 and pl.beta.max() <= 2.0
    assert pl.beta.max() - pl.beta.min() > 1.0  # a real spread to recover
    assert (pl.idio_vol > 0).all() and (pl.supply > 0).all()
    assert pl.market_vol == pytest.approx(0.001)


def test_timeframe_scales_volatility_and_volume() -> None:
    minute = SimulatedMarket(10, seed=5)
    hour = SimulatedMarket(10, seed=5, timeframe_ms=3_600_000)
    assert hour.planted.market_vol == pytest.approx(minute.planted.market_vol * math.sqrt(60))
    assert np.allclose(hour.planted.idio_vol, minute.planted.idio_vol * math.sqrt(60))
    assert np.allclose(
        hour.planted.log_quote_volume, minute.planted.log_quote_volume + math.log(60)
    )
    ts = hour.history_arrays(3)["ts"]
    assert ts.tolist() == [DEFAULT_START_MS + k * 3_600_000 for k in range(3)]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_symbols": 0},
        {"timeframe_ms": 0},
        {"start_ms": DEFAULT_START_MS + 1},
        {"missing_prob": 1.0},
        {"missing_prob": -0.1},
        {"quote": "US/DT"},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        SimulatedMarket(**kwargs)


# -- bars ---------------------------------------------------------------------------


def test_bars_are_on_the_grid(sim: tuple[SimulatedMarket, Any]) -> None:
    ts = sim[1]["ts"]
    assert ts.dtype == np.int64
    assert ts[0] == DEFAULT_START_MS and DEFAULT_START_MS % 86_400_000 == 0
    assert (np.diff(ts) == 60_000).all()


def test_ohlc_consistent_and_positive(sim: tuple[SimulatedMarket, Any]) -> None:
    h = sim[1]
    present = np.isfinite(h["close"])
    o, hi, lo, c, v, q = (h[f][present] for f in FIELDS)
    for x in (o, hi, lo, c, v, q):
        assert np.isfinite(x).all() and (x > 0).all()
    assert (hi >= np.maximum(o, c)).all()
    assert (lo <= np.minimum(o, c)).all()
    assert (hi > lo).all()
    np.testing.assert_allclose(v * c, q, rtol=1e-12)  # quote volume = base volume x close


def test_open_is_previous_close_with_small_gap(sim: tuple[SimulatedMarket, Any]) -> None:
    market, h = sim
    gap = np.log(h["open"][1:] / h["close"][:-1])
    ok = np.isfinite(gap)
    bound = 0.05 * market.planted.idio_vol * (1 + 1e-9)  # GAP_SHARE idio vols
    assert (np.abs(gap) <= bound)[ok].all()
    assert (np.abs(gap)[ok] > 0).mean() > 0.99  # some noise, not a copy


def test_single_bars_are_read_only() -> None:
    bars = SimulatedMarket(5).next_bars()
    with pytest.raises(ValueError):
        bars.close[0] = 1.0


# -- missing bars -----------------------------------------------------------------------


@pytest.mark.parametrize(("p", "n", "t"), [(0.002, 50, 20_000), (0.05, 20, 5_000)])
def test_missing_bars_at_about_the_rate_and_all_nan(p: float, n: int, t: int) -> None:
    h = SimulatedMarket(n, seed=2, missing_prob=p).history_arrays(t)
    missing = np.isnan(h["close"])
    for f in FIELDS:
        assert np.array_equal(np.isnan(h[f]), missing)  # whole bars, never partial
    expected, sd = n * t * p, math.sqrt(n * t * p * (1 - p))
    assert abs(missing.sum() - expected) < 4 * sd
    assert missing.any(axis=0).sum() > n // 2  # spread over symbols


def test_no_missing_bars_when_disabled() -> None:
    h = SimulatedMarket(30, missing_prob=0.0).history_arrays(2_000)
    assert all(np.isfinite(h[f]).all() for f in FIELDS)


def test_price_path_continues_under_a_missing_bar() -> None:
    market = SimulatedMarket(20, seed=4, missing_prob=0.05)
    h = market.history_arrays(20_000)
    c, o = h["close"], h["open"]
    after_gap = np.isnan(c[1:-1]) & np.isfinite(c[:-2]) & np.isfinite(o[2:])
    consecutive = np.isfinite(c[:-2]) & np.isfinite(o[1:-1])
    jump_gap = np.abs(np.log(o[2:] / c[:-2]))[after_gap]
    jump_next = np.abs(np.log(o[1:-1] / c[:-2]))[consecutive]
    assert after_gap.sum() > 500
    # across a missing bar the open has moved by about one bar's return; otherwise
    # only by the tiny gap noise
    assert np.median(jump_gap) > 10 * np.median(jump_next)


# -- one stream ---------------------------------------------------------------------


@pytest.mark.parametrize(("n", "a"), [(50, 700), (7, 5_000), (1, 3), (333, 1)])
def test_history_arrays_continues_the_next_bars_stream(n: int, a: int) -> None:
    block_first = SimulatedMarket(n, seed=3, missing_prob=0.05)
    singles = SimulatedMarket(n, seed=3, missing_prob=0.05)
    block = block_first.history_arrays(a)
    after = block_first.next_bars()
    one_by_one = [singles.next_bars() for _ in range(a + 1)]
    assert [*block["ts"].tolist(), after.ts] == [b.ts for b in one_by_one]
    for f in FIELDS:
        combined = np.vstack([block[f], getattr(after, f)[None]])
        assert np.array_equal(combined, stack(one_by_one, f), equal_nan=True), f


def test_blocks_and_history_are_one_stream() -> None:
    split = SimulatedMarket(40, seed=9, missing_prob=0.01)
    whole = SimulatedMarket(40, seed=9, missing_prob=0.01)
    listed = SimulatedMarket(40, seed=9, missing_prob=0.01)
    parts = [split.history_arrays(k) for k in (0, 123, 1_000, 1)]
    full = whole.history_arrays(1_124)
    bars = listed.history(1_124)
    for f in ("ts", *FIELDS):
        assert np.array_equal(np.concatenate([p[f] for p in parts]), full[f], equal_nan=True)
    for f in FIELDS:
        assert np.array_equal(stack(bars, f), full[f], equal_nan=True)
    assert split.next_bars().ts == whole.next_bars().ts == listed.next_bars().ts


def test_negative_history_is_refused() -> None:
    with pytest.raises(ValueError):
        SimulatedMarket(3).history_arrays(-1)


# -- statistical structure -----------------------------------------------------------


def test_heavy_tails(sim: tuple[SimulatedMarket, Any]) -> None:
    r = log_returns(sim[1]["close"])
    m = ew_market(r)
    assert excess_kurtosis(m) > 1.0
    resid = r - np.outer(m, ols_betas(r, m))
    z = resid / np.nanstd(resid, axis=0)
    assert excess_kurtosis(z[np.isfinite(z)]) > 2.0  # a normal gives 0 +- 0.02 here


def test_recovers_planted_betas_volume_and_volatility(sim: tuple[SimulatedMarket, Any]) -> None:
    market, h = sim
    pl = market.planted
    r = log_returns(h["close"])
    betas = ols_betas(r, ew_market(r))
    assert rho(betas, pl.beta) > 0.9

    mean_lq = np.nanmean(np.log(h["quote_volume"]), axis=0)
    assert rho(mean_lq, pl.log_quote_volume) > 0.9
    assert abs(np.mean(mean_lq - pl.log_quote_volume)) < 0.1  # the level is unbiased

    realized = np.array([np.std(col[np.isfinite(col)], ddof=1) for col in r.T])
    assert rho(realized, pl.total_vol) > 0.8
    assert np.median(realized / pl.total_vol) == pytest.approx(1.0, abs=0.1)


def test_size_and_liquidity_follow_the_volume_profile(sim: tuple[SimulatedMarket, Any]) -> None:
    market, h = sim
    pl = market.planted
    close = h["close"]
    last = np.array([col[np.isfinite(col)][-1] for col in close.T])
    assert rho(np.log(last * pl.supply), pl.log_quote_volume) > 0.8  # size = ln(C S)
    r = log_returns(close)
    amihud = np.nanmean(np.abs(r) / h["quote_volume"][1:], axis=0)
    assert rho(-np.log(amihud), pl.log_quote_volume) > 0.8  # liquidity = -ln Amihud


def test_momentum_and_value_are_planted() -> None:
    """Mean rank IC of 63-bar momentum and 63/252-bar reversal with the next 21
    bars' return, on non-overlapping dates."""
    lc = np.log(SimulatedMarket(50, seed=1, missing_prob=0.0).history_arrays(30_000)["close"])
    t = np.arange(252, lc.shape[0] - 21, 21)
    fwd = lc[t + 21] - lc[t]
    signals = {"momentum": lc[t] - lc[t - 63], "value": -(lc[t - 63] - lc[t - 252])}
    for name, sig in signals.items():
        ics = np.array([rho(s, f) for s, f in zip(sig, fwd, strict=True)])
        tstat = ics.mean() / ics.std(ddof=1) * math.sqrt(ics.size)
        assert ics.mean() > 0.02 and tstat > 3, (name, ics.mean(), tstat)

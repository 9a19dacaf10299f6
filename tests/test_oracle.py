"""Tests of the reference oracle (tests/oracle.py) against other independent oracles.

- statsmodels OLS for the market beta;
- a second, vectorized recomputation with pandas rolling windows and scipy
  (``_reference``), on the shared Bittrex candles and on random panels with gaps;
- numbers worked out by hand on tiny panels (every reason code of FACTORS.md).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from factorcast.factors.params import FactorParams
from factorcast.factors.reasons import Reason
from factorcast.factors.registry import (
    CANONICAL,
    LIQUIDITY,
    MARKET,
    MOMENTUM,
    SIZE,
    VALUE,
    VOLATILITY,
)
from tests.oracle import BITTREX_DIR, BITTREX_TIMEFRAME_MS, load_bittrex, oracle_exposures

TF = BITTREX_TIMEFRAME_MS
LN2 = math.log(2)

needs_bittrex = pytest.mark.skipif(
    not any(BITTREX_DIR.glob("*.feather")),
    reason=f"shared Bittrex candles not found in {BITTREX_DIR} (clone ../shared beside the repo)",
)

#: Small windows for the real-data tests (fast, yet every window is well filled).
SMALL = FactorParams(
    beta_window=120,
    beta_min_obs=100,
    size_window=60,
    size_min_obs=40,
    momentum_lag=20,
    value_lag=80,
    volatility_window=21,
    volatility_min_obs=20,
    liquidity_window=21,
    liquidity_min_obs=20,
)


def _supply(symbols: list[str]) -> dict[str, float]:
    """Made-up supplies for every symbol but the last (which then has no cap weight)."""
    return {s: 1e6 * (j + 1) for j, s in enumerate(sorted(symbols)[:-1])}


# --------------------------------------------------------------------------- second oracle


class _Wide:
    """The panel as pandas frames on the full grid (index = grid times, columns = symbols)."""

    def __init__(self, candles: pd.DataFrame, timeframe_ms: int) -> None:
        stamps = candles["timestamp"]
        grid = np.arange(stamps.min(), stamps.max() + timeframe_ms, timeframe_ms)
        quote = candles.get("quote_volume", np.nan)
        q = pd.Series(quote, index=candles.index, dtype=float)
        candles = candles.assign(Q=q.where(np.isfinite(q), candles["close"] * candles["volume"]))

        def wide(column: str) -> pd.DataFrame:
            return candles.pivot(index="timestamp", columns="symbol", values=column).reindex(grid)

        self.close = wide("close")
        self.q = wide("Q")
        self.present = self.close.notna()
        self.r = np.log(self.close).diff()  # NaN unless both grid-adjacent bars exist
        self.a = self.close.ffill()


def _weights(p: _Wide, params: FactorParams, supply: dict[str, float] | None) -> pd.DataFrame:
    if params.weighting == "equal":
        return pd.DataFrame(1.0, index=p.close.index, columns=p.close.columns)
    if params.weighting == "adv":
        roll = p.q.rolling(params.liquidity_window, min_periods=1)
        adv = roll.mean().shift(1)  # bars t-L .. t-1
        return adv.where(roll.max().shift(1) > 0)  # Q >= 0: mean > 0 iff max > 0
    s = pd.Series(supply or {}, dtype=float).reindex(p.close.columns)
    return p.a.shift(1) * s.where(s > 0)


def _market(p: _Wide, w: pd.DataFrame) -> pd.Series:
    use = p.r.notna() & w.notna()
    den = w.where(use).sum(axis=1)
    return ((p.r * w).where(use).sum(axis=1) / den).where(use.any(axis=1))


def _raw(
    p: _Wide, m: pd.Series, params: FactorParams, supply: dict[str, float] | None
) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Raw descriptor and reason code per factor, as wide frames, from pandas rolling windows."""
    ins, zero = int(Reason.INSUFFICIENT_HISTORY), int(Reason.ZERO_VOLUME)

    def roll(frame: pd.DataFrame | pd.Series, window: int):  # type: ignore[no-untyped-def]
        return frame.rolling(window, min_periods=1)

    out: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = {}
    ok = pd.DataFrame(int(Reason.OK), index=p.close.index, columns=p.close.columns)

    # market: pairs where both r and m are valid
    wb = params.beta_window
    beta, why = {}, {}
    for s in p.close.columns:
        both = p.r[s].notna() & m.notna()
        x, y = p.r[s].where(both), m.where(both)
        n = roll(both, wb).sum()
        flat = roll(y, wb).max() == roll(y, wb).min()
        b = x.rolling(wb, min_periods=2).cov(y) / y.rolling(wb, min_periods=2).var()
        bad = (n < params.beta_min_obs) | flat
        beta[s] = b.mask(bad)
        why[s] = pd.Series(int(Reason.OK), index=b.index).mask(flat, int(Reason.NO_MARKET_VARIANCE))
        why[s] = why[s].mask(n < params.beta_min_obs, ins)
    out[MARKET] = (pd.DataFrame(beta), pd.DataFrame(why))

    # size
    s_known = pd.Series(supply or {}, dtype=float).reindex(p.close.columns)
    s_known = s_known.where(s_known > 0)
    n = roll(p.q.notna(), params.size_window).sum()
    all_zero = roll(p.q, params.size_window).max() == 0
    by_volume = np.log(roll(p.q, params.size_window).mean())
    reason = ok.mask(all_zero, zero).mask(n < params.size_min_obs, ins)
    size, size_reason = by_volume.where(reason == 0), reason
    for s in s_known.dropna().index:  # supply known: ln(C * S), whatever the volume
        size[s] = np.log(p.close[s] * s_known[s])
        size_reason[s] = int(Reason.OK)
    out[SIZE] = (size, size_reason)

    # value, momentum: as-of closes at the lags
    short, long_ = p.a.shift(params.momentum_lag), p.a.shift(params.value_lag)
    value = -(np.log(short) - np.log(long_))
    out[VALUE] = (value, ok.mask(value.isna(), ins))
    momentum = np.log(p.close) - np.log(short)
    out[MOMENTUM] = (momentum, ok.mask(momentum.isna(), ins))

    # volatility
    n = roll(p.r.notna(), params.volatility_window).sum()
    vol = p.r.rolling(params.volatility_window, min_periods=2).std()
    short_vol = n < params.volatility_min_obs
    out[VOLATILITY] = (vol.mask(short_vol), ok.mask(short_vol, ins))

    # liquidity
    wl = params.liquidity_window
    n_r = roll(p.r.notna(), wl).sum()
    terms = (p.r.abs() / p.q).where(p.r.notna() & (p.q > 0))
    n_terms = roll(terms.notna(), wl).sum()
    flat = roll(terms, wl).max() == 0  # terms >= 0: amihud == 0 iff all are 0
    reason = ok.mask(flat, int(Reason.NO_PRICE_CHANGE))
    reason = reason.mask(n_terms < params.liquidity_min_obs, zero)
    reason = reason.mask(n_r < params.liquidity_min_obs, ins)
    out[LIQUIDITY] = (-np.log(roll(terms, wl).mean()).where(reason == 0), reason)
    return out


def _scipy_standardize(
    x: np.ndarray, w: np.ndarray, params: FactorParams
) -> tuple[np.ndarray, int]:
    n = x.size
    if n < 3:
        return np.full(n, np.nan), int(Reason.TOO_FEW_SYMBOLS)
    if params.scaling == "rank":
        return (2 * (stats.rankdata(x, method="average") - 0.5) / n - 1), int(Reason.OK)
    med = np.median(x)
    mad = stats.median_abs_deviation(x, scale=1.0)
    h = params.winsor_k * 1.4826 * mad
    xw = np.clip(x, med - h, med + h) if mad > 0 else x
    has_w = ~np.isnan(w)
    if not has_w.any():
        return np.full(n, np.nan), int(Reason.NO_WEIGHTS)
    if np.ptp(xw) == 0:
        return np.full(n, np.nan), int(Reason.NO_DISPERSION)
    z = (xw - np.average(xw[has_w], weights=w[has_w])) / np.std(xw, ddof=0)
    return np.clip(z, -params.clip, params.clip), int(Reason.OK)


def _reference(
    candles: pd.DataFrame,
    params: FactorParams,
    timeframe_ms: int,
    supply: dict[str, float] | None = None,
) -> pd.DataFrame:
    """The long output of the model, recomputed with pandas rolling windows and scipy."""
    p = _Wide(candles, timeframe_ms)
    w = _weights(p, params, supply)
    with np.errstate(divide="ignore", invalid="ignore"):
        raw = _raw(p, _market(p, w), params, supply)
    present = p.present.to_numpy()
    weight = w.to_numpy(dtype=float)
    rows = []
    for name in CANONICAL:
        values = raw[name][0].to_numpy(dtype=float)
        codes = raw[name][1].to_numpy(dtype=int).copy()
        exposure = np.full(values.shape, np.nan)
        for k in range(values.shape[0]):
            members = present[k] & np.isfinite(values[k])
            z, code = _scipy_standardize(values[k, members], weight[k, members], params)
            exposure[k, members] = z
            codes[k, members] = code
        frame = pd.DataFrame(
            {"raw": values.ravel(), "exposure": exposure.ravel(), "code": codes.ravel()},
            index=pd.MultiIndex.from_product(
                [p.close.index, p.close.columns], names=["timestamp", "symbol"]
            ),
        )
        frame = frame[present.ravel()].reset_index()
        rows.append(frame.assign(factor=name, order=CANONICAL.index(name)))
    out = pd.concat(rows).sort_values(["timestamp", "symbol", "order"], ignore_index=True)
    out["reason"] = [Reason(int(c)).label for c in out["code"]]
    return out


def _assert_matches_reference(
    candles: pd.DataFrame,
    params: FactorParams,
    timeframe_ms: int,
    supply: dict[str, float] | None = None,
) -> pd.DataFrame:
    got = oracle_exposures(candles, params, timeframe_ms, supply)
    want = _reference(candles, params, timeframe_ms, supply)
    assert list(got.columns) == ["timestamp", "symbol", "factor", "raw", "exposure", "reason"]
    assert len(got) == len(want) == 6 * len(candles)
    for column in ("timestamp", "symbol", "factor", "reason"):
        assert got[column].tolist() == want[column].tolist(), column
    for column in ("raw", "exposure"):
        np.testing.assert_allclose(got[column], want[column], rtol=1e-7, atol=1e-9, err_msg=column)
    return got


# --------------------------------------------------------------------------- real data


@needs_bittrex
def test_load_bittrex_long_format() -> None:
    candles = load_bittrex(n_bars=100)
    assert list(candles.columns) == [
        "timestamp",
        "symbol",
        "open",
        "high",
        "low",
        "close",
        "volume",
    ]
    assert candles["timestamp"].dtype == np.int64
    assert sorted(set(candles["symbol"])) == sorted(
        p.name.rsplit("-", 1)[0].replace("_", "/") for p in BITTREX_DIR.glob("*.feather")
    )
    assert "ETH/BTC" in set(candles["symbol"])
    span = candles["timestamp"].max() - candles["timestamp"].min()
    assert span == 99 * TF
    assert (candles["timestamp"] % TF == 0).all()
    assert not candles.duplicated(["timestamp", "symbol"]).any()


@needs_bittrex
@pytest.mark.parametrize("weighting", ["equal", "adv", "cap"])
def test_beta_equals_statsmodels_ols(weighting: str) -> None:
    """Beta on the same valid pairs as an OLS slope; the sample spans ADA's 34-bar gap."""
    candles = load_bittrex(n_bars=1700)
    symbols = sorted(set(candles["symbol"]))
    supply = _supply(symbols)
    params = FactorParams(**{**_fields(SMALL), "weighting": weighting})
    got = oracle_exposures(candles, params, TF, supply)
    beta = got[got["factor"] == MARKET].set_index(["timestamp", "symbol"])

    p = _Wide(candles, TF)  # r and m recomputed with pandas
    m = _market(p, _weights(p, params, supply))
    rng = np.random.default_rng(7)
    times = p.close.index
    sample_t = np.concatenate([rng.integers(0, len(times), 25), np.arange(1500, 1680, 6)])
    checked = short = 0
    for k in sample_t:
        t = times[k]
        for s in symbols:
            if not p.present.loc[t, s]:
                continue
            lo = max(0, k - params.beta_window + 1)
            pairs = pd.DataFrame({"r": p.r[s].iloc[lo : k + 1], "m": m.iloc[lo : k + 1]}).dropna()
            row = beta.loc[(t, s)]
            if len(pairs) < params.beta_min_obs:
                assert row["reason"] == Reason.INSUFFICIENT_HISTORY.label
                assert math.isnan(row["raw"])
                short += 1
                continue
            fit = sm.OLS(pairs["r"].to_numpy(), sm.add_constant(pairs["m"].to_numpy())).fit()
            slope = fit.params[1]
            assert abs(row["raw"] - slope) <= 1e-9 * max(1.0, abs(slope)), (t, s)
            checked += 1
    assert checked > 500
    assert short > 10  # ADA right after its gap, and the warm-up


@needs_bittrex
def test_volatility_equals_pandas_rolling_std_on_gapless_symbol() -> None:
    candles = load_bittrex(n_bars=600)
    eth = candles[candles["symbol"] == "ETH/BTC"].set_index("timestamp")["close"]
    assert (np.diff(eth.index) == TF).all()  # no gaps: rolling over rows == over the grid
    expected = np.log(eth).diff().rolling(21, min_periods=20).std()

    got = oracle_exposures(candles, SMALL, TF)
    vol = got[(got["factor"] == VOLATILITY) & (got["symbol"] == "ETH/BTC")].set_index("timestamp")
    assert vol.index.equals(expected.index)
    defined = expected.notna()
    assert defined.sum() == len(expected) - 20
    np.testing.assert_allclose(vol["raw"][defined], expected[defined], rtol=1e-9)
    assert vol["raw"][~defined].isna().all()
    assert (vol["reason"][~defined] == Reason.INSUFFICIENT_HISTORY.label).all()


@needs_bittrex
@pytest.mark.parametrize(
    ("weighting", "scaling"), [("equal", "zscore"), ("adv", "zscore"), ("cap", "rank")]
)
def test_matches_pandas_reference_on_bittrex(weighting: str, scaling: str) -> None:
    candles = load_bittrex(n_bars=1700)
    params = FactorParams(**{**_fields(SMALL), "weighting": weighting, "scaling": scaling})
    supply = _supply(sorted(set(candles["symbol"]))) if weighting == "cap" else None
    got = _assert_matches_reference(candles, params, TF, supply)
    assert (got["reason"] == "ok").mean() > 0.9


@needs_bittrex
@pytest.mark.slow
def test_full_shared_data_default_params() -> None:
    """The whole shared data set with the defaults of FACTORS.md, against the second oracle."""
    candles = load_bittrex()
    got = _assert_matches_reference(candles, FactorParams(), TF)
    assert set(got["reason"]) == {"ok", "insufficient_history"}
    ok = got["reason"] == "ok"
    assert got.loc[ok, "exposure"].between(-3, 3).all()
    assert got.loc[~ok, "exposure"].isna().all()


@needs_bittrex
@pytest.mark.parametrize("weighting", ["equal", "adv", "cap"])
def test_weighted_mean_zero_and_std_one_before_clipping(weighting: str) -> None:
    candles = load_bittrex(n_bars=400)
    symbols = sorted(set(candles["symbol"]))
    supply = _supply(symbols)
    params = FactorParams(**{**_fields(SMALL), "weighting": weighting, "clip": 1e9})
    got = oracle_exposures(candles, params, TF, supply)
    p = _Wide(candles, TF)
    w = _weights(p, params, supply).stack().rename("w")
    got = got.join(w, on=["timestamp", "symbol"])
    ok = got[got["reason"] == "ok"]
    groups = 0
    for _, g in ok.groupby(["timestamp", "factor"]):
        has_w = g["w"].notna()
        mean = np.average(g.loc[has_w, "exposure"], weights=g.loc[has_w, "w"])
        assert abs(mean) < 1e-9
        assert np.std(g["exposure"], ddof=0) == pytest.approx(1.0, abs=1e-9)
        groups += 1
    assert groups > 1500
    if weighting == "cap":  # the symbol without supply still gets an exposure
        assert (ok["symbol"] == symbols[-1]).any()


def _fields(params: FactorParams) -> dict[str, object]:
    return {f: getattr(params, f) for f in params.__dataclass_fields__}


# --------------------------------------------------------------------------- random panels


@st.composite
def _random_panels(
    draw: st.DrawFn,
) -> tuple[pd.DataFrame, FactorParams, dict[str, float]]:
    """A few symbols on a short grid with gaps, zero volumes, partial quote volumes and supply."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_symbols, n_times = draw(st.integers(2, 6)), draw(st.integers(2, 30))
    p_missing = draw(st.sampled_from([0.0, 0.15, 0.4]))
    rows = [(1_000 + 60 * n_times, "S0/X", 1.0, 1.0, np.nan)]  # never an empty panel
    for j in range(n_symbols):
        for k in range(n_times):
            if rng.random() < p_missing:
                continue
            volume = 0.0 if rng.random() < 0.15 else float(rng.uniform(0.1, 10))
            quote = float(rng.uniform(0.1, 50)) if rng.random() < 0.5 else np.nan
            rows.append((1_000 + 60 * k, f"S{j}/X", rng.uniform(1, 100), volume, quote))
    candles = pd.DataFrame(rows, columns=["timestamp", "symbol", "close", "volume", "quote_volume"])
    candles = candles.assign(open=candles["close"], high=candles["close"], low=candles["close"])

    def window() -> tuple[int, int]:
        size = draw(st.integers(2, 6))
        return size, draw(st.integers(2, size))

    (wb, mb), (ws, ms), (wv, mv), (wl, ml) = window(), window(), window(), window()
    momentum_lag = draw(st.integers(1, 4))
    params = FactorParams(
        beta_window=wb,
        beta_min_obs=mb,
        size_window=ws,
        size_min_obs=ms,
        momentum_lag=momentum_lag,
        value_lag=momentum_lag + draw(st.integers(1, 4)),
        volatility_window=wv,
        volatility_min_obs=mv,
        liquidity_window=wl,
        liquidity_min_obs=ml,
        weighting=draw(st.sampled_from(["equal", "adv", "cap"])),
        scaling=draw(st.sampled_from(["zscore", "rank"])),
        winsor_k=draw(st.sampled_from([0.5, 3.0])),
        clip=2.0,
    )
    symbols = sorted(set(candles["symbol"]))
    supply = {s: float(rng.uniform(1, 1e3)) for s in symbols if rng.random() < 0.7}
    return candles, params, supply


@settings(max_examples=60, deadline=None)
@given(case=_random_panels())
def test_matches_pandas_reference_on_random_panels(
    case: tuple[pd.DataFrame, FactorParams, dict[str, float]],
) -> None:
    candles, params, supply = case
    _assert_matches_reference(candles, params, 60, supply)


# --------------------------------------------------------------------------- hand-made panels

#: Windows of a few bars for the hand-made panels (momentum = ln C[t] - ln A[t-1]).
TINY = FactorParams(
    beta_window=3,
    beta_min_obs=3,
    size_window=3,
    size_min_obs=2,
    momentum_lag=1,
    value_lag=2,
    volatility_window=3,
    volatility_min_obs=3,
    liquidity_window=3,
    liquidity_min_obs=2,
)
A, B, C, D, E = "A/X", "B/X", "C/X", "D/X", "E/X"


def _candles(
    closes: dict[str, list[float | None]], **columns: dict[str, list[float]]
) -> pd.DataFrame:
    """Long candles from per-symbol closes by grid step (None = no bar); time step 1 ms."""
    rows = []
    for symbol, series in closes.items():
        for t, close in enumerate(series):
            if close is None:
                continue
            row = {"timestamp": t, "symbol": symbol, "open": close, "high": close, "low": close}
            row |= {"close": close, "volume": 1.0}
            row |= {name: values[symbol][t] for name, values in columns.items() if symbol in values}
            rows.append(row)
    return pd.DataFrame(rows)


def _cell(out: pd.DataFrame, t: int, factor: str) -> pd.DataFrame:
    return out[(out["timestamp"] == t) & (out["factor"] == factor)].set_index("symbol")


def _momentum_panel() -> pd.DataFrame:
    e = math.exp
    return _candles(
        {
            #   t=0  t=1    t=2  t=3   t=4  t=5  t=6   t=7
            A: [1.0, e(0), 1.0, e(1), 1.0, 2.0, e(0), 1.0],
            B: [1.0, e(1), 1.0, e(1), 1.0, 2.0, e(1), 2.0],
            C: [1.0, e(3), 1.0, e(1), 1.0, 2.0, e(1), None],
            D: [1.0, e(50), 1.0, e(5), 1.0, 2.0, e(3), None],
            E: [None] * 7 + [1.0],
        }
    )


def test_hand_winsorization_clips_with_even_count_median() -> None:
    out = _momentum_panel().pipe(oracle_exposures, TINY, 1)
    x = _cell(out, 1, MOMENTUM)
    np.testing.assert_allclose(x.loc[[A, B, C, D], "raw"], [0, 1, 3, 50], atol=1e-12)
    # med = (1 + 3) / 2 = 2; |x - med| = 2, 1, 1, 48 -> mad = (1 + 2) / 2 = 1.5
    # bounds 2 -/+ 3 * 1.4826 * 1.5 = 2 -/+ 6.6717: 50 -> 8.6717, the rest unclipped
    # mu = (0 + 1 + 3 + 8.6717) / 4 = 3.167925; sd = sqrt(45.055386... / 4) = 3.3561654...
    np.testing.assert_allclose(
        x.loc[[A, B, C, D], "exposure"], [-0.9439121, -0.6459530, -0.0500348, 1.6398998], atol=1e-6
    )
    assert (x["reason"] == "ok").all()
    # the same panel with clip 1.5: only D's z (1.64) is clipped
    clipped = _cell(oracle_exposures(_momentum_panel(), _with(TINY, clip=1.5), 1), 1, MOMENTUM)
    np.testing.assert_allclose(
        clipped.loc[[A, B, C, D], "exposure"], [-0.9439121, -0.6459530, -0.0500348, 1.5], atol=1e-6
    )


def test_hand_mad_zero_no_clip_and_cap_weighted_mean() -> None:
    out = _momentum_panel().pipe(oracle_exposures, TINY, 1)
    x = _cell(out, 3, MOMENTUM)
    np.testing.assert_allclose(x.loc[[A, B, C, D], "raw"], [1, 1, 1, 5], atol=1e-12)
    # med = 1, mad = median(0, 0, 0, 4) = 0: no clipping (else 5 -> 1 and no dispersion)
    # mu = 2, sd = sqrt((3 * 1 + 9) / 4) = sqrt(3)
    r3 = 1 / math.sqrt(3)
    np.testing.assert_allclose(x.loc[[A, B, C, D], "exposure"], [-r3, -r3, -r3, 3 * r3])
    # cap weights A[t-1] * S = 1 * S = 1, 1, 1, 2: mu = (1 + 1 + 1 + 2 * 5) / 5 = 2.6,
    # sd stays the equal-weighted sqrt(3)
    supply = {A: 1.0, B: 1.0, C: 1.0, D: 2.0}
    cap = oracle_exposures(_momentum_panel(), _with(TINY, weighting="cap"), 1, supply)
    z = _cell(cap, 3, MOMENTUM).loc[[A, B, C, D], "exposure"]
    np.testing.assert_allclose(z, [-1.6 * r3, -1.6 * r3, -1.6 * r3, 2.4 * r3])
    assert np.dot(z, [1, 1, 1, 2]) == pytest.approx(0, abs=1e-12)


def test_hand_no_dispersion_no_weights_and_too_few_symbols() -> None:
    out = _momentum_panel().pipe(oracle_exposures, TINY, 1)
    flat = _cell(out, 5, MOMENTUM)  # every close 1 -> 2
    np.testing.assert_allclose(flat["raw"], [LN2] * 4)
    assert flat["exposure"].isna().all()
    assert (flat["reason"] == "no_dispersion").all()

    late = _cell(out, 7, MOMENTUM)  # C, D have no bar; E has no close before t=7
    assert sorted(late.index) == [A, B, E]
    assert late.loc[[A, B], "raw"].notna().all()
    assert (late.loc[[A, B], "reason"] == "too_few_symbols").all()
    assert late.loc[E, "reason"] == "insufficient_history"
    assert late["exposure"].isna().all()

    no_supply = oracle_exposures(_momentum_panel(), _with(TINY, weighting="cap"), 1)
    assert (_cell(no_supply, 1, MOMENTUM)["reason"] == "no_weights").all()
    assert (_cell(no_supply, 5, MOMENTUM)["reason"] == "no_weights").all()  # before no_dispersion
    beta = no_supply[no_supply["factor"] == MARKET]
    assert (beta["reason"] == "insufficient_history").all()  # no weight -> no market return


def test_hand_rank_scaling_with_ties() -> None:
    out = oracle_exposures(_momentum_panel(), _with(TINY, scaling="rank"), 1)
    # t=6: momentum = [0, 1, 1, 3] - ln 2 -> ranks 1, 2.5, 2.5, 4 -> 2 (rank - 0.5) / 4 - 1
    x = _cell(out, 6, MOMENTUM)
    np.testing.assert_allclose(x.loc[[A, B, C, D], "exposure"], [-0.75, 0, 0, 0.75])
    # t=1: momentum = [0, 1, 3, 50], no winsorization in rank scaling
    x = _cell(out, 1, MOMENTUM)
    np.testing.assert_allclose(x.loc[[A, B, C, D], "exposure"], [-0.75, -0.25, 0.25, 0.75])
    assert (_cell(out, 7, MOMENTUM).loc[[A, B], "reason"] == "too_few_symbols").all()


def test_hand_raw_descriptors_and_their_reasons() -> None:
    candles = _candles(
        {
            A: [1.0, 2.0, 1.0, 2.0],
            B: [5.0, 5.0, 5.0, 5.0],  # no price change
            C: [1.0, 2.0, 4.0, 8.0],  # volume 0, no quote volume: Q = 0
            D: [1.0, None, 3.0, 3.0],  # a missing bar at t=1
        },
        quote_volume={A: [10.0, 20.0, 30.0, 40.0]},
    )
    candles.loc[candles["symbol"] == C, "volume"] = 0.0
    out = oracle_exposures(candles, TINY, 1)

    def raw(t: int, factor: str, symbol: str) -> tuple[float, str]:
        """Raw value and final reason (for a finite raw value, the standardization's)."""
        row = _cell(out, t, factor).loc[symbol]
        return row["raw"], row["reason"]

    # m[1] = (ln2 + 0 + ln2) / 3, m[2] = (-ln2 + 0 + ln2) / 3 = 0, m[3] = (ln2 + 0 + ln2 + 0) / 4
    # beta_A over r_A = ln2 (1, -1, 1), m = ln2 (2/3, 0, 1/2): cov / var = (7/9) / (13/54) = 42/13
    assert raw(3, MARKET, A)[0] == pytest.approx(42 / 13)
    assert raw(3, MARKET, B)[0] == pytest.approx(0.0)
    assert raw(3, MARKET, C)[0] == pytest.approx(0.0, abs=1e-12)
    assert raw(2, MARKET, A)[1] == "insufficient_history"  # 2 pairs < 3
    assert raw(3, MARKET, D)[1] == "insufficient_history"  # only r_D[3]

    assert raw(3, SIZE, A)[0] == pytest.approx(math.log(30))  # mean(20, 30, 40)
    assert raw(3, SIZE, B)[0] == pytest.approx(math.log(5))  # Q = C * V = 5
    assert raw(1, SIZE, C)[1] == "zero_volume"
    assert raw(0, SIZE, A)[1] == "insufficient_history"  # 1 bar < 2
    assert raw(2, SIZE, D)[1] == "ok"  # bars at t=0 and t=2: 2 >= 2

    assert raw(3, VALUE, A)[0] == pytest.approx(LN2)  # -(ln A[2] - ln A[1])
    assert raw(2, VALUE, D)[0] == 0.0  # as-of A[1] = close at t=0 = A[0]
    assert raw(1, VALUE, A)[1] == "insufficient_history"  # no bar at t-2
    assert raw(2, MOMENTUM, D)[0] == pytest.approx(math.log(3))  # ln 3 - ln A[1] = ln 3 - 0
    assert raw(0, MOMENTUM, A)[1] == "insufficient_history"

    # r_A = ln2 (1, -1, 1): sample std = sqrt((4 + 16 + 4) / 9 / 2) ln2 = (2 / sqrt 3) ln2
    assert raw(3, VOLATILITY, A)[0] == pytest.approx(2 / math.sqrt(3) * LN2)
    assert raw(3, VOLATILITY, B)[0] == 0.0
    assert raw(2, VOLATILITY, A)[1] == "insufficient_history"
    assert raw(3, VOLATILITY, D)[1] == "insufficient_history"

    # amihud_A = ln2 (1/20 + 1/30 + 1/40) / 3 = 13 ln2 / 360
    assert raw(3, LIQUIDITY, A)[0] == pytest.approx(-math.log(13 * LN2 / 360))
    assert raw(2, LIQUIDITY, B)[1] == "no_price_change"
    assert raw(2, LIQUIDITY, C)[1] == "zero_volume"
    assert raw(1, LIQUIDITY, A)[1] == "insufficient_history"
    assert raw(3, LIQUIDITY, D)[1] == "insufficient_history"  # 1 valid r < 2

    # a finite raw value is counted in the cross-section; a NaN one keeps its own reason
    liquidity = _cell(out, 3, LIQUIDITY)
    assert liquidity.loc[A, "reason"] == "too_few_symbols"  # A is the only finite one
    assert liquidity.loc[[B, C, D], "reason"].tolist() == [
        "no_price_change",
        "zero_volume",
        "insufficient_history",
    ]
    assert liquidity["exposure"].isna().all()
    # three symbols ok at t=3 for volatility: the zero of B is a real value, not a gap
    vol = _cell(out, 3, VOLATILITY)
    assert (vol.loc[[A, B, C], "reason"] == "ok").all()
    assert vol.loc[[A, B, C], "exposure"].notna().all()


def test_hand_no_market_variance() -> None:
    candles = _candles({A: [1.0] * 4, B: [2.0] * 4, C: [3.0, 3.0, 3.0, 3.0]})
    out = oracle_exposures(candles, TINY, 1)
    assert (_cell(out, 3, MARKET)["reason"] == "no_market_variance").all()
    assert (_cell(out, 2, MARKET)["reason"] == "insufficient_history").all()


def test_output_layout() -> None:
    out = _momentum_panel().pipe(oracle_exposures, TINY, 1)
    assert list(out.columns) == ["timestamp", "symbol", "factor", "raw", "exposure", "reason"]
    assert len(out) == 6 * (4 * 7 + 2 + 1)
    assert out["factor"].tolist()[:12] == list(CANONICAL) * 2
    keys = list(
        zip(out["timestamp"], out["symbol"], out["factor"].map(CANONICAL.index), strict=True)
    )
    assert keys == sorted(keys)
    labels = {r.label for r in Reason}
    assert set(out["reason"]) <= labels
    finite = np.isfinite(out["exposure"])
    assert (out.loc[finite, "reason"] == "ok").all()
    assert (out.loc[~finite, "reason"] != "ok").all()


def _with(params: FactorParams, **changes: object) -> FactorParams:
    return FactorParams(**{**_fields(params), **changes})  # type: ignore[arg-type]

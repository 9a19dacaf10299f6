"""Independent reference implementation ("oracle") of the six-factor model.

It follows ``shared/FACTORS.md`` (v1) line by line, in plain numpy/pandas, written
to be checked by reading rather than to be fast: every statistic is computed from
an explicit window slice for each grid time ``t`` and symbol ``i`` (no running
sums, no incremental updates), so it does not share the failure modes of the
production code in ``factors/``, which it is used to test.  It reads only the
registry, the parameters and the reason codes from ``factors/``.

Conventions where FACTORS.md is silent (the production code follows the same):

1. The time grid runs over every timeframe step from the first to the last
   timestamp in the data; a grid time where no symbol has a bar still counts as
   a window position.  Windows and lags are in grid steps.  A window that would
   start before the first grid time is cut at the first grid time.
2. ``Q`` is the quote volume where given and finite, else ``close * volume``.
3. ``r[i,t]`` needs real bars at ``t`` and ``t-1`` (grid-adjacent).
4. ``m[t]`` is the weighted mean of the valid ``r[i,t]`` of the symbols that
   have a weight at ``t``; NaN if there is none.
5. Weights at ``t``: ``equal`` 1; ``adv`` the mean ``Q`` over the symbol's real
   bars in ``[t-L, t-1]`` (``L = liquidity_window``), only if there is such a bar
   and the mean is > 0; ``cap`` the as-of close ``A[i,t-1]`` times the supply.
   The same weights serve ``m[t]`` and ``mu``.
6. to 10. The raw descriptors and their reasons: see the ``_raw_*`` functions.
11. Standardization: see :func:`standardize_cross_section`.
12. A symbol with a NaN raw value keeps the raw reason and a NaN exposure.

Choices of this oracle where even those conventions are silent:

- A supply counts as known only if it is finite and > 0 (``ln(C * S)`` and a
  cap weight are meaningless otherwise).
- "``var == 0``", "``sd == 0``", "``mean Q == 0``" and "``amihud == 0``" are
  tested exactly: all values equal (resp. all zero), not a float compared with 0
  after a sum that may leave rounding noise.
- If a cross-section has neither a weight nor dispersion, ``no_weights`` wins
  (``mu`` is step 3's first quantity).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

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

OUTPUT_COLUMNS = ("timestamp", "symbol", "factor", "raw", "exposure", "reason")

#: The recorded Bittrex candles shared by every checkout (``../shared`` beside the repository).
BITTREX_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "bittrex-5m"
BITTREX_TIMEFRAME_MS = 300_000

#: MAD to standard deviation for a normal distribution (FACTORS.md, step 2).
MAD_TO_SD = 1.4826

NAN = float("nan")


# --------------------------------------------------------------------------- panel


@dataclass(frozen=True)
class Panel:
    """Candles on the time grid: rows are grid times, columns are symbols."""

    times: np.ndarray  # (T,) int64 grid times in ms
    symbols: list[str]  # (N,) sorted
    present: np.ndarray  # (T, N) bool: a real bar exists
    close: np.ndarray  # (T, N) C, NaN where no bar
    quote: np.ndarray  # (T, N) Q, NaN where no bar


def build_panel(candles: pd.DataFrame, timeframe_ms: int) -> Panel:
    """Place the long-format candles on the grid ``t0, t0 + tf, ..., t_last``."""
    if candles.empty:
        empty = np.zeros((0, 0))
        return Panel(np.zeros(0, dtype=np.int64), [], empty.astype(bool), empty, empty)
    stamps = candles["timestamp"].to_numpy(dtype=np.int64)
    t0, t_last = int(stamps.min()), int(stamps.max())
    if np.any((stamps - t0) % timeframe_ms != 0):
        raise ValueError("a timestamp is not on the timeframe grid of the first timestamp")
    times = np.arange(t0, t_last + timeframe_ms, timeframe_ms, dtype=np.int64)
    symbols = sorted(set(candles["symbol"]))
    column = {s: j for j, s in enumerate(symbols)}

    close = np.full((len(times), len(symbols)), NAN)
    quote = np.full((len(times), len(symbols)), NAN)
    present = np.zeros((len(times), len(symbols)), dtype=bool)

    has_quote = "quote_volume" in candles.columns
    for row in candles.itertuples(index=False):
        t = (int(row.timestamp) - t0) // timeframe_ms
        i = column[row.symbol]
        if present[t, i]:
            raise ValueError(f"duplicate bar {row.symbol} at {row.timestamp}")
        q = float(row.quote_volume) if has_quote else NAN
        present[t, i] = True
        close[t, i] = float(row.close)
        quote[t, i] = q if math.isfinite(q) else float(row.close) * float(row.volume)
    return Panel(times, symbols, present, close, quote)


def log_returns(panel: Panel) -> np.ndarray:
    """``r[t, i] = ln(C[t, i] / C[t-1, i])`` where both bars are real, else NaN."""
    r = np.full(panel.close.shape, NAN)
    for t in range(1, len(panel.times)):
        for i in range(len(panel.symbols)):
            if panel.present[t, i] and panel.present[t - 1, i]:
                r[t, i] = math.log(panel.close[t, i] / panel.close[t - 1, i])
    return r


def as_of_close(panel: Panel) -> np.ndarray:
    """``A[t, i]`` = close of the latest real bar at or before ``t``; NaN before the first."""
    a = np.full(panel.close.shape, NAN)
    for i in range(len(panel.symbols)):
        last = NAN
        for t in range(len(panel.times)):
            if panel.present[t, i]:
                last = panel.close[t, i]
            a[t, i] = last
    return a


def lagged(a: np.ndarray, t: int, i: int, k: int) -> float:
    """``A[i, t-k]``; NaN when ``t-k`` is before the grid (no bar at or before it)."""
    return float(a[t - k, i]) if t - k >= 0 else NAN


def known_supply(panel: Panel, supply: dict[str, float] | None) -> np.ndarray:
    """Supply per symbol column; NaN where unknown (absent, non-finite or <= 0)."""
    s = np.full(len(panel.symbols), NAN)
    for i, symbol in enumerate(panel.symbols):
        value = (supply or {}).get(symbol)
        if value is not None and math.isfinite(value) and value > 0:
            s[i] = float(value)
    return s


def weights(panel: Panel, a: np.ndarray, params: FactorParams, supply: np.ndarray) -> np.ndarray:
    """``w[t, i]`` per ``params.weighting``; NaN means "no weight"."""
    n_t, n_s = panel.close.shape
    w = np.full((n_t, n_s), NAN)
    for t in range(n_t):
        for i in range(n_s):
            if params.weighting == "equal":
                w[t, i] = 1.0
            elif params.weighting == "adv":
                lo = max(0, t - params.liquidity_window)  # bars t-L .. t-1
                bars = panel.present[lo:t, i]
                q = panel.quote[lo:t, i][bars]
                if q.size >= 1 and q.mean() > 0:
                    w[t, i] = q.mean()
            elif params.weighting == "cap":
                close_before = lagged(a, t, i, 1)
                if math.isfinite(close_before) and math.isfinite(supply[i]):
                    w[t, i] = close_before * supply[i]
            else:
                raise ValueError(f"unknown weighting {params.weighting!r}")
    return w


def market_return(r: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``m[t]`` = weighted mean of the valid ``r[i, t]`` of symbols with a weight."""
    m = np.full(r.shape[0], NAN)
    for t in range(r.shape[0]):
        use = np.isfinite(r[t]) & np.isfinite(w[t])
        if use.any():
            m[t] = np.sum(w[t, use] * r[t, use]) / np.sum(w[t, use])
    return m


# --------------------------------------------------------------------------- raw descriptors


@dataclass(frozen=True)
class Derived:
    panel: Panel
    r: np.ndarray  # log returns (T, N)
    a: np.ndarray  # as-of closes (T, N)
    m: np.ndarray  # market return (T,)
    supply: np.ndarray  # (N,) NaN where unknown
    params: FactorParams


Raw = tuple[float, Reason]


def window_start(t: int, window: int) -> int:
    """First index of the window ``t-W+1 .. t``, cut at the start of the grid."""
    return max(0, t - window + 1)


def _raw_market(d: Derived, t: int, i: int) -> Raw:
    p = d.params
    lo = window_start(t, p.beta_window)
    r_win, m_win = d.r[lo : t + 1, i], d.m[lo : t + 1]
    pairs = np.isfinite(r_win) & np.isfinite(m_win)
    x, y = r_win[pairs], m_win[pairs]  # x = r_i, y = m
    n = x.size
    if n < p.beta_min_obs:
        return NAN, Reason.INSUFFICIENT_HISTORY
    if np.all(y == y[0]):
        return NAN, Reason.NO_MARKET_VARIANCE
    cov = np.sum((x - x.mean()) * (y - y.mean())) / (n - 1)
    var = np.sum((y - y.mean()) ** 2) / (n - 1)
    return float(cov / var), Reason.OK


def _raw_size(d: Derived, t: int, i: int) -> Raw:
    p = d.params
    if math.isfinite(d.supply[i]):
        return math.log(d.panel.close[t, i] * d.supply[i]), Reason.OK
    lo = window_start(t, p.size_window)
    q = d.panel.quote[lo : t + 1, i][d.panel.present[lo : t + 1, i]]
    if q.size < p.size_min_obs:
        return NAN, Reason.INSUFFICIENT_HISTORY
    if np.all(q == 0):
        return NAN, Reason.ZERO_VOLUME
    return math.log(q.mean()), Reason.OK


def _raw_value(d: Derived, t: int, i: int) -> Raw:
    p = d.params
    a_short = lagged(d.a, t, i, p.momentum_lag)
    a_long = lagged(d.a, t, i, p.value_lag)
    if not (math.isfinite(a_short) and math.isfinite(a_long)):
        return NAN, Reason.INSUFFICIENT_HISTORY
    return -(math.log(a_short) - math.log(a_long)), Reason.OK


def _raw_momentum(d: Derived, t: int, i: int) -> Raw:
    a_short = lagged(d.a, t, i, d.params.momentum_lag)
    if not math.isfinite(a_short):
        return NAN, Reason.INSUFFICIENT_HISTORY
    return math.log(d.panel.close[t, i]) - math.log(a_short), Reason.OK


def _raw_volatility(d: Derived, t: int, i: int) -> Raw:
    p = d.params
    lo = window_start(t, p.volatility_window)
    r = d.r[lo : t + 1, i]
    r = r[np.isfinite(r)]
    if r.size < p.volatility_min_obs:
        return NAN, Reason.INSUFFICIENT_HISTORY
    return float(np.sqrt(np.sum((r - r.mean()) ** 2) / (r.size - 1))), Reason.OK


def _raw_liquidity(d: Derived, t: int, i: int) -> Raw:
    p = d.params
    lo = window_start(t, p.liquidity_window)
    r, q = d.r[lo : t + 1, i], d.panel.quote[lo : t + 1, i]
    valid = np.isfinite(r)
    if np.count_nonzero(valid) < p.liquidity_min_obs:
        return NAN, Reason.INSUFFICIENT_HISTORY
    use = valid & (q > 0)
    if np.count_nonzero(use) < p.liquidity_min_obs:
        return NAN, Reason.ZERO_VOLUME
    terms = np.abs(r[use]) / q[use]
    if np.all(terms == 0):
        return NAN, Reason.NO_PRICE_CHANGE
    return -math.log(terms.mean()), Reason.OK


RAW_DESCRIPTORS: dict[str, Callable[[Derived, int, int], Raw]] = {
    MARKET: _raw_market,
    SIZE: _raw_size,
    VALUE: _raw_value,
    MOMENTUM: _raw_momentum,
    VOLATILITY: _raw_volatility,
    LIQUIDITY: _raw_liquidity,
}
assert tuple(RAW_DESCRIPTORS) == CANONICAL


# --------------------------------------------------------------------------- standardization


def median(x: np.ndarray) -> float:
    """Median; for an even count the mean of the two middle values."""
    s = np.sort(x)
    n = s.size
    return float(s[n // 2]) if n % 2 == 1 else float((s[n // 2 - 1] + s[n // 2]) / 2)


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties get the average of the ranks they span."""
    return np.array(
        [np.count_nonzero(x < v) + (np.count_nonzero(x == v) + 1) / 2 for v in x], dtype=float
    )


def standardize_cross_section(
    x: np.ndarray, w: np.ndarray, params: FactorParams
) -> tuple[np.ndarray, list[Reason]]:
    """Exposures of one factor at one ``t`` from the finite raw values ``x``.

    ``w`` holds the weights of the same symbols (NaN = no weight).  Returns the
    exposures and a reason per symbol.
    """
    n = x.size
    nan_out = np.full(n, NAN)
    if n < 3:  # step 1
        return nan_out, [Reason.TOO_FEW_SYMBOLS] * n
    if params.scaling == "rank":  # replaces steps 2 to 4
        return 2 * (average_ranks(x) - 0.5) / n - 1, [Reason.OK] * n

    med = median(x)  # step 2: winsorize
    mad = median(np.abs(x - med))
    if mad > 0:
        half_width = params.winsor_k * MAD_TO_SD * mad
        xw = np.clip(x, med - half_width, med + half_width)
    else:
        xw = x.copy()

    has_w = np.isfinite(w)  # step 3: standardize
    if not has_w.any():
        return nan_out, [Reason.NO_WEIGHTS] * n
    mu = np.sum(w[has_w] * xw[has_w]) / np.sum(w[has_w])
    if np.all(xw == xw[0]):
        return nan_out, [Reason.NO_DISPERSION] * n
    sd = np.sqrt(np.mean((xw - xw.mean()) ** 2))  # equal weights, ddof = 0
    z = (xw - mu) / sd
    return np.clip(z, -params.clip, params.clip), [Reason.OK] * n  # step 4


# --------------------------------------------------------------------------- the model


def oracle_exposures(
    candles: pd.DataFrame,
    params: FactorParams,
    timeframe_ms: int,
    supply: dict[str, float] | None = None,
) -> pd.DataFrame:
    """Raw descriptors and exposures of every canonical factor, per grid time and symbol.

    One row per grid time ``t``, per symbol with a real bar at ``t``, per factor
    (canonical order), with columns ``timestamp, symbol, factor, raw, exposure,
    reason``.
    """
    panel = build_panel(candles, timeframe_ms)
    n_t, n_s = panel.close.shape
    s = known_supply(panel, supply)
    a = as_of_close(panel)
    r = log_returns(panel)
    w = weights(panel, a, params, s)
    d = Derived(panel, r, a, market_return(r, w), s, params)

    k = len(CANONICAL)
    raw = np.full((k, n_t, n_s), NAN)
    exposure = np.full((k, n_t, n_s), NAN)
    reason = np.full((k, n_t, n_s), int(Reason.MISSING_BAR))
    for f, name in enumerate(CANONICAL):
        descriptor = RAW_DESCRIPTORS[name]
        for t in range(n_t):
            for i in np.flatnonzero(panel.present[t]):
                raw[f, t, i], reason[f, t, i] = descriptor(d, t, int(i))
            members = np.flatnonzero(panel.present[t] & np.isfinite(raw[f, t]))
            z, why = standardize_cross_section(raw[f, t, members], w[t, members], params)
            exposure[f, t, members] = z
            reason[f, t, members] = why

    tt, ii = np.nonzero(panel.present)  # row-major: by time, then by (sorted) symbol
    labels = np.array([Reason(c).label for c in range(max(Reason) + 1)], dtype=object)
    return pd.DataFrame(
        {
            "timestamp": np.repeat(panel.times[tt], k),
            "symbol": np.repeat(np.array(panel.symbols, dtype=object)[ii], k),
            "factor": np.tile(np.array(CANONICAL, dtype=object), tt.size),
            "raw": raw[:, tt, ii].T.ravel(),
            "exposure": exposure[:, tt, ii].T.ravel(),
            "reason": labels[reason[:, tt, ii].T.ravel()],
        },
        columns=list(OUTPUT_COLUMNS),
    )


# --------------------------------------------------------------------------- data


def load_bittrex(n_bars: int | None = None) -> pd.DataFrame:
    """The shared Bittrex 5m candles in long format (``ETH_BTC-5m.feather`` -> ``ETH/BTC``).

    ``n_bars`` keeps the first ``n_bars`` grid steps from the earliest timestamp
    of all files (the same time span for every symbol), not the first rows of each
    file, which would reach further in time for a symbol with gaps.
    """
    frames = []
    for path in sorted(BITTREX_DIR.glob("*.feather")):
        symbol = path.name.rsplit("-", 1)[0].replace("_", "/")
        raw = pd.read_feather(path)
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": raw["date"].dt.as_unit("ms").astype("int64").to_numpy(),
                    "symbol": symbol,
                    "open": raw["open"].to_numpy(dtype=float),
                    "high": raw["high"].to_numpy(dtype=float),
                    "low": raw["low"].to_numpy(dtype=float),
                    "close": raw["close"].to_numpy(dtype=float),
                    "volume": raw["volume"].to_numpy(dtype=float),
                }
            )
        )
    if not frames:
        raise FileNotFoundError(f"no *.feather candles in {BITTREX_DIR}")
    candles = pd.concat(frames, ignore_index=True)
    if n_bars is not None:
        end = candles["timestamp"].min() + n_bars * BITTREX_TIMEFRAME_MS
        candles = candles[candles["timestamp"] < end]
    return candles.sort_values(["timestamp", "symbol"], ignore_index=True)

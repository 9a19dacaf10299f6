"""A seeded synthetic crypto market with planted six-factor structure.

The default data source of ``factorcast run`` and the price engine of the
embedded exchange simulator.  Pure numpy: no I/O, no clock (bar times follow
from ``start_ms`` and the bar counter), deterministic for a given seed and
universe size.  Bars come one cross-section at a time (:meth:`next_bars`,
unbounded) or as a vectorized block (:meth:`history_arrays`) that continues the
very same stream, bit for bit.

Model.  ``k`` is the bar, ``i`` the symbol.  Scales are quoted for 1-minute bars;
volatilities scale with ``sqrt(timeframe / 1m)``, quote volumes with
``timeframe / 1m``.

- Shocks ``t`` are Student-t with 4 degrees of freedom scaled to unit variance,
  drawn exactly as ``z / sqrt(e1 + e2)`` (``z`` normal, ``e1, e2`` standard
  exponential, so ``2 (e1 + e2)`` is chi-square(4)): heavy tails.
- Market log return ``m_k = sqrt(h_k) t_k``, GARCH(1,1)
  ``h_k = (1 - a - b) q_k + a m_{k-1}^2 + b h_{k-1}`` (``a = 0.04, b = 0.95``)
  around a slow level ``q_k = s_m^2 exp(l_k - sd_l^2 / 2)``, ``l_k`` an AR(1) with
  a half-life of 4,320 bars (quiet and busy regimes).  The unconditional std
  ``s_m`` is 0.1 % per bar (:attr:`Planted.market_vol`).
- Idiosyncratic log level ``x``: mean-reverting with half-life
  :data:`REVERSION_HALF_LIFE` (long-horizon reversal: the ``value`` factor) and
  pushed by a persistent drift ``d``, an AR(1) with half-life
  :data:`DRIFT_HALF_LIFE` and stationary std :data:`DRIFT_SHARE` times the
  idio vol (trends: the ``momentum`` factor):
  ``d_k = phi_d d_{k-1} + w_k``, ``x_k = (1 - kappa) x_{k-1} + d_{k-1} + sigma_i t_ik``.
- Log close ``ln C_ik = ln C_i0 + beta_i M_k + x_ik`` with ``M_k = sum m``, so the
  close-to-close return is ``beta_i m_k + d_i,k-1 - kappa x_i,k-1 + sigma_i t_ik``.
- Open = previous (latent) close times ``exp(g)``, ``g`` a tiny uniform gap.
  ``high = max(open, close) (1 + u)``, ``low = min(open, close) / (1 + v)``,
  ``u, v`` exponential wicks of mean :data:`WICK_SHARE` times the symbol's total
  vol times the market's current vol ratio ``sqrt(h_k) / s_m``.  So prices are
  positive and ``low <= min(open, close) <= max(open, close) <= high`` exactly.
- Quote volume ``ln Q_ik = L_i + a_ik + ln(1 + |r_ik| / s_i) - c + 0.6 z_ik``:
  ``L_i`` the planted level (:attr:`Planted.log_quote_volume`; ``E ln Q = L_i``),
  ``a`` a slow per-symbol activity AR(1), ``|r| / s_i`` the absolute return in
  units of the symbol's total vol (the volume-volatility link), ``c`` its mean.
  Base volume is ``Q / close``.
- Cross-section: betas uniform in [0.3, 2.0]; ``L`` uniform over about $5k to
  $5M per minute; idio vol about 0.15 % per bar at the median ``L``, higher for
  smaller coins; market cap ``C * S`` is about 30 days of quote volume
  (lognormal noise).  So size, liquidity and volatility are related, as in
  real crypto markets.  Only momentum and value carry expected returns; size,
  volatility and liquidity are planted as characteristics, not premia.
- With probability ``missing_prob`` a symbol has no bar at a time (all fields
  NaN); the price path continues underneath.

Measured over 40,000 bars of 100 symbols with the FACTORS.md lags (momentum
63, value 63/252): mean rank IC with the next bar's return is about 0.02
(momentum) and 0.01 (value), with the next 21 bars about 0.07 and 0.04.

Streams.  Normal, exponential and uniform draws come from three generators
(SFC64) spawned from the seed, each consumed in (bar, slot) order, and every
recursion runs bar by bar through the same code in both paths; so a block of
``n`` bars equals ``n`` single bars exactly, wherever blocks are cut.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_START_MS", "Planted", "SimBars", "SimulatedMarket"]

F64 = NDArray[np.float64]

#: 2024-01-01T00:00:00Z, a Monday: on every minute, hour, day and (ccxt) week grid.
DEFAULT_START_MS = 1_704_067_200_000
_DAY_MS = 86_400_000
_MINUTE_MS = 60_000

MARKET_VOL = 0.001  # unconditional market std per 1m bar
GARCH_A, GARCH_B = 0.04, 0.95
REGIME_HALF_LIFE = 4_320  # bars
REGIME_SD = 0.35  # stationary std of the log variance level
DRIFT_HALF_LIFE = 60  # bars
DRIFT_SHARE = 0.1  # stationary std of the drift, in idio vols
REVERSION_HALF_LIFE = 200  # bars
ACTIVITY_HALF_LIFE = 240  # bars
ACTIVITY_SD = 0.3
VOLUME_NOISE = 0.6
#: E[ln(1 + |r| / s)] under the model (calibrated by simulation); centres the
#: volume-volatility term so that E ln Q is the planted level.
VOLUME_LINK_MEAN = 0.473
GAP_SHARE = 0.05  # largest open gap, in idio vols
WICK_SHARE = 0.5  # mean wick, in total vols

_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")
_CONSONANTS = "BCDFGHJKLMNPRSTVWXZ"
_VOWELS = "AEIOU"
_MAX_SYMBOLS = 5_000
_BLOCK_VALUES = 16_384  # values per symbol-row block in history_arrays


def _phi(half_life: float) -> float:
    return math.pow(0.5, 1.0 / half_life)


@dataclass(frozen=True, slots=True)
class Planted:
    """The known truth, per symbol (arrays aligned with ``symbols``), per bar."""

    #: True market betas (loadings on the market shock ``m``).
    beta: F64
    #: Mean of ``ln(quote volume)`` per bar: the size / liquidity profile.
    log_quote_volume: F64
    #: Std of the idiosyncratic shock per bar.
    idio_vol: F64
    #: Circulating supply, so that size via ``ln(C * S)`` can be tested too.
    supply: F64
    #: Unconditional std of the market log return per bar.
    market_vol: float

    @property
    def total_vol(self) -> F64:
        """Unconditional std of the shock part of the log return per bar."""
        out: F64 = np.sqrt((self.beta * self.market_vol) ** 2 + self.idio_vol**2)
        return out


@dataclass(frozen=True, slots=True)
class SimBars:
    """One cross-section: read-only arrays aligned with ``symbols``, NaN where a
    symbol has no bar at ``ts``."""

    ts: int  # bar open time, ms UTC
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64
    quote_volume: F64


def _symbol_bases(rng: np.random.Generator, n: int, quote: str) -> list[str]:
    """``n`` unique pronounceable bases (CVC or CVCV), sorted."""
    names: set[str] = set()
    while len(names) < n:
        letters = [
            _VOWELS[int(rng.integers(5))] if j % 2 else _CONSONANTS[int(rng.integers(19))]
            for j in range(int(rng.integers(3, 5)))
        ]
        if (name := "".join(letters)) != quote:
            names.add(name)
    return sorted(names)


class _Work:
    """Work buffers for blocks of up to ``rows`` bars, reused block after block,
    and named views of their first ``T`` rows (rebuilt only when ``T`` changes)."""

    def __init__(self, rows: int, n: int) -> None:
        self.n, self.T = n, -1
        self._zn = np.empty((rows, 2 * n + 2))  # t numerators (n + market) | volume | regime
        self._ex = np.empty((rows, 4 * n + 2))  # t denominators (2 x (n + 1)) | wick up | down
        self._un = np.empty((rows, 4 * n))  # drift | activity | gap | missing
        self._y = np.empty((rows, 3, n))  # [d, a, x] after each bar
        self._shock = np.empty((rows, n + 1))
        self._missing = np.empty((rows, n), dtype=np.bool_)
        self._2d = np.empty((5, rows, n))  # lc, lp, l_open, cv, tmp
        self.t3: F64 = np.empty((3, n))
        self.view(rows)

    def view(self, T: int) -> _Work:
        if T != self.T:
            n, self.T = self.n, T
            self.zn, self.ex, self.un = self._zn[:T], self._ex[:T], self._un[:T]
            self.z_t, self.z_vol = self.zn[:, : n + 1], self.zn[:, n + 1 : 2 * n + 1]
            self.z_reg = self.zn[:, 2 * n + 1]
            self.e_a, self.e_b = self.ex[:, : n + 1], self.ex[:, n + 1 : 2 * n + 2]
            self.e_up, self.e_dn = self.ex[:, 2 * n + 2 : 3 * n + 2], self.ex[:, 3 * n + 2 :]
            u = self.un.reshape(T, 4, n)  # a view: un is C-contiguous
            self.u_w, self.u_gap, self.u_miss = u[:, :2], u[:, 2], u[:, 3]
            self.y = self._y[:T]
            self.y_w, self.y_d, self.y_a, self.y_x = self.y[:, :2], *self.y.transpose(1, 0, 2)
            self.shock = self._shock[:T]
            self.shock_i, self.shock_m = self.shock[:, :n], self.shock[:, n]
            self.missing = self._missing[:T]
            self.lc, self.lp, self.l_open, self.cv, self.tmp = self._2d[:, :T]
            self.lc_head, self.lp_tail = self.lc[:-1], self.lp[1:]
        return self


class SimulatedMarket:
    """A seeded synthetic market; see the module docstring for the model."""

    def __init__(
        self,
        n_symbols: int = 50,
        *,
        seed: int = 7,
        timeframe_ms: int = _MINUTE_MS,
        start_ms: int = DEFAULT_START_MS,
        missing_prob: float = 0.002,
        quote: str = "USDT",
    ) -> None:
        if not 1 <= n_symbols <= _MAX_SYMBOLS:
            raise ValueError(f"n_symbols must be between 1 and {_MAX_SYMBOLS}")
        if timeframe_ms <= 0:
            raise ValueError("timeframe_ms must be positive")
        grid = timeframe_ms if _DAY_MS % timeframe_ms == 0 else _DAY_MS
        if start_ms < 0 or start_ms % grid:
            raise ValueError("start_ms must be a non-negative time on the timeframe grid")
        if not 0.0 <= missing_prob < 1.0:
            raise ValueError("missing_prob must be in [0, 1)")
        if not quote.isalnum():
            raise ValueError("quote must be alphanumeric")
        n = self._n = n_symbols
        self.timeframe_ms, self.start_ms, self.missing_prob = timeframe_ms, start_ms, missing_prob
        self._k = 0  # index of the next bar

        seeds = np.random.SeedSequence(seed).spawn(4)
        rng = np.random.Generator(np.random.SFC64(seeds[0]))  # structure and initial state
        self._g_norm, self._g_exp, self._g_unif = (
            np.random.Generator(np.random.SFC64(s)) for s in seeds[1:]
        )
        self.symbols: list[str] = [f"{b}/{quote}" for b in _symbol_bases(rng, n, quote)]

        scale = timeframe_ms / _MINUTE_MS
        beta = rng.uniform(0.3, 2.0, n)
        lqv_1m = rng.uniform(8.5, 15.4, n)
        idio_1m = np.clip(
            0.0015 * np.exp(-0.15 * (lqv_1m - 12.0) + 0.3 * rng.standard_normal(n)), 0.0005, 0.008
        )
        log_cap = lqv_1m + math.log(1440 * 30) + 0.5 * rng.standard_normal(n)
        log_p0 = rng.uniform(-3.5, 4.8, n) * math.log(10.0)
        pl = self.planted = Planted(
            beta=beta,
            log_quote_volume=lqv_1m + math.log(scale),
            idio_vol=idio_1m * math.sqrt(scale),
            supply=np.exp(log_cap - log_p0),
            market_vol=MARKET_VOL * math.sqrt(scale),
        )
        total = pl.total_vol
        self._log_p0 = log_p0
        self._inv_total = 1.0 / total
        self._wick = (WICK_SHARE / pl.market_vol) * total  # times sqrt(h_k)
        self._lqv_c = pl.log_quote_volume - VOLUME_LINK_MEAN
        self._gap = (2.0 * GAP_SHARE) * pl.idio_vol  # g = gap * (u - 1/2)
        # Symbol states [d, a, x]: y_k = phi * y_{k-1} + [w_d, w_a, e]_k, then x_k += d_{k-1};
        # uniform innovations w = span * (u - 1/2) give the stationary stds sd.
        self._phi = np.array([[_phi(DRIFT_HALF_LIFE)], [_phi(ACTIVITY_HALF_LIFE)]])
        sd = np.vstack([DRIFT_SHARE * pl.idio_vol, np.full(n, ACTIVITY_SD)])
        self._span = sd * np.sqrt(12.0 * (1.0 - self._phi**2))
        self._phi3 = np.vstack([self._phi, [[_phi(REVERSION_HALF_LIFE)]]])
        sd_x = pl.idio_vol / math.sqrt(1.0 - _phi(REVERSION_HALF_LIFE) ** 2)
        self._state: F64 = np.vstack([sd, sd_x[None]]) * rng.standard_normal((3, n))
        self._prev_lc: F64 = log_p0 + self._state[2]  # latent log close before bar 0
        # Market state: regime level, variance, last return, cumulative log level.
        self._l = REGIME_SD * float(rng.standard_normal())
        self._h = pl.market_vol**2 * math.exp(self._l - 0.5 * REGIME_SD**2)
        self._m_prev = self._cum_m = 0.0
        phi_l = _phi(REGIME_HALF_LIFE)
        self._garch = (
            *(phi_l, REGIME_SD * math.sqrt(1.0 - phi_l**2)),
            *((1.0 - GARCH_A - GARCH_B) * pl.market_vol**2, GARCH_A, GARCH_B),
            0.5 * REGIME_SD**2,
        )
        self._one = _Work(1, n)

    @property
    def n_symbols(self) -> int:
        return self._n

    def next_bars(self) -> SimBars:
        """The next cross-section on the timeframe grid."""
        rows = np.empty((len(_FIELDS), 1, self._n))
        ts = self._block(tuple(rows), self._one)
        rows.flags.writeable = False
        return SimBars(int(ts[0]), *rows[:, 0])

    def history(self, n_bars: int) -> list[SimBars]:
        """The next ``n_bars`` cross-sections (the stream of ``next_bars``)."""
        ts, block = self._history(n_bars)
        for arr in block.values():
            arr.flags.writeable = False
        cols = [block[name] for name in _FIELDS]
        return [SimBars(t, *(c[k] for c in cols)) for k, t in enumerate(ts.tolist())]

    def history_arrays(self, n_bars: int) -> dict[str, NDArray[np.float64] | NDArray[np.int64]]:
        """The next ``n_bars`` bars: ``ts`` (T,) int64 and the six fields (T, N).

        Advances the state exactly as ``n_bars`` calls of ``next_bars`` would and
        returns the same numbers.
        """
        ts, block = self._history(n_bars)
        result: dict[str, NDArray[np.float64] | NDArray[np.int64]] = {"ts": ts}
        result.update(block)
        return result

    # -- generation -------------------------------------------------------------------

    def _history(self, n_bars: int) -> tuple[NDArray[np.int64], dict[str, F64]]:
        if n_bars < 0:
            raise ValueError("n_bars must be >= 0")
        block = {name: np.empty((n_bars, self._n)) for name in _FIELDS}
        ts = np.empty(n_bars, dtype=np.int64)
        # Blocks of ~16k values keep the work buffers small and in cache.
        rows = max(1, min(n_bars, _BLOCK_VALUES // self._n))
        work = _Work(rows, self._n)
        for t0 in range(0, n_bars, rows):
            t1 = min(n_bars, t0 + rows)
            ts[t0:t1] = self._block(tuple(block[name][t0:t1] for name in _FIELDS), work)
        return ts, block

    def _market(self, t: list[float], z: list[float]) -> tuple[F64, F64]:
        """Scalar GARCH recursion; returns ``sqrt(h_k)`` and ``M_k`` per bar."""
        phi, span, wq, a, b, c = self._garch
        level, h, m, cum = self._l, self._h, self._m_prev, self._cum_m
        vols: list[float] = []
        cums: list[float] = []
        for tk, zk in zip(t, z, strict=True):
            level = phi * level + span * zk
            h = wq * math.exp(level - c) + a * m * m + b * h
            vol = math.sqrt(h)
            m = vol * tk
            cum += m
            vols.append(vol)
            cums.append(cum)
        self._l, self._h, self._m_prev, self._cum_m = level, h, m, cum
        return np.array(vols), np.array(cums)

    def _block(self, out: tuple[F64, ...], w: _Work) -> NDArray[np.int64]:
        """Generate the next ``T`` bars into the six (T, N) arrays ``out``."""
        o, hh, ll, c, v, q = out
        w = w.view(c.shape[0])
        T, tmp = w.T, w.tmp
        self._g_norm.standard_normal(out=w.zn)
        self._g_exp.standard_exponential(out=w.ex)
        self._g_unif.random(out=w.un)
        # Unit-variance t(4): columns 0..n-1 idio, column n the market.
        np.add(w.e_a, w.e_b, out=w.shock)
        np.sqrt(w.shock, out=w.shock)
        np.divide(w.z_t, w.shock, out=w.shock)
        vol, cum = self._market(w.shock_m.tolist(), w.z_reg.tolist())

        # Symbol states bar by bar: y_k = phi * y_{k-1} + [w_d, w_a, e]_k; x_k += d_{k-1}.
        np.subtract(w.u_w, 0.5, out=w.y_w)  # innovations first, states in place
        np.multiply(w.y_w, self._span, out=w.y_w)
        np.multiply(w.shock_i, self.planted.idio_vol, out=w.y_x)
        prev, prev_d, t3, phi3 = self._state, self._state[0], w.t3, self._phi3
        for yk, xk, dk in zip(w.y, w.y_x, w.y_d, strict=True):
            np.multiply(prev, phi3, out=t3)
            np.add(yk, t3, out=yk)
            np.add(xk, prev_d, out=xk)
            prev, prev_d = yk, dk
        self._state = prev.copy()

        lc, lp, l_open = w.lc, w.lp, w.l_open  # log close, previous log close, log open
        np.multiply(self.planted.beta, cum[:, None], out=lc)
        lc += self._log_p0
        lc += w.y_x
        lp[0] = self._prev_lc
        w.lp_tail[...] = w.lc_head
        self._prev_lc = lc[-1].copy()
        np.subtract(w.u_gap, 0.5, out=l_open)
        l_open *= self._gap
        l_open += lp
        np.exp(l_open, out=o)
        np.exp(lc, out=c)
        # Wicks as factors (1 + w) >= 1: high >= max(o, c), low <= min(o, c) exactly.
        np.multiply(self._wick, vol[:, None], out=w.cv)
        np.multiply(w.cv, w.e_up, out=tmp)
        tmp += 1.0
        np.maximum(o, c, out=hh)
        hh *= tmp
        np.multiply(w.cv, w.e_dn, out=tmp)
        tmp += 1.0
        np.minimum(o, c, out=ll)
        ll /= tmp

        # Q = exp(L - c + a + noise) * (1 + |r| / s); base volume = Q / close.
        np.multiply(w.z_vol, VOLUME_NOISE, out=tmp)
        tmp += w.y_a
        tmp += self._lqv_c
        np.exp(tmp, out=q)
        np.subtract(lc, lp, out=tmp)
        np.abs(tmp, out=tmp)
        tmp *= self._inv_total
        tmp += 1.0
        q *= tmp
        np.divide(q, c, out=v)

        if self.missing_prob > 0.0:
            missing = np.less(w.u_miss, self.missing_prob, out=w.missing)
            if missing.any():
                for arr in out:
                    np.putmask(arr, missing, np.nan)
        k = self._k
        self._k += T
        return self.start_ms + self.timeframe_ms * np.arange(k, k + T, dtype=np.int64)

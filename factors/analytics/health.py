"""Factor health and decay (ANALYTICS.md section 2): rank ICs, their rolling
statistics, the factor-return track, the health state machine and its alerts,
and the offline decay helpers.

Pure: arrays in, arrays out, one bar at a time; the caller feeds one update per
grid step (bars without data included, with NaN closes), exactly as it feeds the
factor model.  Directions ``d_k`` (SIGNALS.md section 2) come in as an array in
factor order; factor names come from the caller (the registry's order).

Choices the contract leaves open, documented here:

- An IC whose sample has ``n_ic >= min_obs`` finite values but zero standard
  deviation gives ``icir`` and ``t_stat`` NaN with reason ``no_dispersion``
  (``mean_ic``, ``std_ic`` = 0 and ``hit_rate`` stay reported).
- ``t_stat`` NaN puts the state to ``unknown`` before ``d_k = 0`` is looked at;
  a factor with ``d_k = 0`` and a finite ``t_stat`` is ``unrated``.  From
  ``unknown`` or ``unrated`` the next state follows the ``unknown`` rule.
- Statistics need at least ``max(min_obs, 2)`` finite ICs (``std_ic`` has
  ddof=1).
- The factor-return track keeps the last ``window`` factor returns in a ring and
  recomputes the cumulative return and drawdown from it at each bar: O(W x K),
  about 30 microseconds at the defaults (W=200, K=6); the drawdown needs the path, so there
  is no O(K) running form of it over a sliding window.
- The quintile spread (decay.py) is taken at horizon 1: the mean over bars of
  ``mean(R[top quintile, t+1]) - mean(R[bottom quintile, t+1])``, the
  quintiles drawn over the symbols with a finite exposure and a finite return
  (as for the IC), and at least 10 of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.reasons import Reason

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

#: Horizons of the offline decay curve.
DECAY_HORIZONS: Final[tuple[int, ...]] = (1, 2, 4, 8, 16, 32, 64)
#: Fewest symbols for a rank IC.
MIN_IC_SYMBOLS: Final = 3
#: Fewest symbols for a quintile spread.
MIN_QUINTILE_SYMBOLS: Final = 10


# --------------------------------------------------------------------------- rank IC


def average_ranks(values: FloatArray, mask: NDArray[np.bool_]) -> FloatArray:
    """Average ranks (1-based, ties share the mean of their ranks) of each column
    of ``values`` over the rows where ``mask`` holds; NaN elsewhere.

    The same ranks as ``scipy.stats.rankdata(method="average")`` column by
    column, computed for all columns at once.  The columns are sorted as the rows
    of a transposed copy (a contiguous row sorts several times faster than a
    strided column), and with numpy's default (unstable) sort: the order within a
    run of ties does not change its average rank, so the ranks are those of a
    stable sort, exactly.
    """
    keyed = np.where(mask, values, np.inf).T.copy()  # masked rows sort last, after every value
    return np.where(mask, _row_ranks(keyed).T, np.nan)


def _row_ranks(keyed: FloatArray) -> FloatArray:
    """Average ranks (1-based) along each row of ``keyed`` ``(K, n)``."""
    n = keyed.shape[1]
    order = np.argsort(keyed, axis=1)
    s = np.take_along_axis(keyed, order, axis=1)
    idx = np.broadcast_to(np.arange(n, dtype=np.float64), s.shape)
    tie = s[:, 1:] == s[:, :-1]
    if not (tie & (s[:, 1:] < np.inf)).any():
        # no ties among the values (the masked infs tie, and their ranks go unread):
        # every run is one long, start = end = the position, the rank position + 1
        ranks_sorted = idx + 1.0
    else:
        new_run = np.ones(s.shape, dtype=bool)
        new_run[:, 1:] = ~tie
        start = np.maximum.accumulate(np.where(new_run, idx, 0.0), axis=1)
        end_run = np.ones(s.shape, dtype=bool)
        end_run[:, :-1] = new_run[:, 1:]
        end = np.minimum.accumulate(np.where(end_run, idx, np.inf)[:, ::-1], axis=1)[:, ::-1]
        ranks_sorted = (start + end) / 2.0 + 1.0
    ranks = np.empty_like(ranks_sorted)
    np.put_along_axis(ranks, order, ranks_sorted, axis=1)
    return ranks


def spearman_columns(x: FloatArray, y: FloatArray) -> tuple[FloatArray, NDArray[np.int8], IntArray]:
    """Spearman correlation of ``x[:, k]`` with ``y[:, k]`` for every column ``k``,
    over the rows where both are finite (a mask per column).

    Returns ``(rho, reason, n)``: NaN with ``too_few_symbols`` below 3 rows,
    NaN with ``no_dispersion`` when either ranking is constant.
    """
    mask = np.isfinite(x) & np.isfinite(y)
    return _spearman(mask, average_ranks(x, mask), average_ranks(y, mask))


def _spearman(
    mask: NDArray[np.bool_], rx: FloatArray, ry: FloatArray
) -> tuple[FloatArray, NDArray[np.int8], IntArray]:
    n = mask.sum(axis=0)
    mean = (n + 1) / 2.0  # the mean of average ranks 1..n, exactly
    cx = np.where(mask, rx - mean, 0.0)
    cy = np.where(mask, ry - mean, 0.0)
    sxx = (cx * cx).sum(axis=0)
    syy = (cy * cy).sum(axis=0)
    sxy = (cx * cy).sum(axis=0)
    few = n < MIN_IC_SYMBOLS
    flat = ~few & ((sxx == 0) | (syy == 0))
    ok = ~few & ~flat
    rho = np.full(mask.shape[1], np.nan)
    rho[ok] = sxy[ok] / np.sqrt(sxx[ok] * syy[ok])
    reason = np.zeros(mask.shape[1], dtype=np.int8)
    reason[few] = Reason.TOO_FEW_SYMBOLS
    reason[flat] = Reason.NO_DISPERSION
    return rho, reason, n.astype(np.int64)


def rank_ic(
    exposures: FloatArray, forward_returns: FloatArray
) -> tuple[FloatArray, NDArray[np.int8], IntArray]:
    """Rank IC of each factor of one cross-section: ``exposures`` is ``(n, K)``,
    ``forward_returns`` ``(n,)``; see :func:`spearman_columns` (the same numbers).

    The returns are ranked once per distinct mask of the factors (usually one: the
    symbols with every exposure), not once per factor."""
    mask = np.isfinite(exposures) & np.isfinite(forward_returns)[:, None]
    ry = np.empty(mask.shape)
    done: dict[bytes, FloatArray] = {}
    for k in range(mask.shape[1]):
        key = mask[:, k].tobytes()
        if key not in done:
            keyed = np.where(mask[:, k], forward_returns, np.inf)[None, :]
            done[key] = np.where(mask[:, k], _row_ranks(keyed)[0], np.nan)
        ry[:, k] = done[key]
    return _spearman(mask, average_ranks(exposures, mask), ry)


def forward_return(close_now: FloatArray, close_then: FloatArray) -> FloatArray:
    """``C[t+h] / C[t] - 1``, NaN where either close is missing."""
    with np.errstate(all="ignore"):
        out: FloatArray = close_now / close_then - 1.0
    out[~np.isfinite(out)] = np.nan
    return out


# --------------------------------------------------------------------------- state machine


class HealthState(StrEnum):
    UNKNOWN = "unknown"
    UNRATED = "unrated"
    WORKING = "working"
    FLAT = "flat"
    INVERTED = "inverted"


class AlertKind(StrEnum):
    FACTOR_DECAY = "factor_decay"
    FACTOR_INVERTED = "factor_inverted"
    FACTOR_RECOVERED = "factor_recovered"


def next_state(
    state: HealthState,
    t_stat: float,
    direction: float,
    t_enter: float = 2.0,
    t_exit: float = 1.0,
) -> HealthState:
    """One step of the hysteresis of ANALYTICS.md section 2, with ``s = d * t_stat``."""
    if math.isnan(t_stat):
        return HealthState.UNKNOWN
    if direction == 0:
        return HealthState.UNRATED
    s = direction * t_stat
    if state is HealthState.WORKING and s >= t_exit:
        return HealthState.WORKING
    if state is HealthState.INVERTED and s <= -t_exit:
        return HealthState.INVERTED
    if s >= t_enter:
        return HealthState.WORKING
    if s <= -t_enter:
        return HealthState.INVERTED
    return HealthState.FLAT


def transition_alert(before: HealthState, after: HealthState) -> AlertKind | None:
    """The alert a state change raises, if any (one per transition)."""
    if before is after:
        return None
    if after is HealthState.INVERTED:
        return AlertKind.FACTOR_INVERTED
    if before is HealthState.WORKING and after is HealthState.FLAT:
        return AlertKind.FACTOR_DECAY
    if after is HealthState.WORKING and before in (HealthState.FLAT, HealthState.INVERTED):
        return AlertKind.FACTOR_RECOVERED
    return None


@dataclass(frozen=True, slots=True)
class FactorAlert:
    """The numeric content of one ``factorcast.alert/1`` event (no wire fields)."""

    kind: AlertKind
    factor: str
    bar_ts: int
    from_state: HealthState
    to_state: HealthState
    mean_ic: float
    icir: float
    t_stat: float
    n: int
    window: int
    horizon: int

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.factor}:{self.bar_ts}"


# --------------------------------------------------------------------------- rolling statistics


@dataclass(frozen=True, slots=True)
class IcStats:
    """Rolling IC statistics of every factor at one horizon, at one bar."""

    horizon: int
    #: the IC that became known at this bar (``IC[k, T-h, h]``) and its reason
    ic: FloatArray
    ic_reason: NDArray[np.int8]
    n: IntArray
    mean_ic: FloatArray
    std_ic: FloatArray
    icir: FloatArray
    t_stat: FloatArray
    hit_rate: FloatArray
    #: ``insufficient_history`` / ``no_dispersion`` where the figures are NaN
    reason: NDArray[np.int8]


#: a variance below this share of the mean square of the ICs counts as zero
_REL_ZERO_VAR = 1e-12


def ic_statistics(
    s1: FloatArray, s2: FloatArray, hits: FloatArray, n: IntArray, min_obs: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, NDArray[np.int8]]:
    """``mean_ic, std_ic, icir, t_stat, hit_rate, reason`` from the sums of the
    finite ICs, their squares and their hits over a window of ``n`` of them."""
    enough = n >= max(min_obs, 2)
    nf = np.where(enough, n, 2).astype(np.float64)
    mean = np.where(enough, s1 / nf, np.nan)
    var = np.maximum((s2 - s1 * s1 / nf) / (nf - 1.0), 0.0)
    # the sums leave a few ulps of s2 where every IC is the same: that is no spread
    var[var <= _REL_ZERO_VAR * s2 / nf] = 0.0
    std = np.where(enough, np.sqrt(var), np.nan)
    dispersed = enough & (std > 0)
    safe = np.where(dispersed, std, 1.0)
    icir = np.where(dispersed, mean / safe, np.nan)
    t_stat = icir * np.sqrt(nf)
    hit = np.where(enough, hits / nf, np.nan)
    reason = np.zeros(n.shape, dtype=np.int8)
    reason[~enough] = Reason.INSUFFICIENT_HISTORY
    reason[enough & ~dispersed] = Reason.NO_DISPERSION
    return mean, std, icir, t_stat, hit, reason


class _IcWindow:
    """Sums of ``[finite, ic, ic^2, hit]`` per factor over the last ``window``
    pushes, O(K) per push; recomputed exactly from the ring every ``window``
    pushes to bound add/subtract drift (as factors/rolling.py does)."""

    __slots__ = ("_pos", "_pushes", "_ring", "sums", "window")

    def __init__(self, k: int, window: int) -> None:
        self.window = window
        self._ring: FloatArray = np.zeros((window, 4, k))
        self.sums: FloatArray = np.zeros((4, k))
        self._pos = 0
        self._pushes = 0

    def push(self, ic: FloatArray, directions: FloatArray) -> None:
        ok = np.isfinite(ic)
        v = np.where(ok, ic, 0.0)
        new = np.stack([ok.astype(np.float64), v, v * v, (ok & (np.sign(v) == directions)) * 1.0])
        slot = self._ring[self._pos]
        self.sums += new - slot
        slot[...] = new
        self._pos = (self._pos + 1) % self.window
        self._pushes += 1
        if self._pushes % self.window == 0:
            self.sums = self._ring.sum(axis=0)

    def checkpoint(self) -> tuple[FloatArray, FloatArray, int, int]:
        """The state before the next push: O(K)."""
        return self.sums.copy(), self._ring[self._pos].copy(), self._pos, self._pushes

    def restore(self, token: tuple[FloatArray, FloatArray, int, int]) -> None:
        sums, slot, self._pos, self._pushes = token
        self.sums = sums.copy()
        self._ring[self._pos] = slot


def drawdown_track(returns: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Cumulative return ``prod(1 + f) - 1`` and maximum drawdown (section 10:
    ``min(E_t / max_{s<=t} E_s - 1)`` with ``E_0 = 1`` in the running maximum)
    of each column of ``returns`` ``(T, K)``, NaN rows of a column skipped; NaN
    where a column has no finite return."""
    ok = np.isfinite(returns)
    growth = np.cumprod(np.where(ok, 1.0 + returns, 1.0), axis=0)
    peak = np.maximum(np.maximum.accumulate(growth, axis=0), 1.0)
    any_ok = ok.any(axis=0)
    if returns.shape[0] == 0:
        nan = np.full(returns.shape[1], np.nan)
        return nan, nan.copy()
    cum = np.where(any_ok, growth[-1] - 1.0, np.nan)
    mdd = np.where(any_ok, (growth / peak - 1.0).min(axis=0), np.nan)
    return cum, mdd


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """Factor health after one bar close."""

    bar_ts: int
    #: per configured horizon
    stats: dict[int, IcStats]
    #: factor-return track over the last ``window`` bars
    cum_return: FloatArray
    max_drawdown: FloatArray
    #: horizon-1 states, in factor order, and the alerts this bar raised
    states: tuple[HealthState, ...]
    alerts: tuple[FactorAlert, ...]


@dataclass(frozen=True, slots=True)
class _HealthToken:
    steps: int
    x: FloatArray | None
    c: FloatArray | None
    ic: dict[int, tuple[FloatArray, FloatArray, int, int]]
    f_row: FloatArray
    states: tuple[HealthState, ...]


class HealthTracker:
    """Incremental factor health: feed one :meth:`update` per grid step."""

    def __init__(
        self,
        names: tuple[str, ...],
        directions: FloatArray,
        horizons: tuple[int, ...] = (1,),
        window: int = 200,
        min_obs: int = 30,
        t_enter: float = 2.0,
        t_exit: float = 1.0,
    ) -> None:
        k = len(names)
        self.directions: FloatArray = np.asarray(directions, dtype=np.float64)
        if self.directions.shape != (k,) or not np.isin(self.directions, (-1, 0, 1)).all():
            raise ValueError("directions must be -1, 0 or +1, one per factor")
        if not horizons or min(horizons) < 1:
            raise ValueError("horizons must be positive bar counts")
        if 1 not in horizons:
            raise ValueError("the state machine needs horizon 1 among the horizons")
        if window < 1 or t_exit > t_enter:
            raise ValueError("window must be positive and t_exit <= t_enter")
        self.names = names
        self.horizons = tuple(sorted(set(horizons)))
        self.window = window
        self.min_obs = min_obs
        self.t_enter = t_enter
        self.t_exit = t_exit
        self._depth = max(self.horizons) + 1
        self._x: list[FloatArray | None] = [None] * self._depth
        self._c: list[FloatArray | None] = [None] * self._depth
        self._ic = {h: _IcWindow(k, window) for h in self.horizons}
        self._f: FloatArray = np.full((window, k), np.nan)
        self._steps = 0
        self.states: list[HealthState] = [HealthState.UNKNOWN] * k

    def update(
        self,
        bar_ts: int,
        exposures: FloatArray,
        close: FloatArray,
        factor_returns: FloatArray | None = None,
    ) -> HealthSnapshot:
        """Bar ``T`` closed: its exposures ``(n, K)``, closes ``(n,)`` (NaN where
        absent) and, if known, the factor returns of bar ``T`` ``(K,)``."""
        k = len(self.names)
        slot = self._steps % self._depth
        self._x[slot] = np.array(exposures, dtype=np.float64)
        c_now: FloatArray = np.array(close, dtype=np.float64)
        self._c[slot] = c_now
        stats: dict[int, IcStats] = {}
        for h in self.horizons:
            ic: FloatArray = np.full(k, np.nan)
            ic_reason = np.full(k, Reason.INSUFFICIENT_HISTORY, dtype=np.int8)
            then = self._steps - h
            if then >= 0:
                x_then = self._x[then % self._depth]
                c_then = self._c[then % self._depth]
                assert x_then is not None and c_then is not None
                ic, ic_reason, _ = rank_ic(x_then, forward_return(c_now, c_then))
                self._ic[h].push(ic, self.directions)
            sums = self._ic[h].sums
            n = sums[0].round().astype(np.int64)
            mean, std, icir, t_stat, hit, reason = ic_statistics(
                sums[1], sums[2], sums[3], n, self.min_obs
            )
            stats[h] = IcStats(h, ic, ic_reason, n, mean, std, icir, t_stat, hit, reason)
        self._f[self._steps % self.window] = (
            np.nan if factor_returns is None else np.asarray(factor_returns, dtype=np.float64)
        )
        self._steps += 1
        ordered = np.roll(self._f, -(self._steps % self.window), axis=0)
        cum, mdd = drawdown_track(ordered)
        alerts = self._advance_states(bar_ts, stats[1])
        return HealthSnapshot(bar_ts, stats, cum, mdd, tuple(self.states), alerts)

    def checkpoint(self) -> _HealthToken:
        """What :meth:`restore` needs to put the tracker back as it is now, before the
        next :meth:`update`: O(K) plus two references, never the windows."""
        slot = self._steps % self._depth
        return _HealthToken(
            self._steps,
            self._x[slot],
            self._c[slot],
            {h: w.checkpoint() for h, w in self._ic.items()},
            self._f[self._steps % self.window].copy(),
            tuple(self.states),
        )

    def restore(self, token: _HealthToken) -> None:
        self._steps = token.steps
        slot = self._steps % self._depth
        self._x[slot] = token.x
        self._c[slot] = token.c
        for h, w in self._ic.items():
            w.restore(token.ic[h])
        self._f[self._steps % self.window] = token.f_row
        self.states = list(token.states)

    def _advance_states(self, bar_ts: int, s: IcStats) -> tuple[FactorAlert, ...]:
        alerts: list[FactorAlert] = []
        for j, name in enumerate(self.names):
            before = self.states[j]
            after = next_state(
                before, float(s.t_stat[j]), float(self.directions[j]), self.t_enter, self.t_exit
            )
            self.states[j] = after
            kind = transition_alert(before, after)
            if kind is not None:
                alerts.append(
                    FactorAlert(
                        kind,
                        name,
                        bar_ts,
                        before,
                        after,
                        float(s.mean_ic[j]),
                        float(s.icir[j]),
                        float(s.t_stat[j]),
                        int(s.n[j]),
                        self.window,
                        s.horizon,
                    )
                )
        return tuple(alerts)

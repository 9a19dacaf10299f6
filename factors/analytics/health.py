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
- The factor-return track keeps the last ``window`` factor returns in a ring, and
  the cumulative return and drawdown of the window in O(K) per bar from figures of
  its two parts, the older one built once per ``window`` bars (track.py); the
  same numbers as :func:`drawdown_track` over the window up to rounding.
- Rank ICs: ranks.py (one sort of every factor and of the returns per bar).
- The quintile spread (decay.py) is taken at horizon 1: the mean over bars of
  ``mean(R[top quintile, t+1]) - mean(R[bottom quintile, t+1])``, the
  quintiles drawn over the symbols with a finite exposure and a finite return
  (as for the IC), and at least 10 of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final, NamedTuple

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.ranks import (
    SortKeys,
    rank_ic_from_keys,
    rank_ic_keys,
    rank_ic_rows,
)
from factorcast.factors.analytics.track import (
    CUM,
    IC,
    IC_REASON,
    MDD,
    SUMS,
    UNKNOWN,
    IcFigures,
    IcWindow,
    IcWindowToken,
    ReturnTrack,
    ReturnTrackToken,
    TrackPushArgs,
    ic_push_states,
    next_code,
    next_codes,
    track_push,
    window_statistics,
)
from factorcast.factors.analytics.wls import simple_returns
from factorcast.factors.jit import kernel

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
CodeArray = NDArray[np.int8]

#: Horizons of the offline decay curve.
DECAY_HORIZONS: Final[tuple[int, ...]] = (1, 2, 4, 8, 16, 32, 64)
#: Fewest symbols for a quintile spread.
MIN_QUINTILE_SYMBOLS: Final = 10


def forward_return(close_now: FloatArray, close_then: FloatArray) -> FloatArray:
    """``C[t+h] / C[t] - 1``, NaN where either close is missing (or the ratio is not
    finite)."""
    return simple_returns(
        np.ascontiguousarray(close_now, dtype=np.float64),
        np.ascontiguousarray(close_then, dtype=np.float64),
    )


@kernel
def _ranked_pushes(
    ranked: tuple[SortKeys, FloatArray, FloatArray, IntArray, int],
    directions: FloatArray,
    window: tuple[FloatArray, int, FloatArray, int, FloatArray, bool, int],
    codes: CodeArray,
    thresholds: tuple[float, float],
    track: TrackPushArgs,
) -> tuple[FloatArray, CodeArray, int, FloatArray]:
    """:func:`rank_ic_from_keys` of the sorted keys ``ranked``, :func:`ic_push_states`
    of those ICs into the window (``window`` is ``IcWindow.push_args()``) and
    :func:`track_push` (``track`` is ``ReturnTrack.push_args()``), in one call:
    the window's state, the next state codes and how many changed, the track's
    state."""
    ic, reason = rank_ic_from_keys(*ranked)
    state, codes, changed = ic_push_states(ic, reason, directions, *window, codes, thresholds)
    return state, codes, changed, track_push(*track)


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
    code = next_code(_CODES[state], float(t_stat), float(direction), t_enter, t_exit)
    return _STATES[code]


#: the states by the codes of the compiled state machine
_STATES: Final = (
    HealthState.UNKNOWN,
    HealthState.UNRATED,
    HealthState.WORKING,
    HealthState.FLAT,
    HealthState.INVERTED,
)
_CODES: Final = {state: code for code, state in enumerate(_STATES)}


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


class IcStats:
    """Rolling IC statistics of every factor at one horizon, at one bar.

    ``ic`` is the IC that became known at this bar (``IC[k, T-h, h]``) and
    ``ic_reason`` its reason; ``n, mean_ic, std_ic, icir, t_stat, hit_rate`` and
    ``reason`` (``insufficient_history`` / ``no_dispersion`` where the figures are
    NaN) are read off the window's sums of that bar at the first access of one of
    them.  All come from the IC window's state of that bar (track.py's
    :class:`IcWindow`), kept by reference (a push replaces the state, never changes
    it): the same numbers whenever they are read.  Read-only.
    """

    __slots__ = ("_figures", "_min_obs", "_state", "horizon")

    def __init__(self, horizon: int, state: FloatArray, min_obs: int) -> None:
        self.horizon = horizon
        self._state = state
        self._min_obs = min_obs
        self._figures: IcFigures | None = None

    @property
    def ic(self) -> FloatArray:
        ic: FloatArray = self._state[IC]
        return ic

    @property
    def ic_reason(self) -> NDArray[np.int8]:
        reason: NDArray[np.int8] = self._state[IC_REASON].astype(np.int8)
        return reason

    def _read(self) -> IcFigures:
        if self._figures is None:
            self._figures = window_statistics(self._state[SUMS:], self._min_obs)
        return self._figures

    @property
    def n(self) -> IntArray:
        return self._read()[0]

    @property
    def mean_ic(self) -> FloatArray:
        return self._read()[1]

    @property
    def std_ic(self) -> FloatArray:
        return self._read()[2]

    @property
    def icir(self) -> FloatArray:
        return self._read()[3]

    @property
    def t_stat(self) -> FloatArray:
        return self._read()[4]

    @property
    def hit_rate(self) -> FloatArray:
        return self._read()[5]

    @property
    def reason(self) -> NDArray[np.int8]:
        return self._read()[6]

    def __repr__(self) -> str:
        return f"IcStats(horizon={self.horizon}, ic={self.ic!r}, n={self.n!r})"


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


class HealthSnapshot(NamedTuple):
    """Factor health after one bar close.

    A named tuple: immutable, and made at every grid step for a fraction of the
    cost of a frozen dataclass.
    """

    bar_ts: int
    #: per configured horizon
    stats: dict[int, IcStats]
    #: factor-return track over the last ``window`` bars: its state, whose rows
    #: ``CUM`` and ``MDD`` (track.py) are ``cum_return`` and ``max_drawdown``
    track: FloatArray
    #: horizon-1 states, in factor order, and the alerts this bar raised
    states: tuple[HealthState, ...]
    alerts: tuple[FactorAlert, ...]

    @property
    def cum_return(self) -> FloatArray:
        cum: FloatArray = self.track[CUM]
        return cum

    @property
    def max_drawdown(self) -> FloatArray:
        mdd: FloatArray = self.track[MDD]
        return mdd


#: What :meth:`HealthTracker.restore` needs: the step count, the exposures and
#: closes the next update overwrites, the IC windows' tokens (in horizon order), the
#: factor-return track's token and the states.
_HealthToken = tuple[
    int,
    FloatArray | None,
    FloatArray | None,
    tuple[IcWindowToken, ...],
    ReturnTrackToken,
    tuple[HealthState, ...],
    CodeArray,
]


class HealthTracker:
    """Incremental factor health: feed one :meth:`update` per grid step."""

    __slots__ = (
        "_c",
        "_codes",
        "_depth",
        "_ic",
        "_steps",
        "_thresholds",
        "_track",
        "_windows",
        "_x",
        "directions",
        "horizons",
        "min_obs",
        "names",
        "states",
        "t_enter",
        "t_exit",
        "window",
    )

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
        self._thresholds = (t_enter, t_exit)
        self._depth = max(self.horizons) + 1
        self._x: list[FloatArray | None] = [None] * self._depth
        self._c: list[FloatArray | None] = [None] * self._depth
        self._ic = {h: IcWindow(k, window, min_obs) for h in self.horizons}
        self._windows = tuple(self._ic.values())  # in horizon order
        self._track = ReturnTrack(k, window)
        self._steps = 0
        self.states: tuple[HealthState, ...] = (HealthState.UNKNOWN,) * k
        self._codes: CodeArray = np.full(k, UNKNOWN, dtype=np.int8)

    def update(
        self,
        bar_ts: int,
        exposures: FloatArray,
        close: FloatArray,
        factor_returns: FloatArray | None = None,
    ) -> HealthSnapshot:
        """Bar ``T`` closed: its exposures ``(n, K)``, closes ``(n,)`` (NaN where
        absent) and, if known, the factor returns of bar ``T`` ``(K,)``."""
        xt = np.array(np.asarray(exposures, dtype=np.float64).T, order="C")
        c = np.array(close, dtype=np.float64)
        xt.flags.writeable = c.flags.writeable = False  # its own copies, which it keeps
        f = None if factor_returns is None else np.ascontiguousarray(factor_returns, np.float64)
        return self.update_rows(bar_ts, xt, c, f)

    def update_rows(
        self,
        bar_ts: int,
        xt: FloatArray,
        close: FloatArray,
        factor_returns: FloatArray | None = None,
        r1: FloatArray | None = None,
    ) -> HealthSnapshot:
        """:meth:`update` with the exposures as a row per factor, ``xt`` ``(K, n)``
        C-contiguous float64, and float64 closes, both read-only: they are kept as
        they are (and the compiled calls always see the same kind of array).  The factor
        returns, where given, are C-contiguous float64.  ``r1``, where the caller has
        them, are the horizon-1 forward returns ``close / previous close - 1`` (the
        closes of the previous update), float64 contiguous."""
        slot = self._steps % self._depth
        self._x[slot] = xt
        self._c[slot] = close
        stats: dict[int, IcStats] = {}
        codes, changed = self._codes, 0
        track: FloatArray | None = None  # the track's push, once made
        for h in self.horizons:
            then = self._steps - h
            window = self._ic[h]
            if then >= 0:
                x_then = self._x[then % self._depth]
                c_then = self._c[then % self._depth]
                assert x_then is not None and c_then is not None
                fwd = r1 if h == 1 and r1 is not None else simple_returns(close, c_then)
                if h == 1:  # the states follow horizon 1; with the track, in one call
                    codes, changed, track = self._horizon_one(x_then, fwd, factor_returns)
                else:
                    ic, ic_reason, _ = rank_ic_rows(x_then, fwd)
                    window.push(ic, ic_reason, self.directions)
            # before the horizon's first bar, the window's first state: no IC for want
            # of history
            stats[h] = IcStats(h, window.state, window.min_obs)
            if h == 1 and then < 0:
                codes, changed = next_codes(
                    self._codes, stats[h].t_stat, self.directions, self.t_enter, self.t_exit
                )
        if track is None:
            track = self._track.push(factor_returns)
        self._steps += 1
        alerts = self._advance_states(bar_ts, stats[1], codes, changed) if changed else ()
        return HealthSnapshot(bar_ts, stats, track, self.states, alerts)

    def _horizon_one(
        self, x_then: FloatArray, fwd: FloatArray, factor_returns: FloatArray | None
    ) -> tuple[CodeArray, int, FloatArray]:
        """The horizon-1 IC of the exposures ``x_then`` with the forward returns
        ``fwd``, its push into the window with the states' step, and the push of the
        factor returns into the track: one compiled call after the sort of the keys
        (a call of each costs more than its arithmetic, :mod:`~factorcast.factors.jit`).
        Returns the next state codes and how many changed, and the track's state."""
        keys, rows, shift = rank_ic_keys(x_then, fwd)
        window = self._ic[1]
        state, codes, changed, moved = _ranked_pushes(
            (keys, x_then, fwd, rows, shift),
            self.directions,
            window.push_args(),
            self._codes,
            self._thresholds,
            self._track.push_args(factor_returns),
        )
        window.pushed(state)
        return codes, changed, self._track.pushed(moved)

    def keep_undo(self, depth: int) -> None:
        """From now on the windows save the ring slots each update overwrites, for the
        last ``depth`` updates: a :meth:`checkpoint` is then references alone."""
        if depth < 0:
            raise ValueError("undo depth must be >= 0")
        for window in self._ic.values():
            window.keep_undo(depth)
        self._track.keep_undo(depth)

    def checkpoint(self) -> _HealthToken:
        """What :meth:`restore` needs to put the tracker back as it is now, before the
        next :meth:`update`: O(K) plus references, never the windows."""
        slot = self._steps % self._depth
        return (
            self._steps,
            self._x[slot],
            self._c[slot],
            tuple([w.checkpoint() for w in self._windows]),
            self._track.checkpoint(),
            self.states,
            self._codes,
        )

    def restore(self, token: _HealthToken) -> None:
        self._steps, x, c, ic, track, self.states, self._codes = token
        slot = self._steps % self._depth
        self._x[slot] = x
        self._c[slot] = c
        for h, t in zip(self.horizons, ic, strict=True):
            self._ic[h].restore(t)
        self._track.restore(track)

    def _advance_states(
        self, bar_ts: int, s: IcStats, codes: CodeArray, changed: int
    ) -> tuple[FactorAlert, ...]:
        """The states to ``codes`` (``changed`` of them differ); the alerts."""
        alerts: list[FactorAlert] = []
        before_states = self.states
        self._codes = codes
        self.states = tuple([_STATES[c] for c in codes.tolist()])
        for j, (before, after) in enumerate(zip(before_states, self.states, strict=True)):
            kind = transition_alert(before, after)
            if kind is not None:
                alerts.append(
                    FactorAlert(
                        kind,
                        self.names[j],
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

"""The engine: one closed cross-section in, factor exposures and signals out.

It is synchronous and pure apart from the injectable clock that stamps
``produced_at``; the asyncio service (``strategy.service``) drives it from any
source, live or recorded, so replay and live run exactly the same code.

Late bars.  A live cross-section may go out without a symbol that had not closed
by the grace deadline (``late``).  When that bar comes after all, the source hands
it on with a later cross-section (``CrossSection.amendments``), and the engine
takes it in before that one: it takes back its steps from the late bar's grid
time on (the factor model's undo log, the strategy's snapshot), and runs them
again, without outputs, with the bar in.  Running the same code on the same state
with the same inputs gives the same bits, so from that cross-section on every
exposure, reason and signal is the one replay gives over the complete candles.
Nothing already produced is produced again: the late cross-section stays as it
went out.  Only the last ``amend_bars`` grid steps can be taken back (the undo
log's depth); later bars are dropped and counted.  Taking back a step instead of
rebuilding the model from the recorded inputs keeps an amendment at a few steps'
cost, where a rebuild would replay up to two windows (hundreds of steps).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from factorcast.factors import FactorModel, FactorSnapshot, Reason
from factorcast.factors.analytics.health import FactorAlert
from factorcast.factors.analytics.pipeline import AnalyticsBar, FactorAnalytics
from factorcast.strategy.events import AMEND_BARS, CrossSection, LateBar
from factorcast.strategy.signals import FactorView, SignalBatch, adjust
from factorcast.strategy.strategies import Decision, Rewindable, Strategy


class OutOfOrderError(ValueError):
    """A cross-section at or before the previous one, or off the timeframe grid."""


@dataclass(frozen=True, slots=True)
class StepResult:
    xs: CrossSection
    factors: FactorSnapshot
    decision: Decision
    signals: SignalBatch
    produced_at_ms: int
    #: late bars taken in before this cross-section
    amended: tuple[LateBar, ...] = ()
    #: factor returns, health and risk at this bar (None: the engine runs no analytics)
    analytics: AnalyticsBar | None = None
    #: alerts raised by grid steps before this one that gave no result of their own:
    #: the empty grid steps just before it and the steps run again for late bars
    earlier_alerts: tuple[FactorAlert, ...] = ()

    @property
    def alerts(self) -> tuple[FactorAlert, ...]:
        """Every alert this step raised, in time order."""
        own = () if self.analytics is None else self.analytics.alerts
        return self.earlier_alerts + own

    @property
    def ts(self) -> int:
        return self.xs.ts


@dataclass(slots=True)
class AmendStats:
    amended: int = 0  # late bars taken in
    too_old: int = 0  # late bars beyond the last ``amend_bars`` grid steps: dropped
    rerun_steps: int = 0  # cross-sections taken back and run again


@dataclass(frozen=True, slots=True)
class _Done:
    """One model update the engine can take back: the grid step, its cross-section
    (None for an empty grid step), and the engine's state before it."""

    ts: int
    xs: CrossSection | None
    strategy_state: Any  # the strategy's snapshot before ``decide`` (real steps)
    last_ts: int | None
    filled: int


class Engine:
    """Feeds cross-sections through the factor model, a strategy and the signal module.

    It turns on the model's undo log (``amend_bars`` deep) to take late bars in;
    ``amend_bars=0`` turns that off (late bars are then dropped and counted).

    With ``analytics``, every grid step the model takes (the empty ones between
    cross-sections included) goes through the analytics too, in the same order,
    and they are taken back and run again with the model.
    """

    def __init__(
        self,
        symbols: Sequence[str],
        timeframe_ms: int,
        model: FactorModel,
        strategy: Strategy,
        view: FactorView,
        clock: Callable[[], float] = time.time,
        amend_bars: int = AMEND_BARS,
        analytics: FactorAnalytics | None = None,
    ) -> None:
        if model.n_symbols != len(symbols):
            raise ValueError("the factor model and the universe differ in size")
        if view.names != model.names:
            raise ValueError("the factor view and the factor model name different factors")
        if amend_bars < 0:
            raise ValueError("amend_bars must be >= 0")
        if analytics is not None and (
            analytics.names != model.names or analytics.n_symbols != model.n_symbols
        ):
            raise ValueError("the analytics and the factor model differ in factors or universe")
        self.symbols = tuple(symbols)
        self.timeframe_ms = timeframe_ms
        self.model = model
        self.strategy = strategy
        self.view = view
        self._clock = clock
        self.last_ts: int | None = None
        self.analytics = analytics
        # Past this many empty grid steps the state (model and analytics) no longer changes.
        self._max_fill = max(
            model.history_bars + 1, 0 if analytics is None else analytics.saturation
        )
        self._filled = 0  # empty grid steps the model took since last_ts
        self._empty = CrossSection.empty(0, len(self.symbols))
        self._empty_close = _closes(self._empty)
        self.amend_bars = amend_bars
        self.stats = AmendStats()
        self._done: deque[_Done] = deque(maxlen=amend_bars)
        self._rewinder = strategy if isinstance(strategy, Rewindable) else None
        model.keep_undo(amend_bars)
        if analytics is not None:
            analytics.keep_undo(amend_bars)
        self._earlier_alerts: list[FactorAlert] = []

    def step(self, xs: CrossSection) -> StepResult:
        if xs.ts % self.timeframe_ms:
            raise OutOfOrderError(f"bar time {xs.ts} is off the {self.timeframe_ms} ms grid")
        if self.last_ts is not None and xs.ts <= self.last_ts:
            raise OutOfOrderError(f"bar time {xs.ts} is not after {self.last_ts}")
        amended = self._amend(xs) if xs.amendments else ()
        snapshot, decision, bar = self._advance(xs)
        if xs.late.size and xs.late.any():
            snapshot.reason[xs.late] = Reason.LATE
        signals = adjust(decision, snapshot.exposure, self.view)
        earlier, self._earlier_alerts = tuple(self._earlier_alerts), []
        return StepResult(
            xs, snapshot, decision, signals, int(self._clock() * 1000), amended, bar, earlier
        )

    # -- one grid step after another -------------------------------------------------
    def _advance(
        self, xs: CrossSection, *, decide: bool = True
    ) -> tuple[FactorSnapshot, Decision, AnalyticsBar | None]:
        """Move the model to ``xs``: the empty grid steps before it, then ``xs``."""
        if self.last_ts is not None:
            gap = (xs.ts - self.last_ts) // self.timeframe_ms
            todo = min(gap - 1, self._max_fill) - self._filled
            if todo > 0:
                self._advance_empty(todo)
        if self.amend_bars:
            state = None if self._rewinder is None else self._rewinder.snapshot()
            self._done.append(_Done(xs.ts, xs, state, self.last_ts, self._filled))
        snapshot = self.model.step(xs)
        bar = None if self.analytics is None else self._analyze(xs.ts, _closes(xs), snapshot)
        decision = self.strategy.decide(xs, snapshot) if decide else _NO_DECISION
        self.last_ts = xs.ts
        self._filled = 0
        return snapshot, decision, bar

    def _analyze(self, ts: int, close: np.ndarray, snapshot: FactorSnapshot) -> AnalyticsBar:
        assert self.analytics is not None
        # the model's exposures (by factor: the transpose of its (n, K) view) and the
        # closes are read-only, as the analytics keep them
        return self.analytics.update_rows(ts, close, snapshot.exposure.T, snapshot.weights)

    def _advance_empty(self, steps: int) -> None:
        """Grid times where no symbol has a bar still move every window and lag."""
        empty = self._empty
        assert self.last_ts is not None
        for _ in range(steps):
            ts = self.last_ts + (self._filled + 1) * self.timeframe_ms
            if self.amend_bars:
                self._done.append(_Done(ts, None, None, self.last_ts, self._filled))
            snapshot = self.model.step(empty)
            if self.analytics is not None:
                self._earlier_alerts.extend(self._analyze(ts, self._empty_close, snapshot).alerts)
            self._filled += 1

    # -- late bars ----------------------------------------------------------------------
    def _amend(self, xs: CrossSection) -> tuple[LateBar, ...]:
        """Take the late bars ``xs`` carries in, before ``xs`` itself."""
        tf = self.timeframe_ms
        oldest = xs.ts - self.amend_bars * tf
        n = len(self.symbols)
        usable = tuple(
            b
            for b in xs.amendments
            if oldest <= b.ts < xs.ts and not b.ts % tf and 0 <= b.symbol < n
        )
        self.stats.too_old += len(xs.amendments) - len(usable)
        if not usable:
            return ()
        again = _merge(self._take_back(min(b.ts for b in usable)), usable, self._empty)
        for x in again:
            # without outputs; a strategy that cannot be taken back saw these already
            bar = self._advance(x, decide=self._rewinder is not None)[2]
            if bar is not None:
                self._earlier_alerts.extend(bar.alerts)
        self.stats.amended += len(usable)
        self.stats.rerun_steps += len(again)
        return usable

    def _take_back(self, t0: int) -> list[CrossSection]:
        """Undo every step at grid time ``t0`` or later; returns their cross-sections
        in time order.  All of them are in the log: ``t0`` is at most ``amend_bars``
        grid steps back, and there is at most one step per grid time."""
        undone: list[CrossSection] = []
        state: Any = None
        steps = 0
        while self._done and self._done[-1].ts >= t0:
            done = self._done.pop()
            steps += 1
            self.last_ts, self._filled = done.last_ts, done.filled
            if done.xs is not None:
                undone.append(done.xs)
                state = done.strategy_state
        self.model.undo(steps)
        if self.analytics is not None:
            self.analytics.undo(steps)
        if undone and self._rewinder is not None:
            self._rewinder.restore(state)
        undone.reverse()
        return undone


def _closes(xs: CrossSection) -> np.ndarray:
    """The closes of a cross-section, NaN where a symbol has no bar; read-only (the
    analytics keep them by reference)."""
    close = np.where(xs.present, xs.close, np.nan)
    close.flags.writeable = False
    return close


def _merge(
    undone: list[CrossSection], bars: Iterable[LateBar], empty: CrossSection
) -> list[CrossSection]:
    """The cross-sections taken back, with the late bars in (a late bar at a grid
    time without a cross-section gets one of its own), in time order."""
    by_ts: dict[int, list[LateBar]] = {}
    for b in bars:
        by_ts.setdefault(b.ts, []).append(b)
    out = [x if x.ts not in by_ts else _with_bars(x, by_ts.pop(x.ts)) for x in undone]
    out += [_with_bars(empty, late, ts) for ts, late in by_ts.items()]
    out.sort(key=lambda x: x.ts)
    return out


def _with_bars(xs: CrossSection, bars: list[LateBar], ts: int | None = None) -> CrossSection:
    """``xs`` as replay sees it: the late bars present, not late."""
    n = xs.present.size
    fields = [a.copy() for a in (xs.open, xs.high, xs.low, xs.close, xs.volume, xs.quote_volume)]
    present = xs.present.copy()
    late = xs.late.copy() if xs.late.size else np.zeros(n, dtype=bool)
    for b in bars:
        i = b.symbol
        values = (b.open, b.high, b.low, b.close, b.volume, b.quote_volume)
        for column, value in zip(fields, values, strict=True):
            column[i] = value
        present[i] = True
        late[i] = False
    o, h, lo, c, v, q = fields
    return CrossSection(xs.ts if ts is None else ts, o, h, lo, c, v, q, present, late, live=xs.live)


#: Stands for the decision of a step run again without its strategy (never read).
_NO_DECISION = Decision(
    action=np.zeros(0, dtype=np.int8),
    confidence=np.zeros(0),
    insufficient=np.zeros(0, dtype=bool),
)

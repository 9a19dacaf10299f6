"""The engine: one closed cross-section in, factor exposures and signals out.

It is synchronous and pure apart from the injectable clock that stamps
``produced_at``; the asyncio service (``strategy.service``) drives it from any
source, live or recorded, so replay and live run exactly the same code.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from factors import FactorModel, FactorSnapshot, Reason
from strategy.events import CrossSection
from strategy.signals import FactorView, SignalBatch, adjust
from strategy.strategies import Decision, Strategy


class OutOfOrderError(ValueError):
    """A cross-section at or before the previous one, or off the timeframe grid."""


@dataclass(frozen=True, slots=True)
class StepResult:
    xs: CrossSection
    factors: FactorSnapshot
    decision: Decision
    signals: SignalBatch
    produced_at_ms: int

    @property
    def ts(self) -> int:
        return self.xs.ts


class Engine:
    """Feeds cross-sections through the factor model, a strategy and the signal module."""

    def __init__(
        self,
        symbols: Sequence[str],
        timeframe_ms: int,
        model: FactorModel,
        strategy: Strategy,
        view: FactorView,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if model.n_symbols != len(symbols):
            raise ValueError("the factor model and the universe differ in size")
        if view.names != model.names:
            raise ValueError("the factor view and the factor model name different factors")
        self.symbols = tuple(symbols)
        self.timeframe_ms = timeframe_ms
        self.model = model
        self.strategy = strategy
        self.view = view
        self._clock = clock
        self.last_ts: int | None = None
        # Past this many empty grid steps the model state no longer changes.
        self._max_fill = model.params.history_bars + 1

    def step(self, xs: CrossSection) -> StepResult:
        if xs.ts % self.timeframe_ms:
            raise OutOfOrderError(f"bar time {xs.ts} is off the {self.timeframe_ms} ms grid")
        if self.last_ts is not None:
            gap = (xs.ts - self.last_ts) // self.timeframe_ms
            if gap < 1:
                raise OutOfOrderError(f"bar time {xs.ts} is not after {self.last_ts}")
            if gap > 1:
                self._advance_empty(min(gap - 1, self._max_fill))
        self.last_ts = xs.ts
        snapshot = self.model.update(xs.close, xs.volume, xs.quote_volume, xs.present)
        if xs.late.size and xs.late.any():
            snapshot.reason[xs.late] = Reason.LATE
        decision = self.strategy.decide(xs, snapshot)
        signals = adjust(decision, snapshot.exposure, self.view)
        return StepResult(xs, snapshot, decision, signals, int(self._clock() * 1000))

    def _advance_empty(self, steps: int) -> None:
        """Grid times where no symbol has a bar still move every window and lag."""
        empty = CrossSection.empty(0, len(self.symbols))
        for _ in range(steps):
            self.model.update(empty.close, empty.volume, empty.quote_volume, empty.present)

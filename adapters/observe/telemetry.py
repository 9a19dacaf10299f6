"""What the running service tells Prometheus: the per-step gauges and counters, the
feed and sink counters carried over as deltas, and the readiness verdict."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import structlog

from factorcast.adapters.observe.metrics import Metrics
from factorcast.strategy.actions import ACTION_LABELS
from factorcast.strategy.engine import StepResult
from factorcast.strategy.ports import LiveSource

log = structlog.get_logger(__name__)


class Telemetry:
    """An output of the pipeline that keeps :class:`Metrics` current.

    ``source`` is the live source (:class:`strategy.ports.LiveSource`; None for a
    replay), ``sink`` the Redis sink (or None)."""

    def __init__(
        self,
        metrics: Metrics,
        symbols: tuple[str, ...],
        timeframe_ms: int,
        source: LiveSource | None = None,
        sink: Any = None,
        bar_wall_s: float | None = None,
    ) -> None:
        self.metrics = metrics
        self.symbols = symbols
        self.timeframe_ms = timeframe_ms
        self.source = source
        self.sink = sink
        self.bar_wall_s = bar_wall_s if bar_wall_s is not None else timeframe_ms / 1000
        self._seen: dict[str, Counter[str]] = {}
        self.last_live_step: float | None = None  # monotonic time of the last live bar
        self.last_late = 0  # symbols late in the last live cross-section
        self.behind_bars = 0  # whole bars the exchange's clock was past the last one processed

    # -- the pipeline hook and output --------------------------------------------------
    def on_step(self, result: StepResult, seconds: float, xs_depth: int, out_depth: int) -> None:
        self.metrics.step_duration(seconds)
        self.metrics.set_queue_depth("cross_sections", xs_depth)
        self.metrics.set_queue_depth("results", out_depth)

    async def handle(self, result: StepResult) -> None:
        xs = result.xs
        present = int(xs.present.sum())
        self.metrics.bars_ingested(present)
        if not xs.live:
            return
        self.last_live_step = time.monotonic()
        self.last_late = int(xs.late.sum()) if xs.late.size else 0
        if self.source is not None:
            tf = self.timeframe_ms
            self.behind_bars = max(0, (self.source.exchange_now_ms() - xs.ts - tf) // tf)
            if self.behind_bars >= _BEHIND_BARS:
                log.warning("service_behind", bars=self.behind_bars, ts=xs.ts)
        # completeness over the symbols the exchange lists and trades now, not over
        # the slots of symbols not listed yet or gone
        members = self.source.gate.member_count() if self.source is not None else 0
        self.metrics.cross_section(present, members or len(self.symbols))
        self.metrics.bar_processed((xs.ts + self.timeframe_ms) / 1000)
        codes, counts = np.unique(result.signals.action[xs.present], return_counts=True)
        self.metrics.signals(
            {ACTION_LABELS[int(c) + 1]: int(n) for c, n in zip(codes, counts, strict=True)}
        )
        if self.metrics.per_symbol_exposures:
            self.metrics.set_exposures(self.symbols, result.factors.names, result.factors.exposure)
        if result.analytics is not None:
            self.metrics.analytics.set_bar(result.analytics, result.factors.names)
        self.sync_counters()

    async def close(self) -> None:
        self.sync_counters()

    # -- counters kept elsewhere, carried over as deltas ---------------------------------
    def sync_counters(self) -> None:
        m = self.metrics
        if self.source is not None:
            gate = self.source.gate.stats
            outcomes = Counter(
                {
                    k: v
                    for k, v in gate.outcomes.items()
                    if k not in ("accepted", "duplicate", "too_late")  # too_late: amended
                }
            )
            for reason, n in self._delta("rejected", outcomes).items():
                m.bar_rejected(reason, n)
            self._apply("late", {"late": gate.late}, lambda _k, n: m.late_bars(n))
            self._apply("amended", {"amended": gate.amended}, lambda _k, n: m.late_bars_amended(n))
            self._apply("gaps", {"gaps": gate.gaps}, lambda _k, n: m.gaps_backfilled(n))
            self._apply(
                "errors",
                self.source.exchange_errors,
                lambda k, n: _repeat(n, lambda: m.exchange_error(k)),
            )
            stats = self.source.stats
            self._apply(
                "reconnects",
                {"ws": stats.reconnects},
                lambda _k, n: _repeat(n, lambda: m.reconnect("ws")),
            )
            self._apply(
                "feed_faults",
                {
                    "subscription_refused": stats.subscriptions_refused,
                    "task_restarted": stats.task_restarts,
                },
                m.feed_fault,
            )
            m.set_feed_degraded(self.source.degraded() is not None)
            self._apply(
                "fallbacks",
                {"rest": stats.rest_fallbacks},
                lambda _k, n: _repeat(n, m.rest_fallback),
            )
        if self.sink is not None:
            st = self.sink.stats
            m.set_spool(st.spool_depth, st.spool_bytes)
            m.set_backlog(st.backlog_depth, st.backlog_bytes)
            self._apply("spool_full", {"full": st.spool_full}, lambda _k, n: m.spool_full(n))
            self._apply("dropped", {"dropped": st.dropped}, lambda _k, n: m.dropped(n))
            # alerts as the sink published them: each once, however often raised
            self._apply("alerts", st.alerts, m.analytics.alerts)
            failures = sum(st.errors.values())
            self._apply("publish_failures", {"f": failures}, lambda _k, n: m.publish_failure(n))

    def _delta(self, name: str, current: Mapping[str, int]) -> Counter[str]:
        seen = self._seen.setdefault(name, Counter())
        delta = Counter({k: v - seen[k] for k, v in current.items() if v > seen[k]})
        seen.update(delta)
        return delta

    def _apply(
        self, name: str, current: Mapping[str, int], inc: Callable[[str, int], None]
    ) -> None:
        for key, n in self._delta(name, current).items():
            inc(key, n)

    # -- readiness ---------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Ready when the last live bar is at most two bars old, the feed runs as
        configured (websocket up, no symbol on the REST fallback, no subscription
        refused), the service keeps up (no symbol late in the last bar, less than
        two bars behind the exchange's clock), and signals can go out: Redis
        reachable, or the spool accepting them (not ready for as long as the
        sink's spool refuses while Redis is down)."""
        details: dict[str, Any] = {}
        fresh = False
        if self.last_live_step is None:
            details["data"] = "warming up: no live bar yet"
        else:
            age = time.monotonic() - self.last_live_step
            fresh = age <= max(2 * self.bar_wall_s, 1.0)
            details["data"] = f"last live bar {age:.1f}s ago"
        sink_ok = True
        if self.sink is not None:
            connected = bool(self.sink.connected)
            refusing = bool(self.sink.spool_refusing)
            sink_ok = connected or not refusing
            details["redis"] = (
                "connected" if connected else ("down: spool full" if refusing else "down: spooling")
            )
            held = self.sink.stats.backlog_depth
            if held:
                details["backlog"] = f"{held} publications held in memory"
        feed_ok = True
        if self.source is not None:
            degraded = self.source.degraded()
            feed_ok = degraded is None
            details["feed"] = "ok" if feed_ok else f"degraded: {degraded}"
            self.metrics.set_feed_degraded(not feed_ok)
        keeping_up = True
        if self.last_late or self.behind_bars >= _BEHIND_BARS:
            keeping_up = False
            details["keeping_up"] = (
                f"{self.last_late} symbols late in the last bar, "
                f"{self.behind_bars} bars behind the exchange"
            )
        ready = fresh and sink_ok and feed_ok and keeping_up
        self.metrics.set_ready(ready)
        return ready, details


#: this many whole bars behind the exchange's clock, the service is not keeping up
_BEHIND_BARS = 2


def _repeat(n: int, fn: Callable[[], None]) -> None:
    for _ in range(n):
        fn()

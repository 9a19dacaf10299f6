"""Every Prometheus metric of the service, built in one place against one registry.

The registry is injected (default: a fresh :class:`CollectorRegistry`, never the
process-global ``REGISTRY``), so tests and several services in one process never
collide.  :class:`Metrics` is a thin layer: one small typed method per thing the
service reports; it computes nothing but a ratio and a clock difference.

Names follow prometheus.io practice: prefix ``factorcast_``, base units, counters
end in ``_total``.  Labels are small closed sets (a rejection reason, a ccxt
exception class name, ``ws``/``rest``, ``buy``/``sell``/``hold``, a queue name) or
the universe itself (``symbol`` x ``factor`` on the optional exposure gauges);
never an id or a timestamp.

Time
    ``factorcast_last_bar_timestamp_seconds`` is the close time of the last processed
    bar and ``factorcast_bar_lag_seconds`` how late after its close that bar was
    processed.  Staleness (no bar for a while) is ``time() -
    factorcast_last_bar_timestamp_seconds`` in PromQL: a lag gauge alone would freeze
    at its last, healthy value exactly when the feed stops.  Report live bars only;
    warm-up history would show as hours of lag.

Exposures
    ``factorcast_exposure{symbol,factor}`` has ``symbols x factors`` series; for a
    large universe build with ``per_symbol_exposures=False`` and the gauge is not
    registered at all.  Each :meth:`Metrics.set_exposures` call replaces the whole
    set: a NaN exposure (and a symbol or factor absent from the call) *removes* its
    series, so a scrape never shows a value left over from an earlier bar.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Final, Literal

import numpy as np
from numpy.typing import ArrayLike
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from factorcast.adapters.observe.analytics_metrics import AnalyticsMetrics
from factorcast.strategy.actions import ACTION_LABELS

__all__ = [
    "ENGINE_STEP_BUCKETS",
    "PUBLISH_LATENCY_BUCKETS",
    "TRANSPORTS",
    "Metrics",
    "Transport",
]

#: Engine step: ~50 us (a small universe) to 1 s (far too slow for any timeframe).
ENGINE_STEP_BUCKETS: Final = (
    50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
#: Publish: ~100 us (Redis on loopback) to 5 s (the sink's timeouts and a retry).
PUBLISH_LATENCY_BUCKETS: Final = (
    100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip

Transport = Literal["ws", "rest"]
TRANSPORTS: Final[tuple[Transport, ...]] = ("ws", "rest")
FEED_FAULTS: Final[tuple[str, ...]] = ("subscription_refused", "task_restarted")


class Metrics:
    """The service's metrics on ``registry``; see the module docstring."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        per_symbol_exposures: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.per_symbol_exposures = per_symbol_exposures
        self._clock = clock
        r = self.registry

        # -- ingestion
        self._bars_ingested = Counter(
            "factorcast_bars_ingested", "Closed bars accepted into a cross-section.", registry=r
        )
        self._bars_rejected = Counter(
            "factorcast_bars_rejected",
            "Bars refused by the integrity gate, by reason.",
            ["reason"],
            registry=r,
        )
        self._gaps_backfilled = Counter(
            "factorcast_gaps_backfilled", "Missing bars recovered by a REST backfill.", registry=r
        )
        self._late_bars = Counter(
            "factorcast_late_bars",
            "Bars expected but not closed by the grace deadline of their cross-section.",
            registry=r,
        )
        self._late_amended = Counter(
            "factorcast_late_bars_amended",
            "Late bars that came after their cross-section went out and were taken into "
            "the factor windows with the next one.",
            registry=r,
        )
        self._exchange_errors = Counter(
            "factorcast_exchange_errors",
            "Errors from the exchange client, by ccxt exception class name.",
            ["type"],
            registry=r,
        )
        self._reconnects = Counter(
            "factorcast_reconnects",
            "Reconnections to the exchange, by transport (ws or rest).",
            ["transport"],
            registry=r,
        )
        self._rest_fallbacks = Counter(
            "factorcast_rest_fallbacks",
            "Times the feed fell back from websocket to REST polling.",
            registry=r,
        )
        self._feed_faults = Counter(
            "factorcast_feed_faults",
            "Faults of the live feed by kind: subscription_refused (the exchange answered "
            "SUBSCRIBE with an error), task_restarted (a feed task died and was restarted).",
            ["kind"],
            registry=r,
        )
        self._feed_degraded = Gauge(
            "factorcast_feed_degraded",
            "1 while the live feed runs degraded (websocket down, symbols on the REST "
            "fallback, a subscription refused), else 0.",
            registry=r,
        )
        self._completeness = Gauge(
            "factorcast_cross_section_completeness",
            "Share of the universe's members (the symbols listed and trading) with a bar in the "
            "last cross-section (0..1).",
            registry=r,
        )
        self._bar_lag = Gauge(
            "factorcast_bar_lag_seconds",
            "Wall time minus bar close time when the last bar was processed.",
            registry=r,
        )
        self._last_bar = Gauge(
            "factorcast_last_bar_timestamp_seconds",
            "Close time of the last processed bar, in Unix seconds.",
            registry=r,
        )

        # -- engine and signals
        self._step = Histogram(
            "factorcast_engine_step_duration_seconds",
            "Time of one engine step (factors, strategy, signal module) per cross-section.",
            buckets=ENGINE_STEP_BUCKETS,
            registry=r,
        )
        self._signals = Counter(
            "factorcast_signals", "Signals produced, by action.", ["action"], registry=r
        )

        # -- publishing
        self._publish_latency = Histogram(
            "factorcast_publish_latency_seconds",
            "Time to publish one cross-section's signals (Redis write or spool append).",
            buckets=PUBLISH_LATENCY_BUCKETS,
            registry=r,
        )
        self._publish_failures = Counter(
            "factorcast_publish_failures", "Publications the sink failed to write.", registry=r
        )
        self._spool_depth = Gauge(
            "factorcast_spool_depth", "Publications waiting in the on-disk spool.", registry=r
        )
        self._spool_bytes = Gauge(
            "factorcast_spool_bytes", "Bytes of the on-disk spool's live segments.", registry=r
        )
        self._spool_full = Counter(
            "factorcast_spool_full",
            "Publications the spool refused (full, or a disk error): held in memory or dropped.",
            registry=r,
        )
        self._backlog_depth = Gauge(
            "factorcast_spool_backlog_depth",
            "Publications the spool refused, held in memory until it or Redis takes them.",
            registry=r,
        )
        self._backlog_bytes = Gauge(
            "factorcast_spool_backlog_bytes",
            "Bytes of the publications held in memory behind a refusing spool.",
            registry=r,
        )
        self._dropped = Counter(
            "factorcast_publications_dropped",
            "Publications lost: refused by the spool with no room left in memory, or held"
            " in memory at shutdown.",
            registry=r,
        )
        self._queue_depth = Gauge(
            "factorcast_queue_depth", "Items in a bounded pipeline queue.", ["queue"], registry=r
        )

        # -- identity and state
        self._build_info = Gauge(
            "factorcast_build_info",
            "Always 1; the labels name the version, factor model, exchange and timeframe.",
            ["version", "model", "exchange", "timeframe"],
            registry=r,
        )
        self._ready = Gauge(
            "factorcast_ready", "1 while the service is ready (see /readyz), else 0.", registry=r
        )
        self._exposure: Gauge | None = None
        if per_symbol_exposures:
            self._exposure = Gauge(
                "factorcast_exposure",
                "Factor exposure of a symbol at the last bar (absent where NaN).",
                ["symbol", "factor"],
                registry=r,
            )
        self._exposure_children: dict[tuple[str, str], Gauge] = {}
        #: the factor analytics' gauges and alert counter (analytics_metrics.py)
        self.analytics = AnalyticsMetrics(r)

        # Known label values start at 0, so rate() sees the first increment.
        for action in ACTION_LABELS:
            self._signals.labels(action)
        for transport in TRANSPORTS:
            self._reconnects.labels(transport)
        for kind in FEED_FAULTS:
            self._feed_faults.labels(kind)

    # -- ingestion ------------------------------------------------------------------------

    def bars_ingested(self, n: int = 1) -> None:
        """``factorcast_bars_ingested_total += n``."""
        self._bars_ingested.inc(n)

    def bar_rejected(self, reason: str, n: int = 1) -> None:
        """``factorcast_bars_rejected_total{reason} += n``."""
        self._bars_rejected.labels(reason).inc(n)

    def gaps_backfilled(self, n: int = 1) -> None:
        """``factorcast_gaps_backfilled_total += n``."""
        self._gaps_backfilled.inc(n)

    def late_bars(self, n: int = 1) -> None:
        """``factorcast_late_bars_total += n``."""
        self._late_bars.inc(n)

    def late_bars_amended(self, n: int = 1) -> None:
        """``factorcast_late_bars_amended_total += n``."""
        self._late_amended.inc(n)

    def exchange_error(self, error: BaseException | str) -> None:
        """``factorcast_exchange_errors_total{type} += 1``; ``type`` is the exception's
        class name (``NetworkError``, ``RateLimitExceeded``, ...) or the given name."""
        name = error if isinstance(error, str) else type(error).__name__
        self._exchange_errors.labels(name).inc()

    def feed_fault(self, kind: str, n: int = 1) -> None:
        """``factorcast_feed_faults_total{kind} += n``; ``kind`` in :data:`FEED_FAULTS`."""
        if kind not in FEED_FAULTS:
            raise ValueError(f"unknown feed fault {kind!r}")
        self._feed_faults.labels(kind).inc(n)

    def set_feed_degraded(self, degraded: bool) -> None:
        """``factorcast_feed_degraded`` = 1 while the feed runs degraded."""
        self._feed_degraded.set(1 if degraded else 0)

    def reconnect(self, transport: Transport) -> None:
        """``factorcast_reconnects_total{transport} += 1``."""
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
        self._reconnects.labels(transport).inc()

    def rest_fallback(self) -> None:
        """``factorcast_rest_fallbacks_total += 1``."""
        self._rest_fallbacks.inc()

    def cross_section(self, present: int, universe: int) -> None:
        """``factorcast_cross_section_completeness = present / universe`` (0 if empty)."""
        self._completeness.set(present / universe if universe > 0 else 0.0)

    def bar_processed(self, close_time_s: float) -> None:
        """A live bar closing at ``close_time_s`` (Unix seconds) was processed now:
        sets ``factorcast_last_bar_timestamp_seconds`` and ``factorcast_bar_lag_seconds``."""
        self._last_bar.set(close_time_s)
        self._bar_lag.set(self._clock() - close_time_s)

    # -- engine and signals -----------------------------------------------------------------

    def step_duration(self, seconds: float) -> None:
        """Observe one engine step in ``factorcast_engine_step_duration_seconds``."""
        self._step.observe(seconds)

    def signals(self, action_counts: Mapping[str, int]) -> None:
        """``factorcast_signals_total{action} += count`` for ``buy``/``sell``/``hold``."""
        for action, count in action_counts.items():
            if action not in ACTION_LABELS:
                raise ValueError(f"action must be one of {ACTION_LABELS}, got {action!r}")
            if count:
                self._signals.labels(action).inc(count)

    # -- publishing -------------------------------------------------------------------------

    def publish_latency(self, seconds: float) -> None:
        """Observe one publication in ``factorcast_publish_latency_seconds``."""
        self._publish_latency.observe(seconds)

    def publish_failure(self, n: int = 1) -> None:
        """``factorcast_publish_failures_total += n``."""
        self._publish_failures.inc(n)

    def set_spool(self, depth: int, nbytes: int) -> None:
        """``factorcast_spool_depth = depth``, ``factorcast_spool_bytes = nbytes``."""
        self._spool_depth.set(depth)
        self._spool_bytes.set(nbytes)

    def spool_full(self, n: int = 1) -> None:
        """``factorcast_spool_full_total += n``."""
        self._spool_full.inc(n)

    def set_backlog(self, depth: int, nbytes: int) -> None:
        """``factorcast_spool_backlog_depth = depth``,
        ``factorcast_spool_backlog_bytes = nbytes``."""
        self._backlog_depth.set(depth)
        self._backlog_bytes.set(nbytes)

    def dropped(self, n: int = 1) -> None:
        """``factorcast_publications_dropped_total += n``."""
        self._dropped.inc(n)

    def set_queue_depth(self, queue: str, depth: int) -> None:
        """``factorcast_queue_depth{queue} = depth`` (``queue``: a fixed task-queue name)."""
        self._queue_depth.labels(queue).set(depth)

    # -- identity and state -----------------------------------------------------------------

    def set_build_info(self, *, version: str, model: str, exchange: str, timeframe: str) -> None:
        """``factorcast_build_info{version,model,exchange,timeframe} = 1``; replaces any
        earlier labels, so there is one series."""
        self._build_info.clear()
        self._build_info.labels(version, model, exchange, timeframe).set(1)

    def set_ready(self, ready: bool) -> None:
        """``factorcast_ready = 1`` if ``ready`` else 0."""
        self._ready.set(1 if ready else 0)

    def set_exposures(
        self, symbols: Sequence[str], factor_names: Sequence[str], matrix: ArrayLike
    ) -> None:
        """``factorcast_exposure{symbol,factor} = matrix[i, j]`` for the finite entries
        of the ``(len(symbols), len(factor_names))`` matrix; every other series of the
        gauge is removed.  A no-op when built with ``per_symbol_exposures=False``."""
        if self._exposure is None:
            return
        values = np.asarray(matrix, dtype=np.float64)
        if values.shape != (len(symbols), len(factor_names)):
            raise ValueError(
                f"exposure matrix has shape {values.shape}, "
                f"expected ({len(symbols)}, {len(factor_names)})"
            )
        old, new = self._exposure_children, {}
        for i, j in zip(*np.nonzero(np.isfinite(values)), strict=True):
            key = (symbols[i], factor_names[j])
            child = old.pop(key, None)
            if child is None:
                child = self._exposure.labels(*key)
            child.set(float(values[i, j]))
            new[key] = child
        for key in old:
            self._exposure.remove(*key)
        self._exposure_children = new

    def exposure_series(self) -> tuple[tuple[str, str], ...]:
        """The ``(symbol, factor)`` pairs currently exported (for tests and debugging)."""
        return tuple(self._exposure_children)

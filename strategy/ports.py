"""The small ports through which the engine talks to the outside.

Concrete adapters (ccxt sources, Redis, files, the exchange simulator) live in
``adapters/`` and are wired in by the composition root (``strategy.app.cli``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from factorcast.strategy.events import CrossSection
from factorcast.strategy.gate import CandleGate


@dataclass(frozen=True, slots=True)
class Publication:
    """Everything one closed cross-section publishes, already serialized.

    ``signals`` holds ``(signal id, JSON bytes)`` in symbol order; the id is the
    wire id ``{strategy}:{exchange}:{symbol}:{timeframe}:{bar_ts}``.
    ``exposures`` maps symbol to the JSON of ``{bar_ts, exposures, missing, model}``.
    ``heartbeat`` is the ISO-8601 UTC time of the bar.

    The analytics of the bar (ANALYTICS.md section 12), all optional:
    ``factor_returns`` the ``factorcast.factor_returns/1`` JSON of the bar,
    ``risk`` the risk model's JSON, ``health`` factor -> health JSON, and
    ``alerts`` ``(alert id, factorcast.alert/1 JSON)`` in time order (those of the
    steps run again for late bars first).
    """

    bar_ts: int
    signals: tuple[tuple[str, bytes], ...]
    exposures: dict[str, bytes]
    heartbeat: str
    factor_returns: bytes | None = None
    risk: bytes | None = None
    health: dict[str, bytes] = field(default_factory=dict)
    alerts: tuple[tuple[str, bytes], ...] = ()

    @property
    def scripted(self) -> bool:
        """It writes a factor-returns entry or alerts: the writes that must happen
        at most once, checked inside Redis (``adapters.redis.wire``)."""
        return self.factor_returns is not None or bool(self.alerts)


class MarketSource(Protocol):
    """Closed cross-sections, in bar-time order."""

    def cross_sections(self) -> AsyncIterator[CrossSection]: ...


class FeedCounters(Protocol):
    """The counters of a live feed the telemetry carries over to Prometheus."""

    @property
    def reconnects(self) -> int: ...

    @property
    def rest_fallbacks(self) -> int: ...

    @property
    def subscriptions_refused(self) -> int: ...

    @property
    def task_restarts(self) -> int: ...


class LiveSource(MarketSource, Protocol):
    """A market source reading a live exchange: what the composition root and the
    telemetry ask of it besides its cross-sections."""

    @property
    def gate(self) -> CandleGate:
        """Its integrity gate: its counters and the universe's members."""
        ...

    @property
    def stats(self) -> FeedCounters: ...

    @property
    def clock_rate(self) -> float:
        """Exchange seconds per wall second (an accelerated embedded exchange)."""
        ...

    @property
    def exchange_errors(self) -> Mapping[str, int]:
        """Failed calls to the exchange, by type."""
        ...

    def exchange_now_ms(self) -> int:
        """The exchange's time now, in ms."""
        ...

    def degraded(self) -> str | None:
        """Why the feed does not run as configured, or None."""
        ...

    async def aclose(self) -> None: ...


class Readiness(Protocol):
    """What ``/readyz`` asks: ready or not, and why."""

    def readiness(self) -> tuple[bool, dict[str, Any]]: ...


class SignalSink(Protocol):
    """Takes each cross-section's publication; may buffer, must not lose.  An
    outage is not an error: ``publish`` keeps what it cannot deliver, and counts
    whatever it cannot keep."""

    async def publish(self, publication: Publication) -> None: ...

    async def flush(self) -> None: ...

"""What every part of the live source shares: its settings (:class:`FeedTiming`),
its counters (:class:`FeedStats`) and the exchange's clock (:class:`ExchangeClock`).

Exchange time may run faster than wall time (the embedded exchange's accelerated
clock): ``clock_rate`` is exchange seconds per wall second, and every duration of
the feed (grace, staleness, polling) is in exchange seconds; the clock turns them
into the wall seconds ``asyncio.sleep`` and ``time.monotonic`` count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from factorcast.adapters.exchange.client import ExchangeClient


@dataclass(slots=True)
class FeedStats:
    """The feed's counters (the telemetry carries them over to Prometheus)."""

    reconnects: int = 0
    rest_fallbacks: int = 0
    rest_checks: int = 0
    ws_updates: int = 0
    stale_symbols: set[int] = field(default_factory=set)
    #: SUBSCRIBE requests the exchange answered with an error
    subscriptions_refused: int = 0
    #: feed tasks that ended unexpectedly and were started again
    task_restarts: int = 0
    #: short-lived feed tasks (REST fetches, reconnects) that failed unexpectedly
    task_failures: int = 0
    #: times the queue of released cross-sections was found full: the engine is behind
    #: and the gate keeps what is ready until there is room (nothing is dropped)
    queue_full: int = 0


@dataclass(frozen=True, slots=True)
class FeedTiming:
    """Durations in exchange seconds (see ``clock_rate``)."""

    grace_s: float = 10.0
    stale_after_s: float = 90.0
    clock_rate: float = 1.0  # exchange seconds per wall second
    #: wall-time floors: an accelerated clock must not turn scheduling noise into late bars
    min_grace_wall_s: float = 0.25
    min_stale_wall_s: float = 1.0
    tick_s: float = 0.02  # wall seconds between deadline/watchdog checks
    #: REST mode: wall seconds between polls; None polls at each bar boundary
    poll_interval_s: float | None = None
    #: a member without a bar for this long leaves the universe; None: three bars
    delist_after_s: float | None = None
    #: reload the exchange's markets (listings, statuses) this often; None: never
    refresh_s: float | None = None
    min_refresh_wall_s: float = 5.0

    def wall(self, exchange_s: float) -> float:
        """``exchange_s`` exchange seconds in wall seconds."""
        return exchange_s / self.clock_rate

    def grace_wall_s(self) -> float:
        return max(self.wall(self.grace_s), self.min_grace_wall_s)

    def stale_wall_s(self) -> float:
        return max(self.wall(self.stale_after_s), self.min_stale_wall_s)


class ExchangeClock:
    """The exchange's time, from its last answer to ``fetch_time`` and the wall
    time since, at ``clock_rate``."""

    def __init__(self, client: ExchangeClient, clock_rate: float) -> None:
        self.client = client
        self.clock_rate = clock_rate
        self._sync = (0, time.monotonic())  # (exchange ms, wall) of the last sync

    def now_ms(self) -> int:
        server, wall = self._sync
        return int(server + (time.monotonic() - wall) * 1000 * self.clock_rate)

    async def sync(self, attempts: int | None = 3) -> int:
        """Ask the exchange for its time (``attempts=None``: until it answers)."""
        now = await self.client.fetch_time(attempts=attempts)
        self._sync = (now, time.monotonic())
        return now

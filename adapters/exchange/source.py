"""Live candles through ccxt: REST polling or ccxt.pro websockets, into the gate.

:class:`CcxtSource` is a :class:`strategy.ports.LiveSource`: closed cross-sections,
in bar-time order, from a live exchange.  It is the source proper, and the place
where its parts meet:

* **Warm-up** (here): before the first live bar, REST backfills the history the
  longest factor window needs, so exposures exist from the first live bar.  That
  history is yielded as it comes, not through the queue below.
* **The gate and the queue** (:mod:`.intake`): every candle is offered to the
  integrity gate (``strategy.gate``), and released cross-sections wait for the
  consumer in a queue of ``queue_bars`` cross-sections.  When it is full, the
  gate keeps what is ready until there is room: nothing is dropped, the order is
  kept, and the episode is counted (``FeedStats.queue_full``) and logged once
  (``source_queue_full``).  A full queue means the engine is behind: the consumer
  only moves cross-sections onto the pipeline's own bounded queue.
* **Deadlines** (here): a cross-section still waiting for some symbols is checked
  against REST after half the grace period (or as soon as another symbol moved a
  whole bar past it, or as soon as it waits only for symbols whose stream showed
  nothing of its bar): a bar REST has is taken, a bar the exchange confirms absent
  is missing.  At the grace deadline the remaining symbols are ``late``.  A stall
  of the process itself is discounted from the deadlines' and the watchdog's clocks.
* ``ws`` mode (:mod:`.websocket`): ccxt.pro, every symbol subscribed on one
  connection; a per-symbol staleness watchdog (:mod:`.watchdog`) polls REST for
  symbols whose websocket went silent, and a dropped websocket reconnects with
  backoff, the gap it leaves backfilled.
* ``rest`` mode and everything REST does in ``ws`` mode (:mod:`.rest`): polling,
  catch-ups, late bars, backfills.
* The universe (:mod:`.membership`, :mod:`.listings`): a fixed list of slots, a
  symbol waited for while it trades.

Why separate parts and not one object: each part keeps its own state (the intake
what was offered, the websocket side what the streams told, the REST side what
is being fetched, the membership who left and why), and what it needs of the
others is passed to it, so each module can be read alone and the modules import
one another in one direction only (feed, tasks, watchdog -> intake, listings ->
rest -> membership -> websocket -> source).  Where a lower part has to tell a
higher one something (a gap to backfill, markets reloaded), the source hands it a
callable.  Every task
any part starts belongs to one owner (:mod:`.tasks`), named, and none outlives
the source.

Exchange time may run faster than wall time (the embedded exchange's
accelerated clock): ``clock_rate`` is exchange seconds per wall second, and every
duration here (grace, staleness, polling) is in exchange seconds (:mod:`.feed`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import ccxt
import structlog

from factorcast.adapters.exchange.client import ExchangeClient
from factorcast.adapters.exchange.feed import ExchangeClock, FeedStats, FeedTiming
from factorcast.adapters.exchange.intake import Intake
from factorcast.adapters.exchange.listings import Listings
from factorcast.adapters.exchange.membership import Membership
from factorcast.adapters.exchange.rest import RestFeed
from factorcast.adapters.exchange.tasks import FeedTasks
from factorcast.adapters.exchange.watchdog import Watchdog
from factorcast.adapters.exchange.websocket import WsFeed, pro_client
from factorcast.strategy.events import CrossSection
from factorcast.strategy.gate import CandleGate, Gap
from factorcast.strategy.timeframes import timeframe_ms

log = structlog.get_logger(__name__)

__all__ = ["QUEUE_BARS", "CcxtSource", "FeedStats", "FeedTiming", "pro_client"]

#: released cross-sections the queue holds (a few bars beyond what one release
#: brings in steady state); the warm-up's history does not pass through it
QUEUE_BARS = 8
#: a deadline tick this much later than due means the process itself stood still
_OWN_STALL_S = 0.2


class CcxtSource:
    """A :class:`strategy.ports.LiveSource` over a live exchange."""

    def __init__(
        self,
        client: ExchangeClient,
        symbols: Sequence[str],
        timeframe: str,
        *,
        history_bars: int,
        mode: str = "ws",
        pro: Any = None,
        timing: FeedTiming | None = None,
        resume_from: int | None = None,
        queue_bars: int = QUEUE_BARS,
    ) -> None:
        """``resume_from``: the first bar to release as live, when it is earlier than
        the bar forming at the start (a service that follows a new universe from
        the bar after the last one it published); the warm-up history ends there.
        ``queue_bars``: the released cross-sections waiting for the consumer, at most."""
        if mode not in ("ws", "rest"):
            raise ValueError("mode must be 'ws' or 'rest'")
        if mode == "ws" and pro is None:
            raise ValueError("ws mode needs a ccxt.pro client")
        self.client = client
        self.pro = pro
        self.symbols = tuple(symbols)
        self.timeframe = timeframe
        self.tf = tf = timeframe_ms(timeframe)
        self.history_bars = history_bars
        self.resume_from = resume_from
        self.mode = mode
        self.timing = timing = timing or FeedTiming()
        self.stats = stats = FeedStats()
        self.clock = clock = ExchangeClock(client, timing.clock_rate)
        self.gate = CandleGate(self.symbols, tf)
        self.intake = intake = Intake(
            self.gate,
            stats,
            bound=queue_bars,
            on_stranger=self._stranger,
            on_gap=self._gap,
            on_late=self._late,
            on_released=self._released,
        )
        self.tasks = tasks = FeedTasks(stats, on_give_up=intake.fail)
        self.watchdog = watchdog = Watchdog(self.symbols, stats)
        self.listings = listings = Listings(
            client, self.symbols, clock, timing, tasks, on_loaded=self._markets_loaded
        )
        self.rest = rest = RestFeed(
            client,
            timeframe,
            tf,
            timing,
            clock=clock,
            intake=intake,
            listings=listings,
            watchdog=watchdog,
            tasks=tasks,
        )
        self.membership = membership = Membership(
            tf,
            timing,
            intake=intake,
            listings=listings,
            rest=rest,
            watchdog=watchdog,
            tasks=tasks,
        )
        self.ws: WsFeed | None = None  # the websocket side (``ws`` mode)
        if mode == "ws":
            self.ws = WsFeed(
                client,
                pro,
                timeframe,
                tf,
                timing,
                stats=stats,
                intake=intake,
                membership=membership,
                rest=rest,
                watchdog=watchdog,
                tasks=tasks,
            )

    # -- what the root and the telemetry read ----------------------------------------
    def exchange_now_ms(self) -> int:
        return self.clock.now_ms()

    @property
    def clock_rate(self) -> float:
        """Exchange seconds per wall second."""
        return self.timing.clock_rate

    @property
    def exchange_errors(self) -> Mapping[str, int]:
        """Failed calls to the exchange (REST and websocket), by type."""
        return self.client.errors

    @property
    def client_description(self) -> str:
        """The client library and how it reads the exchange, for the start-up log."""
        how = "ccxt.pro websockets" if self.mode == "ws" else "REST polling"
        return f"ccxt {ccxt.__version__} ({how})"

    def degraded(self) -> str | None:
        """Why the feed is not running as configured, or None: the websocket is
        down, the exchange refused a subscription, or symbols are on the REST
        fallback (``/readyz`` reports it)."""
        why = self.ws.degraded() if self.ws is not None else None
        if why is not None:
            return why
        if self.stats.stale_symbols:
            return f"REST fallback for {len(self.stats.stale_symbols)} silent symbols"
        return None

    # -- the source ------------------------------------------------------------------
    async def cross_sections(self) -> AsyncIterator[CrossSection]:
        for xs in await self._warmup():
            yield xs
        self.membership.live = True
        log.info(
            "feed_live",
            mode=self.mode,
            live_from=self.intake.live_from,
            symbols=len(self.symbols),
            members=len(self.symbols) - len(self.membership.left),
        )
        tasks = self.tasks
        if self.ws is not None:
            await self.ws.start()
        else:
            tasks.supervise("rest-poll", self.rest.poll)
        tasks.supervise("deadlines", self._supervise)
        if (
            self.timing.refresh_s is not None
            and self.ws is not None  # REST: in each poll round, when due
            and not self.ws.streams_tell_listings  # Binance: the streams tell
        ):
            tasks.supervise("markets", self.listings.keep_fresh)
        try:
            while True:
                yield await self.intake.get()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop every task of the source (also those a part started last)."""
        await self.tasks.close()

    # -- warm-up -----------------------------------------------------------------------
    async def _warmup(self) -> list[CrossSection]:
        now = await self.clock.sync(attempts=None)
        self.listings.loaded_at = now  # the markets were just loaded (the universe came from them)
        tf = self.tf
        forming = now - now % tf
        live_from = forming if self.resume_from is None else min(forming, self.resume_from)
        since = live_from - self.history_bars * tf
        sem = asyncio.Semaphore(8)

        async def history(i: int, symbol: str) -> None:
            async with sem:
                rows = await self.rest.fetch_range(symbol, since, forming)
            self.intake.take(i, rows, until=forming, backfill=False)

        async with asyncio.TaskGroup() as tg:
            for i, symbol in enumerate(self.symbols):
                if self.listings.known(i):
                    tg.create_task(history(i, symbol), name=f"feed-history:{symbol}")
        self.intake.live_from = live_from
        self.gate.start(since)
        for i in range(len(self.symbols)):
            # the history is all the exchange has before the forming bar
            self.gate.mark_absent(i, forming - tf)
        self.membership.after_warm_up(forming)
        out = self.gate.release()
        log.info(
            "feed_warmed_up",
            cross_sections=len(out),
            bars=sum(int(x.present.sum()) for x in out),
            since=since,
            live_from=live_from,
        )
        return [x if x.ts >= live_from else replace(x, live=False) for x in out]

    # -- deadlines and the watchdog's tick ------------------------------------------------
    async def _supervise(self) -> None:
        """Deadlines of the next cross-section, and the staleness watchdog."""
        t = self.timing
        last = time.monotonic()
        while True:
            await asyncio.sleep(t.tick_s)
            now = time.monotonic()
            stalled = now - last - t.tick_s
            last = now
            if stalled > _OWN_STALL_S:
                self._discount_own_stall(stalled)
                continue  # let the reader take what came meanwhile before judging
            self._check_deadline()
            if self.ws is not None:
                self.ws.check_stale()

    def _discount_own_stall(self, seconds: float) -> None:
        """This process did not run for ``seconds`` (the host paused it, a collection,
        a blocking call): whatever the exchange sent meanwhile waits unread in the
        socket.  Silence and waiting are measured while the service was listening,
        so the clocks of the watchdog and of the deadlines move on by the stall:
        otherwise a healthy connection is dropped, and bars on their way go late."""
        log.warning("service_stalled", seconds=round(seconds, 3))
        self.watchdog.discount(seconds)
        self.intake.discount(seconds)

    def _check_deadline(self) -> None:
        gate, intake, rest = self.gate, self.intake, self.rest
        ts = gate.next_ts
        if ts is None or ts not in intake.first_seen:
            return
        pending = gate.pending_symbols()
        if not pending:
            return
        waited = time.monotonic() - intake.first_seen[ts]
        grace = self.timing.grace_wall_s()
        moved_on = (ts + self.tf) in intake.first_seen
        # the stream announced the bar, and only symbols that showed nothing of it are
        # missing from it: their bars are not on the way, ask REST now
        silent = self.ws is not None and self.ws.showed_nothing_of(ts, pending)
        if ts not in intake.checked and (waited >= grace / 2 or moved_on or silent):
            intake.checked.add(ts)
            self.stats.rest_checks += 1
            for i in pending:
                if not rest.fetching[i]:
                    rest.catch_up_soon(i)
        elif waited >= grace:
            # A symbol is late when the exchange did not have its bar, not when its
            # REST answer is still on the way (a rate-limited poll round over a large
            # universe takes longer than the grace period): wait for the answers, up
            # to a hard limit for an exchange that stopped answering.
            hard = max(10 * grace, self.timing.wall(3 * self.tf / 1000))
            if waited < hard and any(rest.fetching[i] for i in pending):
                return
            intake.release(deadline_passed=True)

    # -- what the intake and the listings tell the parts above them --------------------
    def _stranger(self, i: int) -> None:
        self.membership.stranger(i)

    def _gap(self, gap: Gap) -> None:
        self.rest.backfill_soon(gap)

    def _late(self, i: int, ts: int) -> None:
        self.rest.recover_late_soon(i, ts)

    def _released(self, ts: int) -> bool:
        return self.membership.expire(ts)

    async def _markets_loaded(self, new_markets: bool) -> None:
        if self.ws is not None:
            await self.ws.markets_loaded(new_markets)
        self.membership.markets_loaded()

"""The REST side of the live source: ``fetch_ohlcv`` for whatever the websocket
did not bring, and for everything in REST mode.

* **Catch-up** (:meth:`RestFeed.catch_up`): a symbol's closed candles since its
  last one.  Asked after a reconnect, by the staleness watchdog, by the deadlines
  (half the grace period), when a symbol joins the universe, and when a kline
  stream shows a bar whose closing event never came.  Bars the exchange moved
  past without returning do not exist: they are marked absent at once.
* **Polling** (:meth:`RestFeed.poll`, REST mode): every symbol at each bar
  boundary (or every ``poll_interval_s``), the round released together.
* **Late bars** (:meth:`RestFeed.recover_late`): a symbol released late is asked
  for its bar every grace period until the gate takes it in or can no longer use it.
* **Backfills** (:meth:`RestFeed.backfill`): the bars of a gap the gate opened.

Every answer goes into the gate through the intake (:mod:`.intake`).
:attr:`RestFeed.fetching` counts the requests under way per symbol: the deadlines
wait for an answer on its way rather than call its symbol late.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from factorcast.adapters.exchange.client import ExchangeClient, FeedError, FeedUnavailable
from factorcast.adapters.exchange.feed import ExchangeClock, FeedTiming
from factorcast.adapters.exchange.intake import Intake
from factorcast.adapters.exchange.listings import Listings
from factorcast.adapters.exchange.tasks import FeedTasks
from factorcast.adapters.exchange.watchdog import Watchdog
from factorcast.strategy.gate import Gap

log = structlog.get_logger(__name__)


class RestFeed:
    """REST requests of one universe's candles, into the intake."""

    def __init__(
        self,
        client: ExchangeClient,
        timeframe: str,
        tf: int,
        timing: FeedTiming,
        *,
        clock: ExchangeClock,
        intake: Intake,
        listings: Listings,
        watchdog: Watchdog,
        tasks: FeedTasks,
    ) -> None:
        self.client = client
        self.timeframe = timeframe
        self.tf = tf
        self.timing = timing
        self.clock = clock
        self.intake = intake
        self.gate = intake.gate
        self.symbols = intake.symbols
        self.listings = listings
        self.watchdog = watchdog
        self.tasks = tasks
        self.fetching = [0] * len(self.symbols)  # REST requests of each symbol under way

    async def fetch_range(self, symbol: str, since: int, until: int) -> list[list[Any]]:
        """Candles with ``since <= ts < until``, paging forward (1000 rows a page)."""
        rows: list[list[Any]] = []
        cursor = since
        while cursor < until:
            page = await self.client.fetch_ohlcv(
                symbol, self.timeframe, cursor, 1000, attempts=None
            )
            page = [r for r in page if isinstance(r[0], int) and cursor <= r[0] < until]
            if not page:
                break
            rows.extend(page)
            cursor = page[-1][0] + self.tf
        return rows

    async def _market_loaded(self, i: int) -> bool:
        """ccxt asks REST only about markets it has loaded: a member that joined by
        its stream before the markets listed it waits for them to be loaded again."""
        if not self.listings.known(i) and self.gate.is_member(i):
            await self.listings.reload()
        return self.listings.known(i)

    # -- catch-up ---------------------------------------------------------------------
    def catch_up_soon(self, i: int) -> None:
        self.tasks.spawn(f"catch-up:{self.symbols[i]}", self.catch_up(i))

    async def catch_up(self, i: int) -> None:
        """Closed candles of symbol ``i`` since its last one, through REST."""
        self.fetching[i] += 1
        try:
            if not await self._market_loaded(i):
                return  # not listed (yet)
            last = max(self.intake.offered[i], self.gate.last_ts(i))
            if last < 0:  # no bar yet: from the next cross-section
                last = (self.gate.next_ts or self.intake.live_from) - self.tf
            since = last + self.tf
            now = await self.clock.sync()
            rows = await self.client.fetch_ohlcv(self.symbols[i], self.timeframe, since, 1000)
        except (FeedUnavailable, FeedError) as e:
            log.warning("feed_rest_failed", symbol=self.symbols[i], error=str(e))
            return
        finally:
            self.fetching[i] -= 1
        forming = now - now % self.tf
        good = [r for r in rows if isinstance(r[0], int)]
        self.intake.take(i, good, until=forming)
        # the exchange has moved past bars it did not return: they do not exist
        self._confirm_absent(i, {r[0] for r in good}, since, forming)
        self.intake.release()

    def _confirm_absent(self, i: int, have: set[int], since: int, forming: int) -> None:
        gate = self.gate
        ts = since
        while ts < forming and ts < (gate.next_ts or ts) + 4 * self.tf:
            if ts not in have and ts > gate.last_ts(i):
                gate.mark_absent(i, ts)
                # news of it: its websocket is quiet because it has no bars, not
                # because the websocket failed (the watchdog leaves it alone)
                self.watchdog.explained(i)
            ts += self.tf

    # -- polling (REST mode) --------------------------------------------------------
    async def poll(self) -> None:
        while True:
            try:
                now = await self.clock.sync()
            except (FeedUnavailable, FeedError) as e:
                log.warning("feed_rest_failed", error=str(e))
                await asyncio.sleep(self.timing.wall(self.tf / 4000))
                continue
            next_close = now - now % self.tf + self.tf
            if self.listings.due(now):
                # in the round, so that a symbol listed since the last one is asked for
                await self.listings.reload()
            # A round goes out whole: symbols outside the universe are asked for too, and
            # one that trades again joins the cross-section its bar belongs to.
            with self.intake.holding():
                async with asyncio.TaskGroup() as round_:
                    for i, symbol in enumerate(self.symbols):
                        round_.create_task(self.catch_up(i), name=f"feed-poll:{symbol}")
            self.intake.release()
            if self.timing.poll_interval_s is not None:
                await asyncio.sleep(self.timing.poll_interval_s)
                continue
            wait_ms = next_close - self.clock.now_ms() + 0.02 * self.tf
            await asyncio.sleep(max(self.timing.wall(wait_ms / 1000), 0.0))

    # -- late bars and gaps ---------------------------------------------------------
    def recover_late_soon(self, i: int, ts: int) -> None:
        self.tasks.spawn(f"late-bar:{self.symbols[i]}:{ts}", self.recover_late(i, ts))

    async def recover_late(self, i: int, ts: int) -> None:
        """Symbol ``i`` went out late at ``ts``: its bar may still exist (a closing
        kline lost on the way, an exchange slow to close the bar), and the gate takes
        it in for the next cross-section while it is recent enough to amend the
        windows with.  Its websocket will not bring it again, so REST is asked, every
        grace period, until the bar is taken in, the exchange shows it has none (it
        returns later bars but not this one), or the gate can no longer use it."""
        symbol = self.symbols[i]
        pause = self.timing.grace_wall_s()
        while self.gate.awaits_late(i, ts):
            await asyncio.sleep(pause)
            if not self.gate.awaits_late(i, ts):
                return
            try:
                rows = await self.client.fetch_ohlcv(symbol, self.timeframe, ts, 2)
            except (FeedUnavailable, FeedError) as e:
                log.warning("feed_rest_failed", symbol=symbol, error=str(e))
                continue
            for row in rows:
                if row[0] == ts:
                    self.intake.offer(i, ts, row[1:])
                    return
            if any(isinstance(row[0], int) and row[0] > ts for row in rows):
                self.gate.mark_absent(i, ts)  # the exchange moved past it without a bar
                return

    def backfill_soon(self, gap: Gap) -> None:
        self.tasks.spawn(f"backfill:{self.symbols[gap.symbol]}", self.backfill(gap))

    async def backfill(self, gap: Gap) -> None:
        symbol = self.symbols[gap.symbol]
        log.info("feed_gap", symbol=symbol, start=gap.start, end=gap.end)
        self.fetching[gap.symbol] += 1  # the deadline waits for the answer too
        try:
            await self._market_loaded(gap.symbol)
            rows = await self.fetch_range(symbol, gap.start, gap.end + self.tf)
        except (FeedUnavailable, FeedError) as e:
            log.warning("feed_backfill_failed", symbol=symbol, error=str(e))
            self.gate.cancel_gap(gap.symbol)
        else:
            self.gate.backfilled(gap.symbol, rows)
            log.info("feed_backfilled", symbol=symbol, bars=len(rows))
        finally:
            self.fetching[gap.symbol] -= 1
        self.intake.release()

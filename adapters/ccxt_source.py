"""Live candles through ccxt: REST polling or ccxt.pro websockets, into the gate.

* Warm-up: before the first live bar, REST backfills the history the longest
  factor window needs, so exposures exist from the first live bar.
* ``ws`` mode: ccxt.pro, every symbol subscribed on one connection.  Binance's
  kline events are read directly (:mod:`adapters.binance_klines`): the event
  that closes a bar is offered at once, and a bar whose closing event never came
  is fetched through REST.  Elsewhere candles are taken from ccxt's
  cache as its message handler stores them, and a candle counts as closed when
  the symbol's next candle starts.
* ``rest`` mode: ``fetch_ohlcv`` per symbol at each bar boundary; closed candles
  only (a later candle exists, or the bar has ended by the exchange's clock).
* A per-symbol staleness watchdog polls REST for symbols whose websocket went
  silent (the automatic REST fallback); a dropped websocket reconnects with
  backoff, and the gap it leaves is backfilled.
* A cross-section still waiting for some symbols is checked against REST after
  half the grace period (or as soon as another symbol moved a whole bar past
  it): a bar REST has is taken, a bar the exchange confirms absent is missing.
  At the grace deadline the remaining symbols are ``late``.

Exchange time may run faster than wall time (the embedded exchange's
accelerated clock): ``clock_rate`` is exchange seconds per wall second, and every
duration here (grace, staleness, polling) is in exchange seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import ccxt
import ccxt.pro
import structlog
from ccxt.async_support.base.ws.cache import ArrayCacheByTimestamp

from adapters.binance_klines import BinanceKlines
from adapters.exchange import ExchangeClient, FeedError, FeedUnavailable
from adapters.gate import ACCEPTED, DUPLICATE, TOO_LATE, CandleGate, Gap
from strategy.events import CrossSection

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class FeedStats:
    reconnects: int = 0
    rest_fallbacks: int = 0
    rest_checks: int = 0
    ws_updates: int = 0
    stale_symbols: set[int] = field(default_factory=set)
    #: SUBSCRIBE requests the exchange answered with an error
    subscriptions_refused: int = 0
    #: feed tasks that ended unexpectedly and were started again
    task_restarts: int = 0


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


class CcxtSource:
    """A :class:`strategy.ports.MarketSource` over a live exchange."""

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
    ) -> None:
        if mode not in ("ws", "rest"):
            raise ValueError("mode must be 'ws' or 'rest'")
        if mode == "ws" and pro is None:
            raise ValueError("ws mode needs a ccxt.pro client")
        if pro is not None and not pro.markets and client.rest.markets:
            pro.set_markets(client.rest.markets)  # one load_markets, not two
        self.client = client
        self.pro = pro
        self.symbols = tuple(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.timeframe = timeframe
        self.tf = int(client.rest.parse_timeframe(timeframe) * 1000)
        self.history_bars = history_bars
        self.mode = mode
        self.timing = timing or FeedTiming()
        self.gate = CandleGate(self.symbols, self.tf)
        self.stats = FeedStats()
        n = len(self.symbols)
        self._offered = [-1] * n  # newest bar time handed to the gate, per symbol
        #: wall time of the last websocket update, or of the (re)subscription: the
        #: watchdog measures silence only from when a symbol was live on the websocket
        self._heard = [math.inf] * n
        self._ws_up = False  # the websocket carried an update since it last failed
        self._refused: tuple[str, ...] = ()  # streams of the last refused SUBSCRIBE
        self._failure: BaseException | None = None  # a feed task that cannot go on
        self._ws_newest = [-1] * n  # bar time of the newest candle the websocket brought
        self._ws_distrust = [-1] * n  # cached candles up to here predate a reconnect
        self._per_symbol_watches = False
        self._live_from = 0
        self._out: asyncio.Queue[CrossSection | None] = asyncio.Queue()
        self._sync = (0, time.monotonic())  # (exchange ms, wall) of the last clock sync
        self._first_seen: dict[int, float] = {}  # bar time -> wall time it first closed
        self._checked: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetching = [0] * n  # REST catch-ups of each symbol under way

    # -- time ---------------------------------------------------------------
    def exchange_now_ms(self) -> int:
        server, wall = self._sync
        return int(server + (time.monotonic() - wall) * 1000 * self.timing.clock_rate)

    async def _sync_clock(self) -> int:
        now = await self.client.fetch_time()
        self._sync = (now, time.monotonic())
        return now

    def _wall(self, exchange_s: float) -> float:
        return exchange_s / self.timing.clock_rate

    # -- the source ----------------------------------------------------------
    async def cross_sections(self) -> AsyncIterator[CrossSection]:
        for xs in await self._warmup():
            yield xs
        log.info("feed_live", mode=self.mode, live_from=self._live_from, symbols=len(self.symbols))
        if self.mode == "ws":
            self._install_caches()
            await self._subscribe_all()
            self._spawn_supervised("websocket", self._watch_connection)
        else:
            self._spawn_supervised("rest-poll", self._poll)
        self._spawn_supervised("deadlines", self._supervise)
        try:
            while True:
                item = await self._out.get()
                if item is None:
                    assert self._failure is not None
                    raise FeedError(f"live feed stopped: {self._failure}") from self._failure
                yield item
        finally:
            await self.aclose()

    def degraded(self) -> str | None:
        """Why the feed is not running as configured, or None: the websocket is
        down, the exchange refused a subscription, or symbols are on the REST
        fallback (``/readyz`` reports it)."""
        if self._refused:
            return f"subscription refused for {len(self._refused)} streams"
        if self.mode == "ws" and not self._ws_up and self._live_from:
            return "websocket down"
        if self.stats.stale_symbols:
            return f"REST fallback for {len(self.stats.stale_symbols)} silent symbols"
        return None

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("feed_task_failed", task=task.get_name(), error=repr(task.exception()))

    def _spawn_supervised(self, name: str, run: Callable[[], Any]) -> None:
        """Run a long-lived feed task that must never end: one that returns or
        fails (also by a CancelledError that did not come from :meth:`aclose`, as
        ccxt raises when it closes a client under a pending watch) is logged and
        started again; past ``_MAX_RESTARTS`` in a row the feed stops loudly
        (``cross_sections`` raises FeedError)."""

        async def supervise() -> None:
            restarts = 0
            while True:
                started = time.monotonic()
                try:
                    await run()
                    error = "returned"
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # aclose: the feed is stopping
                    error = "CancelledError"
                except Exception as e:
                    error = repr(e)
                if time.monotonic() - started > _STABLE_S:
                    restarts = 0
                restarts += 1
                self.stats.task_restarts += 1
                if restarts > _MAX_RESTARTS:
                    log.error("feed_task_gave_up", task=name, error=error, restarts=restarts)
                    self._failure = FeedUnavailable(f"feed task {name!r} keeps failing: {error}")
                    self._out.put_nowait(None)
                    return
                log.error("feed_task_restarted", task=name, error=error, restarts=restarts)
                await asyncio.sleep(min(0.05 * 2**restarts, 5.0))

        task = asyncio.get_running_loop().create_task(supervise(), name=f"feed-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    # -- warm-up ---------------------------------------------------------------
    async def _warmup(self) -> list[CrossSection]:
        now = await self.client.fetch_time(attempts=None)
        self._sync = (now, time.monotonic())
        forming = now - now % self.tf
        since = forming - self.history_bars * self.tf
        sem = asyncio.Semaphore(8)

        async def history(symbol: str) -> None:
            async with sem:
                rows = await self._fetch_range(symbol, since, forming)
            self._take(self.index[symbol], rows, until=forming, backfill=False)

        async with asyncio.TaskGroup() as tg:
            for symbol in self.symbols:
                tg.create_task(history(symbol))
        self._live_from = forming
        self.gate.start(since)
        out = self.gate.release()
        log.info(
            "feed_warmed_up",
            cross_sections=len(out),
            bars=sum(int(x.present.sum()) for x in out),
            since=since,
            live_from=forming,
        )
        return [replace(x, live=False) for x in out]

    async def _fetch_range(self, symbol: str, since: int, until: int) -> list[list[Any]]:
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

    # -- candles into the gate ---------------------------------------------------
    def _take(
        self, i: int, rows: Sequence[Sequence[Any]], *, until: int, backfill: bool = True
    ) -> None:
        """Offer symbol ``i``'s candles that are closed: bar time < ``until``.  A gap
        they open is backfilled through REST, unless ``backfill`` is off because
        ``rows`` already are everything the exchange has (then the gap's bars do not
        exist)."""
        for row in sorted(rows, key=lambda r: r[0] if isinstance(r[0], int) else -1):
            ts = row[0]
            if isinstance(ts, int) and (ts >= until or ts <= self._offered[i]):
                continue
            self._offer(i, ts, row[1:], backfill=backfill)

    def _offer(self, i: int, ts: Any, values: Sequence[Any], *, backfill: bool = True) -> None:
        outcome, gap = self.gate.offer(i, ts, values)
        if outcome in (ACCEPTED, DUPLICATE):
            self._offered[i] = max(self._offered[i], int(ts))
            self._first_seen.setdefault(int(ts), time.monotonic())
        elif outcome == TOO_LATE:
            self._offered[i] = max(self._offered[i], int(ts))
            log.info("bar_too_late", symbol=self.symbols[i], ts=ts)
        else:
            log.warning("bar_rejected", symbol=self.symbols[i], ts=ts, reason=outcome)
        if gap is not None and backfill:
            self._spawn(self._backfill(gap))
        elif gap is not None:
            self.gate.backfilled(i, [])

    def _release(self, *, deadline_passed: bool = False) -> None:
        for xs in self.gate.release(deadline_passed=deadline_passed):
            if xs.late.any():
                late = [self.symbols[i] for i in xs.late.nonzero()[0]]
                log.warning("cross_section_late", ts=xs.ts, count=len(late), symbols=late)
                for i in xs.late.nonzero()[0]:
                    self._spawn(self._recover_late(int(i), xs.ts))
            self._first_seen.pop(xs.ts, None)
            self._checked.discard(xs.ts)
            self._out.put_nowait(xs if xs.ts >= self._live_from else replace(xs, live=False))

    async def _recover_late(self, i: int, ts: int) -> None:
        """Symbol ``i`` went out late at ``ts``: its bar may still exist (a closing
        kline lost on the way, an exchange slow to close the bar), and the gate takes
        it in for the next cross-section while it is recent enough to amend the
        windows with.  Its websocket will not bring it again, so REST is asked, every
        grace period, until the bar is taken in, the exchange shows it has none (it
        returns later bars but not this one), or the gate can no longer use it."""
        symbol = self.symbols[i]
        pause = max(self._wall(self.timing.grace_s), self.timing.min_grace_wall_s)
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
                    self._offer(i, ts, row[1:])
                    return
            if any(isinstance(row[0], int) and row[0] > ts for row in rows):
                self.gate.mark_absent(i, ts)  # the exchange moved past it without a bar
                return

    async def _backfill(self, gap: Gap) -> None:
        symbol = self.symbols[gap.symbol]
        log.info("feed_gap", symbol=symbol, start=gap.start, end=gap.end)
        try:
            rows = await self._fetch_range(symbol, gap.start, gap.end + self.tf)
        except (FeedUnavailable, FeedError) as e:
            log.warning("feed_backfill_failed", symbol=symbol, error=str(e))
            self.gate.cancel_gap(gap.symbol)
        else:
            self.gate.backfilled(gap.symbol, rows)
            log.info("feed_backfilled", symbol=symbol, bars=len(rows))
        self._release()

    # -- websockets -------------------------------------------------------------
    async def _subscribe_all(self) -> None:
        """Subscribe every symbol in one message where the exchange allows it: ccxt
        registers the subscriptions at once, so the per-symbol watches that follow
        send nothing (one SUBSCRIBE each would be throttled to a few per second)."""
        if not self.pro.has.get("watchOHLCVForSymbols"):
            if not self._per_symbol_watches:  # one watch per symbol keeps each subscribed
                self._per_symbol_watches = True
                for symbol in self.symbols[1:]:
                    self._spawn(self._keep_watching(symbol))
            return
        pairs = [[s, self.timeframe] for s in self.symbols]

        async def subscribe() -> None:
            try:
                await self.pro.watch_ohlcv_for_symbols(pairs)
            except (ccxt.BadRequest, ccxt.ExchangeError) as e:
                if isinstance(e, ccxt.NetworkError):
                    return  # the connection failed: the connection watch reconnects
                self._refuse(e)
            except (ccxt.BaseError, *_WS_GARBAGE):
                return  # the connection failed: the connection watch reconnects

        self._spawn(subscribe())
        await asyncio.sleep(0)  # its first step registers the subscriptions
        now = time.monotonic()
        self._heard = [now] * len(self.symbols)  # live from here: silence counts from now

    def _refuse(self, error: Exception) -> None:
        """The exchange answered SUBSCRIBE with an error: logged once naming the
        streams, counted, and shown by ``/readyz`` until a later subscription is
        accepted.  The symbols are served by the REST fallback meanwhile."""
        streams = tuple(f"{s}@{self.timeframe}" for s in self.symbols)
        self.stats.subscriptions_refused += 1
        if streams != self._refused:
            log.error(
                "feed_subscription_refused",
                streams=len(streams),
                first=list(streams[:5]),
                error=str(error)[:300],
            )
        self._refused = streams
        self._spawn(self._reconnect_ws("subscription refused"))  # retried with backoff

    async def _keep_watching(self, symbol: str) -> None:
        while True:
            try:
                await self.pro.watch_ohlcv(symbol, self.timeframe)
            except (ccxt.BaseError, *_WS_GARBAGE):
                await asyncio.sleep(self.client.retry_delay(0))  # the sentinel reconnects

    def _install_caches(self) -> None:
        if isinstance(self.pro, BinanceKlines):
            self.pro.route_klines(self.symbols, self.timeframe, self._on_kline)
            return
        limit = int(self.pro.options.get("OHLCVLimit", 1000))
        for symbol in self.symbols:
            cache = _NotifyingCache(limit, functools.partial(self._on_ws, self.index[symbol]))
            self.pro.ohlcvs.setdefault(symbol, {})[self.timeframe] = cache

    async def _watch_connection(self) -> None:
        """Keep one watch pending: it is what fails when the connection drops (the
        candles themselves arrive through the caches or the kline route).  Then:
        reconnect with backoff, resubscribe everything in one message, REST-catch up
        every symbol."""
        sentinel = self.symbols[0]
        attempt = 0
        while True:
            updates = self.stats.ws_updates
            try:
                await self.pro.watch_ohlcv(sentinel, self.timeframe)
                attempt = 0
            except (ccxt.OperationFailed, ccxt.ExchangeError, *_WS_GARBAGE) as e:
                self._ws_up = False
                if self.stats.ws_updates > updates:
                    attempt = 0  # the connection carried candles: not a failed reconnect
                self._distrust_cache(self.symbols)
                self.client.count_error(e)
                self.stats.reconnects += 1
                delay = self.client.retry_delay(attempt)
                attempt += 1
                log.warning(
                    "feed_disconnected",
                    error=type(e).__name__,
                    detail=str(e)[:200],
                    retry_in_s=round(delay, 3),
                )
                await asyncio.sleep(delay)
                await self._subscribe_all()
                for i in range(len(self.symbols)):
                    self._spawn(self._rest_catch_up(i))

    def _distrust_cache(self, symbols: Sequence[str]) -> None:
        """After a disconnect, a cached candle may hold an early snapshot of its bar
        (its closing update was lost): those bars come from REST, never the cache."""
        for symbol in symbols:
            i = self.index[symbol]
            cache = self.pro.ohlcvs.get(symbol, {}).get(self.timeframe)
            if cache:
                self._ws_distrust[i] = max(self._ws_distrust[i], int(cache[-1][0]))

    async def _reconnect_ws(self, reason: str = "websocket silent") -> None:
        """Drop the silent connections as a network fault would: their pending
        watches fail with a NetworkError and the connection watch reconnects.
        (Closing the ccxt client instead would cancel those watches, and with them
        the task that reconnects.)"""
        log.warning("feed_reconnecting", reason=reason)
        self._ws_up = False
        for client in list(getattr(self.pro, "clients", {}).values()):
            with contextlib.suppress(Exception):
                client.on_error(ccxt.NetworkError(reason))

    def _hear(self, i: int) -> None:
        """The websocket brought an update of symbol ``i``."""
        self._heard[i] = time.monotonic()
        self._ws_up = True
        if self._refused:
            self._refused = ()
            log.info("feed_subscription_accepted", streams=len(self.symbols))
        self.stats.ws_updates += 1
        if self.stats.stale_symbols and i in self.stats.stale_symbols:
            self.stats.stale_symbols.discard(i)
            log.info("feed_resumed", symbol=self.symbols[i])

    def _on_ws(self, i: int, cache: Any) -> None:
        """ccxt stored an update of symbol ``i``'s candles (called from its message
        handler).  When a new candle has started, the ones before it are closed."""
        self._hear(i)
        newest = cache[-1][0]
        if newest <= self._ws_newest[i]:
            return  # an update of the candle still forming
        self._ws_newest[i] = newest
        floor = max(self._offered[i], self._ws_distrust[i])
        fresh = []
        for k in range(len(cache) - 2, -1, -1):
            row = cache[k]
            if row[0] <= floor:
                break
            fresh.append(row)
        if fresh:
            self._take(i, fresh, until=newest)
            self._release()

    def _on_kline(self, i: int, ts: int, closed: list[Any] | None) -> None:
        """A kline event of symbol ``i`` (:class:`BinanceKlines`), with the candle's
        values if the event closes the bar.  Every event carries the whole candle
        and Binance flags the one that closes the bar, so a closed candle is offered
        at once, also right after a reconnect; the other events only update a bar
        still forming.  When a later bar starts while the last one seen forming
        never closed, its closing event was lost and its last update may lack the
        final trades: the symbol catches up through REST."""
        self._hear(i)
        seen = self._ws_newest[i]
        if ts > seen:
            self._ws_newest[i] = ts
            if seen > self._offered[i]:
                self._spawn(self._rest_catch_up(i))
        if closed is not None and ts > self._offered[i]:
            self._offer(i, ts, closed)
            self._release()

    # -- REST polling, checks and the watchdog -------------------------------------
    async def _rest_catch_up(self, i: int) -> None:
        """Closed candles of symbol ``i`` since its last one, through REST."""
        since = max(self._offered[i], self.gate.last_ts(i)) + self.tf
        self._fetching[i] += 1
        try:
            now = await self._sync_clock()
            rows = await self.client.fetch_ohlcv(self.symbols[i], self.timeframe, since, 1000)
        except (FeedUnavailable, FeedError) as e:
            log.warning("feed_rest_failed", symbol=self.symbols[i], error=str(e))
            return
        finally:
            self._fetching[i] -= 1
        forming = now - now % self.tf
        good = [r for r in rows if isinstance(r[0], int)]
        self._take(i, good, until=forming)
        # the exchange has moved past bars it did not return: they do not exist
        self._confirm_absent(i, {r[0] for r in good}, since, forming)
        self._release()

    def _confirm_absent(self, i: int, have: set[int], since: int, forming: int) -> None:
        ts = since
        while ts < forming and ts < (self.gate.next_ts or ts) + 4 * self.tf:
            if ts not in have and ts > self.gate.last_ts(i):
                self.gate.mark_absent(i, ts)
            ts += self.tf

    async def _poll(self) -> None:
        while True:
            try:
                now = await self._sync_clock()
            except (FeedUnavailable, FeedError) as e:
                log.warning("feed_rest_failed", error=str(e))
                await asyncio.sleep(self._wall(self.tf / 4000))
                continue
            next_close = now - now % self.tf + self.tf
            await asyncio.gather(*(self._rest_catch_up(i) for i in range(len(self.symbols))))
            if self.timing.poll_interval_s is not None:
                await asyncio.sleep(self.timing.poll_interval_s)
                continue
            wait_ms = next_close - self.exchange_now_ms() + 0.02 * self.tf
            await asyncio.sleep(max(self._wall(wait_ms / 1000), 0.0))

    async def _supervise(self) -> None:
        """Deadlines of the next cross-section, and the staleness watchdog."""
        t = self.timing
        while True:
            await asyncio.sleep(t.tick_s)
            self._check_deadline()
            if self.mode == "ws":
                self._check_stale()

    def _check_deadline(self) -> None:
        ts = self.gate.next_ts
        if ts is None or ts not in self._first_seen:
            return
        pending = self.gate.pending_symbols()
        if not pending:
            return
        waited = time.monotonic() - self._first_seen[ts]
        grace = max(self._wall(self.timing.grace_s), self.timing.min_grace_wall_s)
        moved_on = (ts + self.tf) in self._first_seen
        if ts not in self._checked and (waited >= grace / 2 or moved_on):
            self._checked.add(ts)
            self.stats.rest_checks += 1
            for i in pending:
                if not self._fetching[i]:
                    self._spawn(self._rest_catch_up(i))
        elif waited >= grace:
            # A symbol is late when the exchange did not have its bar, not when its
            # REST answer is still on the way (a rate-limited poll round over a large
            # universe takes longer than the grace period): wait for the answers, up
            # to a hard limit for an exchange that stopped answering.
            hard = max(10 * grace, self._wall(3 * self.tf / 1000))
            if waited < hard and any(self._fetching[i] for i in pending):
                return
            self._release(deadline_passed=True)

    def _check_stale(self) -> None:
        limit = max(self._wall(self.timing.stale_after_s), self.timing.min_stale_wall_s)
        now = time.monotonic()
        if now - min(self._heard) < limit:
            return  # every symbol was heard from lately (this runs every tick)
        if all(now - heard >= limit for heard in self._heard):
            # the whole websocket went silent (a stall, not a quiet market): reconnect
            self._spawn(self._reconnect_ws())
        for i, heard in enumerate(self._heard):
            if now - heard < limit:
                continue
            if i not in self.stats.stale_symbols:
                self.stats.stale_symbols.add(i)
                log.warning("feed_stale", symbol=self.symbols[i], silent_s=round(now - heard, 3))
            self._heard[i] = now  # poll again after another stale period
            self.stats.rest_fallbacks += 1
            self._spawn(self._rest_catch_up(i))


_WS_GARBAGE = (AttributeError, TypeError, KeyError, ValueError, IndexError)
#: a supervised feed task is started again this many times in a row at most; a run
#: longer than ``_STABLE_S`` seconds resets the count
_MAX_RESTARTS = 5
_STABLE_S = 60.0


class _NotifyingCache(ArrayCacheByTimestamp):  # type: ignore[misc]
    """ccxt.pro's candle cache, telling the source about every update as ccxt's
    message handler stores it (ccxt.pro exchanges keep candles in
    ``exchange.ohlcvs[symbol][timeframe]`` and reuse a cache that is already there).
    Re-arming a ``watch_ohlcv`` per message would cost as much as parsing it."""

    def __init__(self, limit: int, on_update: Callable[[Any], None]) -> None:
        super().__init__(limit)
        self._on_update = on_update

    def append(self, item: list[Any]) -> None:
        super().append(item)
        self._on_update(self)


def pro_client(exchange_id: str, config: dict[str, Any]) -> Any:
    """A ccxt.pro client for ``exchange_id`` (raises FeedError if ccxt.pro lacks it)."""
    if exchange_id == "binance":
        return BinanceKlines(config)
    if not hasattr(ccxt.pro, exchange_id):
        raise FeedError(f"ccxt.pro has no websocket client for {exchange_id!r}")
    return getattr(ccxt.pro, exchange_id)(config)

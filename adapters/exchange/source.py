"""Live candles through ccxt: REST polling or ccxt.pro websockets, into the gate.

* Warm-up: before the first live bar, REST backfills the history the longest
  factor window needs, so exposures exist from the first live bar.
* ``ws`` mode: ccxt.pro, every symbol subscribed on one connection.  Binance's
  kline events are read directly (:mod:`adapters.exchange.binance_klines`): the event
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
  it, or as soon as it waits only for symbols whose stream showed nothing of
  its bar): a bar REST has is taken, a bar the exchange confirms absent is
  missing.  At the grace deadline the remaining symbols are ``late``.  A
  symbol whose kline stream went on to a later bar with nothing in between (on
  one connection, its previous bar taken) has no bar there: it is missing at
  once, without REST and without a wait.
* The universe is a fixed list of slots.  A symbol is a *member* (waited for)
  while it trades: one the exchange does not list (yet) or lists as not
  trading, and one without a bar for ``delist_after_s``, leaves it (logged
  ``symbol_left``) and is missing, never late; it joins again (``symbol_joined``)
  from the next cross-section when a bar of it comes (on Binance its stream,
  subscribed whether the symbol is listed or not, says so as its first bar
  opens), or when a reload of the markets lists it as trading (every
  ``refresh_s`` in REST mode and on other exchanges' websockets; on Binance's,
  the streams tell, and the markets are reloaded when a stream brings a symbol
  they do not list).

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

from factorcast.adapters.exchange.binance_klines import BinanceKlines
from factorcast.adapters.exchange.client import ExchangeClient, FeedError, FeedUnavailable
from factorcast.strategy.events import CrossSection
from factorcast.strategy.gate import ACCEPTED, DUPLICATE, TOO_LATE, CandleGate, Gap
from factorcast.strategy.timeframes import timeframe_ms

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
    #: a member without a bar for this long leaves the universe; None: three bars
    delist_after_s: float | None = None
    #: reload the exchange's markets (listings, statuses) this often; None: never
    refresh_s: float | None = None
    min_refresh_wall_s: float = 5.0


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
        resume_from: int | None = None,
    ) -> None:
        """``resume_from``: the first bar to release as live, when it is earlier than
        the bar forming at the start (a service that follows a new universe from
        the bar after the last one it published); the warm-up history ends there."""
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
        self.tf = timeframe_ms(timeframe)
        self.history_bars = history_bars
        self.resume_from = resume_from
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
        self._watching: set[str] = set()  # symbols with a watch of their own
        self._live_from = 0
        self._out: asyncio.Queue[CrossSection | None] = asyncio.Queue()
        self._sync = (0, time.monotonic())  # (exchange ms, wall) of the last clock sync
        self._first_seen: dict[int, float] = {}  # bar time -> wall time it first closed
        self._checked: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetching = [0] * n  # REST catch-ups of each symbol under way
        # -- the universe ----------------------------------------------------------
        self._live = False  # past the warm-up: membership changes from here on
        #: bar time of each symbol's newest bar (or of its joining): silence counts from it
        self._last_bar = [-1] * n
        self._left: dict[int, str] = {}  # symbols outside the universe, and why
        delist = self.timing.delist_after_s
        self._delist_ms = 3 * self.tf if delist is None else int(delist * 1000)
        self._reloading: asyncio.Task[None] | None = None
        self._reloaded_at = 0  # exchange ms of the last reload of the markets
        self._holding = False  # a REST poll round is under way
        # -- what the websocket told -----------------------------------------------
        self._epoch = 0  # subscriptions so far: a new one starts a new connection's story
        #: the bar the first (maybe partly received) tick of this subscription closed:
        #: from two bars after it, every event the exchange sent has come
        self._epoch_from: int | None = None
        self._seen_epoch = [0] * n  # the subscription that brought ``_ws_newest``
        self._announced = -1  # the newest bar time a stream announced as forming

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
        self._live = True
        log.info(
            "feed_live",
            mode=self.mode,
            live_from=self._live_from,
            symbols=len(self.symbols),
            members=len(self.symbols) - len(self._left),
        )
        if self.mode == "ws":
            self._install_caches()
            await self._subscribe_all()
            self._spawn_supervised("websocket", self._watch_connection)
        else:
            self._spawn_supervised("rest-poll", self._poll)
        self._spawn_supervised("deadlines", self._supervise)
        if (
            self.timing.refresh_s is not None
            and self.mode == "ws"  # REST: in each poll round, when due
            and not isinstance(self.pro, BinanceKlines)  # Binance: the streams tell
        ):
            self._spawn_supervised("markets", self._refresh_markets)
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
        self._reloaded_at = now  # the markets were just loaded (the universe came from them)
        forming = now - now % self.tf
        live_from = forming if self.resume_from is None else min(forming, self.resume_from)
        since = live_from - self.history_bars * self.tf
        sem = asyncio.Semaphore(8)

        async def history(symbol: str) -> None:
            async with sem:
                rows = await self._fetch_range(symbol, since, forming)
            self._take(self.index[symbol], rows, until=forming, backfill=False)

        async with asyncio.TaskGroup() as tg:
            for i, symbol in enumerate(self.symbols):
                if self._known(i):
                    tg.create_task(history(symbol))
        self._live_from = live_from
        self.gate.start(since)
        for i in range(len(self.symbols)):
            # the history is all the exchange has before the forming bar
            self.gate.mark_absent(i, forming - self.tf)
            if not self._trading(i):
                self._leave(i, "not_trading" if self._known(i) else "not_listed")
            elif forming - self.tf - self._last_bar[i] >= self._delist_ms:
                self._leave(i, "no_bars")
        out = self.gate.release()
        log.info(
            "feed_warmed_up",
            cross_sections=len(out),
            bars=sum(int(x.present.sum()) for x in out),
            since=since,
            live_from=live_from,
        )
        return [x if x.ts >= live_from else replace(x, live=False) for x in out]

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
        if (
            self._live
            and not self.gate.is_member(i)
            and type(ts) is int
            and ts >= (self.gate.next_ts or 0)
        ):
            self._join(i)  # before the candle: the bars it may have skipped are asked for
        outcome, gap = self.gate.offer(i, ts, values)
        if outcome in (ACCEPTED, DUPLICATE):
            self._offered[i] = max(self._offered[i], int(ts))
            self._last_bar[i] = max(self._last_bar[i], int(ts))
            self._first_seen.setdefault(int(ts), time.monotonic())
        elif outcome == TOO_LATE:
            self._offered[i] = max(self._offered[i], int(ts))
            self._last_bar[i] = max(self._last_bar[i], int(ts))
            log.info("bar_too_late", symbol=self.symbols[i], ts=ts)
        else:
            log.warning("bar_rejected", symbol=self.symbols[i], ts=ts, reason=outcome)
        if gap is not None and backfill:
            self._spawn(self._backfill(gap))
        elif gap is not None:
            self.gate.backfilled(i, [])

    def _release(self, *, deadline_passed: bool = False) -> None:
        if self._holding and not deadline_passed:
            return  # a REST poll round is under way: released when it is done
        released = self.gate.release(deadline_passed=deadline_passed)
        while released:
            left = False
            for xs in released:
                if xs.late.any():
                    late = [self.symbols[i] for i in xs.late.nonzero()[0]]
                    log.warning("cross_section_late", ts=xs.ts, count=len(late), symbols=late)
                    for i in xs.late.nonzero()[0]:
                        self._spawn(self._recover_late(int(i), xs.ts))
                self._first_seen.pop(xs.ts, None)
                self._checked.discard(xs.ts)
                self._out.put_nowait(xs if xs.ts >= self._live_from else replace(xs, live=False))
                left |= self._expire(xs.ts)
            # a symbol that left may have held the next cross-section back
            released = self.gate.release() if left else []

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
        self._fetching[gap.symbol] += 1  # the deadline waits for the answer too
        try:
            await self._market_loaded(gap.symbol)
            rows = await self._fetch_range(symbol, gap.start, gap.end + self.tf)
        except (FeedUnavailable, FeedError) as e:
            log.warning("feed_backfill_failed", symbol=symbol, error=str(e))
            self.gate.cancel_gap(gap.symbol)
        else:
            self.gate.backfilled(gap.symbol, rows)
            log.info("feed_backfilled", symbol=symbol, bars=len(rows))
        finally:
            self._fetching[gap.symbol] -= 1
        self._release()

    # -- the universe -----------------------------------------------------------
    def _known(self, i: int) -> bool:
        """The exchange lists symbol ``i`` (trading or not): ccxt can ask REST for it."""
        return self.symbols[i] in (self.client.rest.markets or {})

    def _trading(self, i: int) -> bool:
        market = (self.client.rest.markets or {}).get(self.symbols[i])
        return market is not None and market.get("active", True) is not False

    def _join(self, i: int, reason: str | None = None) -> int:
        """Symbol ``i`` trades: waited for from the next cross-section on.  Its bars
        from there are asked of REST (the cross-section waits for the answer), so
        none is lost whatever brought the news."""
        since = self.gate.next_ts if self.gate.next_ts is not None else self._live_from
        why = self._left.pop(i, None)
        if reason is None:
            reason = "listed" if why == "not_listed" else "trading_again"
        self.gate.set_member(i, True, since=since)
        self._last_bar[i] = max(self._last_bar[i], since - self.tf)
        self._heard[i] = time.monotonic()
        log.info("symbol_joined", symbol=self.symbols[i], reason=reason, since=since)
        self._spawn(self._rest_catch_up(i))
        return since

    def _leave(self, i: int, reason: str) -> None:
        """Symbol ``i`` is no longer waited for: missing, never late, until it joins."""
        self._left[i] = reason
        self.gate.set_member(i, False)
        self._heard[i] = math.inf
        self.stats.stale_symbols.discard(i)
        last = self._last_bar[i]
        log.info(
            "symbol_left",
            symbol=self.symbols[i],
            reason=reason,
            last_bar=last if last >= 0 else None,
        )

    def _expire(self, ts: int) -> bool:
        """After the cross-section at ``ts``: members without a bar for
        ``delist_after_s`` leave.  True if any did."""
        limit, last_bar, gate = ts - self._delist_ms, self._last_bar, self.gate
        expired = [i for i, last in enumerate(last_bar) if last <= limit and gate.is_member(i)]
        for i in expired:
            self._leave(i, "no_bars")
        return bool(expired)

    async def _market_loaded(self, i: int) -> bool:
        """ccxt asks REST only about markets it has loaded: a member that joined by
        its stream before the markets listed it waits for them to be loaded again."""
        if not self._known(i) and self.gate.is_member(i):
            await self._reload_markets()
        return self._known(i)

    async def _refresh_markets(self) -> None:
        assert self.timing.refresh_s is not None
        period = max(self._wall(self.timing.refresh_s), self.timing.min_refresh_wall_s)
        while True:
            await asyncio.sleep(period)
            await self._reload_markets()

    async def _reload_markets(self) -> None:
        """Load the exchange's markets again (once, for every caller meanwhile) and
        apply what they say: a member the exchange lists as not trading leaves (once
        REST has brought its last bars), a symbol outside the universe for that reason
        joins when it trades again.  (A member the markets do not list at all is left
        to its bars: its stream may have told of its listing before the markets do.)"""
        task = self._reloading
        if task is None or task.done():
            task = self._reloading = asyncio.get_running_loop().create_task(self._load_markets())
        await asyncio.shield(task)

    async def _load_markets(self) -> None:
        n = len(self.symbols)
        known = {i for i in range(n) if self._known(i)}
        self._reloaded_at = self.exchange_now_ms()
        try:
            await self.client.load_markets(attempts=3)
        except (FeedUnavailable, FeedError) as e:
            log.warning("markets_reload_failed", error=str(e))
            return
        if self.pro is not None:
            if isinstance(self.pro, BinanceKlines):
                self.pro.follow_markets(self.client.rest.markets, self.symbols)
            else:
                self.pro.set_markets(self.client.rest.markets)
                if self._live and any(self._known(i) for i in range(n) if i not in known):
                    self._install_caches()
                    await self._subscribe_all()  # the new markets' streams too
        if not self._live:
            return
        for i in range(n):
            trading = self._trading(i)
            if self.gate.is_member(i) and self._known(i) and not trading:
                self._spawn(self._retire(i))
            elif trading and self._left.get(i) in ("not_trading", "not_listed"):
                self._join(i)
        self._release()

    async def _retire(self, i: int) -> None:
        """A member the exchange stopped trading leaves, after its bars up to now."""
        await self._rest_catch_up(i)
        if self.gate.is_member(i) and not self._trading(i):
            self._leave(i, "not_trading")
            self._release()

    # -- websockets -------------------------------------------------------------
    async def _subscribe_all(self) -> None:
        """Subscribe every symbol in one message where the exchange allows it: ccxt
        registers the subscriptions at once, so the per-symbol watches that follow
        send nothing (one SUBSCRIBE each would be throttled to a few per second)."""
        self._epoch += 1
        self._epoch_from = None
        streams = self._streamed()
        if not self.pro.has.get("watchOHLCVForSymbols"):
            # one watch per symbol keeps each subscribed (the sentinel's is the connection's)
            for symbol in streams[1:]:
                if symbol not in self._watching:
                    self._watching.add(symbol)
                    self._spawn(self._keep_watching(symbol))
            self._listen_from_now()
            return
        pairs = [[s, self.timeframe] for s in streams]

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
        self._listen_from_now()

    def _listen_from_now(self) -> None:
        """Live from here: the members' silence counts from now."""
        now = time.monotonic()
        member = self.gate.is_member
        self._heard = [now if member(i) else math.inf for i in range(len(self.symbols))]

    def _streamed(self) -> list[str]:
        """The symbols whose streams are subscribed: those ccxt.pro has a market for
        (on Binance every symbol: :meth:`BinanceKlines.follow_markets`)."""
        markets = self.pro.markets or {}
        return [s for s in self.symbols if s in markets]

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
            self.pro.follow_markets(self.client.rest.markets or {}, self.symbols)
            self.pro.route_klines(self.symbols, self.timeframe, self._on_kline)
            return
        limit = int(self.pro.options.get("OHLCVLimit", 1000))
        for symbol in self.symbols:
            caches = self.pro.ohlcvs.setdefault(symbol, {})
            if not isinstance(caches.get(self.timeframe), _NotifyingCache):
                on_update = functools.partial(self._on_ws, self.index[symbol])
                caches[self.timeframe] = _NotifyingCache(limit, on_update)

    async def _watch_connection(self) -> None:
        """Keep one watch pending: it is what fails when the connection drops (the
        candles themselves arrive through the caches or the kline route).  Then:
        reconnect with backoff, resubscribe everything in one message, REST-catch up
        every symbol."""
        sentinel = self._streamed()[0]
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
        final trades: the symbol catches up through REST.  When a bar starts and the
        last bar seen on this connection was taken, bars between the two do not exist
        (each would have had its events): missing, at once.  An event of a symbol
        outside the universe (not listed yet, silent for too long) brings it in."""
        self._hear(i)
        if self._epoch_from is None:
            self._epoch_from = ts if closed is not None else ts - self.tf
        joined = not self.gate.is_member(i)
        if joined:
            since = self._join(i)
            if since >= self._epoch_from + 2 * self.tf and ts - self.tf >= since:
                # every tick from ``since`` on came on this connection: a bar of it
                # before ``ts`` would have had its events
                self.gate.mark_absent(i, ts - self.tf)
                self._release()
        seen = self._ws_newest[i]
        if ts > seen:
            same_connection = seen >= 0 and self._seen_epoch[i] == self._epoch
            self._ws_newest[i] = ts
            self._seen_epoch[i] = self._epoch
            if closed is None and ts > self._announced:
                self._announced = ts
            if seen > self._offered[i]:
                if not joined:  # joining asks REST anyway
                    self._spawn(self._rest_catch_up(i))
            elif closed is None and same_connection and ts - self.tf > seen:
                self.gate.mark_absent(i, ts - self.tf)
                self._release()
        if closed is not None and ts > self._offered[i]:
            self._offer(i, ts, closed)
            self._release()

    # -- REST polling, checks and the watchdog -------------------------------------
    async def _rest_catch_up(self, i: int) -> None:
        """Closed candles of symbol ``i`` since its last one, through REST."""
        self._fetching[i] += 1
        try:
            if not await self._market_loaded(i):
                return  # not listed (yet)
            last = max(self._offered[i], self.gate.last_ts(i))
            if last < 0:  # no bar yet: from the next cross-section
                last = (self.gate.next_ts or self._live_from) - self.tf
            since = last + self.tf
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
                if self._heard[i] != math.inf:
                    # news of it: its websocket is quiet because it has no bars, not
                    # because the websocket failed (the watchdog leaves it alone)
                    self._heard[i] = time.monotonic()
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
            refresh = self.timing.refresh_s
            if refresh is not None and now - self._reloaded_at >= refresh * 1000:
                # in the round, so that a symbol listed since the last one is asked for
                await self._reload_markets()
            # A round goes out whole: symbols outside the universe are asked for too, and
            # one that trades again joins the cross-section its bar belongs to.
            self._holding = True
            try:
                await asyncio.gather(*(self._rest_catch_up(i) for i in range(len(self.symbols))))
            finally:
                self._holding = False
            self._release()
            if self.timing.poll_interval_s is not None:
                await asyncio.sleep(self.timing.poll_interval_s)
                continue
            wait_ms = next_close - self.exchange_now_ms() + 0.02 * self.tf
            await asyncio.sleep(max(self._wall(wait_ms / 1000), 0.0))

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
            if self.mode == "ws":
                self._check_stale()

    def _discount_own_stall(self, seconds: float) -> None:
        """This process did not run for ``seconds`` (the host paused it, a collection,
        a blocking call): whatever the exchange sent meanwhile waits unread in the
        socket.  Silence and waiting are measured while the service was listening,
        so the clocks of the watchdog and of the deadlines move on by the stall:
        otherwise a healthy connection is dropped, and bars on their way go late."""
        log.warning("service_stalled", seconds=round(seconds, 3))
        self._heard = [h + seconds for h in self._heard]
        self._first_seen = {ts: t + seconds for ts, t in self._first_seen.items()}

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
        # the stream announced the bar, and only symbols that showed nothing of it are
        # missing from it: their bars are not on the way, ask REST now
        silent = (
            self.mode == "ws"
            and self._announced >= ts
            and all(self._ws_newest[i] < ts for i in pending)
        )
        if ts not in self._checked and (waited >= grace / 2 or moved_on or silent):
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
            return  # every member was heard from lately (this runs every tick)
        # (symbols outside the universe are never silent: their ``_heard`` is inf)
        if all(now - heard >= limit for heard in self._heard if heard != math.inf):
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
#: a deadline tick this much later than due means the process itself stood still
_OWN_STALL_S = 0.2
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

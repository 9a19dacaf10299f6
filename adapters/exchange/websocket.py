"""The websocket side of the live source: ccxt.pro, every symbol on one connection.

* **Subscription**: every symbol in one SUBSCRIBE where the exchange allows it
  (:meth:`WsFeed.subscribe_all`); a SUBSCRIBE the exchange refuses is logged once
  naming the streams, counted, shown by ``/readyz`` and retried with backoff, the
  symbols served by REST meanwhile.
* **Candles**: Binance's kline events are read directly
  (:mod:`.binance_klines`, :meth:`WsFeed.on_kline`): the event that closes a bar
  is offered at once, and a bar whose closing event never came is fetched through
  REST.  Elsewhere candles are taken from ccxt's cache as its message handler
  stores them (:class:`NotifyingCache`, :meth:`WsFeed.on_cache`), and a candle
  counts as closed when the symbol's next candle starts.
* **Connection watch** (:meth:`WsFeed.watch_connection`, a supervised task): one
  pending watch is what fails when the connection drops; then reconnect with
  backoff, resubscribe, and catch every symbol up through REST (candles cached
  before the drop are never trusted).
* **Staleness**: every tick the watchdog's memory (:mod:`.watchdog`) says which
  symbols went silent (polled through REST) and whether all did (the connection
  is dropped and reconnected: :meth:`WsFeed.check_stale`).

What the websocket told (the newest bar each stream showed, on which connection,
the newest bar a stream announced as forming) is kept here; the deadlines ask it
whether the symbols a cross-section waits for showed anything of its bar
(:meth:`WsFeed.showed_nothing_of`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any

import ccxt
import ccxt.pro
import structlog
from ccxt.async_support.base.ws.cache import ArrayCacheByTimestamp

from factorcast.adapters.exchange.binance_klines import BinanceKlines
from factorcast.adapters.exchange.client import ExchangeClient, FeedError
from factorcast.adapters.exchange.feed import FeedStats, FeedTiming
from factorcast.adapters.exchange.intake import Intake
from factorcast.adapters.exchange.membership import Membership
from factorcast.adapters.exchange.rest import RestFeed
from factorcast.adapters.exchange.tasks import FeedTasks
from factorcast.adapters.exchange.watchdog import Watchdog

log = structlog.get_logger(__name__)

#: what ccxt raises when a websocket brings garbage
_WS_GARBAGE = (AttributeError, TypeError, KeyError, ValueError, IndexError)


class WsFeed:
    """One universe's symbols on a ccxt.pro client."""

    def __init__(
        self,
        client: ExchangeClient,
        pro: Any,
        timeframe: str,
        tf: int,
        timing: FeedTiming,
        *,
        stats: FeedStats,
        intake: Intake,
        membership: Membership,
        rest: RestFeed,
        watchdog: Watchdog,
        tasks: FeedTasks,
    ) -> None:
        if not pro.markets and client.rest.markets:
            pro.set_markets(client.rest.markets)  # one load_markets, not two
        self.client = client
        self.pro = pro
        self.timeframe = timeframe
        self.tf = tf
        self.timing = timing
        self.stats = stats
        self.intake = intake
        self.gate = intake.gate
        self.symbols = intake.symbols
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.membership = membership
        self.rest = rest
        self.watchdog = watchdog
        self.tasks = tasks
        n = len(self.symbols)
        self.up = False  # the websocket carried an update since it last failed
        self._refused: tuple[str, ...] = ()  # streams of the last refused SUBSCRIBE
        self._newest = [-1] * n  # bar time of the newest candle the websocket brought
        self._distrust = [-1] * n  # cached candles up to here predate a reconnect
        self._watching: set[str] = set()  # symbols with a watch of their own
        self._epoch = 0  # subscriptions so far: a new one starts a new connection's story
        #: the bar the first (maybe partly received) tick of this subscription closed:
        #: from two bars after it, every event the exchange sent has come
        self._epoch_from: int | None = None
        self._seen_epoch = [0] * n  # the subscription that brought ``_newest``
        self._announced = -1  # the newest bar time a stream announced as forming

    @property
    def streams_tell_listings(self) -> bool:
        """Binance: every slot's stream is subscribed, listed or not, and tells of a
        listing as its first bar opens (no periodic reload of the markets needed)."""
        return isinstance(self.pro, BinanceKlines)

    async def start(self) -> None:
        """Route the candles, subscribe every symbol, watch the connection."""
        self.install_caches()
        await self.subscribe_all()
        self.tasks.supervise("websocket", self.watch_connection)

    def degraded(self) -> str | None:
        if self._refused:
            return f"subscription refused for {len(self._refused)} streams"
        if not self.up and self.intake.live_from:
            return "websocket down"
        return None

    def showed_nothing_of(self, ts: int, pending: Sequence[int]) -> bool:
        """A stream announced the bar at ``ts``, and none of ``pending`` showed
        anything of it: their bars are not on the way."""
        newest = self._newest
        return self._announced >= ts and all(newest[i] < ts for i in pending)

    # -- subscription ------------------------------------------------------------------
    async def subscribe_all(self) -> None:
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
                    self.tasks.supervise(
                        f"watch:{symbol}", functools.partial(self._keep_watching, symbol)
                    )
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

        self.tasks.spawn("subscribe", subscribe())
        await asyncio.sleep(0)  # its first step registers the subscriptions
        self._listen_from_now()

    def _listen_from_now(self) -> None:
        """Live from here: the members' silence counts from now."""
        self.watchdog.listen_from_now(self.gate.is_member)

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
        self.tasks.spawn("reconnect", self.reconnect("subscription refused"))  # with backoff

    async def _keep_watching(self, symbol: str) -> None:
        while True:
            try:
                await self.pro.watch_ohlcv(symbol, self.timeframe)
            except (ccxt.BaseError, *_WS_GARBAGE):
                await asyncio.sleep(self.client.retry_delay(0))  # the sentinel reconnects

    def install_caches(self) -> None:
        """Route every symbol's candles here as ccxt's message handler reads them."""
        if isinstance(self.pro, BinanceKlines):
            self.pro.follow_markets(self.client.rest.markets or {}, self.symbols)
            self.pro.route_klines(self.symbols, self.timeframe, self.on_kline)
            return
        limit = int(self.pro.options.get("OHLCVLimit", 1000))
        for symbol in self.symbols:
            caches = self.pro.ohlcvs.setdefault(symbol, {})
            if not isinstance(caches.get(self.timeframe), NotifyingCache):
                on_update = functools.partial(self.on_cache, self.index[symbol])
                caches[self.timeframe] = NotifyingCache(limit, on_update)

    async def markets_loaded(self, new_markets: bool) -> None:
        """The markets were loaded again: ccxt.pro follows them, and once live the
        streams of markets new to them are subscribed too."""
        markets = self.client.rest.markets
        if isinstance(self.pro, BinanceKlines):
            self.pro.follow_markets(markets, self.symbols)
            return
        self.pro.set_markets(markets)
        if self.membership.live and new_markets:
            self.install_caches()
            await self.subscribe_all()

    # -- the connection ---------------------------------------------------------------
    async def watch_connection(self) -> None:
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
                self.up = False
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
                await self.subscribe_all()
                for i in range(len(self.symbols)):
                    self.rest.catch_up_soon(i)

    def _distrust_cache(self, symbols: Sequence[str]) -> None:
        """After a disconnect, a cached candle may hold an early snapshot of its bar
        (its closing update was lost): those bars come from REST, never the cache."""
        for symbol in symbols:
            i = self.index[symbol]
            cache = self.pro.ohlcvs.get(symbol, {}).get(self.timeframe)
            if cache:
                self._distrust[i] = max(self._distrust[i], int(cache[-1][0]))

    async def reconnect(self, reason: str = "websocket silent") -> None:
        """Drop the silent connections as a network fault would: their pending
        watches fail with a NetworkError and the connection watch reconnects.
        (Closing the ccxt client instead would cancel those watches, and with them
        the task that reconnects.)"""
        log.warning("feed_reconnecting", reason=reason)
        self.up = False
        for client in list(getattr(self.pro, "clients", {}).values()):
            with contextlib.suppress(Exception):
                client.on_error(ccxt.NetworkError(reason))

    def check_stale(self) -> None:
        """The staleness watchdog's tick: silent symbols to REST, a silent websocket
        reconnected."""
        whole, due = self.watchdog.check(self.timing.stale_wall_s())
        if whole:
            # the whole websocket went silent (a stall, not a quiet market): reconnect
            self.tasks.spawn("reconnect", self.reconnect())
        for i in due:
            self.rest.catch_up_soon(i)

    # -- candles ----------------------------------------------------------------------
    def _hear(self, i: int) -> None:
        """The websocket brought an update of symbol ``i``."""
        self.up = True
        if self._refused:
            self._refused = ()
            log.info("feed_subscription_accepted", streams=len(self.symbols))
        self.stats.ws_updates += 1
        self.watchdog.hear(i)

    def on_cache(self, i: int, cache: Any) -> None:
        """ccxt stored an update of symbol ``i``'s candles (called from its message
        handler).  When a new candle has started, the ones before it are closed."""
        self._hear(i)
        newest = cache[-1][0]
        if newest <= self._newest[i]:
            return  # an update of the candle still forming
        self._newest[i] = newest
        floor = max(self.intake.offered[i], self._distrust[i])
        fresh = []
        for k in range(len(cache) - 2, -1, -1):
            row = cache[k]
            if row[0] <= floor:
                break
            fresh.append(row)
        if fresh:
            self.intake.take(i, fresh, until=newest)
            self.intake.release()

    def on_kline(self, i: int, ts: int, closed: list[Any] | None) -> None:
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
        tf, gate, intake = self.tf, self.gate, self.intake
        if self._epoch_from is None:
            self._epoch_from = ts if closed is not None else ts - tf
        joined = not gate.is_member(i)
        if joined:
            since = self.membership.join(i)
            if since >= self._epoch_from + 2 * tf and ts - tf >= since:
                # every tick from ``since`` on came on this connection: a bar of it
                # before ``ts`` would have had its events
                gate.mark_absent(i, ts - tf)
                intake.release()
        seen = self._newest[i]
        if ts > seen:
            same_connection = seen >= 0 and self._seen_epoch[i] == self._epoch
            self._newest[i] = ts
            self._seen_epoch[i] = self._epoch
            if closed is None and ts > self._announced:
                self._announced = ts
            if seen > intake.offered[i]:
                if not joined:  # joining asks REST anyway
                    self.rest.catch_up_soon(i)
            elif closed is None and same_connection and ts - tf > seen:
                gate.mark_absent(i, ts - tf)
                intake.release()
        if closed is not None and ts > intake.offered[i]:
            intake.offer(i, ts, closed)
            intake.release()


class NotifyingCache(ArrayCacheByTimestamp):  # type: ignore[misc]
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

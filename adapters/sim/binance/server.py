"""A loopback Binance spot exchange that the real ccxt clients can talk to.

REST (``/api/v3/{ping,time,exchangeInfo,klines,ticker/24hr}``) and market streams
(``<symbol>@kline_<interval>`` on any websocket path: ccxt.pro uses ``/ws/<n>``
with SUBSCRIBE; ``/stream?streams=...`` wraps payloads as ``{"stream", "data"}``)
in Binance's wire format, served from a :class:`KlineBook` that a :class:`BarFeed`
fills one cross-section per tick: on a timer (``sim_speed`` bars per second) or
by :meth:`BinanceSim.advance`.  Each tick closes the forming bar (pushed with
``"x": true``) and opens the next one (pushed with ``"x": false``, o=h=l=c=open).
Faults (:class:`Faults`) apply at run time.  Only the book's own interval is
served; there are no trades, order books or private endpoints.  The websocket
connections, their control messages and the broadcast are :mod:`.streams`'s.

Listings follow the candles: a symbol is listed (``exchangeInfo`` status
``TRADING``) from its first bar, as that bar opens; before it, it is absent from
``exchangeInfo`` and the tickers and ``/klines`` answers -1121 (Invalid symbol), as
Binance answers for a symbol it does not have, and no kline event is sent for it.
A symbol whose candles end before the feed's (``delisted_after``) is delisted once
its last bar has closed: status ``BREAK``, its klines still served, no new events.
A subscription to any stream of the feed's symbols is accepted, listed or not, as
Binance accepts a subscription to a stream that carries nothing (yet).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Self

import numpy as np
import structlog
from aiohttp import web

from factorcast.adapters.sim.binance.book import (
    CLOSE,
    BarFeed,
    FeedExhausted,
    KlineBook,
    interval_of,
)
from factorcast.adapters.sim.binance.faults import Faults
from factorcast.adapters.sim.binance.streams import Streams
from factorcast.adapters.sim.binance.wire import (
    F64,
    RATE_LIMITS,
    BinanceError,
    Market,
    WireFormat,
    ccxt_config,
    kline_query,
)

log = structlog.get_logger(__name__)

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BinanceSim:
    """The simulated exchange; an async context manager serving on ``host:port``.

    ``history_bars`` cross-sections are taken from ``feed`` as closed history at
    start and the next one starts forming.  ``sim_speed`` (bars per second) runs
    the live clock, from the start or (``clock_on_demand``) from the first
    ``/klines`` request; without it, bars advance only through :meth:`advance`.
    """

    def __init__(
        self,
        feed: BarFeed,
        *,
        history_bars: int = 0,
        sim_speed: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        serve_forming_bar: bool = True,
        decimals: int | None = 8,
        clock_on_demand: bool = False,
    ) -> None:
        self._feed = feed
        self.book = KlineBook(feed.symbols, feed.timeframe_ms)
        self.interval = interval_of(feed.timeframe_ms)
        self.faults = faults if faults is not None else Faults()
        self.requests: deque[str] = deque(maxlen=10_000)
        #: per closed bar: (bar time, perf_counter() as its first closing kline went
        #: out, and as its last message went out), for latency measurements
        self.sent: deque[tuple[int, float, float]] = deque(maxlen=100_000)
        self._history_bars = history_bars
        self._speed = sim_speed if sim_speed else None
        # with clock_on_demand the live clock waits for the first candle request, so a
        # client's warm-up sees exactly ``history_bars`` of history, however slow its start
        self._clock_on_demand = clock_on_demand
        self._host, self._port = host, port
        self._serve_forming = serve_forming_bar
        self._wire = WireFormat(feed.timeframe_ms, self.interval, decimals)
        self._markets = [Market.of(s) for s in feed.symbols]
        self._by_id = {m.id: m for m in self._markets}
        self._delisted_after: dict[str, int] = dict(getattr(feed, "delisted_after", None) or {})
        if len(self._by_id) != len(self._markets):
            raise ValueError("two symbols map to the same Binance market id")
        self._streams = Streams(self._by_id, self.interval, self.faults)
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._clock: asyncio.Task[None] | None = None
        self._tick_at = time.monotonic()
        self._exhausted = False

    # -- lifecycle --------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        history = getattr(self._feed, "history", None)  # SimulatedMarket's vectorized path
        n = self._history_bars
        for bars in history(n) if callable(history) else (self._feed.next_bars() for _ in range(n)):
            self.book.append(bars)
        self._open_next()
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/api/v3/ping", self._ping)
        app.router.add_get("/api/v3/time", self._time)
        app.router.add_get("/api/v3/exchangeInfo", self._exchange_info)
        app.router.add_get("/api/v3/klines", self._klines)
        app.router.add_get("/api/v3/ticker/24hr", self._ticker_24hr)
        app.router.add_get("/{tail:.*}", self._any_path)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port)
        await site.start()
        self._port = self._runner.addresses[0][1]
        self.faults.bind_dropper(self._streams.drop)
        if self._speed and not self._clock_on_demand:
            self._start_clock()
        log.info(
            "exchange_started",
            url=self.base_url,
            symbols=len(self._markets),
            interval=self.interval,
            history_bars=len(self.book),
            sim_speed=self._speed,
        )

    async def stop(self) -> None:
        self._stopping.set()
        if self._clock is not None:
            self._clock.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock
        await self._streams.close()
        self.faults.bind_dropper(None)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        log.info("exchange_stopped", url=self.base_url, bars=len(self.book))

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def rest_url(self) -> str:
        """What ccxt's ``urls['api']['public']`` must be."""
        return f"{self.base_url}/api/v3"

    @property
    def ws_url(self) -> str:
        """What ccxt.pro's ``urls['api']['ws']['spot']`` must be."""
        return f"ws://{self._host}:{self._port}/ws"

    def ccxt_config(self) -> dict[str, Any]:
        """Constructor config for ``ccxt.async_support.binance`` / ``ccxt.pro.binance``:
        every URL points here and only spot markets load (no sapi, fapi, dapi call)."""
        return ccxt_config(self._host, self._port)

    def subscriptions(self) -> list[frozenset[str]]:
        """The streams of each open websocket connection."""
        return self._streams.subscriptions()

    # -- listings -------------------------------------------------------------------

    def status(self, symbol: str) -> str | None:
        """``symbol``'s status as ``exchangeInfo`` shows it now: None while it is not
        listed (before its first bar opens), ``"BREAK"`` once its last bar has closed
        (delisted), else ``"TRADING"``."""
        if self.book.listed_from(symbol) is None:
            return None
        end = self._delisted_after.get(symbol)
        last = self.book.last_closed_ts
        if end is not None and last is not None and last >= end:
            return "BREAK"
        return "TRADING"

    # -- the clock ----------------------------------------------------------------

    @property
    def exhausted(self) -> bool:
        return self._exhausted

    def server_time_ms(self) -> int:
        """Virtual now: within the forming bar, interpolated when the clock runs live."""
        now = self.book.now_ms
        if now is None:
            return int(time.time() * 1000)
        if self._speed and self.book.forming_ts is not None:
            elapsed = min((time.monotonic() - self._tick_at) * self._speed, 0.999)
            now += int(elapsed * self.book.timeframe_ms)
        return now

    async def advance(self, n: int = 1) -> int:
        """Close ``n`` bars (fewer if the feed runs out); returns how many closed."""
        done = 0
        async with self._lock:
            for _ in range(n):
                closed = self.book.close_bar()
                if closed is None:
                    break
                self._open_next()
                self._tick_at = time.monotonic()
                first_sent = await self._streams.broadcast(self._tick_events(*closed))
                self.sent.append((closed[0], first_sent, time.perf_counter()))
                done += 1
        return done

    async def release_held(self) -> int:
        """Push the closing klines :meth:`Faults.hold_closing_kline` held back; returns
        how many."""
        async with self._lock:
            held = self.faults.take_held()
            await self._streams.broadcast(held)
        return len(held)

    def _open_next(self) -> None:
        try:
            self.book.open_bar(self._feed.next_bars())
        except (FeedExhausted, StopIteration):
            if not self._exhausted:
                log.info("feed_exhausted", last_bar_ts=self.book.last_closed_ts)
            self._exhausted = True

    def _start_clock(self) -> None:
        """Start the live clock (once): bars then close at ``sim_speed`` per second."""
        if self._speed and self._clock is None:
            self._tick_at = time.monotonic()
            self._clock = asyncio.create_task(self._run_clock(), name="binance_sim_clock")

    async def _run_clock(self) -> None:
        assert self._speed is not None
        period = 1.0 / self._speed
        due = time.monotonic() + period
        try:
            while not self._exhausted:
                await asyncio.sleep(max(due - time.monotonic(), 0.0))
                due = max(due + period, time.monotonic())
                await self.advance(1)
        except Exception:
            log.exception("clock_failed")
            raise

    # -- stream events -----------------------------------------------------------

    def _stream(self, m: Market) -> str:
        return f"{m.stream_prefix}kline_{self.interval}"

    def _tick_events(self, ts: int, block: F64) -> list[tuple[str, dict[str, Any]]]:
        """Per subscribed market: the closed kline, then the one that just opened
        (unless :meth:`Faults.omit_klines` leaves them out)."""
        wanted = self._streams.wanted()
        forming, forming_ts = self.book.forming_view(), self.book.forming_ts
        omit_closing, omit_opening = self.faults.take_kline_omissions()
        if omit_opening:
            forming = None
        events = []
        for j, m in enumerate(self._markets):
            stream = self._stream(m)
            if stream not in wanted:
                continue
            if not omit_closing and np.isfinite(block[j, CLOSE]):
                event = self._wire.kline_event(m, ts, block[j], closed=True)
                if not self.faults.take_hold(m.symbol, stream, event):
                    events.append((stream, event))
            if forming is not None and forming_ts is not None and np.isfinite(forming[j, CLOSE]):
                event = self._wire.kline_event(m, forming_ts, forming[j], closed=False)
                events.append((stream, event))
        return events

    # -- REST -------------------------------------------------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        if request.headers.get("Upgrade", "").lower() != "websocket":
            delay = self.faults.take_delay(request.path)
            if delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
            fault = self.faults.take(request.path)
            if fault is not None:
                log.info("fault_served", path=request.path, status=fault.status)
                return web.Response(
                    status=fault.status,
                    text=fault.body,
                    content_type=fault.content_type,
                    headers=fault.headers,
                )
        try:
            return await handler(request)
        except BinanceError as e:
            log.info("request_refused", path=request.path, code=e.code, msg=e.msg)
            return web.json_response({"code": e.code, "msg": e.msg}, status=e.status)

    def _market(self, market_id: str | None) -> Market:
        if not market_id:
            raise BinanceError(
                -1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
            )
        m = self._by_id.get(market_id)
        if m is None or self.status(m.symbol) is None:
            raise BinanceError(-1121, "Invalid symbol.")
        return m

    def _markets_from(self, query: Mapping[str, str]) -> list[Market]:
        if "symbol" in query:
            return [self._market(query["symbol"])]
        if "symbols" not in query:
            return [m for m in self._markets if self.status(m.symbol) is not None]
        try:
            ids = json.loads(query["symbols"])
        except ValueError:
            ids = None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise BinanceError(-1100, "Illegal characters found in parameter 'symbols'.")
        return [self._market(i) for i in ids]

    async def _ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def _time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.server_time_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        markets = self._markets_from(request.query)
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": self.server_time_ms(),
                "rateLimits": RATE_LIMITS,
                "exchangeFilters": [],
                "symbols": [
                    self._wire.symbol_info(
                        m, self.book.first_price(m.symbol), status=self.status(m.symbol)
                    )
                    for m in markets
                ],
            }
        )

    async def _klines(self, request: web.Request) -> web.Response:
        market_id, start, end, limit = kline_query(request.query, self.interval)
        if self._clock_on_demand:
            self._start_clock()
        symbol = self._market(market_id).symbol
        if self.faults.refuses_candles(symbol):
            log.info("fault_served", path=request.path, status=503, symbol=symbol)
            return web.Response(status=503, text="Service Unavailable")
        rows = self.book.klines(
            symbol,
            start_ms=start,
            end_ms=end,
            limit=limit,
            include_forming=self._serve_forming,
        )
        body = [self._wire.kline_row(int(t), v) for t, v in zip(rows.ts, rows.values, strict=True)]
        return web.json_response(body)

    async def _ticker_24hr(self, request: web.Request) -> web.Response:
        if "symbol" in request.query:
            return web.json_response(self._ticker(self._market(request.query["symbol"])))
        return web.json_response([self._ticker(m) for m in self._markets_from(request.query)])

    def _ticker(self, m: Market) -> dict[str, Any]:
        return self._wire.ticker(m, self.book.stats(m.symbol), self.book.first_price(m.symbol))

    async def _any_path(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            log.warning("request_unrouted", method=request.method, path=request.path)
            return web.Response(status=404, text="Not Found")
        return await self._streams.serve(request)

"""Binance spot kline events, read straight off ccxt.pro's websocket client.

ccxt.pro's binance client passes every message through a chain of ``safe_*``
look-ups (``handle_message``) and its generic ``handle_ohlcv`` (more than half of
the live path's cost per message), and it drops the kline's ``x`` flag, which is
true on the event that closes the bar.  This service subscribes to one message
shape, the spot kline of a symbol of its universe, so :class:`BinanceKlines`
reads those itself and hands each candle with its closed flag to a callback.
ccxt keeps the connection, the subscriptions and the reconnects, and handles
every other message as before.

Its connections are :class:`KlineSocket`\\ s: ccxt's websocket client with a
cheaper receive loop (see there).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ccxt.pro
import structlog
from aiohttp import WSMsgType
from ccxt.async_support.base.ws.client import Client, json_parser
from ccxt.async_support.base.ws.functions import is_json_encoded_object
from ccxt.base.errors import NetworkError

log = structlog.get_logger(__name__)

#: ``on_kline(i, t, closed)``: the position of the symbol in the routed list, the
#: bar time, and for the event that closes the bar its ``[o, h, l, c, v]`` as they
#: came (decimal strings; the gate converts them, and refuses and counts what does
#: not read as a number), None for an update of a bar still forming: only its time
#: matters.
OnKline = Callable[[int, int, list[Any] | None], None]


class KlineSocket(Client):  # type: ignore[misc]
    """ccxt.pro's websocket client, reading in one task.

    ccxt's own receive loop creates a task and schedules two callbacks for every
    message it has to wait for, which cost more than handling a kline event.  Here
    one task awaits the messages in turn.  A text frame is first offered to
    :attr:`on_text`; if that does not take it, it is decoded with ccxt's own test
    and JSON parser and goes to the exchange's handler, as ccxt's
    ``handle_message`` does it (a text frame that does not decode is logged, counted
    through :attr:`on_garbled` and passed over: one lost event costs at most that
    symbol's bar, which the source then takes from REST, where a reconnect would
    send every symbol to REST); any other frame, and every frame while ``verbose``
    logging is on, goes through ``handle_message`` itself.  A closed socket ends
    the loop the way ccxt's does (``on_close``).  A message handler that raises
    fails the pending watches with a NetworkError, as any connection fault does,
    and the connection is closed: its owner reconnects (ccxt's loop would stop
    reading silently)."""

    _reading: Any = None
    #: a first look at each text frame, before it is decoded: True when it took the
    #: frame (:meth:`BinanceKlines.forming_update`)
    on_text: Callable[[str], bool] | None = None

    #: told of every text frame that did not decode (cut short by a proxy, a
    #: truncated write); the frame is passed over and the connection goes on
    on_garbled: Callable[[], None] | None = None

    def _garbled(self, data: str) -> None:
        log.warning("ws_frame_garbled", url=self.url, length=len(data), start=data[:60])
        if self.on_garbled is not None:
            self.on_garbled()

    def receive_loop(self) -> None:
        if self.closed():
            self.on_close(1006)  # the connection ended before the loop started
            return
        self._reading = self.asyncio_loop.create_task(self._read_messages())

    async def _read_messages(self) -> None:
        ws = self.connection
        try:
            while not ws.closed:
                message = await ws.receive()
                if message.type is WSMsgType.TEXT and not self.verbose:
                    self.last_message_at = int(time.time() * 1000)
                    data = message.data
                    if self.on_text is not None and self.on_text(data):
                        continue
                    try:
                        decoded = json_parser.loads(data) if is_json_encoded_object(data) else data
                    except ValueError:
                        self._garbled(data)
                        continue
                    self.on_message_callback(self, decoded)
                else:
                    self.handle_message(message)
        except Exception as e:  # the socket's or a handler's: the connection is done for
            self.on_error(NetworkError(f"{type(e).__name__}: {e}"))
            return
        self.on_close(1006)


class BinanceKlines(ccxt.pro.binance):  # type: ignore[misc]
    """ccxt.pro's binance client with a direct route for the klines of a universe."""

    _routes: dict[str, int] | None = None  # binance market id -> position
    _interval: str | None = None
    _interval_field: str = ""  # the interval as it appears in a compact event: '"i":"1m"'
    _on_kline: OnKline | None = None

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config or {})
        # Kline events are a few hundred bytes, two per symbol and bar.  Inflating each
        # one (ccxt offers permessage-deflate) took about a sixth of the reader's CPU,
        # for bandwidth this feed does not need; a config's own ``ws.compress`` wins.
        self.options.setdefault("ws", {}).setdefault("compress", 0)

    def client(self, url: str) -> Any:
        """ccxt's client for ``url``, made a :class:`KlineSocket` before it connects
        (ccxt builds its clients in this method and offers no other hook)."""
        client = super().client(url)
        if type(client) is Client:
            client.__class__ = KlineSocket
            client.on_text = self.forming_update
            client.on_garbled = self._count_garbled
        return client

    #: text frames passed over because they did not decode, over every connection
    garbled_frames = 0

    def _count_garbled(self) -> None:
        self.garbled_frames += 1

    def follow_markets(self, markets: Mapping[str, Any], symbols: Sequence[str]) -> None:
        """Take ``markets`` (the REST client's), plus a stand-in spot market for each of
        ``symbols`` the exchange does not list (yet), so that their kline streams can be
        subscribed and routed: Binance accepts a subscription to a stream that carries
        nothing, and the stream's first event is then the news of the listing."""
        stand_ins = {s: _spot_market(s) for s in symbols if s not in markets}
        self.set_markets({**markets, **stand_ins})

    def route_klines(self, symbols: Sequence[str], timeframe: str, on_kline: OnKline) -> None:
        """Send the spot klines of ``symbols`` at ``timeframe`` to ``on_kline`` from
        now on, instead of ccxt's candle caches and futures: ``watch_ohlcv`` on these
        symbols then returns only by failing, when the connection does."""
        markets = self.markets or {}
        self._routes = {
            (markets[s]["id"] if s in markets else _spot_market(s)["id"]): i
            for i, s in enumerate(symbols)
        }
        self._interval = self.timeframes.get(timeframe, timeframe)
        self._interval_field = f'"i":"{self._interval}"'
        self._on_kline = on_kline

    def forming_update(self, text: str) -> bool:
        """Take a routed kline event of a bar still forming straight from its text.

        Half of a kline stream is such updates, and of them only the symbol and the
        bar time matter (:data:`OnKline`), so they are not decoded: the two fields
        are read from Binance's compact layout
        (``{"e":"kline","E":..,"s":"BTCUSDT","k":{"t":..,..,"i":"1m",..,"x":false,..}}``,
        where ``"t"`` occurs once).  Anything else returns False and is decoded and
        handled in full (:meth:`handle_message`): every event that closes a bar,
        other symbols and intervals, and text laid out any other way."""
        routes, on_kline = self._routes, self._on_kline
        if (
            routes is None
            or on_kline is None
            or not text.startswith('{"e":"kline",')
            or '"x":false' not in text
            or self._interval_field not in text
        ):
            return False
        at = text.find('"s":"') + 5
        i = routes.get(text[at : text.find('"', at)])
        at = text.find('"t":') + 4
        bar = text[at : text.find(",", at)]
        if i is None or not (bar.isascii() and bar.isdigit()):
            return False
        on_kline(i, int(bar), None)
        return True

    def handle_message(self, client: Any, message: Any) -> None:
        """A routed kline goes to the callback, anything else to ccxt.  A kline event
        arrives bare (``{"e": "kline", "k": {...}}``) on the ``/ws`` connection ccxt
        opens for spot streams; its prices are read only when it closes the bar."""
        if type(message) is dict and message.get("e") == "kline" and self._routes is not None:
            kline = message.get("k")
            if (
                type(kline) is dict
                and kline.get("i") == self._interval
                and type(kline.get("t")) is int
            ):
                i = self._routes.get(kline.get("s"))  # type: ignore[arg-type]
                if i is not None and self._on_kline is not None:
                    if kline.get("x") is True:
                        get = kline.get
                        values = [get("o"), get("h"), get("l"), get("c"), get("v")]
                        self._on_kline(i, kline["t"], values)
                    else:
                        self._on_kline(i, kline["t"], None)
                    return
        super().handle_message(client, message)


def _spot_market(symbol: str) -> dict[str, Any]:
    """What ccxt needs of a Binance spot market to name its streams (``BASE/QUOTE``:
    id ``BASEQUOTE``), for a symbol the exchange does not list."""
    base, quote = symbol.split(":", maxsplit=1)[0].split("/")
    market_id = base + quote
    return {
        "id": market_id,
        "lowercaseId": market_id.lower(),
        "symbol": symbol,
        "base": base,
        "quote": quote,
        "baseId": base,
        "quoteId": quote,
        "type": "spot",
        "spot": True,
        "margin": False,
        "swap": False,
        "future": False,
        "option": False,
        "contract": False,
        "linear": None,
        "inverse": None,
        "active": False,
        "info": {},
    }

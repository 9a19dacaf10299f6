"""Binance spot kline events, read straight off ccxt.pro's websocket client.

ccxt.pro's binance client passes every message through a chain of ``safe_*``
look-ups (``handle_message``) and its generic ``handle_ohlcv`` (more than half of
the live path's cost per message), and it drops the kline's ``x`` flag, which is
true on the event that closes the bar.  This service subscribes to one message
shape, the spot kline of a symbol of its universe, so :class:`BinanceKlines`
reads those itself and hands each candle with its closed flag to a callback.
ccxt keeps the connection, the subscriptions and the reconnects, and handles
every other message as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import ccxt.pro

#: ``on_kline(i, t, closed)``: the position of the symbol in the routed list, the
#: bar time, and for the event that closes the bar its ``[o, h, l, c, v]`` as ccxt
#: parses them (None for an update of a bar still forming: only its time matters).
OnKline = Callable[[int, int, list[Any] | None], None]


class BinanceKlines(ccxt.pro.binance):  # type: ignore[misc]
    """ccxt.pro's binance client with a direct route for the klines of a universe."""

    _routes: dict[str, int] | None = None  # binance market id -> position
    _interval: str | None = None
    _on_kline: OnKline | None = None

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config or {})
        # Kline events are a few hundred bytes, two per symbol and bar.  Inflating each
        # one (ccxt offers permessage-deflate) took about a sixth of the reader's CPU,
        # for bandwidth this feed does not need; a config's own ``ws.compress`` wins.
        self.options.setdefault("ws", {}).setdefault("compress", 0)

    def route_klines(self, symbols: Sequence[str], timeframe: str, on_kline: OnKline) -> None:
        """Send the spot klines of ``symbols`` at ``timeframe`` to ``on_kline`` from
        now on, instead of ccxt's candle caches and futures: ``watch_ohlcv`` on these
        symbols then returns only by failing, when the connection does."""
        markets = self.markets or {}
        self._routes = {markets[s]["id"]: i for i, s in enumerate(symbols) if s in markets}
        self._interval = self.timeframes.get(timeframe, timeframe)
        self._on_kline = on_kline

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
                    closed = kline.get("x") is True
                    self._on_kline(i, kline["t"], self._values(kline) if closed else None)
                    return
        super().handle_message(client, message)

    def _values(self, kline: dict[str, Any]) -> list[Any]:
        """``[o, h, l, c, v]``: ``float`` of the decimal strings, as ccxt reads them; a
        field ccxt cannot read either is None (the gate refuses the candle, and
        counts it)."""
        try:
            return [
                float(kline["o"]),
                float(kline["h"]),
                float(kline["l"]),
                float(kline["c"]),
                float(kline["v"]),
            ]
        except (KeyError, TypeError, ValueError):
            return [self.safe_float(kline, k) for k in "ohlcv"]

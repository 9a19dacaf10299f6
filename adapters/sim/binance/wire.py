"""Binance spot's wire format, as far as ccxt reads it, built from the kline book.

Market metadata (``exchangeInfo`` symbols and their filters), kline rows and
stream events, 24hr tickers, Binance-style errors, and the ccxt client config
that points every ccxt URL at the simulator.  Numbers go out as strings with a
fixed number of decimals, as Binance sends them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from factorcast.adapters.sim.binance.book import (
    CLOSE,
    HIGH,
    LOW,
    OPEN,
    QUOTE_VOLUME,
    VOLUME,
    Stats24h,
)

F64 = NDArray[np.float64]

_QUOTES = ("USDT", "USDC", "FDUSD", "TUSD", "BUSD", "BTC", "ETH", "BNB", "EUR", "TRY")
_MIN_NOTIONAL = {"USDT": 5.0, "USDC": 5.0, "FDUSD": 5.0, "BTC": 0.0001, "ETH": 0.001, "BNB": 0.01}
_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"]
_STP_MODES = ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]
_KLINE_PARAMS = frozenset({"symbol", "interval", "startTime", "endTime", "limit", "timeZone"})

RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]


class BinanceError(Exception):
    """A request Binance would refuse: answered as ``{"code": ..., "msg": ...}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


_COMPACT = json.JSONEncoder(separators=(",", ":"))


def compact_json(obj: Any) -> str:
    """JSON as Binance's streams write it: no whitespace."""
    return _COMPACT.encode(obj)


def int_param(query: Mapping[str, str], name: str) -> int | None:
    """An optional non-negative integer query parameter, refused as Binance refuses it."""
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 20:
        raise BinanceError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


def kline_query(query: Mapping[str, str], interval: str) -> tuple[str, int | None, int | None, int]:
    """``/klines`` parameters checked as Binance checks them (only ``interval`` is
    served): the market id, startTime, endTime and limit (default 500, at most 1000)."""
    extra = set(query) - _KLINE_PARAMS
    if extra:
        raise BinanceError(
            -1104,
            f"Not all sent parameters were read; read '{len(query) - len(extra)}'"
            f" parameter(s) but was sent '{len(query)}'.",
        )
    for name in ("symbol", "interval"):
        if not query.get(name):
            raise BinanceError(
                -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
            )
    if query["interval"] != interval:
        raise BinanceError(-1120, "Invalid interval.")
    start, end, limit = (int_param(query, k) for k in ("startTime", "endTime", "limit"))
    if limit is not None and limit < 1:
        raise BinanceError(-1130, "Data sent for parameter 'limit' is not valid.")
    if start is not None and end is not None and start > end:
        raise BinanceError(-1023, "Start time is greater than end time.")
    return query["symbol"], start, end, min(limit or 500, 1000)


def split_symbol(symbol: str) -> tuple[str, str]:
    """``"ETH/BTC"``, ``"ETH-BTC"``, ``"ETH_BTC"`` or ``"ETHBTC"`` -> ``("ETH", "BTC")``."""
    for sep in "/-_":
        if sep in symbol:
            base, quote = symbol.split(sep, 1)
            return base.upper(), quote.split(":")[0].upper()
    for quote in _QUOTES:
        if symbol.upper().endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)].upper(), quote
    raise ValueError(f"cannot split {symbol!r} into base and quote")


@dataclass(frozen=True, slots=True)
class Market:
    """One spot market: the feed's symbol and Binance's names for it."""

    symbol: str
    id: str
    base: str
    quote: str

    @classmethod
    def of(cls, symbol: str) -> Market:
        base, quote = split_symbol(symbol)
        return cls(symbol, base + quote, base, quote)

    @property
    def stream_prefix(self) -> str:
        return self.id.lower() + "@"


def sizes(price: float | None) -> tuple[float, float]:
    """(tick size, lot step) for a market trading near ``price``: about six
    significant digits of price, and a lot worth roughly one to ten quote units."""
    if price is None or not math.isfinite(price) or price <= 0:
        return 1e-8, 1e-8
    tick = 10.0 ** max(math.floor(math.log10(price)) - 6, -8)
    step = 10.0 ** min(max(math.floor(-math.log10(price)), -8), 0)
    return tick, step


class WireFormat:
    """Formats book rows as Binance sends them, for one timeframe."""

    def __init__(self, timeframe_ms: int, interval: str, decimals: int | None = 8) -> None:
        self.timeframe_ms, self.interval, self.decimals = timeframe_ms, interval, decimals

    def num(self, x: float) -> str:
        """Fixed decimals as Binance sends them; ``decimals=None`` sends the shortest
        string that reads back as the same float (lossless, for replay parity)."""
        if self.decimals is None:
            return repr(float(x))
        return f"{x:.{self.decimals}f}"

    def kline_row(self, ts: int, v: F64) -> list[Any]:
        """A ``/klines`` row.  There are no trades: ``n`` is 1 for a bar with volume,
        and takers bought half of it."""
        f = self.num
        return [
            ts,
            f(v[OPEN]),
            f(v[HIGH]),
            f(v[LOW]),
            f(v[CLOSE]),
            f(v[VOLUME]),
            ts + self.timeframe_ms - 1,
            f(v[QUOTE_VOLUME]),
            int(v[VOLUME] > 0),
            f(v[VOLUME] / 2),
            f(v[QUOTE_VOLUME] / 2),
            "0",
        ]

    def kline_event(self, m: Market, ts: int, v: F64, *, closed: bool) -> dict[str, Any]:
        """A ``<symbol>@kline_<interval>`` stream payload (``x`` = the kline is closed),
        its fields in the order Binance sends them."""
        t, o, h, lo, c, vol, end, q, n, taker_v, taker_q, ignore = self.kline_row(ts, v)
        k = {"t": t, "T": end, "s": m.id, "i": self.interval, "f": -1, "L": -1}
        k |= {"o": o, "c": c, "h": h, "l": lo, "v": vol, "n": n, "x": closed}
        k |= {"q": q, "V": taker_v, "Q": taker_q, "B": ignore}
        return {"e": "kline", "E": ts + self.timeframe_ms if closed else ts, "s": m.id, "k": k}

    def symbol_info(
        self, m: Market, price: float | None, status: str | None = "TRADING"
    ) -> dict[str, Any]:
        """An ``exchangeInfo`` symbol; ccxt reads precision and limits from its filters,
        and takes a market as active when its ``status`` is ``TRADING``."""
        f = self.num
        tick, step = sizes(price)
        big = f(9_000_000.0)
        filters = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": f(tick),
                "maxPrice": big,
                "tickSize": f(tick),
            },
            {"filterType": "LOT_SIZE", "minQty": f(step), "maxQty": big, "stepSize": f(step)},
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {"filterType": "MARKET_LOT_SIZE", "minQty": f(0), "maxQty": big, "stepSize": f(0)},
            {"filterType": "NOTIONAL", "minNotional": f(_MIN_NOTIONAL.get(m.quote, 1.0))}
            | {"applyMinToMarket": True, "maxNotional": big, "applyMaxToMarket": False},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ]
        return {
            "symbol": m.id,
            "status": status or "TRADING",
            "baseAsset": m.base,
            "baseAssetPrecision": 8,
            "quoteAsset": m.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": _ORDER_TYPES,
            "icebergAllowed": True,
            "ocoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": filters,
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": _STP_MODES,
        }

    def ticker(self, m: Market, s: Stats24h, price: float | None) -> dict[str, Any]:
        """A ``/ticker/24hr`` entry; the book is one tick wide around the last price."""
        f = self.num
        tick, _ = sizes(price)
        change = s.last - s.open
        quoted = 1.0 if s.last else 0.0
        return {
            "symbol": m.id,
            "priceChange": f(change),
            "priceChangePercent": f"{100 * change / s.open if s.open else 0.0:.3f}",
            "weightedAvgPrice": f(s.quote_volume / s.volume if s.volume else s.last),
            "prevClosePrice": f(s.prev_close),
            "lastPrice": f(s.last),
            "lastQty": f(0.0),
            "bidPrice": f(s.last),
            "bidQty": f(quoted),
            "askPrice": f(s.last + tick if s.last else 0.0),
            "askQty": f(quoted),
            "openPrice": f(s.open),
            "highPrice": f(s.high),
            "lowPrice": f(s.low),
            "volume": f(s.volume),
            "quoteVolume": f(s.quote_volume),
            "openTime": s.open_time,
            "closeTime": s.close_time,
            "firstId": 0 if s.count else -1,
            "lastId": s.count - 1 if s.count else -1,
            "count": s.count,
        }


def ccxt_config(host: str, port: int) -> dict[str, Any]:
    """Constructor config for ``ccxt.async_support.binance`` and ``ccxt.pro.binance``:
    every URL of ccxt's ``urls['api']`` tree (REST and websocket) keeps its path but
    points at ``host:port``, and only spot markets load (no sapi, fapi or dapi call)."""
    from factorcast.adapters.exchange.client import client_config

    config = client_config("binance", api_url=f"http://{host}:{port}", ws_url=f"ws://{host}:{port}")
    config["options"]["adjustForTimeDifference"] = False
    return config

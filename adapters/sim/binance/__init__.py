"""An embedded Binance spot exchange on loopback, for running the real ccxt clients here.

Start a :class:`BinanceSim` over a :class:`BarFeed` (or over recorded candles
re-timed by :func:`retime`), build the ccxt clients with
``BinanceSim.ccxt_config()``, and inject faults through ``BinanceSim.faults``.
"""

from factorcast.adapters.sim.binance.book import (
    BarFeed,
    Bars,
    BarsLike,
    Candles,
    CandlesLike,
    FeedExhausted,
    HistoryTooShort,
    KlineBook,
    Klines,
    PanelFeed,
    Stats24h,
    aligned_start_ms,
    interval_of,
    retime,
)
from factorcast.adapters.sim.binance.faults import CDN_ERROR_PAGE, Faults, HttpFault
from factorcast.adapters.sim.binance.server import BinanceSim
from factorcast.adapters.sim.binance.wire import BinanceError, Market, ccxt_config, split_symbol

__all__ = [
    "CDN_ERROR_PAGE",
    "BarFeed",
    "Bars",
    "BarsLike",
    "BinanceError",
    "BinanceSim",
    "Candles",
    "CandlesLike",
    "Faults",
    "FeedExhausted",
    "HistoryTooShort",
    "HttpFault",
    "KlineBook",
    "Klines",
    "Market",
    "PanelFeed",
    "Stats24h",
    "aligned_start_ms",
    "ccxt_config",
    "interval_of",
    "retime",
    "split_symbol",
]

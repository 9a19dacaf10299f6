"""The exchange through ccxt.

* :mod:`.client`: the REST client with its retries and backoff, and the universe's
  resolution from the exchange's own lists.
* :mod:`.source`: the live source that turns REST and ccxt.pro websockets into
  cross-sections through the integrity gate; start reading there.  Its parts, one
  module each: :mod:`.feed` (settings, counters, the exchange's clock),
  :mod:`.tasks` (the owner of its tasks), :mod:`.intake` (candles into the gate,
  the bounded queue out), :mod:`.watchdog` (when each symbol was last heard from),
  :mod:`.listings` (the exchange's markets), :mod:`.rest` (catch-up, polling, late
  bars, backfills), :mod:`.membership` (who the universe waits for) and
  :mod:`.websocket` (subscription, the connection, candles off the streams).
* :mod:`.binance_klines`: Binance's kline events read straight off the socket.
"""

__all__: list[str] = [
    "binance_klines",
    "client",
    "feed",
    "intake",
    "listings",
    "membership",
    "rest",
    "source",
    "tasks",
    "watchdog",
    "websocket",
]

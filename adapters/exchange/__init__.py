"""The exchange through ccxt: the REST client with its retries and backoff
(:mod:`.client`), the live source that turns REST and ccxt.pro websockets into
cross-sections through the integrity gate (:mod:`.source`), and Binance's kline
reader (:mod:`.binance_klines`).
"""

__all__: list[str] = ["binance_klines", "client", "source"]

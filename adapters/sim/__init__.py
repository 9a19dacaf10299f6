"""Simulators: the simulated market with planted factor structure
(:mod:`.market`) and the embedded exchange that serves it, or recorded candles,
in Binance's REST and websocket wire format (:mod:`.binance`).
"""

__all__: list[str] = ["binance", "market"]

"""Every outside thing: ccxt sources, the exchange simulator, recorded candles, Redis, metrics."""

"""Every outside thing, one subpackage per system it talks to: the exchange
(ccxt), Redis, observability (metrics, HTTP, logs, the terminal), files (recorded
candles, outputs, the state directory) and the simulators.  Adapters import the
core and :mod:`factorcast.factors`, never the composition root
(:mod:`factorcast.strategy.app`), which alone imports them.  No submodule is
imported here: each pulls in its own outside library.
"""

__all__: list[str] = ["exchange", "files", "observe", "redis", "sim"]

"""What the exchange lists: its markets, loaded again now and then.

ccxt keeps the exchange's markets on the REST client (``client.rest.markets``).
A symbol is *known* when the exchange lists it (trading or not; ccxt asks REST only
about markets it has loaded) and *trading* when it lists it as active.  The markets
are reloaded every ``refresh_s`` (:meth:`Listings.keep_fresh`, a supervised task;
in REST mode within each poll round when due, :meth:`Listings.due`), and when a
part needs a market the last load did not have (:meth:`Listings.reload`: one load
at a time, shared by every caller meanwhile).

After a load, ``on_loaded`` applies what the markets say (the websocket side
subscribes to new streams, the membership lets symbols join or leave): those
belong to the parts above, so they come in as one callable from the source.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from factorcast.adapters.exchange.client import ExchangeClient, FeedError, FeedUnavailable
from factorcast.adapters.exchange.feed import ExchangeClock, FeedTiming
from factorcast.adapters.exchange.tasks import FeedTasks

log = structlog.get_logger(__name__)


class Listings:
    """The exchange's markets for the symbols of one universe."""

    def __init__(
        self,
        client: ExchangeClient,
        symbols: Sequence[str],
        clock: ExchangeClock,
        timing: FeedTiming,
        tasks: FeedTasks,
        on_loaded: Callable[[bool], Awaitable[None]],
    ) -> None:
        """``on_loaded(new_markets)``: the markets were loaded again; ``new_markets``
        if the exchange lists a symbol it did not list before."""
        self.client = client
        self.symbols = tuple(symbols)
        self.clock = clock
        self.timing = timing
        self.tasks = tasks
        self._on_loaded = on_loaded
        self.loaded_at = 0  # exchange ms of the last load of the markets
        self._loading: asyncio.Task[None] | None = None

    def known(self, i: int) -> bool:
        """The exchange lists symbol ``i`` (trading or not): ccxt can ask REST for it."""
        return self.symbols[i] in (self.client.rest.markets or {})

    def trading(self, i: int) -> bool:
        market = (self.client.rest.markets or {}).get(self.symbols[i])
        return market is not None and market.get("active", True) is not False

    def due(self, now_ms: int) -> bool:
        """A refresh is due (``refresh_s`` since the last load)."""
        refresh = self.timing.refresh_s
        return refresh is not None and now_ms - self.loaded_at >= refresh * 1000

    async def keep_fresh(self) -> None:
        """Reload the markets every ``refresh_s`` (websocket mode, off Binance)."""
        t = self.timing
        assert t.refresh_s is not None
        period = max(t.wall(t.refresh_s), t.min_refresh_wall_s)
        while True:
            await asyncio.sleep(period)
            await self.reload()

    async def reload(self) -> None:
        """Load the exchange's markets again (once, for every caller meanwhile) and
        apply what they say (``on_loaded``)."""
        task = self._loading
        if task is None or task.done():
            task = self._loading = self.tasks.spawn("markets-reload", self._load())
            if task is None:
                return  # the source is closed
        await asyncio.shield(task)

    async def _load(self) -> None:
        n = len(self.symbols)
        known = {i for i in range(n) if self.known(i)}
        self.loaded_at = self.clock.now_ms()
        try:
            await self.client.load_markets(attempts=3)
        except (FeedUnavailable, FeedError) as e:
            log.warning("markets_reload_failed", error=str(e))
            return
        await self._on_loaded(any(self.known(i) for i in range(n) if i not in known))

"""Symbols that come and go, live: the real ccxt clients against the embedded exchange.

The exchange lists a symbol as its first bar opens and delists it after its last;
one symbol misses a bar, another stops trading for a while.  Bars advance by hand,
so the panel the exchange serves is the truth every released cross-section is
compared with, value for value: a symbol without a bar is missing, never late,
and never costs a wait for the grace deadline (a minute away here).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from factorcast.adapters.exchange.client import Backoff, ExchangeClient, FeedError, resolve_universe
from factorcast.adapters.exchange.source import CcxtSource, FeedTiming, pro_client
from factorcast.adapters.sim.binance import BinanceSim, Market, PanelFeed, aligned_start_ms
from factorcast.strategy.events import CrossSection

pytestmark = pytest.mark.integration

TF = 60_000
HISTORY = 30
ROWS = HISTORY + 24
SYMBOLS = ["AAA/USDT", "BBB/USDT", "CCC/USDT", "NEW/USDT", "GONE/USDT", "HOLE/USDT", "HALT/USDT"]
NEW, GONE, HOLE, HALT = (SYMBOLS.index(f"{s}/USDT") for s in ("NEW", "GONE", "HOLE", "HALT"))
LISTED_AT = HISTORY + 3  # NEW's first bar
LAST_OF_GONE = HISTORY + 4
HOLE_AT = HISTORY + 2
HALTED = range(HISTORY + 6, HISTORY + 12)  # longer than the three bars that make it leave


def panel() -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Bar times and a ``(ROWS, symbols, 6)`` panel; NaN where a symbol has no bar."""
    rng = np.random.default_rng(3)
    n = len(SYMBOLS)
    close = 10.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, (ROWS, n)), axis=0))
    open_ = close * np.exp(rng.normal(0.0, 0.003, (ROWS, n)))
    high = np.maximum(open_, close) * 1.002
    low = np.minimum(open_, close) * 0.998
    volume = rng.uniform(1.0, 100.0, (ROWS, n))
    data = np.stack([open_, high, low, close, volume, close * volume], axis=2)
    data[:LISTED_AT, NEW] = np.nan
    data[LAST_OF_GONE + 1 :, GONE] = np.nan
    data[HOLE_AT, HOLE] = np.nan
    data[HALTED.start : HALTED.stop, HALT] = np.nan
    start = aligned_start_ms(int(time.time() * 1000), TF, HISTORY)
    return start + np.arange(ROWS, dtype=np.int64) * TF, data


@dataclass
class Live:
    sim: BinanceSim
    source: CcxtSource
    ts: NDArray[np.int64]
    truth: NDArray[np.float64]
    got: list[CrossSection]

    def live(self) -> list[CrossSection]:
        return [x for x in self.got if x.live]

    async def wait_for(self, n_live: int, timeout: float = 15.0) -> list[CrossSection]:
        """``timeout`` is far below the grace deadline: a bar that waited for it fails."""
        deadline = time.monotonic() + timeout
        while len(self.live()) < n_live:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(self.live())} of {n_live} live cross-sections")
            await asyncio.sleep(0.01)
        return self.live()

    def check(self, sections: list[CrossSection]) -> None:
        for xs in sections:
            row = int(np.searchsorted(self.ts, xs.ts))
            assert self.ts[row] == xs.ts
            want = np.isfinite(self.truth[row, :, 3])
            np.testing.assert_array_equal(xs.present, want, err_msg=f"row {row}")
            assert not xs.late.any(), f"late at row {row}"
            for k, field in enumerate(("open", "high", "low", "close", "volume")):
                np.testing.assert_array_equal(getattr(xs, field)[want], self.truth[row, want, k])

    def klines_asked(self, symbol: int, after: int) -> list[str]:
        """The ``/klines`` requests for ``symbol`` among the exchange's requests."""
        wanted = "symbol=" + SYMBOLS[symbol].replace("/", "")
        return [
            r
            for r in list(self.sim.requests)[after:]
            if r.startswith("GET /api/v3/klines?") and wanted in r.split("?")[1].split("&")
        ]


@contextlib.asynccontextmanager
async def listings(mode: str) -> AsyncIterator[Live]:
    ts, data = panel()
    feed = PanelFeed(SYMBOLS, TF, ts, data, history_bars=HISTORY)
    async with contextlib.AsyncExitStack() as stack:
        sim = await stack.enter_async_context(BinanceSim(feed, history_bars=HISTORY, decimals=None))
        config = sim.ccxt_config()
        config["timeout"] = 1500
        client = ExchangeClient("binance", config, backoff=Backoff(0.01, 0.1, 0.02), seed=1)
        stack.push_async_callback(client.close)
        pro = None
        if mode == "ws":
            pro = pro_client("binance", config)
            stack.push_async_callback(pro.close)
        with pytest.raises(FeedError, match="NEW/USDT"):
            await resolve_universe(client, SYMBOLS, None, None)  # not listed yet
        symbols = await resolve_universe(client, SYMBOLS, None, None, await_listing=True)
        timing = FeedTiming(
            grace_s=60.0,
            stale_after_s=30.0,
            min_grace_wall_s=60.0,
            min_stale_wall_s=30.0,
            poll_interval_s=0.05,
            refresh_s=TF / 1000,  # REST: a reload of the markets in each bar's first round
        )
        source = CcxtSource(
            client, symbols, "1m", history_bars=HISTORY, mode=mode, pro=pro, timing=timing
        )
        stack.push_async_callback(source.aclose)
        live = Live(sim, source, ts, data, [])

        async def consume() -> None:
            async for xs in source.cross_sections():
                live.got.append(xs)

        task = asyncio.create_task(consume())

        async def stop_consuming() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop_consuming)
        deadline = time.monotonic() + 10
        while not live.got and time.monotonic() < deadline and not task.done():
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        if mode == "ws":
            # The bars a test pushes from here on must reach the websocket: wait until
            # the exchange holds the subscription to every symbol.
            streams = {f"{Market.of(s).stream_prefix}kline_{sim.interval}" for s in symbols}
            async with asyncio.timeout(20):
                while not streams <= set().union(*sim.subscriptions()):
                    await asyncio.sleep(0.01)
        yield live


async def advance_one_by_one(live: Live, bars: int) -> list[CrossSection]:
    """Close ``bars`` bars, each once the one before it is out."""
    for _ in range(bars):
        await live.sim.advance(1)
        await live.wait_for(len(live.live()) + 1)
    return live.live()


@pytest.mark.parametrize("mode", ["ws", "rest"])
async def test_symbols_that_list_delist_and_halt_are_missing_never_late(mode: str) -> None:
    async with listings(mode) as live:
        gate = live.source.gate
        warm = [x for x in live.got if not x.live]
        assert len(warm) == HISTORY
        live.check(warm)
        assert not gate.is_member(NEW) and live.sim.status("NEW/USDT") is None
        assert all(gate.is_member(i) for i in range(len(SYMBOLS)) if i != NEW)
        requests = len(live.sim.requests)

        sections = await advance_one_by_one(live, HALTED.start - HISTORY + 3)
        live.check(sections)
        assert gate.is_member(NEW)  # listed: in its first bar's cross-section
        assert sections[LISTED_AT - HISTORY].present[NEW]
        assert not sections[HOLE_AT - HISTORY].present[HOLE]
        assert not gate.is_member(GONE) and live.sim.status("GONE/USDT") == "BREAK"
        assert not gate.is_member(HALT)  # three bars without one
        if mode == "ws":
            # the stream went from HOLE's bar before the hole to the one after it: no
            # REST call was needed to know the hole is one
            assert not live.klines_asked(HOLE, after=requests)

        sections = await advance_one_by_one(live, ROWS - 1 - HALTED.start - 3)
        live.check(sections)
        assert gate.is_member(HALT)  # trades again: back from its first bar
        assert sections[HALTED.stop - HISTORY].present[HALT]
        assert not gate.is_member(GONE)
        assert gate.stats.late == 0

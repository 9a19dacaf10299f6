"""The simulated market as a source: warm-up history, then live bars on an accelerated clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from adapters.simmarket import SimBars, SimulatedMarket
from strategy.events import CrossSection


def cross_section(bars: SimBars, live: bool) -> CrossSection:
    present = np.isfinite(bars.close)
    return CrossSection(
        ts=bars.ts,
        open=bars.open,
        high=bars.high,
        low=bars.low,
        close=bars.close,
        volume=bars.volume,
        quote_volume=bars.quote_volume,
        present=present,
        late=np.zeros(present.size, dtype=bool),
        live=live,
    )


class SimSource:
    """``warmup_bars`` cross-sections at once (history), then ``speed`` bars per second."""

    def __init__(self, market: SimulatedMarket, *, warmup_bars: int, speed: float) -> None:
        self.market = market
        self.warmup_bars = warmup_bars
        self.interval = 1.0 / speed

    async def cross_sections(self) -> AsyncIterator[CrossSection]:
        for i in range(self.warmup_bars):
            yield cross_section(self.market.next_bars(), live=False)
            if i % 64 == 63:
                await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            due += self.interval
            await asyncio.sleep(max(0.0, due - loop.time()))
            yield cross_section(self.market.next_bars(), live=True)

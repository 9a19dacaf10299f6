"""Recorded candles as a market source: aligned cross-sections in bar-time order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from factorcast.adapters.files.recorded import RecordedCandles
from factorcast.strategy.events import CrossSection

_FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")


@dataclass(frozen=True, slots=True)
class Panel:
    """Candles on a (bar time x symbol) grid; NaN and ``present=False`` where no bar."""

    symbols: tuple[str, ...]
    ts: NDArray[np.int64]
    fields: dict[str, NDArray[np.float64]]
    present: NDArray[np.bool_]

    @staticmethod
    def from_recorded(candles: RecordedCandles) -> Panel:
        symbols = tuple(candles.series)
        all_ts = [s.ts for s in candles.series.values()]
        if len(all_ts) == 1:
            ts = all_ts[0]  # already strictly increasing: no sorted copy of a large file
        else:
            ts = np.unique(np.concatenate(all_ts)) if all_ts else np.zeros(0, dtype=np.int64)
        fields = {f: np.full((ts.size, len(symbols)), np.nan) for f in _FIELDS}
        present = np.zeros((ts.size, len(symbols)), dtype=bool)
        for j, series in enumerate(candles.series.values()):
            rows = np.searchsorted(ts, series.ts)
            present[rows, j] = True
            for f in _FIELDS:
                fields[f][rows, j] = getattr(series, f)
        return Panel(symbols, ts, fields, present)

    def cross_section(self, t: int) -> CrossSection:
        f = self.fields
        return CrossSection(
            ts=int(self.ts[t]),
            open=f["open"][t],
            high=f["high"][t],
            low=f["low"][t],
            close=f["close"][t],
            volume=f["volume"][t],
            quote_volume=f["quote_volume"][t],
            present=self.present[t],
            late=np.zeros(len(self.symbols), dtype=bool),
        )


class ReplaySource:
    """Cross-sections of a :class:`Panel`, as fast as the pipeline takes them."""

    def __init__(self, panel: Panel, on_progress: Callable[[int], None] | None = None) -> None:
        self.panel = panel
        self._on_progress = on_progress

    def __len__(self) -> int:
        return int(self.panel.ts.size)

    async def cross_sections(self) -> AsyncIterator[CrossSection]:
        for t in range(len(self)):
            yield self.panel.cross_section(t)
            if self._on_progress is not None:
                self._on_progress(t + 1)
            if t % 64 == 63:
                await asyncio.sleep(0)  # let the other pipeline tasks run

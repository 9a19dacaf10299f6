"""What the custom-factor tests check against, written from the specifications:
real Binance 1h candles on the timeframe grid, FACTORS.md's standardization in
pandas, and the reasons of ANALYTICS.md section 9 / FACTORS.md from the bars alone.
Nothing here runs ``factors/`` code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray

from factorcast.adapters.files.recorded import load_directory
from factorcast.adapters.files.replay import Panel
from factorcast.strategy.events import CrossSection
from tests.conftest import REPO

BINANCE = REPO.parent / "shared" / "data" / "binance-1h"
FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")
#: grid rows: a listing (404), two grid times without any bar (494, 574), zero volumes
ROWS = (380, 800)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Grid:
    """Candles on every grid time of a stretch of the Binance data."""

    symbols: tuple[str, ...]
    ts: NDArray[np.int64]
    timeframe_ms: int
    fields: dict[str, FloatArray]
    present: NDArray[np.bool_]

    def frame(self, field: str) -> pd.DataFrame:
        return pd.DataFrame(self.fields[field], index=self.ts, columns=list(self.symbols))

    def cross_sections(self) -> list[CrossSection]:
        """The cross-sections replay has: one per grid time with any bar."""
        out = []
        for t in np.flatnonzero(self.present.any(axis=1)):
            f = {name: self.fields[name][t] for name in FIELDS}
            out.append(CrossSection(int(self.ts[t]), **f, present=self.present[t]))
        return out

    def runs(self) -> NDArray[np.int64]:
        """Per grid time and symbol, the grid steps up to it at each of which the
        symbol had a bar (0 where it has none)."""
        out = np.zeros(self.present.shape, dtype=np.int64)
        run = np.zeros(self.present.shape[1], dtype=np.int64)
        for t, row in enumerate(self.present):
            run = np.where(row, run + 1, 0)
            out[t] = run
        return out


def load_grid(rows: tuple[int, int] | None = ROWS, path: Path = BINANCE) -> Grid:
    """The candles of ``path`` on every grid time (grid rows ``rows``, all if None)."""
    if not path.is_dir():
        pytest.fail(f"shared candle data missing: {path}")
    candles = load_directory(path)
    panel = Panel.from_recorded(candles)
    tf = candles.timeframe_ms
    at = ((panel.ts - panel.ts[0]) // tf).astype(int)
    steps = int(at[-1]) + 1
    present = np.zeros((steps, len(panel.symbols)), dtype=bool)
    present[at] = panel.present
    rows = rows or (0, steps)
    fields = {}
    for f in FIELDS:
        full = np.full(present.shape, np.nan)
        full[at] = panel.fields[f]
        fields[f] = full[rows[0] : rows[1]]
    ts = panel.ts[0] + np.arange(steps, dtype=np.int64) * tf
    return Grid(panel.symbols, ts[rows[0] : rows[1]], tf, fields, present[rows[0] : rows[1]])


def standardize(raw: pd.Series) -> tuple[pd.Series, str]:
    """FACTORS.md "From raw descriptor to exposure" over the finite values of one
    cross-section, equal weights: the exposures and the reason of the row."""
    x = raw.dropna()
    if len(x) < 3:
        return pd.Series(np.nan, index=x.index), "too_few_symbols"
    med = x.median()
    mad = (x - med).abs().median()
    if mad > 0:
        x = x.clip(med - 3 * 1.4826 * mad, med + 3 * 1.4826 * mad)
    if (x == x.iloc[0]).all():
        return pd.Series(np.nan, index=x.index), "no_dispersion"
    z = (x - x.mean()) / x.std(ddof=0)
    return z.clip(-3, 3), "ok"


def expected_reasons(
    raw: FloatArray, present: NDArray[np.bool_], runs: NDArray[np.int64], lookback: int
) -> list[str]:
    """The reason of each symbol's NaN raw value (``""`` where it is finite): no bar,
    a bar at each of the last ``lookback`` steps or not."""
    out = []
    for value, here, run in zip(raw, present, runs, strict=True):
        if not here:
            out.append("missing_bar")
        elif np.isfinite(value):
            out.append("")
        else:
            out.append("undefined" if run > lookback else "insufficient_history")
    return out

"""File outputs: the exposure table (CSV or Parquet) and signals as JSON lines."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from factorcast.factors import REASON_LABELS
from factorcast.strategy.engine import StepResult
from factorcast.strategy.publish import WireContext, exposure_members, signal_dicts

EXPOSURE_COLUMNS = ("timestamp", "symbol", "factor", "raw", "exposure", "reason")


class ExposureWriter:
    """``timestamp,symbol,factor,raw,exposure,reason``: one row per bar time, per
    symbol in the cross-section, per factor; NaN exposures keep their reason.

    Rows are buffered and written in chunks, so memory stays bounded on long runs.
    """

    def __init__(self, path: Path, symbols: tuple[str, ...], chunk_rows: int = 200_000) -> None:
        self.path = path
        self.parquet = path.suffix.lower() in (".parquet", ".pq")
        self._symbols = np.array(symbols, dtype=object)
        self._reasons = np.array(REASON_LABELS, dtype=object)
        self._chunk_rows = chunk_rows
        self._parts: list[tuple[Any, ...]] = []
        self._buffered = 0
        self._wrote_header = False
        self._pq: pq.ParquetWriter | None = None
        self._names: np.ndarray[Any, Any] | None = None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)

    def set_context(self, ctx: WireContext) -> None:
        """Rows from here on are of ``ctx``'s universe (a live run that follows a new
        one); the rows so far are written first."""
        self._write()
        self._symbols = np.array(ctx.symbols, dtype=object)

    async def handle(self, result: StepResult) -> None:
        rows = exposure_members(result)
        snap = result.factors
        if self._names is None:
            self._names = np.array(snap.names, dtype=object)
        k = len(snap.names)
        self._parts.append(
            (
                result.ts,
                np.repeat(rows, k),
                snap.raw[rows].ravel(),
                snap.exposure[rows].ravel(),
                snap.reason[rows].ravel(),
                len(rows),
            )
        )
        self._buffered += len(rows) * k
        if self._buffered >= self._chunk_rows:
            self._write()

    def _frame(self) -> pd.DataFrame:
        assert self._names is not None
        k = len(self._names)
        return pd.DataFrame(
            {
                "timestamp": np.concatenate(
                    [np.full(n * k, ts, dtype=np.int64) for ts, *_, n in self._parts]
                ),
                "symbol": self._symbols[np.concatenate([p[1] for p in self._parts])],
                "factor": np.tile(self._names, self._buffered // k),
                "raw": np.concatenate([p[2] for p in self._parts]),
                "exposure": np.concatenate([p[3] for p in self._parts]),
                "reason": self._reasons[np.concatenate([p[4] for p in self._parts])],
            },
            columns=list(EXPOSURE_COLUMNS),
        )

    def _write(self) -> None:
        if not self._parts:
            return
        frame = self._frame()
        self._parts.clear()
        self._buffered = 0
        if self.parquet:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._pq is None:
                self._pq = pq.ParquetWriter(self.path, table.schema)
            self._pq.write_table(table)
        else:
            frame.to_csv(self.path, mode="a", header=not self._wrote_header, index=False)
            self._wrote_header = True

    async def close(self) -> None:
        self._write()
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        elif not self._wrote_header and not self.parquet:
            pd.DataFrame(columns=list(EXPOSURE_COLUMNS)).to_csv(self.path, index=False)


class SignalWriter:
    """One ``factorcast.signal/1`` JSON object per line, for every symbol in every
    cross-section (holds included)."""

    def __init__(self, path: Path, ctx: WireContext) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._ctx = ctx
        self._fh: IO[bytes] | None = path.open("wb")
        self.count = 0

    def set_context(self, ctx: WireContext) -> None:
        """Signals from here on are of ``ctx``'s universe."""
        self._ctx = ctx

    async def handle(self, result: StepResult) -> None:
        assert self._fh is not None
        lines = [orjson.dumps(obj) for obj in signal_dicts(result, self._ctx)]
        if lines:
            self._fh.write(b"\n".join(lines) + b"\n")
        self.count += len(lines)

    async def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

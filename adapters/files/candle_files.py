"""One recorded candle file read into columns, and how much memory may be spent on it.

Only the columns a candle needs are read (``date`` or ``timestamp``, ``open``,
``high``, ``low``, ``close``, ``volume`` and, where present, ``quote_volume``),
prices and volumes as float64.  csv (pyarrow's streaming reader) and parquet (row
group by row group) are read batch by batch into arrays allocated once, so that
reading takes about the size of the result; feather is read by column (memory
mapped), freqtrade's json through the json module.  A csv whose prices hold text
(``abc``) is read a second time, all as text, so that such a value rejects its row
(``nan``) instead of the file.

Before anything is read, :func:`check_size` refuses a file larger than a limit
that the caller derives from :func:`available_memory` (the service: a share of
it, ``recorded.max_file_share``).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from numpy.typing import NDArray
from pyarrow import feather

__all__ = [
    "CandleDataError",
    "CandleFileTooLarge",
    "Columns",
    "SizeLimit",
    "available_memory",
    "check_size",
    "format_bytes",
    "read_columns",
]

_PRICE_VOLUME: Final = ("open", "high", "low", "close", "volume")
_TIME_NAMES: Final = ("date", "timestamp")
_NEEDED: Final = (*_TIME_NAMES, *_PRICE_VOLUME, "quote_volume")
#: pyarrow's csv block: the first one tells how many rows the file holds, about
_CSV_BLOCK: Final = 1 << 20

#: ``(ts, open, high, low, close, volume[, quote_volume])``, not yet validated
Columns = tuple[NDArray[Any], ...]


class CandleDataError(ValueError):
    """The recorded data cannot be read as asked (a one-line, user-facing message)."""


class CandleFileTooLarge(CandleDataError):
    """A candle file is over the size limit; refused before it is read."""


@dataclass(frozen=True, slots=True)
class SizeLimit:
    """The largest candle file to read, and how that figure came about (for the message)."""

    max_bytes: int
    basis: str = ""


def format_bytes(n: float) -> str:
    """``2004363244`` -> ``'1.9 GiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_size(file: Path, limit: SizeLimit) -> None:
    """Raise :class:`CandleFileTooLarge` if ``file`` is over ``limit``."""
    size = file.stat().st_size
    if size > limit.max_bytes:
        basis = f" ({limit.basis})" if limit.basis else ""
        raise CandleFileTooLarge(
            f"{file} is {format_bytes(size)}, over the {format_bytes(limit.max_bytes)} "
            f"limit for a candle file{basis}"
        )


def available_memory() -> int | None:
    """Bytes this process may still take: the kernel's ``MemAvailable``, or less where a
    cgroup (a container) allows less.  None where neither can be read (not Linux)."""
    found: list[int] = []
    try:
        meminfo = Path("/proc/meminfo").read_text()
        m = re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.MULTILINE)
        if m:
            found.append(int(m[1]) * 1024)
    except OSError:
        pass
    cgroup = _cgroup_headroom()
    if cgroup is not None:
        found.append(cgroup)
    if not found:
        try:
            found.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return None
    return min(found)


def _cgroup_headroom() -> int | None:
    """cgroup v2 ``memory.max - memory.current`` of this process's group, or v1's."""
    try:
        line = next(
            (x for x in Path("/proc/self/cgroup").read_text().splitlines() if x.startswith("0::")),
            "0::/",
        )
    except OSError:
        line = "0::/"
    root = Path("/sys/fs/cgroup")
    for group in (root / line[3:].lstrip("/"), root, root / "memory"):
        for limit_name, usage_name in (
            ("memory.max", "memory.current"),
            ("memory.limit_in_bytes", "memory.usage_in_bytes"),
        ):
            try:
                limit = (group / limit_name).read_text().strip()
                usage = int((group / usage_name).read_text())
            except (OSError, ValueError):
                continue
            if limit.isdigit() and int(limit) < 2**60:  # v1 writes "no limit" as ~2**63
                return max(0, int(limit) - usage)
            return None
    return None


def read_columns(file: Path) -> Columns:
    """The file's candle columns as arrays; zero rows for an empty file or one with
    a header and no rows.  Raises :class:`CandleDataError` with a one-line message."""
    ext = file.suffix.lstrip(".")
    try:
        if file.stat().st_size == 0:
            return _empty()
        if ext == "json":
            return _json_columns(file, json.loads(file.read_bytes()))
        if ext == "csv":
            return _csv_columns(file)
        if ext == "parquet":
            return _parquet_columns(file)
        return _table_columns(file, _read_feather(file))
    except CandleDataError:
        raise
    except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
        # json.JSONDecodeError and UnicodeDecodeError are ValueErrors; pyarrow's errors
        # are ArrowExceptions (ArrowInvalid is also a ValueError, ArrowIOError an OSError).
        raise CandleDataError(f"cannot read {file}: {exc}".splitlines()[0]) from exc


def _empty() -> Columns:
    return (np.zeros(0, dtype=np.int64), *(np.zeros(0) for _ in _PRICE_VOLUME))


def _chosen(names: Sequence[str]) -> list[str]:
    return [n for n in _NEEDED if n in names]


def _time_name(file: Path, names: Sequence[str]) -> str:
    """The time column's name; CandleDataError naming every missing column."""
    ts_name = next((n for n in _TIME_NAMES if n in names), None)
    missing = [c for c in _PRICE_VOLUME if c not in names]
    if ts_name is None:
        missing.insert(0, "date (or timestamp)")
    if missing:
        raise CandleDataError(f"{file}: missing column(s) {', '.join(missing)}")
    assert ts_name is not None
    return ts_name


def _csv_columns(file: Path) -> Columns:
    with file.open(encoding="utf-8-sig", newline="") as f:
        header = f.readline(1 << 20)
    names = _chosen(next(csv.reader([header]), []))
    ts_name = _time_name(file, names)
    floats = {n: pa.float64() for n in names if n != ts_name}
    size = file.stat().st_size
    try:
        reader = pa_csv.open_csv(
            file,
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=_CSV_BLOCK),
            convert_options=pa_csv.ConvertOptions(include_columns=names, column_types=floats),
        )
        # rows in the whole file, from the first block's rows per byte, a little over
        return _filled(reader, ts_name, lambda rows: rows * size // min(size, _CSV_BLOCK) + 64)
    except pa.ArrowInvalid:
        # text among the numbers, or a time column that changes form from block to
        # block: everything as text, converted leniently (NaN/NaT where unparsable)
        text = pa_csv.ConvertOptions(
            include_columns=names,
            column_types={n: pa.string() for n in names},
            strings_can_be_null=True,  # "", "NaN", "null"... as missing, as in the numbers
        )
        table = pa_csv.read_csv(file, convert_options=text)
        return _table_columns(file, table)


def _parquet_columns(file: Path) -> Columns:
    parquet = pq.ParquetFile(file)
    names = _chosen(parquet.schema_arrow.names)
    ts_name = _time_name(file, names)
    rows = parquet.metadata.num_rows
    return _filled(parquet.iter_batches(columns=names), ts_name, lambda _: rows)


def _filled(
    batches: Iterable[pa.RecordBatch], ts_name: str, capacity: Callable[[int], int]
) -> Columns:
    """Batch by batch into float64 arrays allocated once (``capacity(rows of the first
    batch)`` rows, grown if short), so that memory holds the result and one batch, not
    the file's whole table beside its copy."""
    out: list[NDArray[np.float64]] = []
    times: list[Any] = []  # per batch: arrays, or text kept as arrow until the end
    names: list[str] = []
    n = 0
    for batch in batches:
        m = batch.num_rows
        if not names:
            names = [c for c in batch.schema.names if c != ts_name]
            out = [np.empty(max(m, capacity(m))) for _ in names]
        if n + m > out[0].size:
            grown = max(n + m, out[0].size * 3 // 2)
            for a in out:
                a.resize(grown, refcheck=False)
        col = pa.chunked_array([batch.column(ts_name)])
        text = pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        times.append(col if text else _times(col))
        for a, name in zip(out, names, strict=True):
            a[n : n + m] = _floats(pa.chunked_array([batch.column(name)]))
        n += m
    if n == 0:
        return _empty()
    for a in out:
        a.resize(n, refcheck=False)  # give back what the guess had over
    if isinstance(times[0], pa.ChunkedArray):
        ts = _times(pa.chunked_array([c for t in times for c in t.chunks]))
    else:
        ts = times[0] if len(times) == 1 else np.concatenate(times)
    by_name = dict(zip(names, out, strict=True))
    return (ts, *(by_name[c] for c in (*_PRICE_VOLUME, "quote_volume") if c in by_name))


def _read_feather(file: Path) -> pa.Table:
    try:
        with pa.memory_map(str(file)) as source:
            names = pa.ipc.open_file(source).schema.names
    except pa.ArrowInvalid:  # feather version 1: not an Arrow IPC file
        return feather.read_table(file)
    return feather.read_table(file, columns=_chosen(names), memory_map=True)


def _table_columns(file: Path, table: pa.Table) -> Columns:
    ts_name = _time_name(file, table.column_names)
    if table.num_rows == 0:
        return _empty()
    names = set(table.column_names)
    out = []
    for name in (ts_name, *_PRICE_VOLUME, "quote_volume"):
        if name in names:
            col = table.column(name)
            table = table.drop_columns([name])  # so that a converted copy's source goes
            out.append(_times(col) if name == ts_name else _floats(col))
            del col
    return tuple(out)


def _times(col: pa.ChunkedArray) -> NDArray[Any]:
    """Timestamps (aware: their UTC instant; naive: taken as UTC) as datetime64;
    numbers as ms; text as ISO 8601, NaT where unparsable (rejected as ``nan``)."""
    kind = col.type
    if pa.types.is_timestamp(kind):
        return np.asarray(col.to_numpy())
    if pa.types.is_date(kind):
        return np.asarray(pc.cast(col, pa.timestamp("ms")).to_numpy())
    if pa.types.is_integer(kind) and col.null_count == 0:
        return np.asarray(col.to_numpy(), dtype=np.int64)
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _floats(col)
    if pa.types.is_null(kind):
        return np.full(len(col), np.nan)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        # numbers (ms) as text, or one form of date throughout (freqtrade's "+00:00"):
        # pyarrow's own parsers; anything else is left to pandas below
        for target in (pa.float64(), pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):
            try:
                return np.asarray(pc.cast(col, target).to_numpy())
            except pa.ArrowInvalid:
                pass
    # several forms, junk, or another type: pandas, value by value
    parsed = pd.to_datetime(col.to_pandas(), utc=True, errors="coerce", format="ISO8601")
    return np.asarray(parsed.dt.tz_localize(None).to_numpy())


def _floats(col: pa.ChunkedArray) -> NDArray[np.float64]:
    kind = col.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return np.asarray(pc.cast(col, pa.float64()).to_numpy(), dtype=np.float64)  # null: NaN
    if pa.types.is_null(kind):
        return np.full(len(col), np.nan)
    values = pd.to_numeric(col.to_pandas(), errors="coerce")
    return np.asarray(values.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _json_columns(file: Path, rows: object) -> Columns:
    """freqtrade's json: a list of ``[ts_ms, open, high, low, close, volume]`` rows.

    A row that is not such a list, and a field that is not a number, become NaN,
    so that the row is rejected (``nan``) and counted rather than silently dropped.
    """
    if not isinstance(rows, list) or (rows and not isinstance(rows[0], list)):
        raise CandleDataError(
            f"{file}: expected a json list of [ts_ms, open, high, low, close, volume] rows"
        )
    flat = np.fromiter(
        itertools.chain.from_iterable(map(_json_row, rows)), dtype=np.float64, count=6 * len(rows)
    )
    return tuple(flat.reshape(len(rows), 6).T.copy())  # six contiguous columns


_BLANK: Final = (np.nan,) * 6


def _json_row(row: object) -> Sequence[float]:
    if isinstance(row, list) and len(row) >= 6:
        return [_json_number(e) for e in row[:6]]
    return _BLANK


def _json_number(e: object) -> float:
    # json gives int, float, str, bool, None, list or dict; only numbers are candle fields.
    # Integer ms timestamps are exact in a float up to 2**53 (the year 287,000).
    return float(e) if isinstance(e, int | float) and not isinstance(e, bool) else np.nan

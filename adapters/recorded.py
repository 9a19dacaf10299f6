"""Recorded candles: a freqtrade data directory read into validated per-symbol series.

File names follow freqtrade: ``<BASE>_<QUOTE>-<timeframe>.<ext>`` for spot
(``ETH_BTC-5m.feather`` is ``ETH/BTC``) and ``<BASE>_<QUOTE>_<SETTLE>-<timeframe>-futures.<ext>``
for futures (``BTC_USDT_USDT-1h-futures.feather`` is ``BTC/USDT:USDT``).  Mark,
index, premium-index and funding-rate files are not candles of the traded
contract and are skipped.

Every candle goes through :func:`adapters.candles.validate_candles`; each
rejected one is logged as ``bar_rejected`` and counted.  Nothing is filled.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import structlog
from numpy.typing import NDArray

from adapters.candles import CandleSeries, validate_candles

__all__ = [
    "EXTENSIONS",
    "CandleDataError",
    "RecordedCandles",
    "load_directory",
    "symbol_from_filename",
    "timeframe_to_ms",
]

log = structlog.get_logger(__name__)

EXTENSIONS: Final[tuple[str, ...]] = ("feather", "parquet", "csv", "json")

_UNIT_MS: Final = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_TIMEFRAME_RE: Final = re.compile(r"([1-9][0-9]*)([smhdw])")
# freqtrade's own pattern, anchored to the extensions read here: the pair part is
# non-greedy so "BTC-PERP-1h" keeps its hyphen; the optional tail is the candle type.
_FILE_RE: Final = re.compile(
    r"(?P<pair>[A-Za-z0-9_-]+?)-(?P<tf>[0-9]+[A-Za-z]{1,2})(?:-(?P<kind>[A-Za-z_]+))?"
    r"\.(?P<ext>feather|parquet|csv|json)"
)
#: Candle types whose files are candles of the traded instrument ("" is spot).
_TRADED_KINDS: Final = frozenset({"", "futures"})
_PRICE_VOLUME: Final = ("open", "high", "low", "close", "volume")


class CandleDataError(ValueError):
    """The recorded data cannot be read as asked (a one-line, user-facing message)."""


@dataclass(frozen=True, slots=True)
class RecordedCandles:
    timeframe: str
    timeframe_ms: int
    #: by symbol, in symbol order
    series: dict[str, CandleSeries]
    #: rejected candles by reason, over all files
    rejected: Counter[str]


def timeframe_to_ms(tf: str) -> int:
    """``'5m'`` -> 300000.  Units s, m, h, d, w; ValueError on anything else (months vary)."""
    m = _TIMEFRAME_RE.fullmatch(tf)
    if m is None:
        raise ValueError(f"invalid timeframe {tf!r}: expected <n><unit>, unit one of s m h d w")
    return int(m[1]) * _UNIT_MS[m[2]]


def symbol_from_filename(stem: str) -> str:
    """freqtrade's rebuild: the first ``_`` separates base and quote, the next quote and settle."""
    return stem.replace("_", "/", 1).replace("_", ":", 1)


def load_directory(path: str | Path, timeframe: str | None = None) -> RecordedCandles:
    """Read every candle file of one timeframe in ``path`` (not its subdirectories).

    With ``timeframe`` None the directory must hold exactly one timeframe.
    """
    root = Path(path)
    if not root.exists():
        raise CandleDataError(f"candle directory {root} does not exist")
    if not root.is_dir():
        raise CandleDataError(f"{root} is not a directory")

    by_tf: dict[str, dict[str, Path]] = {}
    for file in sorted(root.iterdir()):
        if not file.is_file():
            continue
        m = _FILE_RE.fullmatch(file.name)
        if m is None:
            if file.suffix.lstrip(".") in EXTENSIONS:
                log.info("file_skipped", file=str(file), reason="not_a_candle_file_name")
            continue
        kind = m["kind"] or ""
        if kind not in _TRADED_KINDS:
            log.debug("file_skipped", file=str(file), reason="candle_type", candle_type=kind)
            continue
        # freqtrade writes months as "Mo" so that "1M" and "1m" differ on any filesystem.
        tf = re.sub("mo$", "M", m["tf"], flags=re.IGNORECASE)
        symbol = symbol_from_filename(m["pair"])
        files = by_tf.setdefault(tf, {})
        if symbol in files:
            raise CandleDataError(
                f"two files for {symbol} {tf} in {root}: {files[symbol].name} and {file.name}"
            )
        files[symbol] = file

    if not by_tf:
        hint = ""
        if (root / "futures").is_dir():
            hint = f" (freqtrade keeps futures candles in {root / 'futures'})"
        raise CandleDataError(
            f"no candle files (<BASE>_<QUOTE>-<timeframe>.{{{','.join(EXTENSIONS)}}}) "
            f"in {root}{hint}"
        )
    if timeframe is None:
        if len(by_tf) > 1:
            raise CandleDataError(
                f"{root} holds several timeframes ({', '.join(_by_duration(by_tf))}); "
                "choose one with --timeframe"
            )
        (timeframe,) = by_tf
    try:
        tf_ms = timeframe_to_ms(timeframe)
    except ValueError as exc:
        raise CandleDataError(str(exc)) from exc
    if timeframe not in by_tf:
        raise CandleDataError(
            f"no {timeframe} candle files in {root}; it holds {', '.join(_by_duration(by_tf))}"
        )

    series: dict[str, CandleSeries] = {}
    rejected: Counter[str] = Counter()
    for symbol, file in sorted(by_tf[timeframe].items()):
        cols = _read(file)
        clean, rejections = validate_candles(symbol, *cols, timeframe_ms=tf_ms)
        for r in rejections:
            log.warning("bar_rejected", symbol=r.symbol, ts=r.ts, reason=r.reason, file=file.name)
            rejected[r.reason] += 1
        series[symbol] = clean
    log.info(
        "candles_loaded",
        path=str(root),
        timeframe=timeframe,
        symbols=len(series),
        bars=sum(len(s) for s in series.values()),
        rejected=rejected.total(),
    )
    return RecordedCandles(timeframe, tf_ms, series, rejected)


def _by_duration(by_tf: dict[str, Any]) -> list[str]:
    def key(tf: str) -> tuple[int, str]:
        try:
            return timeframe_to_ms(tf), tf
        except ValueError:
            return 2**62, tf

    return sorted(by_tf, key=key)


_Columns = tuple[NDArray[Any], ...]


def _read(file: Path) -> _Columns:
    """``(ts, open, high, low, close, volume[, quote_volume])`` as arrays, not yet validated."""
    ext = file.suffix.lstrip(".")
    try:
        if ext == "json":
            return _json_columns(file, json.loads(file.read_bytes()))
        if ext == "feather":
            frame = pd.read_feather(file)
        elif ext == "parquet":
            frame = pd.read_parquet(file)
        else:
            frame = pd.read_csv(file)
    except CandleDataError:
        raise
    except (OSError, ValueError, TypeError, pa.ArrowException) as exc:
        # json.JSONDecodeError, pandas' ParserError/EmptyDataError and UnicodeDecodeError
        # are ValueErrors; pyarrow's errors are ArrowExceptions (and OSError/ValueError).
        raise CandleDataError(f"cannot read {file}: {exc}") from exc
    return _frame_columns(file, frame)


def _frame_columns(file: Path, frame: pd.DataFrame) -> _Columns:
    names = set(frame.columns)
    ts_name = "date" if "date" in names else "timestamp" if "timestamp" in names else None
    missing = [c for c in _PRICE_VOLUME if c not in names]
    if ts_name is None:
        missing.insert(0, "date (or timestamp)")
    if missing:
        raise CandleDataError(f"{file}: missing column(s) {', '.join(missing)}")
    values = [_floats(frame[c]) for c in _PRICE_VOLUME]
    if "quote_volume" in names:
        values.append(_floats(frame["quote_volume"]))
    return (_times(frame[ts_name]), *values)


def _times(col: pd.Series[Any]) -> NDArray[Any]:
    """Datetimes (aware: to UTC; naive: taken as UTC) as datetime64; numbers as ms."""
    dtype = col.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        return np.asarray(col.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy())
    if pd.api.types.is_datetime64_dtype(dtype):
        return col.to_numpy()
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        if pd.api.types.is_integer_dtype(dtype) and not col.hasnans:
            return col.to_numpy(dtype=np.int64)
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    # Text (csv): ISO 8601; anything unparsable becomes NaT and is rejected as ``nan``.
    parsed = pd.to_datetime(col, utc=True, errors="coerce", format="ISO8601")
    return parsed.dt.tz_localize(None).to_numpy()


def _floats(col: pd.Series[Any]) -> NDArray[np.float64]:
    if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        col = pd.to_numeric(col, errors="coerce")
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def _json_columns(file: Path, rows: object) -> _Columns:
    """freqtrade's json: a list of ``[ts_ms, open, high, low, close, volume]`` rows.

    A row that is not such a list, and a field that is not a number, become NaN,
    so that the row is rejected (``nan``) and counted rather than silently dropped.
    """
    if not isinstance(rows, list) or (rows and not isinstance(rows[0], list)):
        raise CandleDataError(
            f"{file}: expected a json list of [ts_ms, open, high, low, close, volume] rows"
        )
    blank = [np.nan] * 6
    table = np.array(
        [
            [_json_number(e) for e in row[:6]] if isinstance(row, list) and len(row) >= 6 else blank
            for row in rows
        ],
        dtype=np.float64,
    ).reshape(len(rows), 6)
    return tuple(table[:, j] for j in range(6))


def _json_number(e: object) -> float:
    # json gives int, float, str, bool, None, list or dict; only numbers are candle fields.
    # Integer ms timestamps are exact in a float up to 2**53 (the year 287,000).
    return float(e) if isinstance(e, int | float) and not isinstance(e, bool) else np.nan

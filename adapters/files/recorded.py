"""Recorded candles: a freqtrade data directory read into validated per-symbol series.

File names follow freqtrade: ``<BASE>_<QUOTE>-<timeframe>.<ext>`` for spot
(``ETH_BTC-5m.feather`` is ``ETH/BTC``) and ``<BASE>_<QUOTE>_<SETTLE>-<timeframe>-futures.<ext>``
for futures (``BTC_USDT_USDT-1h-futures.feather`` is ``BTC/USDT:USDT``).  Mark,
index, premium-index and funding-rate files are not candles of the traded
contract and are skipped.

Rules for a file (:mod:`adapters.files.candle_files` reads one):

- rows out of time order are sorted (a stable sort: of rows with equal times the
  first is kept, the others are ``duplicate_timestamp``), and logged as ``rows_sorted``;
- a file with no rows (empty, or a header only) is skipped with a ``file_skipped``
  warning naming it; the other files are read;
- a file whose usual gap between bars is not its name's timeframe (1h candles in a
  ``-5m`` file) is an error, judged from :data:`MIN_GAPS_JUDGED` gaps up;
- with a :class:`SizeLimit`, a file over it is refused before any file is read.

Every candle then goes through :func:`strategy.candles.validate_candles`; each
rejected one is logged as ``bar_rejected`` and counted.  Nothing is filled.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from factorcast.adapters.files.candle_files import (
    CandleDataError,
    CandleFileTooLarge,
    SizeLimit,
    check_size,
    read_columns,
)
from factorcast.strategy.candles import CandleSeries, time_spacing, validate_candles
from factorcast.strategy.timeframes import timeframe_ms, timeframe_name

__all__ = [
    "EXTENSIONS",
    "MIN_GAPS_JUDGED",
    "CandleDataError",
    "CandleFileTooLarge",
    "RecordedCandles",
    "SizeLimit",
    "load_directory",
    "symbol_from_filename",
]

log = structlog.get_logger(__name__)

EXTENSIONS: Final[tuple[str, ...]] = ("feather", "parquet", "csv", "json")

# freqtrade's own pattern, anchored to the extensions read here: the pair part is
# non-greedy so "BTC-PERP-1h" keeps its hyphen; the optional tail is the candle type.
_FILE_RE: Final = re.compile(
    r"(?P<pair>[A-Za-z0-9_-]+?)-(?P<tf>[0-9]+[A-Za-z]{1,2})(?:-(?P<kind>[A-Za-z_]+))?"
    r"\.(?P<ext>feather|parquet|csv|json)"
)
#: Candle types whose files are candles of the traded instrument ("" is spot).
_TRADED_KINDS: Final = frozenset({"", "futures"})
#: A file's timeframe is checked against its bars from this many gaps between
#: distinct times up: below it, a few bars far apart are no evidence.
MIN_GAPS_JUDGED: Final = 10


@dataclass(frozen=True, slots=True)
class RecordedCandles:
    timeframe: str
    timeframe_ms: int
    #: by symbol, in symbol order
    series: dict[str, CandleSeries]
    #: rejected candles by reason, over all files
    rejected: Counter[str]


def symbol_from_filename(stem: str) -> str:
    """freqtrade's rebuild: the first ``_`` separates base and quote, the next quote and settle."""
    return stem.replace("_", "/", 1).replace("_", ":", 1)


def load_directory(
    path: str | Path, timeframe: str | None = None, *, size_limit: SizeLimit | None = None
) -> RecordedCandles:
    """Read every candle file of one timeframe in ``path`` (not its subdirectories).

    With ``timeframe`` None the directory must hold exactly one timeframe.  With
    ``size_limit``, a file larger than it is refused (:class:`CandleFileTooLarge`)
    before any file is read.
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
        tf_ms = timeframe_ms(timeframe)
    except ValueError as exc:
        raise CandleDataError(str(exc)) from exc
    if timeframe not in by_tf:
        raise CandleDataError(
            f"no {timeframe} candle files in {root}; it holds {', '.join(_by_duration(by_tf))}"
        )

    chosen = sorted(by_tf[timeframe].items())
    if size_limit is not None:
        for _, file in chosen:
            check_size(file, size_limit)
    series: dict[str, CandleSeries] = {}
    rejected: Counter[str] = Counter()
    for symbol, file in chosen:
        cols = read_columns(file)
        if len(cols[0]) == 0:
            log.warning("file_skipped", file=str(file), reason="no_rows")
            continue
        spacing = time_spacing(cols[0], tf_ms)
        if spacing.gaps >= MIN_GAPS_JUDGED and spacing.modal_ms != tf_ms:
            raise CandleDataError(
                f"{file}: its bars are {_duration(spacing.modal_ms)} apart, "
                f"not {timeframe} as its name says"
            )
        if not spacing.in_order:
            log.info("rows_sorted", file=str(file), symbol=symbol)
        clean, rejections = validate_candles(
            symbol, *cols, timeframe_ms=tf_ms, sort=True, copy=False
        )
        del cols
        for r in rejections:
            log.warning("bar_rejected", symbol=r.symbol, ts=r.ts, reason=r.reason, file=file.name)
            rejected[r.reason] += 1
        series[symbol] = clean
    if not series:
        raise CandleDataError(f"no candles in {root}: every {timeframe} file is empty")
    log.info(
        "candles_loaded",
        path=str(root),
        timeframe=timeframe,
        symbols=len(series),
        bars=sum(len(s) for s in series.values()),
        rejected=rejected.total(),
    )
    return RecordedCandles(timeframe, tf_ms, series, rejected)


def _duration(ms: int | None) -> str:
    """``3600000`` -> ``'1h'``; ``90000`` -> ``'90s'``."""
    if ms is None:
        return "?"
    try:
        return timeframe_name(ms)
    except ValueError:
        return f"{ms} ms"


def _by_duration(by_tf: dict[str, Any]) -> list[str]:
    def key(tf: str) -> tuple[int, str]:
        try:
            return timeframe_ms(tf), tf
        except ValueError:
            return 2**62, tf

    return sorted(by_tf, key=key)

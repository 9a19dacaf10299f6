"""Which candles may become bars, and why the others may not.

Pure numpy: no I/O, no clock, no logging.  The recorded-candle reader and the
live integrity gate both call :func:`validate_candles` and log what it rejects.

A row is rejected for the first rule it breaks, in the order of
:data:`REJECT_REASONS`.  Rows are judged in input order, or, with ``sort=True``
(recorded files), in time order; a rejected row never becomes a bar, and no bar
is ever invented or filled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple, TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DUPLICATE_TIMESTAMP",
    "HIGH_BELOW_LOW",
    "NAN",
    "NEGATIVE_VOLUME",
    "NON_POSITIVE_PRICE",
    "OFF_GRID",
    "OUT_OF_ORDER",
    "REJECT_REASONS",
    "CandleSeries",
    "Column",
    "Rejection",
    "Spacing",
    "time_spacing",
    "validate_candles",
]

#: None, NaN or ±inf in ts or in any of open/high/low/close/volume (or ±inf in quote volume).
NAN: Final = "nan"
#: open, high, low or close <= 0.
NON_POSITIVE_PRICE: Final = "non_positive_price"
#: volume < 0 (or quote volume < 0).
NEGATIVE_VOLUME: Final = "negative_volume"
#: high < low.
HIGH_BELOW_LOW: Final = "high_below_low"
#: ts is not on the timeframe's grid, or not a whole number of milliseconds.
OFF_GRID: Final = "off_grid"
#: ts equals the ts of a row already accepted (the first one is kept).
DUPLICATE_TIMESTAMP: Final = "duplicate_timestamp"
#: ts is lower than the ts of the last accepted row (never, with ``sort=True``).
OUT_OF_ORDER: Final = "out_of_order"

#: Every rejection reason, in precedence order: a row breaking several rules gets the first.
REJECT_REASONS: Final[tuple[str, ...]] = (
    NAN,
    NON_POSITIVE_PRICE,
    NEGATIVE_VOLUME,
    HIGH_BELOW_LOW,
    OFF_GRID,
    DUPLICATE_TIMESTAMP,
    OUT_OF_ORDER,
)

#: One field of a run of rows: an array, or a sequence that may hold None for "missing".
Column: TypeAlias = ArrayLike | Sequence[float | None]

_ACCEPTED: Final = -1
_DUPLICATE_CODE: Final = REJECT_REASONS.index(DUPLICATE_TIMESTAMP)
_OUT_OF_ORDER_CODE: Final = REJECT_REASONS.index(OUT_OF_ORDER)

_WEEK_MS: Final = 7 * 86_400_000
#: 1970-01-05 00:00 UTC, the first Monday: exchanges open weekly bars on Mondays,
#: so a plain multiple of a week (a Thursday) would put every real weekly bar off grid.
_FIRST_MONDAY_MS: Final = 4 * 86_400_000
#: Floats represent every integer up to 2**53 exactly (about the year 287,000 in ms).
_MAX_EXACT_FLOAT: Final = 2.0**53
_SUB_MS_UNITS: Final = frozenset({"us", "ns", "ps", "fs", "as"})

_G = TypeVar("_G", bound=np.generic)


@dataclass(frozen=True, slots=True)
class CandleSeries:
    """One symbol's accepted bars, as read-only parallel arrays ordered by ``ts``."""

    symbol: str
    #: bar open time, ms since the epoch (UTC), strictly increasing
    ts: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]
    #: NaN where the source has no quote volume
    quote_volume: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = self.ts.shape
        for name in ("open", "high", "low", "close", "volume", "quote_volume"):
            if getattr(self, name).shape != n:
                raise ValueError(f"{self.symbol}: {name} has shape {getattr(self, name).shape}")
        if len(n) != 1 or (n[0] > 1 and not bool(np.all(np.diff(self.ts) > 0))):
            raise ValueError(f"{self.symbol}: ts must be one-dimensional and strictly increasing")

    def __len__(self) -> int:
        return int(self.ts.shape[0])


@dataclass(frozen=True, slots=True)
class Rejection:
    """A row that did not become a bar.  ``ts`` is None where the row has no usable time."""

    symbol: str
    ts: int | None
    reason: str


# The row fields are positional, one per OHLCV column, as every OHLCV API spells them.
def validate_candles(
    symbol: str,
    ts: Column,
    open: Column,
    high: Column,
    low: Column,
    close: Column,
    volume: Column,
    quote_volume: Column | None = None,
    *,
    timeframe_ms: int | None = None,
    grid_origin_ms: int | None = None,
    sort: bool = False,
    copy: bool = True,
) -> tuple[CandleSeries, list[Rejection]]:
    """Split rows into accepted bars and rejections (both lists of rows in input order).

    ``ts`` may be integer ms, float ms (NaN for missing), ``datetime64`` of any
    unit (NaT for missing) or a sequence with None.  The price and volume fields
    may hold None, and non-numbers (which count as ``nan``).  ``quote_volume``
    NaN means "not recorded" and is kept; ±inf or < 0 rejects the row.

    With ``timeframe_ms``, a ts must lie on ``grid_origin_ms + k * timeframe_ms``.
    The default origin is the epoch, except for whole-week timeframes, whose
    bars open on Mondays (origin 1970-01-05).

    With ``sort``, the rows that pass the value rules are taken in time order (a
    stable sort: of rows with equal times the first in input order is kept, the
    others are duplicates), so that no row is ``out_of_order``.  Without it a row
    whose time is below the last accepted one is ``out_of_order``: the live path,
    where such a row came late.

    With ``copy=False``, a series of every row, already in order, shares memory
    with float64 input arrays (and makes them read-only): for a caller that hands
    its arrays over, such as a reader of a large file.

    ``len(series) + len(rejections)`` always equals the number of rows.
    """
    times = _ts_ms(ts)
    ms = times.ms
    n = ms.shape[0]
    o = _floats(open, n, "open")
    h = _floats(high, n, "high")
    lo = _floats(low, n, "low")
    c = _floats(close, n, "close")
    v = _floats(volume, n, "volume")
    q = np.full(n, np.nan) if quote_volume is None else _floats(quote_volume, n, "quote_volume")

    off_grid = times.sub_ms
    if timeframe_ms is not None:
        if timeframe_ms <= 0:
            raise ValueError(f"timeframe_ms must be positive, got {timeframe_ms}")
        if grid_origin_ms is None:
            grid_origin_ms = _FIRST_MONDAY_MS if timeframe_ms % _WEEK_MS == 0 else 0
        off_grid = off_grid | ((ms - grid_origin_ms) % timeframe_ms != 0)

    # Comparisons with NaN are False, so each rule after ``nan`` sees finite values
    # wherever it matters; np.select picks the first rule broken.
    code = np.select(
        [
            times.missing
            | ~(np.isfinite(o) & np.isfinite(h) & np.isfinite(lo) & np.isfinite(c))
            | ~np.isfinite(v)
            | np.isinf(q),
            (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0),
            (v < 0) | (q < 0),
            h < lo,
            off_grid,
        ],
        np.arange(5, dtype=np.int8),
        default=_ACCEPTED,
    ).astype(np.int8)

    # Ordering, among the rows whose values passed: a row is accepted iff its ts is
    # above every earlier passing ts.  Rejected rows never raise that maximum, so it
    # is exactly "the last accepted ts" of a sequential scan.
    rows: NDArray[np.intp] | None  # the accepted rows in time order; None: every row
    if bool(np.all(code == _ACCEPTED)) and (n < 2 or bool(np.all(ms[1:] > ms[:-1]))):
        rows = None  # every row passed, strictly increasing: nothing to reorder or drop
    else:
        candidates = np.flatnonzero(code == _ACCEPTED)
        if sort:
            candidates = candidates[np.argsort(ms[candidates], kind="stable")]
        rows = candidates
        cts = ms[candidates]
        if cts.size:
            keep = np.empty(cts.size, dtype=np.bool_)
            keep[0] = True
            keep[1:] = cts[1:] > np.maximum.accumulate(cts[:-1])
            # Equal to an accepted ts means equal to an *earlier* accepted one: a later
            # accepted ts is above this row's running maximum, hence above this row's ts.
            late = np.flatnonzero(~keep)
            if late.size:
                accepted = cts[keep]  # non-empty, strictly increasing: searchsorted finds equals
                lts = cts[late]
                at = np.minimum(np.searchsorted(accepted, lts), accepted.size - 1)
                dup = accepted[at] == lts
                code[candidates[late]] = np.where(dup, _DUPLICATE_CODE, _OUT_OF_ORDER_CODE)
                rows = candidates[keep]

    def take(a: NDArray[_G]) -> NDArray[_G]:
        if rows is None:
            return _frozen(a.copy() if copy else a)
        return _frozen(a[rows])

    series = CandleSeries(
        symbol=symbol,
        ts=take(ms),
        open=take(o),
        high=take(h),
        low=take(lo),
        close=take(c),
        volume=take(v),
        quote_volume=take(q),
    )
    bad = np.flatnonzero(code != _ACCEPTED)
    rejections = [
        Rejection(symbol, None if unknown else t, REJECT_REASONS[k])
        for t, k, unknown in zip(
            ms[bad].tolist(), code[bad].tolist(), times.unknown[bad].tolist(), strict=True
        )
    ]
    return series, rejections


class Spacing(NamedTuple):
    """How a run of rows lies in time (rows without a usable time left out)."""

    #: the times never decrease
    in_order: bool
    #: the most common gap between consecutive distinct times (ties: the expected
    #: one); None with fewer than two distinct times
    modal_ms: int | None
    #: gaps between consecutive distinct times
    gaps: int


def time_spacing(ts: Column, expected_ms: int) -> Spacing:
    """The order and the usual gap of ``ts`` (same forms as :func:`validate_candles`):
    a reader compares ``modal_ms`` with the timeframe that a file's name gives."""
    times = _ts_ms(ts)
    ms = times.ms[~times.unknown] if bool(times.unknown.any()) else times.ms
    in_order = bool(np.all(ms[1:] >= ms[:-1]))
    gaps = np.diff(ms if in_order else np.sort(ms))
    distinct = gaps != 0
    if not bool(distinct.all()):
        gaps = gaps[distinct]
    if gaps.size == 0:
        return Spacing(in_order, None, 0)
    at_expected = int(np.count_nonzero(gaps == expected_ms))
    modal = expected_ms
    if 2 * at_expected < gaps.size:
        values, counts = np.unique(gaps, return_counts=True)
        if int(counts.max()) > at_expected:
            modal = int(values[np.argmax(counts)])
    return Spacing(in_order, modal, int(gaps.size))


def _frozen(a: NDArray[_G]) -> NDArray[_G]:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


class _Times(NamedTuple):
    #: whole ms, floored; 0 where ``unknown``
    ms: NDArray[np.int64]
    #: None, NaN, ±inf or NaT: reason ``nan``
    missing: NDArray[np.bool_]
    #: not a whole millisecond, or beyond the range floats hold exactly: off every grid
    sub_ms: NDArray[np.bool_]
    #: no millisecond to report in a Rejection
    unknown: NDArray[np.bool_]


def _ts_ms(ts: Column) -> _Times:
    a = np.asarray(ts)
    if a.ndim != 1:
        raise ValueError(f"ts must be one-dimensional, got shape {a.shape}")
    n = a.shape[0]
    no = np.zeros(n, dtype=np.bool_)
    if a.dtype.kind == "i":
        return _Times(np.asarray(a, dtype=np.int64), no, no, no)
    if a.dtype.kind == "M":
        missing = np.isnat(a)
        unit, step = np.datetime_data(a.dtype)
        if unit in _SUB_MS_UNITS:
            raw = a.view(np.int64)
            per_ms = int(np.timedelta64(1, "ms").astype(f"m8[{unit}]").astype(np.int64)) // step
            ms = raw // per_ms
            ms[missing] = 0
            return _Times(ms, missing, ~missing & (raw % per_ms != 0), missing)
        ms = a.astype("M8[ms]").view(np.int64)  # a copy: ``a`` stays as it was
        ms[missing] = 0
        return _Times(ms, missing, no, missing)
    f = _floats(a, n, "ts")
    missing = ~np.isfinite(f)
    huge = ~missing & (np.abs(f) > _MAX_EXACT_FLOAT)
    unknown = missing | huge
    whole = np.floor(np.where(unknown, 0.0, f))
    return _Times(whole.astype(np.int64), missing, huge | ((whole != f) & ~unknown), unknown)


def _floats(x: Column, n: int, name: str) -> NDArray[np.float64]:
    a = np.asarray(x)
    if a.shape != (n,):
        raise ValueError(f"{name} has shape {a.shape}, expected ({n},)")
    if a.dtype.kind in "biuf":
        return np.asarray(a, dtype=np.float64)
    # None, pd.NA, strings and other objects: element by element, NaN when not a number.
    return np.fromiter((_float_or_nan(e) for e in a.tolist()), dtype=np.float64, count=n)


def _float_or_nan(e: object) -> float:
    try:
        return float(e)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return np.nan

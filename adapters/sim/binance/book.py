"""The simulator's kline book, and the feeds that fill it.

A :class:`KlineBook` holds, for a fixed list of symbols on one timeframe grid, the
closed bars (a growing ``(T, N, 6)`` panel of open, high, low, close, volume and
quote volume, NaN where a symbol had no bar) and the one cross-section now
forming.  Its "virtual now" is the open time of the forming bar: every bar before
it is closed.  The book is plain data: no I/O, no clock, no asyncio.

Bars come from a :class:`BarFeed`, one cross-section at a time: the project's
simulated market, or recorded candles re-timed by :func:`retime` so that a chosen
number of them lie in the past and the rest are released live.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from factorcast.strategy.timeframes import timeframe_name

#: Column order of the book's panel and of every ``(n, 6)`` row block it returns.
OPEN, HIGH, LOW, CLOSE, VOLUME, QUOTE_VOLUME = range(6)

#: Binance's kline intervals with a fixed length ("1M" has none).
INTERVALS: frozenset[str] = frozenset(
    ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
)


def interval_of(timeframe_ms: int) -> str:
    """The Binance interval string of a timeframe (``60_000`` -> ``"1m"``)."""
    try:
        name = timeframe_name(timeframe_ms)
    except ValueError:
        name = ""
    if name not in INTERVALS:
        raise ValueError(f"no Binance kline interval lasts {timeframe_ms} ms")
    return name


class BarsLike(Protocol):
    """One cross-section: arrays aligned with the feed's symbols, NaN = no bar."""

    @property
    def ts(self) -> int: ...
    @property
    def open(self) -> NDArray[np.float64]: ...
    @property
    def high(self) -> NDArray[np.float64]: ...
    @property
    def low(self) -> NDArray[np.float64]: ...
    @property
    def close(self) -> NDArray[np.float64]: ...
    @property
    def volume(self) -> NDArray[np.float64]: ...
    @property
    def quote_volume(self) -> NDArray[np.float64]: ...


class BarFeed(Protocol):
    """Produces the market one cross-section at a time, in time order.

    ``next_bars`` raises :class:`FeedExhausted` (or ``StopIteration``) at the end.
    A symbol is listed from its first bar; a feed that knows a symbol's last bar
    ahead of time may name it in a ``delisted_after`` mapping (symbol -> bar time,
    as :class:`PanelFeed` does), and the exchange delists the symbol once that bar
    has closed.
    """

    @property
    def symbols(self) -> Sequence[str]: ...
    @property
    def timeframe_ms(self) -> int: ...
    def next_bars(self) -> BarsLike: ...


class FeedExhausted(Exception):
    """A finite feed has released its last cross-section."""


@dataclass(frozen=True, slots=True)
class Bars:
    """A concrete :class:`BarsLike`."""

    ts: int
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]
    quote_volume: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Klines:
    """Rows of one symbol: open times and an ``(n, 6)`` block in panel column order."""

    ts: NDArray[np.int64]
    values: NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Stats24h:
    """Rolling-window statistics of one symbol, as Binance's 24hr ticker reports."""

    open_time: int
    close_time: int
    open: float
    high: float
    low: float
    last: float
    prev_close: float
    volume: float
    quote_volume: float
    count: int


def stack(bars: BarsLike, n_symbols: int) -> NDArray[np.float64]:
    """A cross-section as an ``(n_symbols, 6)`` block; quote volume defaults to close x volume."""
    quote = getattr(bars, "quote_volume", None)
    if quote is None:
        quote = np.asarray(bars.close, dtype=np.float64) * np.asarray(bars.volume, np.float64)
    cols = (bars.open, bars.high, bars.low, bars.close, bars.volume, quote)
    block = np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])
    if block.shape != (n_symbols, 6):
        raise ValueError(f"cross-section has shape {block.shape}, expected ({n_symbols}, 6)")
    block[~np.isfinite(block[:, CLOSE])] = np.nan
    return block


class KlineBook:
    """Closed klines of ``symbols`` on a ``timeframe_ms`` grid, plus the forming bar."""

    def __init__(self, symbols: Sequence[str], timeframe_ms: int, capacity: int = 1024) -> None:
        if timeframe_ms <= 0:
            raise ValueError("timeframe_ms must be positive")
        self.symbols: tuple[str, ...] = tuple(symbols)
        self.timeframe_ms = timeframe_ms
        self._index = {s: i for i, s in enumerate(self.symbols)}
        if len(self._index) != len(self.symbols):
            raise ValueError("symbols must be unique")
        self._ts = np.empty(max(capacity, 1), dtype=np.int64)
        self._data = np.full((max(capacity, 1), len(self.symbols), 6), np.nan)
        self._n = 0
        self._forming_ts: int | None = None
        self._forming: NDArray[np.float64] | None = None
        #: per symbol, the time of its first bar (closed or forming), -1 before it
        self._first_ts = np.full(len(self.symbols), -1, dtype=np.int64)

    def __len__(self) -> int:
        """Number of closed cross-sections."""
        return self._n

    def index(self, symbol: str) -> int:
        return self._index[symbol]

    @property
    def last_closed_ts(self) -> int | None:
        return int(self._ts[self._n - 1]) if self._n else None

    @property
    def forming_ts(self) -> int | None:
        return self._forming_ts

    @property
    def now_ms(self) -> int | None:
        """Virtual now: the open time of the forming bar (every earlier bar is closed)."""
        if self._forming_ts is not None:
            return self._forming_ts
        last = self.last_closed_ts
        return None if last is None else last + self.timeframe_ms

    def _check_next(self, ts: int) -> None:
        last = self.last_closed_ts
        if last is not None and (ts <= last or (ts - last) % self.timeframe_ms):
            raise ValueError(f"bar time {ts} is not on the grid after {last}")

    def append(self, bars: BarsLike) -> None:
        """Append a closed cross-section (history); only while no bar is forming."""
        if self._forming_ts is not None:
            raise RuntimeError("a bar is forming: close it before appending history")
        self._push(int(bars.ts), stack(bars, len(self.symbols)))

    def _push(self, ts: int, block: NDArray[np.float64]) -> None:
        self._check_next(ts)
        if self._n == len(self._ts):
            self._ts = np.concatenate([self._ts, np.empty_like(self._ts)])
            self._data = np.concatenate([self._data, np.full_like(self._data, np.nan)])
        self._ts[self._n] = ts
        self._data[self._n] = block
        self._n += 1
        self._list(ts, block)

    def _list(self, ts: int, block: NDArray[np.float64]) -> None:
        """Symbols with their first bar in ``block`` are listed from ``ts`` on."""
        new = (self._first_ts < 0) & np.isfinite(block[:, CLOSE])
        self._first_ts[new] = ts

    def open_bar(self, bars: BarsLike) -> None:
        """Make ``bars`` the forming cross-section; its full values show only on close."""
        if self._forming_ts is not None:
            raise RuntimeError("a bar is already forming")
        self._check_next(int(bars.ts))
        self._forming_ts = int(bars.ts)
        self._forming = stack(bars, len(self.symbols))
        self._list(self._forming_ts, self._forming)

    def close_bar(self) -> tuple[int, NDArray[np.float64]] | None:
        """Close the forming bar into the book; returns its time and ``(N, 6)`` block."""
        if self._forming_ts is None or self._forming is None:
            return None
        ts, block = self._forming_ts, self._forming
        self._forming_ts, self._forming = None, None
        self._push(ts, block)
        return ts, block

    def forming_view(self) -> NDArray[np.float64] | None:
        """The forming bar as a client sees it just after it opened: o=h=l=c=open, no volume."""
        if self._forming is None:
            return None
        view = np.repeat(self._forming[:, OPEN : OPEN + 1], 6, axis=1)
        view[:, VOLUME:] = np.where(np.isnan(view[:, VOLUME:]), np.nan, 0.0)
        return view

    def klines(
        self,
        symbol: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
        include_forming: bool = True,
    ) -> Klines:
        """Binance ``/klines`` selection: with a start, the first ``limit`` rows from it;
        otherwise the last ``limit`` rows up to ``end_ms`` (or now)."""
        j = self._index[symbol]
        block = self._data[: self._n, j, :]
        present = np.isfinite(block[:, CLOSE])
        ts, values = self._ts[: self._n][present], block[present]
        view = self.forming_view() if include_forming else None
        if view is not None and self._forming_ts is not None and np.isfinite(view[j, CLOSE]):
            ts = np.append(ts, np.int64(self._forming_ts))
            values = np.vstack([values, view[j : j + 1]])
        keep = np.ones(len(ts), dtype=bool)
        if start_ms is not None:
            keep &= ts >= start_ms
        if end_ms is not None:
            keep &= ts <= end_ms
        ts, values = ts[keep], values[keep]
        rows = slice(0, limit) if start_ms is not None else slice(max(len(ts) - limit, 0), None)
        return Klines(ts=ts[rows], values=values[rows])

    def listed_from(self, symbol: str) -> int | None:
        """The time of ``symbol``'s first bar, closed or forming; None before it (the
        exchange lists a symbol as its first bar opens)."""
        first = int(self._first_ts[self._index[symbol]])
        return first if first >= 0 else None

    def first_price(self, symbol: str) -> float | None:
        """The first known price of ``symbol`` (to size its tick and lot), if any."""
        j = self._index[symbol]
        closes = self._data[: self._n, j, CLOSE]
        finite = closes[np.isfinite(closes)]
        if len(finite):
            return float(finite[0])
        if self._forming is not None and np.isfinite(self._forming[j, OPEN]):
            return float(self._forming[j, OPEN])
        return None

    def stats(self, symbol: str, *, window_ms: int = 86_400_000) -> Stats24h:
        """Statistics over the bars opened in the last ``window_ms`` (forming bar included)."""
        now = self.now_ms or 0
        rows = self.klines(symbol, start_ms=now - window_ms + 1, limit=2**62)
        before = self.klines(symbol, end_ms=now - window_ms, limit=1, include_forming=False)
        prev_close = float(before.values[0, CLOSE]) if len(before.ts) else 0.0
        v = rows.values
        if not len(rows.ts):
            return Stats24h(now - window_ms, now - 1, 0.0, 0.0, 0.0, 0.0, prev_close, 0.0, 0.0, 0)
        return Stats24h(
            open_time=int(rows.ts[0]),
            close_time=now - 1,
            open=float(v[0, OPEN]),
            high=float(v[:, HIGH].max()),
            low=float(v[:, LOW].min()),
            last=float(v[-1, CLOSE]),
            prev_close=prev_close,
            volume=float(v[:, VOLUME].sum()),
            quote_volume=float(v[:, QUOTE_VOLUME].sum()),
            count=int(np.count_nonzero(v[:, VOLUME] > 0)),
        )


class CandlesLike(Protocol):
    """One symbol's recorded candles (``ts`` = open time, ms), e.g. ``strategy.candles.
    CandleSeries``; a ``quote_volume`` that is missing, None or NaN means close x volume."""

    @property
    def ts(self) -> NDArray[np.int64]: ...
    @property
    def open(self) -> NDArray[np.float64]: ...
    @property
    def high(self) -> NDArray[np.float64]: ...
    @property
    def low(self) -> NDArray[np.float64]: ...
    @property
    def close(self) -> NDArray[np.float64]: ...
    @property
    def volume(self) -> NDArray[np.float64]: ...


@dataclass(frozen=True, slots=True)
class Candles:
    """A concrete :class:`CandlesLike`."""

    ts: NDArray[np.int64]
    open: NDArray[np.float64]
    high: NDArray[np.float64]
    low: NDArray[np.float64]
    close: NDArray[np.float64]
    volume: NDArray[np.float64]
    quote_volume: NDArray[np.float64] | None = None


class PanelFeed:
    """A :class:`BarFeed` replaying a ``(T, N, 6)`` panel row by row."""

    def __init__(
        self,
        symbols: Sequence[str],
        timeframe_ms: int,
        ts: NDArray[np.int64],
        panel: NDArray[np.float64],
        history_bars: int = 0,
    ) -> None:
        if panel.shape != (len(ts), len(symbols), 6):
            raise ValueError(f"panel shape {panel.shape} does not match {len(ts)} x {len(symbols)}")
        self.symbols: list[str] = list(symbols)
        self.timeframe_ms = timeframe_ms
        self.history_bars = history_bars
        self._ts = ts
        self._panel = panel
        self._next = 0
        has_bar = np.isfinite(panel[:, :, CLOSE])
        last_row = len(ts) - 1 - np.argmax(has_bar[::-1], axis=0)
        ends_early = has_bar.any(axis=0) & (last_row < len(ts) - 1)
        #: symbol -> time of its last candle, for the symbols whose candles end before
        #: the panel's (the exchange delists them after it); the others trade to the end
        self.delisted_after: dict[str, int] = {
            self.symbols[j]: int(ts[last_row[j]]) for j in np.flatnonzero(ends_early)
        }

    @property
    def remaining(self) -> int:
        return len(self._ts) - self._next

    def next_bars(self) -> Bars:
        if self._next >= len(self._ts):
            raise FeedExhausted(f"all {len(self._ts)} cross-sections released")
        i, self._next = self._next, self._next + 1
        cols = [self._panel[i, :, k] for k in range(6)]
        return Bars(int(self._ts[i]), *cols)


def aligned_start_ms(now_ms: int, timeframe_ms: int, history_bars: int) -> int:
    """First bar time for a generated feed whose first ``history_bars`` bars are closed
    at ``now_ms`` and whose next bar is the one forming at ``now_ms``."""
    return (now_ms // timeframe_ms - history_bars) * timeframe_ms


class HistoryTooShort(ValueError):
    """Recorded candles shorter than the history a run asks the exchange for."""


def retime(
    candles: Mapping[str, CandlesLike],
    *,
    timeframe_ms: int,
    history_bars: int,
    now_ms: int,
) -> PanelFeed:
    """Align recorded candles on one grid and shift them by whole timeframe steps so
    that the first ``history_bars`` grid rows closed before ``now_ms`` and the next
    row is the bar forming at ``now_ms``; the rest are released live.

    Rows of the grid where a symbol has no candle are NaN; the grid is contiguous.
    """
    if not candles:
        raise ValueError("no candles")
    symbols = list(candles)
    first = min(int(c.ts[0]) for c in candles.values() if len(c.ts))
    last = max(int(c.ts[-1]) for c in candles.values() if len(c.ts))
    n_rows = (last - first) // timeframe_ms + 1
    if not 0 <= history_bars <= n_rows:
        raise HistoryTooShort(
            f"the candles span {n_rows} bars, fewer than the {history_bars} of history asked for"
        )
    panel = np.full((n_rows, len(symbols), 6), np.nan)
    for j, sym in enumerate(symbols):
        c = candles[sym]
        ts = np.asarray(c.ts, dtype=np.int64)
        offset = ts - first
        if np.any(offset % timeframe_ms) or np.any(np.diff(ts) <= 0):
            raise ValueError(f"{sym}: candle times are not increasing on the grid")
        rows = offset // timeframe_ms
        cols = [np.asarray(x, dtype=np.float64) for x in (c.open, c.high, c.low, c.close, c.volume)]
        given = getattr(c, "quote_volume", None)
        quote = cols[CLOSE] * cols[VOLUME]
        if given is not None:
            quote = np.where(np.isnan(given), quote, np.asarray(given, dtype=np.float64))
        for k, col in enumerate([*cols, quote]):
            panel[rows, j, k] = col
    steps = (now_ms - (first + history_bars * timeframe_ms)) // timeframe_ms
    grid = first + (np.arange(n_rows, dtype=np.int64) + steps) * timeframe_ms
    return PanelFeed(symbols, timeframe_ms, grid, panel, history_bars=history_bars)

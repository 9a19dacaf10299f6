"""The live candle integrity gate: closed candles in, complete cross-sections out.

Pure logic, no I/O and no clock: the caller passes the time where a deadline
matters, and performs the REST backfills the gate asks for.

Per symbol, candles must arrive with increasing bar times.  Of a candle at a
bar time the symbol already has, an identical copy is ignored and a different
one is counted as a conflict (the first stays).  Older candles are dropped as
out of order; rows with None/NaN/inf, non-positive prices, negative volume,
high < low or an off-grid time are rejected with the reasons of
:mod:`strategy.candles`.  A candle more than one bar after the symbol's last is
accepted and opens a *gap*, which the caller backfills through REST
(:meth:`CandleGate.backfilled`) before the cross-sections in it are released.

A cross-section at bar time ``T`` is released, in bar-time order, when every
member of the universe has reported ``T`` or something later (a symbol that
moved past ``T`` without a bar at ``T`` simply has no bar there, as does one the
exchange confirmed has none: :meth:`CandleGate.mark_absent`), or when the caller
declares the deadline passed: the members still behind are then *late*.

A symbol that is not a member (not listed yet, delisted, silent for too long:
the caller decides, :meth:`CandleGate.set_member`) is never waited for and never
late; a candle of it that comes is still taken into its cross-section.

A late symbol's bar that comes after all (by websocket, a REST check or a gap's
backfill) is counted ``too_late`` and kept: it goes out with the next released
cross-section (``CrossSection.amendments``), and the engine takes it in before
that one.  It must ride on a cross-section at most ``amend_bars`` bars after its
own; a bar later than that is counted ``too_late_to_amend`` and dropped.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from factorcast.strategy.candles import (
    DUPLICATE_TIMESTAMP,
    HIGH_BELOW_LOW,
    NAN,
    NEGATIVE_VOLUME,
    NON_POSITIVE_PRICE,
    OFF_GRID,
    OUT_OF_ORDER,
)
from factorcast.strategy.events import AMEND_BARS, CrossSection, LateBar

#: Counted outcomes besides the rejection reasons.
ACCEPTED = "accepted"
DUPLICATE = "duplicate"  # identical copy of a candle already taken: ignored
CONFLICT = "conflict"  # same bar time, different values: counted, first one kept
TOO_LATE = "too_late"  # its cross-section was already released: handed on to amend it
TOO_LATE_TO_AMEND = "too_late_to_amend"  # ... more than amend_bars bars ago: dropped

Row = tuple[float, float, float, float, float, float]  # open, high, low, close, volume, qv


def row_problem(ts: object, row: Sequence[object], timeframe_ms: int) -> str | None:
    """The rejection reason of one candle, or None.  Same rules as
    :func:`strategy.candles.validate_candles`, for one row at a time (the live path)."""
    return _read(ts, row, timeframe_ms)[0]


def _read(ts: object, row: Sequence[object], timeframe_ms: int) -> tuple[str | None, Row]:
    """:func:`row_problem`, and the row as floats when it has none (a missing quote
    volume is NaN).  Every value is converted once: this runs for every candle.

    A candle as the live path brings it (an integer bar time on the grid, five
    values) is checked by one chain of comparisons, each of them False for NaN;
    anything that fails it, and any other shape, takes the rules one by one
    (:func:`_read_each`), which also name the problem."""
    if type(ts) is int and len(row) == 5 and not ts % timeframe_ms:
        try:
            o, h, lo, c, v = map(float, row)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return NAN, _NO_ROW
        if 0.0 < lo <= h < _INF and 0.0 < o < _INF and 0.0 < c < _INF and 0.0 <= v < _INF:
            return None, (o, h, lo, c, v, math.nan)
    return _read_each(ts, row, timeframe_ms)


def _read_each(ts: object, row: Sequence[object], timeframe_ms: int) -> tuple[str | None, Row]:
    try:
        t = float(ts)  # type: ignore[arg-type]
        o, h, lo, c, v = map(float, row[:5])  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return NAN, _NO_ROW
    qv = row[5] if len(row) > 5 else None
    finite = math.isfinite
    if not (finite(t) and finite(o) and finite(h) and finite(lo) and finite(c) and finite(v)):
        return NAN, _NO_ROW
    if isinstance(qv, float) and math.isinf(qv):
        return NAN, _NO_ROW
    if o <= 0 or h <= 0 or lo <= 0 or c <= 0:
        return NON_POSITIVE_PRICE, _NO_ROW
    if v < 0 or (isinstance(qv, float) and qv < 0):
        return NEGATIVE_VOLUME, _NO_ROW
    if h < lo:
        return HIGH_BELOW_LOW, _NO_ROW
    if t != int(t) or int(t) % timeframe_ms:
        return OFF_GRID, _NO_ROW
    return None, (o, h, lo, c, v, math.nan if qv is None else float(qv))  # type: ignore[arg-type]


_NO_ROW: Row = (math.nan,) * 6
_INF = math.inf


@dataclass(slots=True)
class GateStats:
    outcomes: Counter[str] = field(default_factory=Counter)
    gaps: int = 0
    backfilled_bars: int = 0
    late: int = 0
    released: int = 0
    amended: int = 0  # late bars handed on with a later cross-section
    too_late_to_amend: int = 0  # late bars that came after amend_bars bars: dropped


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars ``start .. end`` (inclusive) of a symbol are missing: backfill them."""

    symbol: int
    start: int
    end: int


class CandleGate:
    def __init__(
        self, symbols: Sequence[str], timeframe_ms: int, amend_bars: int = AMEND_BARS
    ) -> None:
        self.symbols = tuple(symbols)
        self.tf = timeframe_ms
        self.amend_bars = amend_bars
        #: (symbol, bar time) released late whose bar may still be taken in
        self._late: set[tuple[int, int]] = set()
        self._amendments: list[LateBar] = []  # for the next released cross-section
        n = len(self.symbols)
        self._last = [-1] * n  # last accepted bar time per symbol
        self._last_row: list[Row | None] = [None] * n
        #: bar time -> its candles so far, an (n_symbols, 6) block (NaN: no candle yet);
        #: filled as candles come, so a release only hands the block on
        self._rows: dict[int, np.ndarray] = {}
        self._gaps: dict[int, Gap] = {}  # open backfills by symbol
        self.next_ts: int | None = None  # the next cross-section to release
        #: the symbols waited for (see the module's docstring)
        self._member = [True] * n
        #: members whose last bar time is before ``next_ts``: release() has nothing to
        #: do while there are any and no gap is open (checked for every candle)
        self._behind = 0
        self.stats = GateStats()

    # -- input --------------------------------------------------------------
    def offer(self, i: int, ts: int, row: Sequence[object]) -> tuple[str, Gap | None]:
        """Take one *closed* candle of symbol ``i``; returns the outcome and any new gap."""
        problem, clean = _read(ts, row, self.tf)
        if problem is not None:
            return self._count(problem), None
        ts = int(ts)
        if self._late and (i, ts) in self._late:
            return self._count(self._take_late(i, ts, clean)), None
        last = self._last[i]
        if ts == last:
            same = _same(self._last_row[i], clean)
            return self._count(DUPLICATE if same else CONFLICT), None
        if ts < last:
            gap = self._gaps.get(i)
            if gap is not None and gap.start <= ts <= gap.end:
                return self._store(i, ts, clean, advance=False), None
            return self._count(OUT_OF_ORDER), None
        if self.next_ts is not None and ts < self.next_ts:  # released, not late: too old
            self._set_last(i, ts)
            self._last_row[i] = clean
            self.stats.too_late_to_amend += 1
            return self._count(TOO_LATE_TO_AMEND), None
        new_gap = None
        if last >= 0 and ts > last + self.tf:
            start = max(last + self.tf, self.next_ts if self.next_ts is not None else last)
            if start <= ts - self.tf:
                new_gap = Gap(i, start, ts - self.tf)
                self._gaps[i] = new_gap
                self.stats.gaps += 1
        return self._store(i, ts, clean, advance=True), new_gap

    def backfilled(self, i: int, candles: Sequence[Sequence[object]]) -> None:
        """The REST answer for symbol ``i``'s open gap (possibly empty: the bars do not exist)."""
        gap = self._gaps.pop(i, None)
        for c in candles:
            ts = c[0]
            if gap is not None and isinstance(ts, int | float) and gap.start <= ts <= gap.end:
                self._gaps[i] = gap  # accept inside the gap window
                outcome = self.offer(i, int(ts), c[1:])[0]
                self._gaps.pop(i, None)
                if outcome == ACCEPTED:
                    self.stats.backfilled_bars += 1
            elif isinstance(ts, int) and (i, ts) in self._late:
                self.offer(i, ts, c[1:])  # the deadline went by first: a late bar

    def mark_absent(self, i: int, ts: int) -> None:
        """The exchange confirmed symbol ``i`` has no bar at ``ts`` (its REST answer
        moved past it): the symbol counts as settled up to ``ts``."""
        if ts > self._last[i]:
            self._set_last(i, ts)
            self._last_row[i] = None
        self._late.discard((i, ts))
        gap = self._gaps.get(i)
        if gap is not None and gap.start <= ts:
            self._shrink_gap(i, ts + self.tf)

    def awaits_late(self, i: int, ts: int) -> bool:
        """Whether symbol ``i``'s bar at ``ts``, released late, can still be taken in."""
        return (i, ts) in self._late

    def set_member(self, i: int, member: bool, since: int | None = None) -> None:
        """Wait for symbol ``i``'s bars (``member``) or not.  A symbol that joins
        with ``since`` has no bar before ``since``: it is settled up to there."""
        before = self._counts_behind(i)
        self._member[i] = member
        if member and since is not None and since - self.tf > self._last[i]:
            self._last[i] = since - self.tf
            self._last_row[i] = None
        self._behind += self._counts_behind(i) - before

    def is_member(self, i: int) -> bool:
        return self._member[i]

    def member_count(self) -> int:
        """How many symbols are members of the universe now."""
        return sum(self._member)

    def _counts_behind(self, i: int) -> bool:
        return self._member[i] and self.next_ts is not None and self._last[i] < self.next_ts

    def last_ts(self, i: int) -> int:
        """Bar time of symbol ``i``'s last accepted (or confirmed absent) bar; -1 if none."""
        return self._last[i]

    def cancel_gap(self, i: int) -> None:
        """Backfill failed: stop waiting for it (the deadline marks the bars late)."""
        self._gaps.pop(i, None)

    def start(self, ts: int) -> None:
        """Release nothing before ``ts`` (the first cross-section the caller wants)."""
        self._set_next(ts - ts % self.tf)

    # -- output -------------------------------------------------------------
    def pending_symbols(self) -> list[int]:
        """Symbols the next cross-section still waits for."""
        if self.next_ts is None:
            return []
        return self._waiting(self.next_ts)

    def release(
        self, *, deadline_passed: bool = False, limit: int | None = None
    ) -> list[CrossSection]:
        """Every cross-section that can be released now, in order.  With
        ``deadline_passed`` the next one goes out even if symbols are behind: they
        are marked late (a deadline forces one cross-section, not more).  At most
        ``limit`` go out (None: no limit); the others stay here, their candles kept,
        and go out from a later call (the caller's queue was full)."""
        out: list[CrossSection] = []
        t = self.next_ts
        if t is None:
            if not self._rows:
                return out
            t = min(self._rows)
            self._set_next(t)
        if not deadline_passed and self._behind:
            # the common case on the live path: a member is still behind, so the next
            # cross-section waits whatever gaps are open (checked for every candle)
            return out
        force = deadline_passed
        while max(self._last) >= t:
            if limit is not None and len(out) >= limit:
                break
            waiting = self._waiting(t)
            if waiting and not force:
                break
            force = False
            rows = self._rows.pop(t, None)
            late = np.zeros(len(self.symbols), dtype=bool)
            late[waiting] = True
            self.stats.late += len(waiting)
            for i in waiting:
                self._shrink_gap(i, t + self.tf)
                if self.amend_bars and (rows is None or math.isnan(rows[i, 3])):
                    self._late.add((i, t))  # its bar may still come
            if rows is not None:
                out.append(self._cross_section(t, rows, late))
            t += self.tf
            self._set_next(t)
        if self._late:
            oldest = t - self.amend_bars * self.tf  # no later cross-section can carry these
            self._late = {(i, ts) for i, ts in self._late if ts >= oldest}
        self.stats.released += len(out)
        return out

    def _take_late(self, i: int, ts: int, row: Row) -> str:
        """Symbol ``i``'s bar at ``ts``, whose cross-section went out with it late."""
        self._late.discard((i, ts))
        if ts > self._last[i]:
            self._set_last(i, ts)
            self._last_row[i] = row
        self._amendments.append(LateBar(ts, i, *row))
        return TOO_LATE

    def _shrink_gap(self, i: int, start: int) -> None:
        gap = self._gaps.get(i)
        if gap is None:
            return
        if start > gap.end:
            del self._gaps[i]
        else:
            self._gaps[i] = Gap(i, max(gap.start, start), gap.end)

    # -- helpers ------------------------------------------------------------
    def _waiting(self, t: int) -> list[int]:
        """Members not yet settled at ``t``: behind it, or inside an open gap around it."""
        member = self._member
        waiting = {i for i, last in enumerate(self._last) if last < t and member[i]}
        waiting.update(
            i for i, gap in self._gaps.items() if gap.start <= t <= gap.end and member[i]
        )
        return sorted(waiting)

    def _store(self, i: int, ts: int, row: Row, *, advance: bool) -> str:
        block = self._rows.get(ts)
        if block is None:
            block = self._rows[ts] = np.full((len(self.symbols), 6), np.nan)
        block[i] = row
        if advance:
            self._set_last(i, ts)
            self._last_row[i] = row
        return self._count(ACCEPTED)

    def _set_last(self, i: int, ts: int) -> None:
        """Symbol ``i`` is settled up to ``ts`` (a later bar time than its last)."""
        if self.next_ts is not None and self._last[i] < self.next_ts <= ts and self._member[i]:
            self._behind -= 1
        self._last[i] = ts

    def _set_next(self, ts: int) -> None:
        self.next_ts = ts
        self._behind = sum(
            last < ts and member for last, member in zip(self._last, self._member, strict=True)
        )

    def _count(self, outcome: str) -> str:
        self.stats.outcomes[outcome] += 1
        return outcome

    def _cross_section(self, t: int, rows: np.ndarray, late: np.ndarray) -> CrossSection:
        block = rows.T.copy()  # one contiguous row per field
        present = ~np.isnan(block[3])  # a stored candle has a finite close
        amendments: tuple[LateBar, ...] = ()
        if self._amendments:
            oldest = t - self.amend_bars * self.tf
            amendments = tuple(b for b in self._amendments if b.ts >= oldest)
            self.stats.amended += len(amendments)
            self.stats.too_late_to_amend += len(self._amendments) - len(amendments)
            self._amendments = []
        return CrossSection(
            ts=t,
            open=block[0],
            high=block[1],
            low=block[2],
            close=block[3],
            volume=block[4],
            quote_volume=block[5],
            present=present,
            late=late & ~present,
            amendments=amendments,
        )


def _same(a: Row | None, b: Row) -> bool:
    return a is not None and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True)
    )


__all__ = [
    "ACCEPTED",
    "CONFLICT",
    "DUPLICATE",
    "DUPLICATE_TIMESTAMP",
    "TOO_LATE",
    "TOO_LATE_TO_AMEND",
    "CandleGate",
    "Gap",
    "GateStats",
    "row_problem",
]

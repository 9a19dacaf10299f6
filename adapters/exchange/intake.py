"""Closed candles into the gate, released cross-sections out through a bounded queue.

Every part of the source that brings candles (the websocket side, the REST side,
the warm-up) offers them here, and asks for a release when something may have
settled; the consumer (``CcxtSource.cross_sections``) takes the released
cross-sections in order with :meth:`Intake.get`.

**The queue is bounded** (``bound`` cross-sections, a few bars' worth; the warm-up's
burst of history does not pass through it: the source yields it directly).  A
release is synchronous (it runs inside ccxt's message handler), so it cannot wait
for room; instead the gate releases only as many cross-sections as the queue has
room for, and keeps the others, candles and all, until the consumer takes one
(:meth:`Intake.get` then releases again).  Nothing is dropped and the order is
kept: the backpressure lands on the gate.  The consumer is the pipeline's reader,
which moves cross-sections onto the engine's own bounded queue, so a full queue
here means the engine is behind: the first release that finds it full counts it
(``FeedStats.queue_full``) and logs ``source_queue_full`` once for the episode;
``source_queue_drained`` says when room came back.  While it is full the grace
deadline does not force a cross-section out either (it is retried every tick):
a symbol is late because the exchange did not have its bar, never because the
engine was busy.  One more slot is kept for the stop notice, so a feed that gives
up reaches the consumer after what was already released.

What happens around a candle belongs to the other parts, and the intake only
tells them, through the hooks the source gives it: a candle of a symbol outside
the universe (it may join), a gap to backfill, a symbol released late (REST asks
again for its bar), a cross-section released (members silent too long leave).
Those are callables rather than references to the parts, so this module imports
none of them and each part can be read alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

import structlog

from factorcast.adapters.exchange.client import FeedError
from factorcast.adapters.exchange.feed import FeedStats
from factorcast.strategy.events import CrossSection
from factorcast.strategy.gate import ACCEPTED, DUPLICATE, TOO_LATE, CandleGate, Gap

log = structlog.get_logger(__name__)


class Intake:
    """The gate, the bounded queue after it, and what was offered per symbol."""

    def __init__(
        self,
        gate: CandleGate,
        stats: FeedStats,
        *,
        bound: int,
        on_stranger: Callable[[int], None],
        on_gap: Callable[[Gap], None],
        on_late: Callable[[int, int], None],
        on_released: Callable[[int], bool],
    ) -> None:
        """``on_stranger(i)``: a live candle of symbol ``i``, not a member, is about to
        be offered.  ``on_gap(gap)``: backfill it (the gate waits).  ``on_late(i, ts)``:
        symbol ``i`` went out late at ``ts``.  ``on_released(ts)``: the cross-section
        at ``ts`` went out; True if a member left then (the next one may be free)."""
        if bound < 1:
            raise ValueError("the queue must hold at least one cross-section")
        self.gate = gate
        self.symbols = gate.symbols
        self.stats = stats
        self.bound = bound
        self._on_stranger = on_stranger
        self._on_gap = on_gap
        self._on_late = on_late
        self._on_released = on_released
        n = len(self.symbols)
        self.offered = [-1] * n  # newest bar time handed to the gate, per symbol
        #: the first live bar (earlier ones go out with ``live=False``); 0 until the
        #: warm-up has set it
        self.live_from = 0
        #: bar time -> wall time its first candle was taken (the grace deadline's start)
        self.first_seen: dict[int, float] = {}
        #: bar times whose stragglers were checked against REST already
        self.checked: set[int] = set()
        # one slot more than the bound: the stop notice always fits
        self._out: asyncio.Queue[CrossSection | None] = asyncio.Queue(bound + 1)
        self._failure: BaseException | None = None
        self._holding = False  # a REST poll round is under way
        #: a release stopped for want of room: the gate may hold ready cross-sections
        self._held = False
        self._full_since: float | None = None  # wall time a release found the queue full

    # -- candles in ----------------------------------------------------------------
    def take(
        self, i: int, rows: Sequence[Sequence[Any]], *, until: int, backfill: bool = True
    ) -> None:
        """Offer symbol ``i``'s candles that are closed: bar time < ``until``.  A gap
        they open is backfilled through REST, unless ``backfill`` is off because
        ``rows`` already are everything the exchange has (then the gap's bars do not
        exist)."""
        for row in sorted(rows, key=lambda r: r[0] if isinstance(r[0], int) else -1):
            ts = row[0]
            if isinstance(ts, int) and (ts >= until or ts <= self.offered[i]):
                continue
            self.offer(i, ts, row[1:], backfill=backfill)

    def offer(self, i: int, ts: Any, values: Sequence[Any], *, backfill: bool = True) -> None:
        gate = self.gate
        if not gate.is_member(i) and type(ts) is int and ts >= (gate.next_ts or 0):
            self._on_stranger(i)  # before the candle: the bars it may have skipped are asked for
        outcome, gap = gate.offer(i, ts, values)
        if outcome in (ACCEPTED, DUPLICATE):
            ts = int(ts)
            self.offered[i] = max(self.offered[i], ts)
            if ts not in self.first_seen:  # the clock is read once per bar, not per candle
                self.first_seen[ts] = time.monotonic()
        elif outcome == TOO_LATE:
            self.offered[i] = max(self.offered[i], int(ts))
            log.info("bar_too_late", symbol=self.symbols[i], ts=ts)
        else:
            log.warning("bar_rejected", symbol=self.symbols[i], ts=ts, reason=outcome)
        if gap is not None and backfill:
            self._on_gap(gap)
        elif gap is not None:
            gate.backfilled(i, [])

    # -- cross-sections out ----------------------------------------------------------
    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        """Release nothing but a deadline's cross-section meanwhile (a REST poll round:
        what it brings goes out together when it is done)."""
        self._holding = True
        try:
            yield
        finally:
            self._holding = False

    def release(self, *, deadline_passed: bool = False) -> None:
        """Queue every cross-section the gate can release, as far as there is room."""
        if self._holding and not deadline_passed:
            return  # a REST poll round is under way: released when it is done
        room = self.bound - self._out.qsize()
        if room <= 0:
            self._found_full()
            return
        released = self.gate.release(deadline_passed=deadline_passed, limit=room)
        while released:
            self._held = len(released) == room  # the gate may have more ready
            left = False
            for xs in released:
                if xs.late.any():
                    late = xs.late.nonzero()[0]
                    symbols = [self.symbols[i] for i in late]
                    log.warning("cross_section_late", ts=xs.ts, count=len(late), symbols=symbols)
                    for i in late:
                        self._on_late(int(i), xs.ts)
                self.first_seen.pop(xs.ts, None)
                self.checked.discard(xs.ts)
                self._out.put_nowait(xs if xs.ts >= self.live_from else replace(xs, live=False))
                left |= self._on_released(xs.ts)
            # a symbol that left may have held the next cross-section back
            room = self.bound - self._out.qsize()
            self._held |= left and not room
            released = self.gate.release(limit=room) if left and room else []
        if self._full_since is not None and self._out.qsize() < self.bound:
            held_s = time.monotonic() - self._full_since
            self._full_since = None
            log.info("source_queue_drained", held_s=round(held_s, 3))

    def _found_full(self) -> None:
        """A release found no room: the engine is behind.  Counted and logged once per
        episode; the gate keeps what it has until :meth:`get` makes room."""
        self._held = True
        if self._full_since is None:
            self._full_since = time.monotonic()
            self.stats.queue_full += 1
            log.warning("source_queue_full", bound=self.bound, next_ts=self.gate.next_ts)

    def queued(self) -> int:
        """Cross-sections released and not taken yet (and the stop notice, if any)."""
        return self._out.qsize()

    async def get(self) -> CrossSection:
        """The next released cross-section; raises FeedError once the feed gave up
        (after the cross-sections released before that)."""
        item = await self._out.get()
        if item is None:
            assert self._failure is not None
            raise FeedError(f"live feed stopped: {self._failure}") from self._failure
        if self._held:
            self._held = False
            self.release()  # room again: what the gate kept goes on
        return item

    def fail(self, error: BaseException) -> None:
        """The feed cannot go on: :meth:`get` raises once the queue is drained."""
        if self._failure is None:
            self._failure = error
            self._out.put_nowait(None)

    def discount(self, seconds: float) -> None:
        """The process stood still for ``seconds``: the bars did not wait that long."""
        self.first_seen = {ts: t + seconds for ts, t in self.first_seen.items()}

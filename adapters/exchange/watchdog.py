"""The staleness watchdog's memory: when each symbol was last heard from.

A member whose websocket stream stays silent for ``stale_after_s`` is polled
through REST instead (the automatic REST fallback, logged ``feed_stale`` once
until its stream speaks again, ``feed_resumed``), and a websocket silent for
every member is reconnected: :meth:`Watchdog.check` says which, the websocket
side (:mod:`.websocket`) acts on it.

Silence counts only from when a symbol was live on the websocket (its
subscription, its joining the universe) and only while the service was listening
(:meth:`Watchdog.discount`).  A symbol outside the universe is never silent
(``inf``), and one REST confirmed has no bars is quiet for that reason, not
because the websocket failed (:meth:`Watchdog.explained`).  Those events come
from the universe's membership and the REST side, which is why this small
memory stands on its own below all three instead of inside the websocket side.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import structlog

from factorcast.adapters.exchange.feed import FeedStats

log = structlog.get_logger(__name__)


class Watchdog:
    """Wall time (``time.monotonic``) each symbol was last heard from."""

    def __init__(self, symbols: Sequence[str], stats: FeedStats) -> None:
        self.symbols = tuple(symbols)
        self.stats = stats
        #: wall time of the last websocket update, or of the (re)subscription: silence
        #: is measured only from when a symbol was live on the websocket
        self.heard = [math.inf] * len(self.symbols)

    def hear(self, i: int) -> None:
        """The websocket brought an update of symbol ``i``."""
        self.heard[i] = time.monotonic()
        stale = self.stats.stale_symbols
        if stale and i in stale:
            stale.discard(i)
            log.info("feed_resumed", symbol=self.symbols[i])

    def listen_from_now(self, member: Callable[[int], bool]) -> None:
        """Live from here (a subscription): the members' silence counts from now."""
        now = time.monotonic()
        self.heard = [now if member(i) else math.inf for i in range(len(self.symbols))]

    def joined(self, i: int) -> None:
        """Symbol ``i`` joined the universe: its silence counts from now."""
        self.heard[i] = time.monotonic()

    def left(self, i: int) -> None:
        """Symbol ``i`` left the universe: never silent, not on the REST fallback."""
        self.heard[i] = math.inf
        self.stats.stale_symbols.discard(i)

    def explained(self, i: int) -> None:
        """REST confirmed symbol ``i`` has no bar where its stream was quiet."""
        if self.heard[i] != math.inf:
            self.heard[i] = time.monotonic()

    def discount(self, seconds: float) -> None:
        """The process stood still for ``seconds``: that was not the stream's silence."""
        self.heard = [h + seconds for h in self.heard]

    def check(self, limit: float) -> tuple[bool, list[int]]:
        """Whether every member went silent for ``limit`` wall seconds (the websocket
        stalled, not a quiet market), and the symbols silent that long, for REST to
        poll now; they are polled again after another ``limit`` (this runs every tick)."""
        now = time.monotonic()
        heard = self.heard
        if now - min(heard) < limit:
            return False, []  # every member was heard from lately
        # (symbols outside the universe are never silent: their ``heard`` is inf)
        whole = all(now - h >= limit for h in heard if h != math.inf)
        due = []
        for i, h in enumerate(heard):
            if now - h < limit:
                continue
            if i not in self.stats.stale_symbols:
                self.stats.stale_symbols.add(i)
                log.warning("feed_stale", symbol=self.symbols[i], silent_s=round(now - h, 3))
            heard[i] = now  # poll again after another stale period
            self.stats.rest_fallbacks += 1
            due.append(i)
        return whole, due

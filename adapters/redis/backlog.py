"""Where the Redis sink keeps publications Redis cannot take: the on-disk spool
first, and behind it, when the spool refuses, a bounded backlog in memory.

Refusals
    The spool refuses a record that would pass its byte bound (reason ``max_bytes``)
    or that the disk will not take (``ENOSPC``, ``EDQUOT``, ``EIO``: any OSError while
    writing); it then keeps everything it already held (:mod:`adapters.redis.spool`). A
    refused publication goes to the backlog and is counted in ``refused``
    (``factorcast_spool_full_total``); only when the backlog is at its bound is it
    dropped, counted in ``dropped`` (``factorcast_publications_dropped_total``). The
    newest publication is the one dropped: what is kept stays an unbroken run of
    bars from the start of the outage.

Refusing
    :attr:`Backlog.refusing` is the spool's state as last seen: set when it refuses,
    cleared when an append succeeds again, or by :meth:`Backlog.settled` when Redis
    has taken everything that waited. The service is not ready while Redis is down
    and the spool refusing (``/readyz``: ``down: spool full``).

Order
    Everything in the spool is older than everything in the backlog. While the
    backlog holds anything, a new publication joins its tail and never the spool;
    :meth:`Backlog.retry` moves the backlog's head into the spool while it accepts
    (the sink calls it on every publication and every reconnect attempt). With Redis
    back and the spool drained, the sink sends what is still held straight to Redis,
    oldest first; meanwhile new publications join the backlog's tail and the spool
    is left alone. Publications that were in flight when a connection failed are
    older than anything held: :meth:`Backlog.hand_back` puts them at the head, even
    past the bound (they are at most the writer's window).

Lost at exit, never doubled
    The backlog is memory: what the spool still refuses when the sink closes is
    counted as dropped and logged (``publications_dropped``, reason ``shutdown``); a
    crash loses it uncounted. A record is in the spool or in the backlog, never both,
    and Redis skips entry ids it already has, so no restart writes a signal twice.

Logs
    ``spool_full`` (error) at the first refusal, then at most once per
    ``log_interval_s`` while refusals go on, with the count since the last line;
    ``publications_dropped`` (error) likewise; ``spool_accepting`` (info) once the
    refusals are over: the spool accepts and nothing is held in memory any more.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import structlog

from factorcast.adapters.redis.spool import Spool, SpoolError

__all__ = ["Backlog", "Held"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Held:
    """One publication, encoded as the spool would store it."""

    bar_ts: int
    payload: bytes


class _Every:
    """At most one log line per ``interval_s``; counts what it held back."""

    def __init__(self, interval_s: float, clock: Callable[[], float]) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: float | None = None
        self.since = 0  # occurrences since the last line, this one included

    def due(self, n: int = 1) -> bool:
        """``n`` more occurrences; True if a line is due now."""
        self.since += n
        now = self._clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return True

    def logged(self) -> int:
        n, self.since = self.since, 0
        return n


class Backlog:
    """The spool plus the bounded in-memory backlog (see the module docstring).

    Not thread-safe; called from the sink's event loop only, never across an await.
    """

    def __init__(
        self,
        spool: Spool,
        *,
        max_bytes: int,
        log_interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.spool = spool
        self.max_bytes = max_bytes
        self._held: deque[Held] = deque()
        self._bytes = 0
        self.refusing = False
        self.reason: str | None = None  # why the spool last refused
        self._episode = False  # refusals began and are not over (for the log)
        self.refused = 0
        self.dropped = 0
        self._full_log = _Every(log_interval_s, clock)
        self._drop_log = _Every(log_interval_s, clock)
        self._first_unlogged: int | None = None  # first bar dropped since the last line

    @property
    def depth(self) -> int:
        """Publications held in memory."""
        return len(self._held)

    @property
    def nbytes(self) -> int:
        """Bytes of the publications held in memory (what ``max_bytes`` bounds)."""
        return self._bytes

    def keep(self, bar_ts: int, payload: bytes, *, spool: bool = True) -> bool:
        """Put a new publication behind everything waiting: in the spool, else in
        memory, else drop it (counted). True if it went to the spool.

        ``spool=False`` while the sink sends the backlog straight to Redis: the
        publication joins the backlog's tail without the spool being tried (nor
        counted as refused), since anything spooled now would be replayed after
        publications in flight that may yet be handed back."""
        if spool:
            if self._held:
                self.retry()
            if not self._held and self._append(payload):
                self._over()
                return True
            self.refused += 1
        if self._bytes + len(payload) > self.max_bytes:
            self.dropped += 1
            if self._first_unlogged is None:
                self._first_unlogged = bar_ts
            if self._drop_log.due():
                first, self._first_unlogged = self._first_unlogged, None
                self._log_dropped("backlog_full", self._drop_log.logged(), first, bar_ts)
        else:
            self._held.append(Held(bar_ts, payload))
            self._bytes += len(payload)
        if spool:
            self._log_refusal(bar_ts)
        return False

    def hand_back(self, items: Iterable[Held]) -> int:
        """Publications older than everything held (unanswered when a connection
        failed), in order: to the spool while nothing is held, else to the head of
        the backlog. Returns how many went to the spool."""
        spooled = 0
        back: list[Held] = []
        for item in items:
            if not back and not self._held and self._append(item.payload):
                spooled += 1
                continue
            back.append(item)
        if back:
            self.refused += len(back)
            for item in reversed(back):
                self._held.appendleft(item)
                self._bytes += len(item.payload)
            self._log_refusal(back[0].bar_ts, len(back))
        self._over()
        return spooled

    def retry(self) -> int:
        """Move held publications into the spool, oldest first, while it accepts.
        Returns how many moved."""
        moved = 0
        while self._held and self._append(self._held[0].payload):
            self._bytes -= len(self._held.popleft().payload)
            moved += 1
        self._over()
        return moved

    def pop(self) -> Held:
        """The oldest held publication, taken out (the sink sends it to Redis)."""
        item = self._held.popleft()
        self._bytes -= len(item.payload)
        return item

    def settled(self) -> None:
        """Redis took everything that waited: the refusal, if any, is over."""
        if not self._held:
            self.refusing = False
            self._over()

    def abandon(self) -> int:
        """At close: drop (count, log) what is still held. Returns how many."""
        n = len(self._held)
        if n:
            self.dropped += n
            first, last = self._held[0].bar_ts, self._held[-1].bar_ts
            self._held.clear()
            self._bytes = 0
            self._log_dropped("shutdown", n, first, last)
        return n

    # -- internals -------------------------------------------------------------------

    def _append(self, payload: bytes) -> bool:
        try:
            self.spool.append(payload)
        except SpoolError as e:
            self.refusing, self.reason, self._episode = True, e.reason, True
            return False
        self.refusing = False
        return True

    def _over(self) -> None:
        """Log the end of the refusals once the spool accepts and nothing is held."""
        if self._episode and not self.refusing and not self._held:
            self._episode = False
            _log.info(
                "spool_accepting",
                reason=self.reason,
                refused_total=self.refused,
                dropped_total=self.dropped,
                spool_depth=self.spool.depth,
            )

    def _log_refusal(self, bar_ts: int, n: int = 1) -> None:
        if not self._full_log.due(n):
            return
        _log.error(
            "spool_full",
            reason=self.reason,
            bar_ts=bar_ts,
            refused=self._full_log.logged(),
            spool_depth=self.spool.depth,
            spool_bytes=self.spool.size_bytes,
            max_bytes=self.spool.max_bytes,
            backlog_depth=len(self._held),
            backlog_bytes=self._bytes,
            backlog_max_bytes=self.max_bytes,
        )

    def _log_dropped(self, reason: str, n: int, first_bar_ts: int, last_bar_ts: int) -> None:
        _log.error(
            "publications_dropped",
            reason=reason,
            dropped=n,
            first_bar_ts=first_bar_ts,
            last_bar_ts=last_bar_ts,
            dropped_total=self.dropped,
            backlog_depth=len(self._held),
            backlog_bytes=self._bytes,
        )

"""The Redis sink's write connection: guarded transactions, several in flight.

One transaction per publication
    A publication is one ``MULTI``/``EXEC`` transaction (per signal ``XADD`` with its
    id + ``PUBLISH``, one ``HSET`` of the exposures, the heartbeat ``SET``), framed by
    a guard, all in one write (:func:`adapters.redis.wire.transaction`)::

        HSETNX {prefix}:sink <previous token> 1     no-op if the previous one ran
        MULTI ... HSET {prefix}:sink <token> 1  HDEL {prefix}:sink <previous token>  EXEC
        WATCH {prefix}:signals {prefix}:exposures {prefix}:sink

    :meth:`TransactionWriter.send` returns once the transaction is on the socket; up
    to ``window`` transactions wait for their replies, which a task reads back in
    order, so Redis executes one publication while the next is packed (awaiting each
    reply in turn left Redis idle half the time). ``{prefix}:sink`` is the writer's
    own bookkeeping (a hash of at most two fields).

Exactly once, and never overtaken
    Entry ids are derived from the publication. On connect the writer arms ``WATCH``
    on the stream, the exposures hash and the guard, then reads the stream's top id
    (``XREVRANGE + - COUNT 1``): the stream, not process memory, is the source of
    truth, so a restarted service skips what an earlier one wrote, and entries known
    to be there are not even sent. ``WATCH`` is armed again after every ``EXEC``, so a
    transaction runs only if no other client touched those keys since the writer's
    previous one: a second writer, or a stale view of the stream, gets the whole
    publication refused (``EXEC`` answers nil, raised as ``WatchError``), never
    half-written, re-published on pub/sub, or an older bar's exposures over a newer
    one's. The ``HSETNX`` chains the transactions in flight: when one is refused, its
    token is missing, so the ``HSETNX`` before the next creates it, touching a watched
    key, and that one is refused as well, and so on: a publication is never overtaken
    by a later one (whose ids would make the earlier one unwritable). The owner (the
    sink) spools what was refused or left unanswered and replays it over a new
    connection, which re-reads the top.

The reply reader
    The task that reads the replies, ``redis-sink-replies``, belongs to the writer:
    :meth:`TransactionWriter.close` cancels and awaits it. Should it fail other than
    by the connection (a bug, or ``on_settled`` raising), it logs that
    (``sink_task_failed``, with its name) and fails the writer like a lost connection,
    so the owner keeps what was unanswered and reconnects with a new writer.

Commands are packed and replies parsed by :mod:`adapters.redis.resp`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.exceptions import ResponseError, WatchError

from factorcast.adapters.redis.common import UNAVAILABLE, scrub
from factorcast.adapters.redis.resp import RespConnection, command
from factorcast.adapters.redis.spool import SpoolRecord
from factorcast.adapters.redis.wire import Keys, parse_id, transaction
from factorcast.strategy.ports import Publication

__all__ = ["InFlight", "TransactionWriter"]

_log = structlog.get_logger(__name__)


@dataclass(slots=True)
class InFlight:
    """A publication sent and not yet answered (``replies`` 0: nothing was sent)."""

    pub: Publication
    first: int  # signals before this index were on the stream already
    replies: int
    record: SpoolRecord | None  # replayed from the spool: the owner commits it
    #: what the analytics script wrote (set once answered): factor-returns entries,
    #: and the ids of the alerts published (not published before)
    factor_returns_written: int = 0
    alerts_written: tuple[str, ...] = ()


Settled = Callable[[InFlight, int, list[ResponseError]], None]  # item, written, failed
Failed = Callable[[BaseException, list[InFlight]], None]  # error, what was unanswered


class TransactionWriter:
    """Use :meth:`open`. One sender at a time (the owner serializes ``send``)."""

    def __init__(
        self,
        conn: RespConnection,
        keys: Keys,
        *,
        maxlen: int,
        ttl_ms: int,
        window: int,
        tag: bytes,
        last_id: tuple[int, int] | None,
        on_settled: Settled,
        on_failed: Failed,
        password: str | None = None,
    ) -> None:
        self._conn = conn
        self._password = password  # kept out of the log
        self._keys = keys
        self._maxlen = maxlen
        self._ttl_ms = ttl_ms
        self._window = window
        self._tag = tag  # guard tokens are {tag}:{seq}, unique to this connection
        self._seq = 0
        self._previous = tag + b":0"
        self.last_id = last_id  # the stream's top as far as this writer knows
        self._on_settled = on_settled
        self._on_failed = on_failed
        self.in_flight: deque[InFlight] = deque()
        self._sent = asyncio.Event()  # something is in flight
        self._answered = asyncio.Event()  # a reply was read, or the writer failed
        self._failed = False
        self._task = asyncio.create_task(self._read_replies(), name="redis-sink-replies")

    @classmethod
    async def open(
        cls,
        url: str,
        keys: Keys,
        *,
        password: str | None,
        connect_timeout_s: float,
        socket_timeout_s: float,
        ssl_ca_certs: str | None,
        maxlen: int,
        ttl_ms: int,
        window: int,
        on_settled: Settled,
        on_failed: Failed,
    ) -> TransactionWriter:
        """Connect, start a fresh guard, arm WATCH, then read the stream's top id."""
        conn = await RespConnection.open(
            url,
            password=password,
            connect_timeout_s=connect_timeout_s,
            socket_timeout_s=socket_timeout_s,
            ssl_ca_certs=ssl_ca_certs,
            client_name="factorcast-sink",
        )
        tag = secrets.token_hex(4).encode()
        typed = keys.types()
        try:
            conn.send(
                command("DEL", keys.guard)
                + command("HSET", keys.guard, tag + b":0", 1)
                + command("WATCH", keys.stream, keys.exposures, keys.guard)
                + command("XREVRANGE", keys.stream, "+", "-", "COUNT", 1)
                + b"".join(command("TYPE", key) for key, _ in typed)
            )
            replies = await conn.replies(4 + len(typed))
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
            top, kinds = replies[3], replies[4:]
            for (key, wanted), kind in zip(typed, kinds, strict=True):
                if kind not in (wanted, b"none"):
                    raise ResponseError(
                        f"WRONGTYPE {key.decode()} holds a {kind.decode()}, not a {wanted.decode()}"
                    )
        except BaseException:
            conn.abort()
            raise
        return cls(
            conn,
            keys,
            maxlen=maxlen,
            ttl_ms=ttl_ms,
            window=window,
            tag=tag,
            last_id=parse_id(top[0][0]) if top else None,
            on_settled=on_settled,
            on_failed=on_failed,
            password=password,
        )

    @property
    def failed(self) -> bool:
        return self._failed

    async def send(self, pub: Publication, record: SpoolRecord | None = None) -> bool:
        """Put ``pub`` in flight; False if the writer failed before it could.

        Waits while ``window`` publications are in flight. Raises (redis errors) only
        once ``pub`` is in flight: then :meth:`fail` hands it back with the rest.
        """
        if not await self.room():
            return False
        n = len(pub.signals)
        first = self._first_new(pub.bar_ts, n)
        if n and first == n:  # all on the stream: settled in order with the rest
            self._put(InFlight(pub, first, 0, record))
            return True
        self._seq += 1
        token = self._tag + b":%d" % self._seq
        data, replies = transaction(
            pub,
            self._keys,
            self._maxlen,
            self._ttl_ms,
            first=first,
            token=token,
            previous=self._previous,
        )
        self._previous = token
        if n:
            self.last_id = max(self.last_id or (0, 0), (pub.bar_ts, n - 1))
        self._conn.send(data)
        self._put(InFlight(pub, first, replies, record))
        await self._conn.drain()
        return True

    async def room(self) -> bool:
        """Until :meth:`send` can put a publication in flight without waiting; False
        if the writer failed. Once there is room it returns without yielding, so a
        ``send`` awaited right after a True puts the publication in flight at once."""
        while len(self.in_flight) >= self._window and not self._failed:
            self._answered.clear()
            await self._answered.wait()
        return not self._failed

    async def all_answered(self) -> None:
        """Until nothing is in flight (answered, or handed back by a failure)."""
        while self.in_flight:
            self._answered.clear()
            await self._answered.wait()

    def fail(self, error: BaseException) -> None:
        """Close at once; hand what is unanswered, in order, to ``on_failed``."""
        if not self._failed:
            self._conn.abort()
            self._on_failed(error, self._stop())

    async def close(self) -> list[InFlight]:
        """Close without a failure; return what is unanswered (the owner keeps it)."""
        unanswered = self._stop()
        if self._task is not asyncio.current_task():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([self._task])
        await self._conn.close()
        return unanswered

    def _stop(self) -> list[InFlight]:
        self._failed = True
        if self._task is not asyncio.current_task():
            self._task.cancel()
        unanswered = list(self.in_flight)
        self.in_flight.clear()
        self._answered.set()
        return unanswered

    def _put(self, item: InFlight) -> None:
        self.in_flight.append(item)
        self._sent.set()

    def _first_new(self, bar_ts: int, n: int) -> int:
        """Index of the first entry id ``{bar_ts}-{i}`` above the stream top we know."""
        last = self.last_id
        if last is None or bar_ts > last[0]:
            return 0
        return min(n, last[1] + 1) if bar_ts == last[0] else n

    async def _read_replies(self) -> None:
        """Settle the transactions in flight, in order, as their replies arrive."""
        try:
            while True:
                while not self.in_flight:
                    self._sent.clear()
                    await self._sent.wait()
                item = self.in_flight[0]
                replies = await self._conn.replies(item.replies) if item.replies else []
                written, failed = _outcome(item, replies)
                if replies and item.pub.scripted:
                    _script_outcome(item, replies[-2])
                self.in_flight.popleft()
                self._answered.set()
                self._on_settled(item, written, failed)
        except UNAVAILABLE as e:
            self.fail(e)
        except Exception as e:
            _log.error(
                "sink_task_failed",
                task=self._task.get_name(),
                error=type(e).__name__,
                detail=scrub(str(e), self._password),
            )
            self.fail(e)


def _script_outcome(item: InFlight, outcome: list[Any]) -> None:
    """Record what the analytics script wrote: its reply is the fourth from the end
    of EXEC's (before the heartbeat and the guard's two commands)."""
    reply = outcome[-4]
    if isinstance(reply, ResponseError):
        return  # counted with the failed commands
    returned, fresh = reply
    item.factor_returns_written = int(returned)
    item.alerts_written = tuple(a.decode() if isinstance(a, bytes) else str(a) for a in fresh)


def _outcome(item: InFlight, replies: list[Any]) -> tuple[int, list[ResponseError]]:
    """(entries written, commands that failed inside EXEC); raise if refused whole."""
    if not replies:
        return 0, []
    *setup, outcome, watch = replies
    if outcome is None:
        raise WatchError(
            "another client changed the stream, the exposures or the guard: "
            "publication refused whole, to be replayed after re-reading the stream"
        )
    for reply in (*setup, outcome, watch):
        if isinstance(reply, ResponseError):
            raise reply  # queued with an error (EXECABORT): nothing ran
    m = len(item.pub.signals) - item.first
    failed = [r for r in outcome if isinstance(r, ResponseError)]
    written = sum(1 for r in outcome[:m] if not isinstance(r, ResponseError))
    return written, failed

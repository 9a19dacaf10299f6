"""One consumer of a Redis stream's consumer group: the commands, and the shapes of
their replies.

- :meth:`ConsumerGroup.create`: ``XGROUP CREATE ... MKSTREAM`` from ``$`` (new
  entries) or ``0`` (the whole stream); an existing group keeps its position.
- :meth:`ConsumerGroup.claim_idle`: ``XAUTOCLAIM``, page by page, takes over what
  other consumers of the group left pending for a while.
- :meth:`ConsumerGroup.read`: ``XREADGROUP`` from an id (this consumer's pending
  entries after it, not blocking) or from ``>`` (new entries, blocking), with the
  acks that are due (``XACK``) in the same round trip.
- :meth:`ConsumerGroup.ack`: ``XACK`` alone.

Redis errors go to the caller: the subscriber (:mod:`.subscriber`) decides what is
retried, what an ack that did not happen means, and where the next read starts.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

__all__ = ["ConsumerGroup", "Entry"]

#: a stream entry as redis-py returns it: (id, fields)
Entry = tuple[bytes, dict[bytes, bytes]]


class ConsumerGroup:
    """``consumer`` in ``group`` on ``stream``, through a redis-py client it does not own."""

    def __init__(self, client: Redis, stream: str, group: str, consumer: str) -> None:
        self._client = client
        self._stream = stream
        self._group = group
        self._consumer = consumer

    async def create(self, *, from_start: bool) -> bool:
        """Create the group (and the stream if need be); False if it exists already."""
        try:
            await self._client.xgroup_create(
                self._stream, self._group, id="0" if from_start else "$", mkstream=True
            )
        except ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
            return False
        return True

    async def claim_idle(self, idle_ms: int) -> int:
        """Take over every entry pending for ``idle_ms`` or longer; how many."""
        claimed = 0
        cursor: bytes | str = "0-0"
        while True:
            reply = await self._client.xautoclaim(
                self._stream,
                self._group,
                self._consumer,
                idle_ms,
                start_id=cursor,
                count=1000,
            )
            claimed += len(reply[1])
            cursor = reply[0]
            if cursor in (b"0-0", "0-0"):
                return claimed

    async def read(
        self, start: str, *, count: int, block: int | None, acks: list[str]
    ) -> tuple[int, list[Entry]]:
        """Ack ``acks``, then read up to ``count`` entries after ``start`` (``>``: new
        ones, waiting ``block`` ms at most); (entries acked, the entries read)."""
        acked = 0
        if acks:
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.xack(self._stream, self._group, *acks)
                pipe.xreadgroup(
                    self._group, self._consumer, {self._stream: start}, count=count, block=block
                )
                acked, reply = await pipe.execute()
        else:
            reply = await self._client.xreadgroup(
                self._group, self._consumer, {self._stream: start}, count=count, block=block
            )
        return int(acked), _entries(reply)

    async def ack(self, ids: list[str]) -> int:
        """Ack ``ids``; how many Redis confirmed."""
        return int(await self._client.xack(self._stream, self._group, *ids))


def _entries(reply: Any) -> list[Entry]:
    entries: list[Entry]
    if isinstance(reply, dict):  # a client made with legacy_responses=False
        entries = next(iter(reply.values()), [])
    else:  # redis-py's default (RESP2-shaped) [[stream, entries]]
        entries = reply[0][1] if reply else []
    return entries

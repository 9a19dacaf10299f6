"""The signal stream's consumer (SIGNALS.md section 5): what ``factorcast subscribe`` runs.

Delivery
    :class:`SignalSubscriber` reads ``{prefix}:signals`` in a consumer group (the
    commands are :mod:`.consumer_group`'s), created from ``$`` or, with
    ``from_start``, from ``0`` (an existing group keeps its position). On start it
    first takes over entries that another consumer of the group left pending for
    ``claim_idle_ms`` (the default consumer name is ``host-pid``, so a restarted
    process is a new consumer), then re-reads its own pending entries (id ``0``),
    then new ones (``>``). After a lost connection it reconnects with jittered
    backoff and re-reads its pending entries again: a reply lost in transit is not
    lost. A group that vanished (a Redis without persistence restarted) is created
    again before the next read.

At least once
    An entry is acknowledged (``XACK``) only after the consumer has handled it: when it
    asks for the next one, or leaves ``async with`` without an exception. Acks are
    batched into the next read's round trip. A consumer that dies mid-signal has it
    delivered again.

Checks
    :mod:`.subscriber_checks` decides which entries are handed out: a signal already
    seen (a republish, a redelivery) is dropped and counted in ``stats.duplicates``;
    a malformed or unverified entry is counted in ``stats.rejected`` and logged as
    ``signal_rejected`` (signal id, reason). Both are acked so they never loop, and
    never yielded.

Secrets
    The password (a ``SecretStr`` or inside the URL) is kept out of ``url``, ``repr``,
    every log line and every exception message this module makes.

What ``factorcast subscribe`` prints (``run_subscriber``, ``signal_table``) lives in
:mod:`factorcast.adapters.redis.subscriber_output`, which imports this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Literal, TypeVar

import structlog
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, ResponseError

from factorcast.adapters.redis.common import UNAVAILABLE, redact_url, scrub, split_url
from factorcast.adapters.redis.consumer_group import ConsumerGroup, Entry
from factorcast.adapters.redis.subscriber_checks import DUPLICATE, Received, SignalChecks

__all__ = [
    "DEFAULT_GROUP",
    "Received",
    "SignalSubscriber",
    "SubscriberError",
    "SubscriberStats",
]

_log = structlog.get_logger(__name__)

DEFAULT_GROUP: Final = "factorcast-subscribers"
_T = TypeVar("_T")


class SubscriberError(Exception):
    """The subscriber cannot reach or use Redis; the message is redacted."""


class _Stopped(Exception):
    """The stop event fired while waiting on Redis."""


@dataclass(slots=True)
class SubscriberStats:
    received: int = 0  # stream entries read (including rejected and duplicates)
    yielded: int = 0  # signals handed to the consumer
    duplicates: int = 0  # dropped: signal id seen recently
    rejected: int = 0  # dropped: malformed, wrong schema, bad or missing signature
    acked: int = 0  # XACKs Redis confirmed
    claimed: int = 0  # entries taken over from idle consumers at start
    errors: dict[str, int] = field(default_factory=dict)  # by exception type


class SignalSubscriber:
    """Consumer-group reader of the signal stream; an async context manager.

    ``async for entry_id, signal in sub`` yields ``(str, dict)``; :meth:`get` returns
    :class:`Received` (with the exact wire bytes) or ``None`` once ``stop`` is set.
    """

    def __init__(
        self,
        url: str,
        *,
        password: SecretStr | None = None,
        prefix: str = "factorcast",
        group: str = DEFAULT_GROUP,
        consumer: str | None = None,
        from_start: bool = False,
        signing_key: bytes | SecretStr | None = None,
        block_ms: int = 5_000,
        count: int = 100,
        dedupe_size: int = 100_000,
        claim_idle_ms: int | None = 300_000,
        connect_timeout_s: float = 2.0,
        socket_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
        stop: asyncio.Event | None = None,
    ) -> None:
        if block_ms < 1 or count < 1 or dedupe_size < 1:
            raise ValueError("block_ms, count and dedupe_size must be >= 1")
        clean_url, url_password = split_url(url)
        secret = password.get_secret_value() if password is not None else url_password
        self._url = clean_url
        self._password = secret or None
        self.url = redact_url(clean_url, has_password=self._password is not None)
        self.stream = f"{prefix}:signals"
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._from_start = from_start
        self._checks = SignalChecks(signing_key, dedupe_size)
        self._block_ms = block_ms
        self._count = count
        self._claim_idle_ms = claim_idle_ms
        self._connect_timeout_s = connect_timeout_s
        self._socket_timeout_s = socket_timeout_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._stop = stop
        self.stats = SubscriberStats()
        self._client: Redis | None = None
        self._commands: ConsumerGroup | None = None  # the group's commands, on _client
        self._stop_waiter: asyncio.Task[Literal[True]] | None = None
        self._buffer: deque[Entry] = deque()
        self._current: str | None = None  # yielded, not yet handled
        self._to_ack: list[str] = []  # handled or dropped, not yet acked
        self._pending_from: str | None = "0"  # re-reading our pending entries; None: new ones
        self._group_missing = False
        self._attempt = 0

    def __repr__(self) -> str:
        return (
            f"SignalSubscriber(url={self.url!r}, stream={self.stream!r}, "
            f"group={self.group!r}, consumer={self.consumer!r})"
        )

    @property
    def buffered(self) -> int:
        """Entries read from Redis and not yet handed out (0: the next get() reads)."""
        return len(self._buffer)

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> SignalSubscriber:
        self._client = Redis.from_url(
            self._url,
            password=self._password,
            socket_connect_timeout=self._connect_timeout_s,
            # A blocking XREADGROUP must not hit the socket timeout.
            socket_timeout=self._block_ms / 1000 + self._socket_timeout_s,
            retry=Retry(NoBackoff(), 0),  # retries and backoff are ours
            client_name="factorcast-subscriber",
        )
        self._commands = ConsumerGroup(self._client, self.stream, self.group, self.consumer)
        try:
            await self._client.ping()
            created = await self._commands.create(from_start=self._from_start)
            if self._claim_idle_ms is not None:
                self.stats.claimed += await self._commands.claim_idle(self._claim_idle_ms)
            if self.stats.claimed:
                _log.info("subscriber_claimed", entries=self.stats.claimed, consumer=self.consumer)
        except UNAVAILABLE as e:
            self._count_error(e)
            await self.aclose()
            raise self._translate(e) from e
        except BaseException:
            await self.aclose()
            raise
        if self._stop is not None:
            self._stop_waiter = asyncio.create_task(self._stop.wait(), name="subscriber-stop")
        _log.info(
            "subscriber_connected",
            url=self.url,
            stream=self.stream,
            group=self.group,
            consumer=self.consumer,
            group_created=created,
            from_start=self._from_start,
            claimed=self.stats.claimed,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None and self._current is not None:
                self._to_ack.append(self._current)  # the consumer got past it: handled
            self._current = None
            await self._flush_acks()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Close without acking anything more (what is unacked stays pending)."""
        if self._stop_waiter is not None:
            self._stop_waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._stop_waiter
            self._stop_waiter = None
        self._commands = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- reading ---------------------------------------------------------------------

    def __aiter__(self) -> SignalSubscriber:
        return self

    async def __anext__(self) -> tuple[str, dict[str, Any]]:
        received = await self.get()
        if received is None:
            raise StopAsyncIteration
        return received.entry_id, received.signal

    async def get(self) -> Received | None:
        """The next new signal; marks the previous one handled. ``None`` once stopped."""
        if self._client is None:
            raise SubscriberError("SignalSubscriber is not open (use 'async with')")
        if self._current is not None:
            self._to_ack.append(self._current)
            self._current = None
        while True:
            if self._stop is not None and self._stop.is_set():
                return None
            while self._buffer:
                received = self._accept(*self._buffer.popleft())
                if received is not None:
                    self._current = received.entry_id
                    self.stats.yielded += 1
                    return received
            try:
                self._buffer.extend(await self._fetch())
            except _Stopped:
                return None

    def _accept(self, raw_id: bytes, fields: dict[bytes, bytes]) -> Received | None:
        self.stats.received += 1
        entry_id = raw_id.decode()
        verdict = self._checks.admit(entry_id, fields.get(b"data"))
        if isinstance(verdict, Received):
            return verdict
        self._to_ack.append(entry_id)  # handled: never redeliver what is never yielded
        if verdict.reason == DUPLICATE:
            self.stats.duplicates += 1
            _log.debug("signal_duplicate", signal_id=verdict.signal_id, entry_id=entry_id)
        else:
            self.stats.rejected += 1
            _log.warning(
                "signal_rejected",
                signal_id=verdict.signal_id,
                entry_id=entry_id,
                reason=verdict.reason,
            )
        return None

    # -- Redis -----------------------------------------------------------------------

    async def _fetch(self) -> list[Entry]:
        """One read (with the pending acks in the same round trip); retries outages."""
        while True:
            try:
                entries = await self._interruptible(self._read())
            except _Stopped:
                raise
            except AuthenticationError as e:
                self._count_error(e)
                raise self._translate(e) from e
            except ResponseError as e:
                self._count_error(e)
                if not str(e).startswith("NOGROUP"):
                    raise self._translate(e) from e
                # The stream or group vanished (a Redis without persistence restarted):
                # recreate it before the next read.
                _log.warning("subscriber_group_missing", stream=self.stream, group=self.group)
                self._group_missing = True
                self._pending_from = "0"
            except UNAVAILABLE as e:
                self._count_error(e)
                log = _log.warning if self._attempt == 0 else _log.debug
                log(
                    "subscriber_unavailable",
                    url=self.url,
                    error=type(e).__name__,
                    detail=self._scrub(str(e)),
                    attempt=self._attempt,
                )
                self._pending_from = "0"  # a reply lost in transit is in our pending list
                await self._backoff_sleep()
            else:
                if self._attempt:
                    _log.info("subscriber_reconnected", url=self.url, attempts=self._attempt)
                    self._attempt = 0
                return entries

    async def _read(self) -> list[Entry]:
        assert self._commands is not None
        if self._group_missing:
            await self._commands.create(from_start=self._from_start)
            self._group_missing = False
        start = self._pending_from or ">"
        block = None if self._pending_from is not None else self._block_ms
        acks = list(self._to_ack)
        acked, entries = await self._commands.read(start, count=self._count, block=block, acks=acks)
        if acks:
            del self._to_ack[: len(acks)]
            self.stats.acked += acked
        if self._pending_from is not None:
            # Our own pending list, in id order; an empty page means it is done.
            self._pending_from = entries[-1][0].decode() if entries else None
        return entries

    async def _flush_acks(self) -> None:
        if not self._to_ack or self._commands is None:
            return
        try:
            acked = await self._commands.ack(self._to_ack)
        except UNAVAILABLE as e:
            self._count_error(e)
            _log.warning(
                "subscriber_ack_failed",
                entries=len(self._to_ack),
                error=type(e).__name__,
                detail=self._scrub(str(e)),
            )
        else:
            self.stats.acked += acked
            self._to_ack.clear()

    async def _interruptible(self, read: Coroutine[Any, Any, _T]) -> _T:
        """Await ``read``, or cancel it and raise _Stopped when the stop event fires."""
        if self._stop_waiter is None:
            return await read
        task = asyncio.create_task(read, name="subscriber-read")
        try:
            await asyncio.wait({task, self._stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()  # redis-py drops the connection; the next command reconnects
                with contextlib.suppress(asyncio.CancelledError, *UNAVAILABLE):
                    await task
        if task.cancelled():
            raise _Stopped
        return task.result()

    async def _backoff_sleep(self) -> None:
        low, high = self._backoff
        delay = min(high, low * 2 ** min(self._attempt, 30)) * random.uniform(0.5, 1.0)
        self._attempt += 1
        if self._stop_waiter is None:
            await asyncio.sleep(delay)
            return
        done, _ = await asyncio.wait({self._stop_waiter}, timeout=delay)
        if done:
            raise _Stopped

    # -- helpers ---------------------------------------------------------------------

    def _count_error(self, error: BaseException) -> None:
        name = type(error).__name__
        self.stats.errors[name] = self.stats.errors.get(name, 0) + 1

    def _translate(self, error: BaseException) -> SubscriberError:
        return SubscriberError(
            f"Redis at {self.url} unavailable: {type(error).__name__}: {self._scrub(str(error))}"
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, self._password)

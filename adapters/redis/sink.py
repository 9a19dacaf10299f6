"""The Redis signal sink (SIGNALS.md section 5), with an on-disk spool for outages.

Why one file past ~400 lines
    :class:`RedisSink` is one state machine: ``publish``, ``flush``, the drainer, the
    replay and the backlog hand-off share one lock, one "does anything wait"
    decision (``_waiting``) and one set of events, and their ordering rules are only
    checked by reading them together. What stands alone already lives apart: the
    write path (:mod:`.writer`), the spool (:mod:`.spool`), the backlog's rules
    (:mod:`.backlog`), the bytes (:mod:`.wire`).

Keys (``prefix`` defaults to ``factorcast``)
    ``{prefix}:signals``    stream, one entry per signal, field ``data`` = the JSON,
                            ``XADD ... MAXLEN ~ maxlen``; entry id ``{bar_ts}-{i}``,
                            ``i`` the signal's index in its cross-section
    ``{prefix}:signals``    pub/sub channel, the same JSON (best effort, as specified)
    ``{prefix}:exposures``  hash, symbol -> exposures JSON
    ``{prefix}:heartbeat``  string, the bar's ISO time, ``SET ... PX heartbeat_ttl``
    ``{prefix}:factor_returns``, ``{prefix}:risk``, ``{prefix}:health``,
    ``{prefix}:alerts`` (+ ``{prefix}:alerts:ids``)
                            the bar's analytics (ANALYTICS.md section 12), in the
                            same transaction; :mod:`.wire` says how each factor-returns
                            entry and each alert is written at most once

Writing
    A publication is one guarded ``MULTI``/``EXEC`` transaction, several in flight
    (:mod:`adapters.redis.writer` says how and why): all of it or none of it runs,
    no entry id reaches the stream twice, and a refused publication (another client
    wrote to the keys: counted as ``WatchError``) is never overtaken by a later one.
    ``publish`` returns once the publication is on the socket; ``flush`` waits for
    the replies. Refused or unanswered publications go to the spool, in order.

Outages
    ``publish`` writes straight to Redis only while Redis is up and the spool is
    empty. A failed write (any redis error or OSError, bounded by the connect and
    socket timeouts) marks Redis down and spools the publication; while down, or
    while the spool still holds anything, new publications go to the spool without
    touching the network, so the pipeline never waits on an outage and order is kept.
    A background task (started in ``__aenter__``) reconnects with jittered
    exponential backoff, then replays the spool in order, committing each record
    only after its transaction was answered (at-least-once from spool + dedupe by id =
    exactly once). Publications in flight when the connection fails are spooled in
    order before anything newer (they may have run: the replay's dedupe decides).

Tasks
    The sink owns one long-lived task, ``redis-sink-drainer``; its writer owns the
    reply reader, ``redis-sink-replies``. ``aclose`` cancels and awaits both. The
    drainer handles every error it expects; should it end all the same (a bug), that
    is logged (``sink_task_failed``, with the task's name) and counted, and a new
    drainer starts after a backoff, so delivery never stops silently. A reply reader
    that fails likewise fails its writer: the sink spools what was in flight and the
    drainer reconnects.

Spool full
    When the spool refuses (its byte bound, or a full disk), ``publish`` does not
    raise: the publication waits in a bounded in-memory backlog behind the spool, is
    counted (``stats.spool_full``) and logged (``spool_full``), and the sink reports
    :attr:`RedisSink.spool_refusing` until the spool accepts again or Redis has
    taken everything. Only what the backlog has no room for is dropped
    (``stats.dropped``, ``publications_dropped``). :mod:`adapters.redis.backlog` gives
    the rules; what is already spooled is never touched.

Secrets
    The password (a ``SecretStr`` or inside the URL) is taken out of the URL, given
    to the client separately, and scrubbed from every log line and exception message
    the sink produces; URLs are shown as ``redis://:***@host:port/0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ResponseError, WatchError

from factorcast.adapters.redis.backlog import Backlog, Held
from factorcast.adapters.redis.common import UNAVAILABLE, redact_url, scrub, split_url
from factorcast.adapters.redis.spool import FsyncPolicy, Spool, SpoolError
from factorcast.adapters.redis.wire import Keys, decode_publication, encode_publication
from factorcast.adapters.redis.writer import InFlight, TransactionWriter
from factorcast.strategy.ports import Publication

__all__ = [
    "RedisSink",
    "SinkStats",
    "SinkUnavailable",
    "decode_publication",
    "encode_publication",
    "redact_url",
]

_log = structlog.get_logger(__name__)


class SinkUnavailable(Exception):
    """The sink cannot take or deliver a publication; the message is redacted."""


@dataclass(slots=True)
class SinkStats:
    """Counters for the metrics layer; updated in place by the sink."""

    published: int = 0  # stream entries written
    duplicates_skipped: int = 0  # stream entries Redis already had
    spooled: int = 0  # publications appended to the spool
    replayed: int = 0  # publications delivered from the spool
    spool_full: int = 0  # publications the spool refused (held in memory, or dropped)
    dropped: int = 0  # publications lost: refused by the spool, no room in memory
    spool_depth: int = 0
    spool_bytes: int = 0
    backlog_depth: int = 0  # publications held in memory behind a refusing spool
    backlog_bytes: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # by exception type
    factor_returns: int = 0  # factor-returns stream entries written
    alerts: dict[str, int] = field(default_factory=dict)  # alerts published, by kind


# -- the sink ----------------------------------------------------------------------------


class RedisSink:
    """``SignalSink`` on Redis; an async context manager (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        spool_dir: Path | str,
        password: SecretStr | None = None,
        prefix: str = "factorcast",
        maxlen: int = 100_000,
        heartbeat_ttl_s: float = 180.0,
        window: int = 4,
        connect_timeout_s: float = 1.0,
        socket_timeout_s: float = 2.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
        flush_timeout_s: float = 5.0,
        replay_batch: int = 100,
        spool_max_bytes: int = 256 * 2**20,
        spool_segment_bytes: int = 8 * 2**20,
        spool_fsync: FsyncPolicy = "always",
        spool_fsync_interval_ms: int = 200,
        backlog_max_bytes: int = 64 * 2**20,
        refusal_log_interval_s: float = 60.0,
        ssl_ca_certs: str | None = None,
    ) -> None:
        if window < 1:
            raise ValueError("window must be >= 1")
        clean_url, url_password = split_url(url)
        secret = password.get_secret_value() if password is not None else url_password
        self._url = clean_url
        self._password = secret or None
        self.url = redact_url(clean_url, has_password=self._password is not None)
        self._keys = Keys.for_prefix(prefix)
        self._stream = f"{prefix}:signals"
        self._maxlen = maxlen
        self._ttl_ms = max(1, round(heartbeat_ttl_s * 1000))
        self._window = window
        self._connect_timeout_s = connect_timeout_s
        self._socket_timeout_s = socket_timeout_s
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._flush_timeout_s = flush_timeout_s
        self._replay_batch = replay_batch
        self._ssl_ca_certs = ssl_ca_certs
        self._spool = Spool(
            spool_dir,
            max_bytes=spool_max_bytes,
            segment_bytes=spool_segment_bytes,
            fsync=spool_fsync,
            fsync_interval_ms=spool_fsync_interval_ms,
        )
        self._backlog = Backlog(
            self._spool, max_bytes=backlog_max_bytes, log_interval_s=refusal_log_interval_s
        )
        self.stats = SinkStats()
        self._client: Redis | None = None  # redis-py, for ping()
        self._writer: TransactionWriter | None = None  # the write path, while up
        self._task: asyncio.Task[None] | None = None  # the drainer
        self._drainer_restarts = 0
        self._lock = asyncio.Lock()  # one sender at a time: publish or the replay
        self._work = asyncio.Event()  # the drainer has something to do
        self._retry_now = asyncio.Event()  # cut the backoff short (flush)
        self._drained = asyncio.Event()  # nothing in flight, spooled or held
        self._sync_timer: asyncio.TimerHandle | None = None
        self._attempt = 0
        self._sending_backlog = False  # the drainer sends held publications to Redis

    def __repr__(self) -> str:
        return f"RedisSink(url={self.url!r}, stream={self._stream!r}, up={self.connected})"

    @property
    def connected(self) -> bool:
        return self._writer is not None

    @property
    def spool_refusing(self) -> bool:
        """The spool refused the last publication it was offered and has not
        accepted one since (cleared too once Redis has taken everything)."""
        return self._backlog.refusing

    @property
    def in_flight(self) -> int:
        """Publications sent and not answered yet."""
        return 0 if self._writer is None else len(self._writer.in_flight)

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> RedisSink:
        try:
            self._spool.open()
        except (SpoolError, OSError) as e:
            raise SinkUnavailable(f"cannot open spool: {self._scrub(str(e))}") from e
        self._refresh_spool_stats()
        if not self._spool.depth:
            self._drained.set()
        options: dict[str, Any] = {
            "password": self._password,
            "socket_connect_timeout": self._connect_timeout_s,
            "socket_timeout": self._socket_timeout_s,
            "retry": Retry(NoBackoff(), 0),  # retries and backoff are ours, below
            "client_name": "factorcast-sink-ping",
        }
        if self._url.startswith("rediss://") and self._ssl_ca_certs is not None:
            options["ssl_ca_certs"] = self._ssl_ca_certs
        self._client = Redis.from_url(self._url, **options)
        try:
            async with self._lock:
                await self._connect()
        except UNAVAILABLE as e:
            self._mark_down(e)  # not fatal: publications spool until Redis answers
        self._start_drainer()
        self._work.set()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is None:
                await self.flush()
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        """Stop the tasks, spool what is unanswered, sync the spool, close (no flush)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait([task])  # a failure is _drainer_done's to log
        writer, self._writer = self._writer, None
        if writer is not None:
            # Unanswered transactions may or may not have run: keep them, dedupe decides.
            self._spool_unanswered(await writer.close())
        self._waiting_changed(self._backlog.retry())
        self._backlog.abandon()  # memory: what the spool still refuses is lost, counted
        self._refresh_spool_stats()
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        self._spool.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the port --------------------------------------------------------------------

    async def publish(self, publication: Publication) -> None:
        """Send to Redis, or spool while Redis is down or the spool is not yet empty.

        Returns once the publication is on the socket (or in the spool); up to
        ``window`` publications await their replies meanwhile. :meth:`flush` waits.
        """
        if self._client is None:
            raise SinkUnavailable("RedisSink is not open (use 'async with')")
        if publication.bar_ts <= 0:
            raise ValueError("bar_ts must be > 0: it is the stream entry id")
        if self._writer is not None and not self._waiting:
            async with self._lock:
                writer = self._writer
                if writer is not None and not self._waiting:
                    try:
                        if await writer.send(publication):
                            return
                    except UNAVAILABLE as e:
                        writer.fail(e)  # it was in flight: spooled with the others
                        return
                    except asyncio.CancelledError:
                        if not any(item.pub is publication for item in writer.in_flight):
                            self._keep(publication)
                        raise
        self._keep(publication)

    async def flush(self) -> None:
        """Wait (``flush_timeout_s`` at most, else log ``flush_incomplete``) until
        nothing is in flight, spooled or held, all three seen empty at one instant;
        sync what is left. ``stats`` and :attr:`spool_refusing` are exact on return.

        Each wait is for the stage that still holds something (the replies, or the
        drainer), and the three are looked at again after it: a window handed back by
        a failure, or the drainer's next step, can refill one that was empty. The
        drainer need not have run since its last reply: whatever it would record then
        (the counts, the end of a refusal) is recorded as the replies arrive."""
        try:
            async with asyncio.timeout(self._flush_timeout_s):
                while not self._idle:
                    writer = self._writer
                    if writer is not None and writer.in_flight:
                        await writer.all_answered()
                    elif self._task is None:
                        break  # nothing drains the spool (not open)
                    else:
                        # Waiting, hence not drained (_check_drained sets it only when
                        # idle): clearing makes the wait end at the next drained moment.
                        self._drained.clear()
                        self._work.set()
                        self._retry_now.set()
                        await self._drained.wait()
        except TimeoutError:
            _log.warning(
                "flush_incomplete",
                url=self.url,
                in_flight=0 if self._writer is None else len(self._writer.in_flight),
                spool_depth=self._spool.depth,
                backlog_depth=self._backlog.depth,
                up=self.connected,
            )
        self._refresh_spool_stats()
        with contextlib.suppress(SpoolError):
            self._spool.sync()

    async def ping(self) -> None:
        """Round trip to Redis; raise SinkUnavailable (redacted) if it does not answer."""
        if self._client is None:
            raise SinkUnavailable("RedisSink is not open (use 'async with')")
        try:
            await self._client.ping()
        except UNAVAILABLE as e:
            self._count_error(e)
            raise self._translate(e) from e

    # -- Redis -----------------------------------------------------------------------

    async def _connect(self) -> None:
        self._writer = writer = await TransactionWriter.open(
            self._url,
            self._keys,
            password=self._password,
            connect_timeout_s=self._connect_timeout_s,
            socket_timeout_s=self._socket_timeout_s,
            ssl_ca_certs=self._ssl_ca_certs,
            maxlen=self._maxlen,
            ttl_ms=self._ttl_ms,
            window=self._window,
            on_settled=self._settled,
            on_failed=self._failed,
        )
        self._attempt = 0
        last = writer.last_id
        _log.info(
            "sink_connected",
            url=self.url,
            stream=self._stream,
            last_id=None if last is None else f"{last[0]}-{last[1]}",
            spool_depth=self._spool.depth,
        )

    def _settled(self, item: InFlight, written: int, failed: list[ResponseError]) -> None:
        """One publication answered (TransactionWriter calls this, in order)."""
        n = len(item.pub.signals)
        if failed:
            # Ran with watched, type-checked keys: cannot happen. Never resend it.
            self._count_error(failed[0])
            _log.error(
                "sink_command_failed",
                bar_ts=item.pub.bar_ts,
                failed=len(failed),
                error=self._scrub(str(failed[0])),
            )
        self.stats.published += written
        self.stats.duplicates_skipped += n - written
        self.stats.factor_returns += item.factor_returns_written
        for alert_id in item.alerts_written:  # {kind}:{factor}:{bar_ts}
            kind = alert_id.split(":", 1)[0]
            self.stats.alerts[kind] = self.stats.alerts.get(kind, 0) + 1
        _log.debug(
            "signal_published", bar_ts=item.pub.bar_ts, entries=written, duplicates=n - written
        )
        if item.record is not None:
            self._spool.commit(item.record.cursor)
            self.stats.replayed += 1
            self._refresh_spool_stats()
        # The last reply may be the moment nothing waits any more (a replayed record
        # committed, or the backlog's last publication answered): say so now, not when
        # the drainer next runs, which may be after a flush returned.
        self._check_drained()

    def _failed(self, error: BaseException, unanswered: list[InFlight]) -> None:
        """The write connection failed (TransactionWriter calls this once)."""
        self._writer = None
        self._mark_down(error)
        self._spool_unanswered(unanswered)

    def _spool_unanswered(self, unanswered: list[InFlight]) -> None:
        # Replayed ones are still in the spool (uncommitted): only the others go back,
        # ahead of anything held in memory (they are older).
        back = [
            Held(item.pub.bar_ts, encode_publication(item.pub))
            for item in unanswered
            if item.record is None
        ]
        if back:
            self._waiting_changed(self._backlog.hand_back(back))

    # -- spool and replay ------------------------------------------------------------

    @property
    def _waiting(self) -> bool:
        """Publications wait in the spool or the backlog: new ones queue behind them."""
        return bool(self._spool.depth or self._backlog.depth)

    @property
    def _idle(self) -> bool:
        """Nothing in flight, spooled or held: what :meth:`flush` waits for."""
        return not self.in_flight and not self._waiting

    def _keep(self, pub: Publication) -> None:
        """Spool ``pub`` behind everything waiting; if the spool refuses, hold it in
        memory; if there is no room, drop it. Counted and logged, never raised."""
        before = self._spool.depth
        payload = encode_publication(pub)
        spooled = self._backlog.keep(pub.bar_ts, payload, spool=not self._sending_backlog)
        self._waiting_changed(self._spool.depth - before)
        if spooled:
            _log.info(
                "spool_appended",
                bar_ts=pub.bar_ts,
                spool_depth=self.stats.spool_depth,
                spool_bytes=self.stats.spool_bytes,
            )

    def _waiting_changed(self, spooled: int) -> None:
        """After ``spooled`` records were appended to the spool (and the backlog may
        have changed): stats, the drainer, the fsync timer."""
        self.stats.spooled += spooled
        self._refresh_spool_stats()
        if self._waiting:
            self._drained.clear()
            self._work.set()
        self._arm_sync()

    def _check_drained(self) -> None:
        """Set ``_drained`` (and end the refusal once Redis took everything) when
        nothing is in flight, spooled or held."""
        if self._idle:
            if self._writer is not None:
                self._backlog.settled()
            self._drained.set()

    async def _replay(self, writer: TransactionWriter) -> None:
        """Send up to ``replay_batch`` spooled publications, pipelined; each record is
        committed when its reply arrives (:meth:`_settled`)."""
        before = self.stats.replayed
        try:
            for record in self._spool.pending(self._replay_batch):
                try:
                    pub = decode_publication(record.payload)
                except (ValueError, KeyError, TypeError) as e:
                    # Cannot happen for records this module wrote; never loop on one.
                    self._count_error(e)
                    _log.error("spool_record_invalid", cursor=record.cursor, error=type(e).__name__)
                    await writer.all_answered()  # commits stay in order
                    if writer.failed:
                        return
                    self._spool.commit(record.cursor)
                    self._refresh_spool_stats()
                    continue
                if not await writer.send(pub, record):
                    return  # the connection failed: the rest stays in the spool
            await writer.all_answered()
        finally:
            done = self.stats.replayed - before
            if done:
                _log.info("spool_replayed", records=done, spool_depth=self._spool.depth)
            self._refresh_spool_stats()
            self._check_drained()

    async def _send_backlog(self, writer: TransactionWriter) -> None:
        """Send what the spool refused straight to Redis, oldest first, once the spool
        is drained (nothing to gain from writing it to disk first, and the disk may
        still be full)."""
        sent = 0
        self._sending_backlog = True  # new publications queue behind, not in the spool
        try:
            while self._backlog.depth:
                if not await writer.room():
                    return  # the connection failed: the rest stays held
                item = self._backlog.pop()
                self._refresh_spool_stats()  # exact while it drains, not only at the end
                # room() said yes and nothing yielded since: send puts it in flight, and
                # a failure from there on hands it back with the others, in order.
                if not await writer.send(decode_publication(item.payload)):
                    self._waiting_changed(self._backlog.hand_back([item]))  # not reached
                    return
                sent += 1
            await writer.all_answered()
        finally:
            self._sending_backlog = False
            if sent:
                _log.info("backlog_sent", publications=sent, backlog_depth=self._backlog.depth)
            self._refresh_spool_stats()
            self._check_drained()

    async def _drain_forever(self) -> None:
        """Reconnect with backoff while down; replay the spool, then send the backlog,
        while anything waits. Each turn first offers the backlog to the spool again."""
        while True:
            await self._work.wait()
            while not (self._writer is not None and not self._waiting):
                if self._backlog.depth:
                    self._waiting_changed(self._backlog.retry())
                try:
                    async with self._lock:
                        if self._writer is None:
                            await self._connect()
                        writer = self._writer
                        if writer is not None:
                            await self._replay(writer)
                            if self._backlog.depth and not self._spool.depth:
                                await self._send_backlog(writer)
                except UNAVAILABLE as e:
                    if self._writer is not None:
                        self._writer.fail(e)  # hands back what was in flight
                    else:
                        self._mark_down(e)
                    await self._backoff_sleep()
                except SpoolError as e:
                    self._count_error(e)
                    _log.error("spool_unreadable", error=self._scrub(str(e)))
                    await self._backoff_sleep()
                except Exception as e:
                    # A bug must not silently stop delivery: say so, keep the spool, retry.
                    self._count_error(e)
                    _log.error(
                        "sink_drainer_failed", error=type(e).__name__, detail=self._scrub(str(e))
                    )
                    await self._backoff_sleep()
                else:
                    if self._writer is None:
                        await self._backoff_sleep()  # the connection failed during replay
            self._work.clear()  # no await since the check above: nothing can slip in

    def _start_drainer(self, delay_s: float | None = None) -> None:
        drain = self._drain_forever() if delay_s is None else self._drain_after(delay_s)
        self._task = asyncio.create_task(drain, name="redis-sink-drainer")
        self._task.add_done_callback(self._drainer_done)

    async def _drain_after(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self._work.set()
        await self._drain_forever()

    def _drainer_done(self, task: asyncio.Task[None]) -> None:
        """The drainer ends only when ``aclose`` cancels it: any other end is logged
        and counted, and while the sink is open a new drainer takes over."""
        if task.cancelled():
            return
        error = task.exception() or RuntimeError("the drainer returned")
        self._count_error(error)
        _log.error(
            "sink_task_failed",
            task=task.get_name(),
            error=type(error).__name__,
            detail=self._scrub(str(error)),
            restarted=task is self._task,
        )
        if task is self._task:  # a bug that recurs is retried less and less often
            self._drainer_restarts += 1
            low, high = self._backoff
            self._start_drainer(min(high, low * 2 ** min(self._drainer_restarts, 30)))

    async def _backoff_sleep(self) -> None:
        """Jittered exponential backoff; ``flush`` can cut it short."""
        low, high = self._backoff
        delay = min(high, low * 2 ** min(self._attempt, 30)) * random.uniform(0.5, 1.0)
        self._attempt += 1
        self._retry_now.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._retry_now.wait()

    # -- helpers ---------------------------------------------------------------------

    def _mark_down(self, error: BaseException) -> None:
        self._count_error(error)
        self._work.set()
        if isinstance(error, WatchError):
            # Not an outage: someone else wrote to the keys (a consumer creating the
            # stream with XGROUP ... MKSTREAM, a second writer). Re-read and replay.
            _log.info("sink_resync", url=self.url, detail=self._scrub(str(error)))
            return
        log = _log.warning if self._attempt == 0 else _log.debug
        log(
            "sink_unavailable",
            url=self.url,
            error=type(error).__name__,
            detail=self._scrub(str(error)),
            attempt=self._attempt,
            spool_depth=self._spool.depth,
        )

    def _count_error(self, error: BaseException) -> None:
        name = type(error).__name__
        self.stats.errors[name] = self.stats.errors.get(name, 0) + 1

    def _translate(self, error: BaseException) -> SinkUnavailable:
        return SinkUnavailable(
            f"Redis at {self.url} unavailable: {type(error).__name__}: {self._scrub(str(error))}"
        )

    def _scrub(self, text: str) -> str:
        return scrub(text, self._password)

    def _refresh_spool_stats(self) -> None:
        self.stats.spool_depth = self._spool.depth
        self.stats.spool_bytes = self._spool.size_bytes
        self.stats.backlog_depth = self._backlog.depth
        self.stats.backlog_bytes = self._backlog.nbytes
        self.stats.spool_full = self._backlog.refused
        self.stats.dropped = self._backlog.dropped

    def _arm_sync(self) -> None:
        """Under the ``batch`` policy, fsync within the interval even if appends stop."""
        if self._spool.dirty and self._sync_timer is None:
            loop = asyncio.get_running_loop()
            self._sync_timer = loop.call_later(self._spool.fsync_interval_s, self._timed_sync)

    def _timed_sync(self) -> None:
        self._sync_timer = None
        try:
            self._spool.sync()
        except (SpoolError, OSError) as e:
            self._count_error(e)
            _log.error("spool_sync_failed", error=self._scrub(str(e)))

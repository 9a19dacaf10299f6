"""A spool that refuses, with a real redis-server: its byte bound, and a full disk.

The sink must refuse and count, keep running, report not ready for as long as the
spool refuses, keep what is spooled intact, hold what it can in memory, and deliver
everything it kept exactly once, in order, when Redis is back.

A full disk is produced for real on a tiny tmpfs when this process may mount one
(root); it cannot be produced portably, so the other disk-full tests fake ENOSPC
at the ``os.write`` boundary (:class:`FullDisk`) and say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from factorcast.adapters.observe.metrics import Metrics
from factorcast.adapters.observe.telemetry import Telemetry
from factorcast.adapters.redis.server import EmbeddedRedis
from factorcast.adapters.redis.sink import RedisSink, encode_publication
from factorcast.adapters.redis.spool import Spool, SpoolError
from factorcast.adapters.redis.writer import TransactionWriter
from tests.integration.test_redis_sink import (
    BAR_MS,
    SYMBOLS,
    expected_entries,
    publication,
    require_redis_server,
    sink_for,
    stream_entries,
)

pytestmark = pytest.mark.integration

#: the bytes one of this module's publications takes in the spool
RECORD = len(encode_publication(publication(1))) + 8


@pytest.fixture
async def server() -> AsyncIterator[EmbeddedRedis]:
    require_redis_server()
    async with EmbeddedRedis() as srv:
        yield srv


@pytest.fixture
async def client(server: EmbeddedRedis) -> AsyncIterator[Redis]:
    c = Redis.from_url(server.url)
    try:
        yield c
    finally:
        await c.aclose()


@contextlib.asynccontextmanager
async def opened(sink: RedisSink) -> AsyncIterator[RedisSink]:
    """The sink open, closed without a flush (Redis may be down at the end)."""
    await sink.__aenter__()
    try:
        yield sink
    finally:
        await sink.aclose()


def fresh_telemetry(sink: RedisSink) -> Telemetry:
    """Telemetry over ``sink`` whose data is fresh: readiness then depends on the sink."""
    telemetry = Telemetry(Metrics(), SYMBOLS, BAR_MS, sink=sink, bar_wall_s=3600)
    telemetry.last_live_step = time.monotonic()
    return telemetry


def bar_ts(k: int) -> int:
    """Bar ``k``'s time: its publication's ``bar_ts``."""
    return publication(k).bar_ts


def events(logs: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == name]


def spooled_payloads(spool_dir: Path) -> tuple[list[bytes], list[dict[str, Any]]]:
    """Reopen the spool as a restart would: its pending payloads, and what it logged."""
    with capture_logs() as logs, Spool(spool_dir) as spool:
        payloads = [r.payload for r in spool.pending()]
    return payloads, logs


def segment_bytes(spool_dir: Path) -> int:
    return sum(p.stat().st_size for p in spool_dir.glob("*.seg"))


class FullDisk:
    """A fake full disk at the ``os.write`` boundary, for spool segments only.

    A full disk cannot be produced portably (the real one, a tiny tmpfs, needs root:
    :func:`test_real_full_tmpfs`). While ``full``, a record's first write to a
    ``.seg`` file writes part of it and returns the short count, as a filesystem with
    a few free blocks does, and the next write raises ENOSPC; every other write
    goes to the real ``os.write``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._write = os.write
        self.full = False
        self.refusals = 0
        self._torn: set[int] = set()
        monkeypatch.setattr(os, "write", self)

    def __call__(self, fd: int, data: Any) -> int:
        if not (self.full and os.readlink(f"/proc/self/fd/{fd}").endswith(".seg")):
            return self._write(fd, data)
        if fd not in self._torn:
            self._torn.add(fd)
            return self._write(fd, memoryview(data)[: max(1, len(data) // 2)])
        self._torn.discard(fd)
        self.refusals += 1
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# -- the byte bound ---------------------------------------------------------------------


async def test_full_spool_refuses_counts_holds_and_delivers_all_once(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    await server.astop()
    sink = sink_for(
        server.url,
        tmp_path / "spool",
        spool_max_bytes=3 * RECORD + RECORD // 2,
        refusal_log_interval_s=3600,
    )
    with capture_logs() as logs:
        async with opened(sink):
            telemetry = fresh_telemetry(sink)
            await sink.publish(publication(0))
            ready, details = telemetry.readiness()
            assert ready and details["redis"] == "down: spooling"
            for k in range(1, 10):
                await sink.publish(publication(k))  # past the bound: never raises
            assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (3, 7)
            assert sink.stats.spool_full == 7
            assert sink.stats.dropped == 0
            assert sink.spool_refusing
            ready, details = telemetry.readiness()
            assert not ready
            assert details["redis"] == "down: spool full"
            assert details["backlog"] == "7 publications held in memory"
            telemetry.sync_counters()
            registry = telemetry.metrics.registry
            assert registry.get_sample_value("factorcast_spool_full_total") == 7
            assert registry.get_sample_value("factorcast_spool_backlog_depth") == 7
            assert not telemetry.readiness()[0], "not ready for as long as it refuses"

            await server.astart()
            await sink.publish(publication(10))  # behind everything waiting
            await sink.flush()
            assert sink.connected
            assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (0, 0)
            assert not sink.spool_refusing
            assert telemetry.readiness()[0]
            assert telemetry.readiness()[1]["redis"] == "connected"
    assert await stream_entries(client) == expected_entries(range(11))
    (full,) = events(logs, "spool_full")  # one line for seven refusals
    assert full["log_level"] == "error"
    assert (full["reason"], full["refused"], full["bar_ts"]) == ("max_bytes", 1, bar_ts(3))
    assert len(events(logs, "spool_accepting")) == 1
    assert not events(logs, "publications_dropped")


async def test_backlog_bound_drops_the_newest_counted_and_keeps_the_spool(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    await server.astop()
    sink = sink_for(
        server.url,
        spool_dir,
        spool_max_bytes=3 * RECORD + RECORD // 2,
        backlog_max_bytes=2 * RECORD,
        refusal_log_interval_s=3600,
    )
    with capture_logs() as logs:
        async with opened(sink):
            for k in range(8):
                await sink.publish(publication(k))
            assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (3, 2)
            assert (sink.stats.spool_full, sink.stats.dropped) == (5, 3)
        # closed with Redis down: the two held in memory are lost, and counted
        assert sink.stats.dropped == 5
    dropped = events(logs, "publications_dropped")
    assert [(e["reason"], e["dropped"]) for e in dropped] == [("backlog_full", 1), ("shutdown", 2)]
    assert (dropped[0]["first_bar_ts"], dropped[0]["last_bar_ts"]) == (bar_ts(5), bar_ts(5))
    assert (dropped[1]["first_bar_ts"], dropped[1]["last_bar_ts"]) == (bar_ts(3), bar_ts(4))

    payloads, reopen_logs = spooled_payloads(spool_dir)
    assert payloads == [encode_publication(publication(k)) for k in range(3)]
    assert not events(reopen_logs, "spool_truncated")

    await server.astart()
    async with sink_for(server.url, spool_dir) as again:  # the restart replays the spool
        await again.flush()
        assert again.stats.replayed == 3
    assert await stream_entries(client) == expected_entries(range(3))


async def test_publishing_while_the_backlog_drains_keeps_the_order(
    server: EmbeddedRedis, client: Redis, tmp_path: Path
) -> None:
    """New bars keep coming while the spool replays and the backlog goes out: each
    lands behind everything older, whichever stage the drain is at."""
    await server.astop()
    sink = sink_for(server.url, tmp_path / "spool", spool_max_bytes=3 * RECORD + RECORD // 2)
    async with opened(sink):
        for k in range(40):
            await sink.publish(publication(k))
        assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (3, 37)
        await server.astart()
        async with asyncio.timeout(10):
            while not sink.connected:  # the drainer is back: it replays, then sends
                await asyncio.sleep(0.01)
        for k in range(40, 100):
            await sink.publish(publication(k))
            await asyncio.sleep(0)  # let the drainer run between publications
        await sink.flush()
        assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (0, 0)
        assert sink.stats.dropped == 0
    assert await stream_entries(client) == expected_entries(range(100))


async def test_flush_between_the_backlogs_last_reply_and_the_drainers_next_step(
    server: EmbeddedRedis, client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forces the interleaving behind a flake of the test above under load: the
    drainer has sent the last held publication and its reply has been read, but the
    drainer has not run since. (Naturally: flush waits on the same replies as the
    drainer, its waiter queued first, so it resumes first.) flush must then see that
    nothing is in flight, spooled or held, and the counts and the end of the refusal
    must already say so, not wait for the drainer to record them.

    The drainer, and only it, is parked right after its wait for the replies of the
    backlog it sent (the spool takes nothing here, so that is its only such wait
    with anything in flight)."""
    parked, resume = asyncio.Event(), asyncio.Event()
    all_answered = TransactionWriter.all_answered

    async def drainer_parks_after_the_replies(writer: TransactionWriter) -> None:
        sending = bool(writer.in_flight)
        await all_answered(writer)
        task = asyncio.current_task()
        if sending and task is not None and task.get_name() == "redis-sink-drainer":
            parked.set()
            await resume.wait()

    monkeypatch.setattr(TransactionWriter, "all_answered", drainer_parks_after_the_replies)
    await server.astop()
    sink = sink_for(server.url, tmp_path / "spool", spool_max_bytes=RECORD // 2)
    try:
        async with opened(sink):
            for k in range(10):  # more than a window: sent in several turns
                await sink.publish(publication(k))
            assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (0, 10)
            assert sink.spool_refusing
            await server.astart()
            async with asyncio.timeout(10):
                await parked.wait()
            assert sink.in_flight == 0  # all ten answered; the drainer is parked
            counts = (sink.stats.spool_depth, sink.stats.backlog_depth)
            async with asyncio.timeout(5):
                await sink.flush()
            assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (0, 0)
            assert counts == (0, 0)  # kept up as the drainer sent, not only by flush
            assert (sink.stats.spool_full, sink.stats.dropped) == (10, 0)
            assert not sink.spool_refusing
            assert fresh_telemetry(sink).readiness()[1]["redis"] == "connected"
            assert not resume.is_set()  # flush did not need the drainer to resume
    finally:
        resume.set()
    assert await stream_entries(client) == expected_entries(range(10))


# -- a full disk, faked at os.write -------------------------------------------------------


async def test_enospc_is_undone_so_the_spool_stays_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(monkeypatch)
    with Spool(tmp_path) as spool:
        for k in range(3):
            spool.append(encode_publication(publication(k)))
        intact = segment_bytes(tmp_path)
        disk.full = True
        with pytest.raises(SpoolError) as refused:
            spool.append(encode_publication(publication(3)))
        assert refused.value.reason == "ENOSPC"
        assert disk.refusals == 1
        assert segment_bytes(tmp_path) == intact  # the partial write was cut
        assert spool.depth == 3
        disk.full = False
        spool.append(encode_publication(publication(4)))
    payloads, logs = spooled_payloads(tmp_path)
    assert payloads == [encode_publication(publication(k)) for k in (0, 1, 2, 4)]
    assert not events(logs, "spool_truncated")


async def test_enospc_with_a_failing_truncate_seals_the_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(monkeypatch)  # a fake, as above; and ftruncate fails too (EIO)

    def no_truncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    with capture_logs() as logs, Spool(tmp_path) as spool:
        spool.append(b"one")
        disk.full = True
        with monkeypatch.context() as m:
            m.setattr(os, "ftruncate", no_truncate)
            with pytest.raises(SpoolError):
                spool.append(b"two" * 10)
        disk.full = False
        spool.append(b"three")  # not after the torn tail: in a new segment
    assert [e["event"] for e in logs] == ["spool_segment_sealed"]
    assert len(list(tmp_path.glob("*.seg"))) == 2
    payloads, reopen_logs = spooled_payloads(tmp_path)
    assert payloads == [b"one", b"three"]
    assert [e["reason"] for e in events(reopen_logs, "spool_truncated")] == ["short_payload"]


async def test_a_commit_that_cannot_be_written_is_deferred(tmp_path: Path) -> None:
    with capture_logs() as logs, Spool(tmp_path, segment_bytes=64) as spool:
        for k in range(4):
            spool.append(b"record-%d" % k * 4)
        (tmp_path / "COMMIT.tmp").mkdir()  # a real OSError (EISDIR) on writing it
        first, second, *_ = spool.pending()
        spool.commit(first.cursor)
        spool.commit(second.cursor)
        assert spool.depth == 2  # delivered in memory: not replayed in this run
        (tmp_path / "COMMIT.tmp").rmdir()
        spool.commit(spool.pending(1)[0].cursor)
    assert [e["reason"] for e in events(logs, "spool_commit_deferred")] == ["EISDIR"]
    with Spool(tmp_path, segment_bytes=64) as spool:
        assert [r.payload for r in spool.pending()] == [b"record-3" * 4]


async def test_disk_full_sink_refuses_then_moves_the_backlog_when_space_returns(
    server: EmbeddedRedis, client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(monkeypatch)  # a fake full disk, see the class
    spool_dir = tmp_path / "spool"
    await server.astop()
    with capture_logs() as logs:
        async with opened(sink_for(server.url, spool_dir, refusal_log_interval_s=3600)) as sink:
            for k in range(3):
                await sink.publish(publication(k))
            intact = segment_bytes(spool_dir)
            disk.full = True
            for k in range(3, 6):
                await sink.publish(publication(k))
            assert segment_bytes(spool_dir) == intact
            assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (3, 3)
            assert sink.stats.spool_full == 3
            assert sink.spool_refusing
            assert not fresh_telemetry(sink).readiness()[0]
            disk.full = False  # space again: the next publication moves the backlog first
            await sink.publish(publication(6))
            assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (7, 0)
            assert not sink.spool_refusing
            assert fresh_telemetry(sink).readiness()[1]["redis"] == "down: spooling"
    (full,) = events(logs, "spool_full")
    assert full["reason"] == "ENOSPC"
    assert events(logs, "spool_accepting")
    payloads, reopen_logs = spooled_payloads(spool_dir)
    assert payloads == [encode_publication(publication(k)) for k in range(7)]
    assert not events(reopen_logs, "spool_truncated")
    await server.astart()
    async with sink_for(server.url, spool_dir) as sink:
        await sink.flush()
    assert await stream_entries(client) == expected_entries(range(7))


async def test_disk_still_full_when_redis_returns_sends_the_backlog_straight(
    server: EmbeddedRedis, client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(monkeypatch)  # a fake full disk, see the class
    disk.full = True
    await server.astop()
    with capture_logs() as logs:
        async with opened(sink_for(server.url, tmp_path / "spool")) as sink:
            for k in range(5):
                await sink.publish(publication(k))
            assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (0, 5)
            await server.astart()
            await sink.flush()
            assert sink.connected and not sink.spool_refusing
            assert sink.stats.backlog_depth == 0
            assert disk.full and disk.refusals >= 5  # the spool never took any of them
    assert sum(e["publications"] for e in events(logs, "backlog_sent")) == 5
    assert await stream_entries(client) == expected_entries(range(5))


async def test_unanswered_publications_go_back_ahead_of_what_is_held(
    server: EmbeddedRedis, client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disk = FullDisk(monkeypatch)  # a fake full disk, see the class
    disk.full = True
    async with opened(sink_for(server.url, tmp_path / "spool", socket_timeout_s=0.3)) as sink:
        await sink.publish(publication(0))
        await sink.flush()
        server.pause()  # SIGSTOP: bar 1 goes out and is never answered
        try:
            await sink.publish(publication(1))
            async with asyncio.timeout(10):
                while sink.connected:
                    await asyncio.sleep(0.01)
            assert sink.stats.backlog_depth == 1  # handed back; the disk refused it
            for k in range(2, 5):
                await sink.publish(publication(k))
            assert (sink.stats.spool_depth, sink.stats.backlog_depth) == (0, 4)
            assert sink.spool_refusing
        finally:
            server.resume()
        await sink.flush()
        assert sink.stats.backlog_depth == 0
    # Redis may have run bar 1's transaction after all: it is there once either way.
    assert await stream_entries(client) == expected_entries(range(5))


# -- a full disk for real -------------------------------------------------------------------


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: needs root (CAP_SYS_ADMIN); the fakes above cover the rest."""
    where = tmp_path / "tmpfs"
    where.mkdir()
    mount = shutil.which("mount")
    if mount is None:
        pytest.skip("no mount(8) to make a tiny tmpfs")
    proc = subprocess.run(
        [mount, "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


async def test_real_full_tmpfs(server: EmbeddedRedis, client: Redis, tiny_tmpfs: Path) -> None:
    spool_dir = tiny_tmpfs / "spool"
    await server.astop()
    with capture_logs() as logs:
        async with opened(sink_for(server.url, spool_dir, refusal_log_interval_s=3600)) as sink:
            k = 0
            while not sink.spool_refusing:  # until the disk is full: 64 KiB of records
                assert k < 1000, "a 64 KiB tmpfs should have filled"
                await sink.publish(publication(k))
                k += 1
            spooled = sink.stats.spool_depth
            intact = segment_bytes(spool_dir)
            for j in range(k, k + 3):
                await sink.publish(publication(j))
            assert segment_bytes(spool_dir) == intact
            assert sink.stats.spool_depth == spooled == k - 1
            assert sink.stats.spool_full == sink.stats.backlog_depth == 4
            assert not fresh_telemetry(sink).readiness()[0]
    assert events(logs, "spool_full")[0]["reason"] == "ENOSPC"
    assert sink.stats.dropped == 4  # closed with Redis down: the backlog is lost, counted
    payloads, reopen_logs = spooled_payloads(spool_dir)
    assert payloads == [encode_publication(publication(j)) for j in range(spooled)]
    assert not events(reopen_logs, "spool_truncated")

    await server.astart()
    async with sink_for(server.url, spool_dir) as sink:
        await sink.flush()  # on the full disk: commits may be deferred, segments freed
        assert sink.stats.spool_depth == 0
    assert await stream_entries(client) == expected_entries(range(spooled))
    assert not list(spool_dir.glob("*.seg"))

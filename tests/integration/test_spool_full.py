"""The spool when the disk refuses a write.

A full disk cannot be produced portably, so these tests fake ENOSPC at the
``os.write`` boundary (:class:`FullDisk`) and say so.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from adapters.redis_sink import encode_publication
from adapters.spool import Spool, SpoolError
from tests.integration.test_redis_sink import publication

pytestmark = pytest.mark.integration


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

    A full disk cannot be produced portably. While ``full``, a record's first write to a
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

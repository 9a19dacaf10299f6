"""A bounded, crash-safe, append-only on-disk spool of opaque records.

The Redis sink spools publications here while Redis is unreachable and replays
them, in order, when it is back. The files (a lock, a commit position, segments of
length- and CRC-framed records) and their format are :mod:`.spool_files`'s; this
module keeps the books.

Guarantees
    Append writes the whole record with ``os.write`` (no user-space buffer), so a
    record that ``append`` returned for survives a crash of the *process* under any
    fsync policy. The fsync policy decides what survives a crash of the *machine*:

    - ``always`` (the default): the segment is fsynced before ``append`` returns, so an
      appended record survives power loss. The spool only carries traffic while Redis
      is down (one record per closed bar), so the cost of one fsync per bar is nothing.
    - ``batch``: fsync at most every ``fsync_interval_ms``; on power loss the records
      appended in the last interval may be lost. The owner calls :meth:`Spool.sync`
      when :attr:`Spool.dirty` (the sink arms a timer for it, and syncs on flush/close).

    A torn or corrupt record (short header, short payload, CRC mismatch) can only be
    the tail of what a crash interrupted; on open it and everything after it in its
    segment are discarded and logged (``spool_truncated``), never replayed.

    A write or fsync that fails (ENOSPC, EDQUOT, EIO: any OSError) is undone: the
    segment is truncated back to where the record began, so it stays a valid run of
    records, and :meth:`Spool.append` raises :class:`SpoolError` with the errno's name
    as its ``reason``. Should the truncation fail as well, the segment is sealed
    (never appended to again: the next record opens a new one) and the torn tail is
    discarded at the next open.

Delivery
    :meth:`Spool.pending` reads records in append order without removing them;
    :meth:`Spool.commit` is called only after the consumer confirms a record was
    delivered. The commit position is written without fsync: a commit lost in a crash
    only means the record is delivered again, which the sink's id-based dedupe at Redis
    turns into exactly once. For the same reason a commit position that cannot be
    written (a full disk) is not an error: it is logged (``spool_commit_deferred``),
    kept in memory and written with the next commit. Segments wholly before the
    commit position are deleted either way, which is what frees a full disk.

Bound
    ``max_bytes`` bounds the bytes of the live segment files. When a record would not
    fit, :meth:`Spool.append` raises :class:`SpoolFull` (reason ``max_bytes``) and keeps
    everything it already holds: the spool never drops records silently, the caller
    decides.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from factorcast.adapters.redis import spool_files as files
from factorcast.adapters.redis.spool_files import HEADER, SpoolError, SpoolFull, encode_record

__all__ = [
    "FsyncPolicy",
    "Spool",
    "SpoolError",
    "SpoolFull",
    "SpoolRecord",
    "encode_record",
]

FsyncPolicy = Literal["always", "batch"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One pending record; ``cursor`` is what :meth:`Spool.commit` takes."""

    cursor: tuple[int, int]
    payload: bytes


@dataclass(slots=True)
class _Entry:
    segment: int
    offset: int
    length: int  # payload length

    @property
    def end(self) -> int:
        return self.offset + HEADER.size + self.length


class Spool:
    """Append-only segment files with a commit position; see the module docstring.

    Not thread-safe; meant for one asyncio task at a time (all calls are short,
    blocking file operations).
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int = 256 * 2**20,
        segment_bytes: int = 8 * 2**20,
        fsync: FsyncPolicy = "always",
        fsync_interval_ms: int = 200,
    ) -> None:
        if fsync not in ("always", "batch"):
            raise ValueError(f"fsync must be 'always' or 'batch', not {fsync!r}")
        if max_bytes <= HEADER.size:
            raise ValueError("max_bytes is too small for any record")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(HEADER.size + 1, min(segment_bytes, max_bytes))
        self.fsync_policy: FsyncPolicy = fsync
        self.fsync_interval_s = fsync_interval_ms / 1000.0
        self._pending: deque[_Entry] = deque()
        self._sizes: dict[int, int] = {}  # live segment -> bytes on disk
        self._commit: tuple[int, int] = (0, 0)
        self._fd: int | None = None  # active segment, opened for append
        self._active = 0
        self._sealed = False  # the active segment has a torn tail: append to a new one
        self._commit_unsaved = False  # the last commit position could not be written
        self._lock_fd: int | None = None
        self._dirty = False
        self._last_sync = 0.0

    # -- lifecycle -------------------------------------------------------------------

    def open(self) -> None:
        """Lock the directory, validate every segment, drop torn tails."""
        if self._lock_fd is not None:
            return
        self._lock_fd = files.lock_directory(self.directory)
        self._pending.clear()
        self._sizes.clear()
        try:
            self._load()
        except BaseException:
            self.close()
            raise
        if self._pending:
            _log.info(
                "spool_opened",
                directory=str(self.directory),
                records=len(self._pending),
                bytes=self.size_bytes,
            )

    def _load(self) -> None:
        self._commit = self._read_commit()
        for n in files.segment_numbers(self.directory):
            path = self._path(n)
            if n < self._commit[0]:
                path.unlink(missing_ok=True)
                continue
            self._sizes[n] = self._scan(n)
        head = self._pending[0].segment if self._pending else None
        for n in sorted(self._sizes):
            if head is None or n < head:
                self._drop_segment(n)  # wholly delivered
        self._active = max([*self._sizes, self._commit[0]])
        self._last_sync = time.monotonic()

    def close(self) -> None:
        """Sync and release the directory; pending records stay for the next open."""
        self._close_active()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Spool:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -----------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Records appended and not yet committed."""
        return len(self._pending)

    @property
    def size_bytes(self) -> int:
        """Bytes of the live segment files (what ``max_bytes`` bounds)."""
        return sum(self._sizes.values())

    @property
    def dirty(self) -> bool:
        """Appended bytes not yet fsynced (only under the ``batch`` policy)."""
        return self._dirty

    # -- append / sync ---------------------------------------------------------------

    def append(self, payload: bytes) -> None:
        """Write one record durably per the fsync policy, or raise and write nothing:
        SpoolFull if it won't fit, SpoolError on a disk error (the segment is left as
        it was, see the module docstring)."""
        self._require_open()
        if len(payload) >= files.MAX_RECORD:
            raise SpoolFull(f"record of {len(payload)} bytes exceeds the record size limit")
        data = encode_record(payload)
        if self.size_bytes + len(data) > self.max_bytes:
            raise SpoolFull(
                f"spool at {self.size_bytes} of {self.max_bytes} bytes; "
                f"a {len(data)}-byte record does not fit"
            )
        try:
            fd, start = self._writable_segment(len(data))
        except OSError as e:
            raise files.disk_error("segment open", e) from e
        sync = self.fsync_policy == "always" or (
            time.monotonic() - self._last_sync >= self.fsync_interval_s
        )
        try:
            files.write_record(fd, data, sync=sync)
        except OSError as e:
            self._undo_write(fd, start, e)
            raise files.disk_error("append", e) from e
        self._sizes[self._active] = start + len(data)
        self._pending.append(_Entry(self._active, start, len(payload)))
        self._dirty = not sync
        if sync:
            self._last_sync = time.monotonic()

    def sync(self) -> None:
        """fsync the active segment if anything was appended since the last sync."""
        if self._dirty and self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as e:
                raise files.disk_error("fsync", e) from e
        self._dirty = False
        self._last_sync = time.monotonic()

    # -- replay / commit -------------------------------------------------------------

    def pending(self, limit: int | None = None) -> list[SpoolRecord]:
        """Up to ``limit`` of the oldest uncommitted records, in append order."""
        self._require_open()
        entries = list(itertools.islice(self._pending, limit))
        try:
            payloads = files.read_payloads(
                self.directory, [(e.segment, e.offset, e.length) for e in entries]
            )
        except OSError as ex:
            raise SpoolError(f"spool read failed: {ex.strerror}") from ex
        return [SpoolRecord((e.segment, e.end), p) for e, p in zip(entries, payloads, strict=True)]

    def commit(self, cursor: tuple[int, int]) -> None:
        """Mark every record up to and including ``cursor`` delivered.

        Never fails on a disk error: a commit position that cannot be written only
        means records are delivered again after a restart (see the module docstring).
        """
        self._require_open()
        while self._pending and (self._pending[0].segment, self._pending[0].end) <= cursor:
            self._pending.popleft()
        self._commit = max(self._commit, cursor)
        try:
            files.write_commit(self.directory, self._commit)
        except OSError as e:
            if not self._commit_unsaved:
                _log.warning(
                    "spool_commit_deferred",
                    directory=str(self.directory),
                    reason=files.errno_name(e),
                )
            self._commit_unsaved = True
        else:
            self._commit_unsaved = False
        head = self._pending[0].segment if self._pending else None
        for n in sorted(self._sizes):
            if head is not None and n >= head:
                break
            if n == self._active and head is None:
                # Everything is delivered: start the next append in a fresh segment.
                self._close_active()
            self._drop_segment(n)

    # -- internals -------------------------------------------------------------------

    def _require_open(self) -> None:
        if self._lock_fd is None:
            raise SpoolError("spool is not open")

    def _path(self, n: int) -> Path:
        return files.segment_path(self.directory, n)

    def _read_commit(self) -> tuple[int, int]:
        commit = files.read_commit(self.directory)
        if commit is None:
            # Replaying from the start is safe: the sink dedupes by entry id.
            _log.warning("spool_truncated", directory=str(self.directory), reason="bad_commit")
            return (0, 0)
        return commit

    def _scan(self, n: int) -> int:
        """Index segment ``n``'s pending records; truncate a torn tail; return its size."""
        path = self._path(n)
        data = path.read_bytes()
        records, end, reason = files.scan(data)
        for offset, length in records:
            entry = _Entry(n, offset, length)
            if (n, entry.end) > self._commit:
                self._pending.append(entry)
        if reason:
            _log.warning(
                "spool_truncated",
                segment=path.name,
                offset=end,
                discarded_bytes=len(data) - end,
                reason=reason,
            )
            files.truncate(path, end)
        return end

    def _writable_segment(self, size: int) -> tuple[int, int]:
        current = self._sizes.get(self._active)
        if current is not None and self._fd is not None and current + size > self.segment_bytes:
            self._close_active()
        if (
            current is not None
            and self._fd is None
            and not self._sealed
            and current + size <= self.segment_bytes
        ):
            # Re-open the surviving active segment after a restart.
            self._fd = files.open_segment(self.directory, self._active, new=False)
            return self._fd, current
        if self._fd is None:
            n = self._active + 1
            self._fd = files.open_segment(self.directory, n, new=True)
            self._active, self._sealed = n, False
            self._sizes[n] = 0
            self._sync_directory()
        return self._fd, self._sizes[self._active]

    def _undo_write(self, fd: int, start: int, error: OSError) -> None:
        """Cut what a failed append wrote; if even that fails, seal the segment."""
        try:
            os.ftruncate(fd, start)
        except OSError as e:
            _log.error(
                "spool_segment_sealed",
                segment=self._path(self._active).name,
                offset=start,
                error=files.errno_name(error),
                truncate_error=files.errno_name(e),
            )
            self._sealed = True
            with contextlib.suppress(OSError):
                os.close(fd)
            self._fd = None

    def _close_active(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if self._dirty:
                    os.fsync(fd)
                self._dirty = False
            except OSError as e:
                # The segment is complete; only its durability on power loss is in doubt.
                _log.warning(
                    "spool_sync_failed",
                    segment=self._path(self._active).name,
                    reason=files.errno_name(e),
                )
            finally:
                os.close(fd)

    def _drop_segment(self, n: int) -> None:
        try:
            self._path(n).unlink(missing_ok=True)
        except OSError as e:
            # Delivered records only: the next open skips or deletes what is left.
            _log.warning(
                "spool_segment_not_deleted",
                segment=self._path(n).name,
                reason=files.errno_name(e),
            )
        self._sizes.pop(n, None)

    def _sync_directory(self) -> None:
        if self.fsync_policy == "always":
            files.sync_directory(self.directory)

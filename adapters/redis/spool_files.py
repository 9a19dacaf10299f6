"""The spool's files: the record format, the segments, the commit position, the lock.

:class:`~factorcast.adapters.redis.spool.Spool` keeps the books (what is pending,
which segment is active, the byte bound, the fsync policy) and logs; this module
only reads and writes the bytes, and says what it found.

On disk
    ``{directory}/LOCK``            held with ``flock`` while a process has the spool open
    ``{directory}/COMMIT``          ``"{segment} {offset}\\n"``: everything before that
                                    position is delivered (replaced atomically by rename)
    ``{directory}/{n:016d}.seg``    segments, appended in order, each a run of records

    record = length (u32, big-endian) | crc32(length bytes + payload) (u32) | payload

A segment is valid up to its first torn or corrupt record (short header, short
payload, CRC mismatch): :func:`scan` says where that is and why, and the owner
truncates it there (:func:`truncate`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import zlib
from pathlib import Path

__all__ = [
    "HEADER",
    "MAX_RECORD",
    "SpoolError",
    "SpoolFull",
    "disk_error",
    "encode_record",
    "errno_name",
    "lock_directory",
    "open_segment",
    "read_commit",
    "read_payloads",
    "scan",
    "segment_numbers",
    "segment_path",
    "sync_directory",
    "truncate",
    "write_commit",
    "write_record",
]

#: a record's header: payload length, then crc32 of the length bytes and the payload
HEADER = struct.Struct(">II")
MAX_RECORD = 2**31

_SUFFIX = ".seg"
_COMMIT = "COMMIT"
_LOCK = "LOCK"


class SpoolError(Exception):
    """The spool cannot take or give records (disk error, locked directory).

    ``reason`` is short and fixed, for logs: the errno's name of a disk error
    (``ENOSPC``, ``EDQUOT``, ``EIO``, ...), ``max_bytes`` for :class:`SpoolFull`."""

    def __init__(self, message: str, *, reason: str = "error") -> None:
        super().__init__(message)
        self.reason = reason


class SpoolFull(SpoolError):
    """A record does not fit within the spool's byte bound; nothing was written."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="max_bytes")


def errno_name(e: OSError) -> str:
    return errno.errorcode.get(e.errno or 0, type(e).__name__)


def disk_error(what: str, e: OSError) -> SpoolError:
    return SpoolError(f"spool {what} failed: {e.strerror or e}", reason=errno_name(e))


# -- records ------------------------------------------------------------------------------


def _crc(length_bytes: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(length_bytes))


def encode_record(payload: bytes) -> bytes:
    """The on-disk bytes of one record."""
    length = struct.pack(">I", len(payload))
    return length + struct.pack(">I", _crc(length, payload)) + payload


def scan(data: bytes) -> tuple[list[tuple[int, int]], int, str]:
    """The records of a segment's bytes: ``(offset, payload length)`` of each valid one
    in order, where the valid run ends, and why it ends there (``""``: at the end of
    ``data``; else ``short_header``, ``short_payload`` or ``crc_mismatch``)."""
    records: list[tuple[int, int]] = []
    pos = 0
    while pos < len(data):
        if pos + HEADER.size > len(data):
            return records, pos, "short_header"
        length, crc = HEADER.unpack_from(data, pos)
        start = pos + HEADER.size
        if start + length > len(data):
            return records, pos, "short_payload"
        if _crc(data[pos : pos + 4], data[start : start + length]) != crc:
            return records, pos, "crc_mismatch"
        records.append((pos, length))
        pos = start + length
    return records, pos, ""


# -- files --------------------------------------------------------------------------------


def segment_path(directory: Path, n: int) -> Path:
    return directory / f"{n:016d}{_SUFFIX}"


def open_segment(directory: Path, n: int, *, new: bool) -> int:
    """Segment ``n`` opened for appending: a new file (it must not exist yet), or
    the one that is there."""
    flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT | os.O_EXCL if new else 0)
    return os.open(segment_path(directory, n), flags, 0o600)


def write_record(fd: int, data: bytes, *, sync: bool) -> None:
    """Write ``data`` whole with ``os.write`` (no user-space buffer) at the end of the
    segment open on ``fd``; then fsync it if ``sync``."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    if sync:
        os.fsync(fd)


def read_payloads(directory: Path, where: list[tuple[int, int, int]]) -> list[bytes]:
    """The payloads of the records at ``(segment, offset, payload length)``, in order."""
    out: list[bytes] = []
    handles: dict[int, int] = {}
    try:
        for segment, offset, length in where:
            fd = handles.get(segment)
            if fd is None:
                fd = handles[segment] = os.open(segment_path(directory, segment), os.O_RDONLY)
            out.append(os.pread(fd, length, offset + HEADER.size))
    finally:
        for fd in handles.values():
            os.close(fd)
    return out


def segment_numbers(directory: Path) -> list[int]:
    """The segments in ``directory``, in order."""
    return sorted(int(p.stem) for p in directory.glob(f"*{_SUFFIX}") if p.stem.isdigit())


def read_commit(directory: Path) -> tuple[int, int] | None:
    """The commit position: ``(0, 0)`` if there is none yet, None if it is unreadable."""
    try:
        seg, off = (directory / _COMMIT).read_text().split()
        return int(seg), int(off)
    except FileNotFoundError:
        return (0, 0)
    except (OSError, ValueError):
        return None


def write_commit(directory: Path, position: tuple[int, int]) -> None:
    """Replace the commit position atomically (by rename), without fsync."""
    tmp = directory / f"{_COMMIT}.tmp"
    tmp.write_text(f"{position[0]} {position[1]}\n")
    os.replace(tmp, directory / _COMMIT)


def truncate(path: Path, size: int) -> None:
    """Cut ``path`` to ``size`` bytes, durably."""
    with open(path, "r+b") as f:
        f.truncate(size)
        f.flush()
        os.fsync(f.fileno())


def lock_directory(directory: Path) -> int:
    """Create ``directory`` if need be and lock it; the descriptor holds the lock.

    Raises SpoolError if another process holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        os.close(fd)
        raise SpoolError(f"spool directory {directory} is in use by another process") from e
    return fd


def sync_directory(directory: Path) -> None:
    """fsync the directory itself (a new segment's name survives power loss)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The state directory's lock: one ``factorcast run`` per state directory.

``{state_dir}/LOCK`` is held with ``flock`` for the life of the run and holds the
holder's pid, so that a second run can say which process is in its way.  The kernel
drops the lock when the holder ends, however it ends: a file left by a killed run
never blocks the next one (which writes its own pid over it).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Final

__all__ = ["LOCK_NAME", "StateDirBusy", "StateDirLock"]

LOCK_NAME: Final = "LOCK"
#: How long a second process waits for the holder's pid to appear in the lock file
#: (the holder writes it straight after taking the lock).
_PID_WAIT_S: Final = 1.0


class StateDirBusy(Exception):
    """Another process holds the state directory."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "its pid not yet written"
        super().__init__(f"{directory} is in use by another factorcast run ({holder})")
        self.directory = directory
        self.pid = pid


class StateDirLock:
    """``with StateDirLock(path):`` holds ``path/LOCK``; raises :class:`StateDirBusy`
    at once if another process holds it, and OSError if the directory cannot be made."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StateDirBusy(self.directory, self._holder()) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)  # no pid of a finished run left behind
            finally:
                os.close(fd)  # drops the lock

    def _holder(self) -> int | None:
        deadline = time.monotonic() + _PID_WAIT_S
        while True:
            try:
                text = self.path.read_text().strip()
            except OSError:
                text = ""
            if text.isdigit():
                return int(text)
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)

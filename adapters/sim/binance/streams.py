"""The embedded exchange's market streams: Binance's websocket side.

Each connection carries a set of ``<symbol>@kline_<interval>`` streams: named in the
path (``/ws/<stream>``, ``/stream?streams=a/b``) and changed by control messages
(``SUBSCRIBE``, ``UNSUBSCRIBE``, ``LIST_SUBSCRIPTIONS``, ``SET_PROPERTY`` /
``GET_PROPERTY`` ``combined``) answered as Binance answers them. ``/stream``
connections get payloads wrapped as ``{"stream", "data"}`` (``combined``). The
server (:mod:`.server`) hands each websocket upgrade to :meth:`Streams.serve` and
each tick's events to :meth:`Streams.broadcast`; the faults (:mod:`.faults`) stall,
garble, refuse and drop through here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import WSMsgType, web

from factorcast.adapters.sim.binance.faults import Faults
from factorcast.adapters.sim.binance.wire import Market, compact_json

__all__ = ["Streams"]

log = structlog.get_logger("factorcast.adapters.sim.binance.server")  # one logger for both


@dataclass(eq=False, slots=True)
class _Conn:
    ws: web.WebSocketResponse
    request: web.Request
    combined: bool
    streams: set[str] = field(default_factory=set)


class Streams:
    """The open websocket connections of one exchange, serving ``interval`` klines of
    the markets in ``by_id`` (Binance market id -> market)."""

    def __init__(self, by_id: Mapping[str, Market], interval: str, faults: Faults) -> None:
        self._by_id = by_id
        self._interval = interval
        self._faults = faults
        self._conns: set[_Conn] = set()

    def subscriptions(self) -> list[frozenset[str]]:
        """The streams of each open connection."""
        return [frozenset(c.streams) for c in self._conns]

    def wanted(self) -> set[str]:
        """The streams some connection is subscribed to."""
        return set().union(*(c.streams for c in self._conns))

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """One websocket connection, until it closes."""
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        conn = _Conn(ws, request, combined=request.path.startswith("/stream"))
        conn.streams.update(s for s in self._initial_streams(request) if self._valid_stream(s))
        self._conns.add(conn)
        log.info("websocket_opened", path=request.path, streams=len(conn.streams))
        try:
            async for msg in ws:
                if self._faults.ws_stalled:
                    continue
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(compact_json(self._control(conn, msg.data)))
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
        except ConnectionError:
            pass
        finally:
            self._conns.discard(conn)
            log.info("websocket_closed", path=request.path, code=ws.close_code)
        return ws

    async def broadcast(self, events: list[tuple[str, dict[str, Any]]]) -> float:
        """Send ``events``; returns ``perf_counter()`` as the first one goes out."""
        if not events or self._faults.ws_stalled:
            return time.perf_counter()
        encoded = [(s, compact_json(p), compact_json({"stream": s, "data": p})) for s, p in events]
        if self._faults.take_garble():
            stream, raw, wrapped = encoded[0]
            encoded[0] = (stream, raw[: len(raw) // 2], wrapped[: len(wrapped) // 2])
        first_sent = time.perf_counter()
        for conn in list(self._conns):
            for stream, raw, wrapped in encoded:
                if stream in conn.streams and not conn.ws.closed:
                    with contextlib.suppress(ConnectionError, RuntimeError):
                        await conn.ws.send_str(wrapped if conn.combined else raw)
        return first_sent

    async def drop(self, code: int, abort: bool) -> int:
        """Close every connection (a close frame with ``code``, or with ``abort`` a cut
        TCP connection); returns how many."""
        conns = list(self._conns)
        for conn in conns:
            transport = conn.request.transport
            if abort and transport is not None:
                transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=code, message=b"simulated drop"), 1.0)
        log.warning("websockets_dropped", count=len(conns), code=code, abort=abort)
        return len(conns)

    async def close(self) -> None:
        """Close every connection as a server going away does (1001)."""
        for conn in list(self._conns):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.ws.close(code=1001, message=b"shutting down"), 1.0)

    def _valid_stream(self, name: object) -> bool:
        if not isinstance(name, str) or "@kline_" not in name:
            return False
        market_id, interval = name.split("@kline_", 1)
        known = market_id.islower() and market_id.upper() in self._by_id
        return known and interval == self._interval

    def _initial_streams(self, request: web.Request) -> Iterable[str]:
        if request.path.startswith("/stream"):
            return request.query.get("streams", "").split("/")
        tail = request.path.rsplit("/", 1)[-1]
        return [tail] if "@" in tail else []

    def _control(self, conn: _Conn, text: str) -> dict[str, Any]:
        try:
            req = json.loads(text)
        except ValueError:
            return {"error": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"}}
        if not isinstance(req, dict):
            return {"error": {"code": 2, "msg": "Invalid request: request must be an object"}}
        rid, method, params = req.get("id"), req.get("method"), req.get("params", [])
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(self._valid_stream(p) for p in params):
                return {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": rid}
            if method == "SUBSCRIBE" and self._faults.take_refusal():
                return {"error": {"code": 2, "msg": "Invalid request: invalid stream"}, "id": rid}
            if method == "SUBSCRIBE":
                conn.streams.update(params)
            else:
                conn.streams.difference_update(params)
            return {"result": None, "id": rid}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(conn.streams), "id": rid}
        if method == "SET_PROPERTY" and isinstance(params, list) and params[:1] == ["combined"]:
            conn.combined = bool(params[1]) if len(params) > 1 else conn.combined
            return {"result": None, "id": rid}
        if method == "GET_PROPERTY" and params == ["combined"]:
            return {"result": conn.combined, "id": rid}
        return {"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": rid}

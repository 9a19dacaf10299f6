"""The metrics and health HTTP server (aiohttp): ``/metrics``, ``/healthz``, ``/readyz``.

``GET /metrics``
    The injected registry in the Prometheus text format (``text/plain;
    version=0.0.4``), or in OpenMetrics when the scraper's ``Accept`` header asks for
    it, as Prometheus does.  The registry is collected on the event loop, between
    two engine steps, so a scrape never sees half of a cross-section's exposures.
``GET /healthz``
    Liveness: ``200 ok`` whenever the event loop answers.
``GET /readyz``
    Readiness: the injected callback returns ``(ready, details)``, sync or async;
    the answer is ``200`` if ready else ``503``, with the JSON body
    ``{"ready": bool, "details": {...}}``.  A callback that raises or takes longer
    than ``ready_timeout_s`` is "not ready", with the exception's class name as the
    reason (never its message, which might carry a secret).

The server is an async context manager; ``port=0`` binds a free port, and
:attr:`MetricsServer.port` is the bound one.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any, Final

import orjson
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MetricsServer",
    "Readiness",
    "ReadinessCheck",
    "check_can_listen",
]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 9464

Readiness = tuple[bool, Mapping[str, Any]]
#: ``() -> (ready, details)``, plain or async; ``details`` must be JSON-serializable.
ReadinessCheck = Callable[[], Readiness | Awaitable[Readiness]]

_log = structlog.get_logger(__name__)


def _always_ready() -> Readiness:
    return True, {}


def check_can_listen(host: str, port: int) -> None:
    """Listen on ``host:port`` for a moment and let go, as :class:`MetricsServer` will
    (``SO_REUSEADDR``, every address ``host`` names): an OSError now (the port in use,
    an address not on this machine, ``socket.gaierror``) rather than after a warm-up."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen()


class MetricsServer:
    """Serves ``registry`` and the health endpoints; see the module docstring."""

    def __init__(
        self,
        registry: CollectorRegistry,
        readiness: ReadinessCheck = _always_ready,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        ready_timeout_s: float = 2.0,
    ) -> None:
        self.registry = registry
        self.host = host
        self._requested_port = port
        self._readiness = readiness
        self._ready_timeout_s = ready_timeout_s
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when constructed with ``port=0``)."""
        if self._port is None:
            raise RuntimeError("the metrics server is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> MetricsServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])
        _log.info("metrics_server_started", host=self.host, port=self._port)

    async def aclose(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            _log.info("metrics_server_stopped", host=self.host, port=self._port)

    # -- handlers ---------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        body = encoder(self.registry)
        # aiohttp refuses a charset inside content_type; pass the header whole.
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        ready, details = await self._check()
        body = orjson.dumps({"ready": ready, "details": details}, default=str)
        return web.Response(
            body=body, status=200 if ready else 503, content_type="application/json"
        )

    async def _check(self) -> tuple[bool, Mapping[str, Any]]:
        try:
            async with asyncio.timeout(self._ready_timeout_s):
                result = self._readiness()
                if inspect.isawaitable(result):
                    result = await result
                ready, details = result
        except TimeoutError:
            _log.warning("readiness_check_failed", error="timeout")
            return False, {"readiness_check": "timed out"}
        except Exception as e:
            _log.warning("readiness_check_failed", error=type(e).__name__)
            return False, {"readiness_check": f"failed: {type(e).__name__}"}
        return bool(ready), details

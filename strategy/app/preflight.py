"""Start-up checks of the composition root: a command that cannot work stops here,
before it connects to anything, with a one-line :class:`ConfigError` naming the
field (exit code 2).

Part of the composition root with ``strategy.app``: it imports concrete adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import errno
import socket
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import structlog

from factorcast.strategy.app.settings import ConfigError, Settings
from factorcast.strategy.strategies import StrategyError
from factorcast.strategy.strategies import check_strategy as check_strategy_spec

if TYPE_CHECKING:
    from factorcast.adapters.files.candle_files import SizeLimit

__all__ = [
    "candle_size_limit",
    "check_exchange_id",
    "check_metrics_port",
    "check_redis_reachable_by_name",
    "check_strategy",
    "hold_state_dir",
    "metrics_bind_error",
    "strategy_config_error",
]

log = structlog.get_logger(__name__)


def hold_state_dir(settings: Settings, stack: contextlib.AsyncExitStack) -> None:
    """Hold ``state_dir/LOCK`` until ``stack`` closes: a second ``factorcast run`` on the
    same state directory (spool, embedded Redis) stops here, naming the holder's pid."""
    from factorcast.adapters.files.statedir import StateDirBusy, StateDirLock

    lock = StateDirLock(settings.state_dir)
    try:
        stack.enter_context(lock)
    except StateDirBusy as e:
        raise ConfigError(f"state_dir: {e}") from None
    except OSError as e:
        raise ConfigError(
            f"config error: state_dir: cannot lock {lock.path}: {e.strerror or e}"
        ) from None
    log.debug("state_dir_locked", path=str(lock.path))


def check_exchange_id(settings: Settings) -> None:
    """``exchange.id`` must be one ccxt knows (the embedded exchange is binance)."""
    ex = settings.exchange
    if ex.embedded:
        return
    from factorcast.adapters.exchange.client import exchange_ids

    known = exchange_ids()
    if ex.id not in known:
        close = difflib.get_close_matches(ex.id, known, n=3, cutoff=0.8)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"config error: exchange.id: unknown ccxt exchange id {ex.id!r}{hint}")


def check_strategy(settings: Settings) -> None:
    """``strategy.name`` must name a strategy class that takes ``strategy.params``
    (imported, and built once for an empty universe, before the universe is known)."""
    try:
        check_strategy_spec(settings.strategy.name, settings.strategy.params)
    except StrategyError as e:
        raise strategy_config_error(e) from None


def strategy_config_error(e: StrategyError) -> ConfigError:
    """The one-line error for a strategy that cannot be loaded or built."""
    return ConfigError(f"config error: strategy.{e.field}: {e}")


def check_metrics_port(settings: Settings) -> None:
    """``metrics.host:metrics.port`` must be free to listen on (0: any free port)."""
    cfg = settings.metrics
    if not cfg.enabled:
        return
    from factorcast.adapters.observe.http import check_can_listen

    try:
        check_can_listen(cfg.host, cfg.port)
    except OSError as e:
        raise metrics_bind_error(settings, e) from None


def metrics_bind_error(settings: Settings, e: OSError) -> ConfigError:
    """The one-line error for a metrics endpoint that cannot listen."""
    cfg = settings.metrics
    where = f"{cfg.host}:{cfg.port}"
    if e.errno == errno.EADDRINUSE:
        return ConfigError(
            f"config error: metrics.port: {where} is already in use "
            "by another process (0 takes any free port)"
        )
    return ConfigError(f"config error: metrics.host: cannot listen on {where}: {e.strerror or e}")


async def check_redis_reachable_by_name(url: str) -> None:
    """For a reader (``subscribe``): the URL's host must resolve, or its unix socket
    exist.  (``run`` spools while Redis is away, so it does not ask.)"""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        if not Path(parts.path).exists():
            raise ConfigError(f"config error: redis.url: no socket at {parts.path}")
        return
    host = parts.hostname or ""
    try:
        await asyncio.get_running_loop().getaddrinfo(
            host, parts.port or 6379, type=socket.SOCK_STREAM
        )
    except socket.gaierror as e:
        raise ConfigError(
            f"config error: redis.url: host {host!r} does not resolve ({e.strerror})"
        ) from None


def candle_size_limit(settings: Settings) -> SizeLimit | None:
    """The largest candle file to read: ``recorded.max_file_share`` of the memory
    available now (None where that is unknown)."""
    from factorcast.adapters.files.candle_files import SizeLimit, available_memory, format_bytes

    available = available_memory()
    if available is None:
        log.warning("memory_unknown", note="candle files are read without a size limit")
        return None
    share = settings.recorded.max_file_share
    return SizeLimit(
        int(share * available),
        f"recorded.max_file_share {share:g} of the {format_bytes(available)} of memory available",
    )

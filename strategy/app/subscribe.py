"""``factorcast subscribe``: a consumer-group reader of the signal stream."""

from __future__ import annotations

import argparse
import asyncio

import structlog

from factorcast.strategy.app import preflight
from factorcast.strategy.app.settings import ConfigError, Settings
from factorcast.strategy.app.wiring import stop_on_signals

log = structlog.get_logger(__name__)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """``factorcast subscribe``: a consumer-group reader of the signal stream."""
    from factorcast.adapters.redis.subscriber_output import run_subscriber

    url = args.url or settings.redis.url
    if url is None:
        socket = (settings.state_dir / "redis" / "redis.sock").resolve()
        if not socket.exists():
            raise ConfigError(
                "config error: redis.url: not set, and no embedded server at "
                f"{socket} (is `factorcast run` running?)"
            )
        url = f"unix://{socket}"
    await preflight.check_redis_reachable_by_name(url)
    stop = asyncio.Event()
    stop_on_signals(stop)
    key = settings.signing_key
    stats = await run_subscriber(
        url,
        password=settings.redis.password,
        prefix=settings.redis.prefix,
        group=args.group,
        consumer=args.consumer,
        from_start=args.from_start,
        signing_key=key,
        output=args.output,
        max_messages=args.max_messages,
        stop=stop,
    )
    log.info(
        "subscriber_stopped",
        yielded=stats.yielded,
        duplicates=stats.duplicates,
        rejected=stats.rejected,
    )
    return 0

"""``factorcast run``: live candles through the engine to Redis until stopped."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
from collections.abc import Awaitable
from typing import Any

import structlog

from factorcast.strategy.app import preflight
from factorcast.strategy.app.settings import Settings
from factorcast.strategy.app.wiring import (
    build_engine,
    file_outputs,
    freeze_heap_when_live,
    open_market,
    open_metrics,
    open_sink,
    stop_on_signals,
    telemetry_for,
    warmup_bars,
    wire_context,
)
from factorcast.strategy.publish import PublishingOutput
from factorcast.strategy.service import Output, RunStats, run_pipeline
from factorcast.strategy.universe import Following, KeepOpen, watch_universe

log = structlog.get_logger(__name__)


async def run(args: argparse.Namespace, settings: Settings) -> RunStats:
    """``factorcast run``: live candles through the engine to Redis until stopped.

    With ``exchange.top_by_volume``, when the top markets change (resolved every
    ``exchange.refresh_universe_s``), the run follows the new universe from the bar
    after the last one it published: a new source warmed up from REST history (the
    universe's new symbols join after their own warm-up), a new engine; the sink
    and the file outputs go on."""
    from factorcast.adapters.observe.console import LiveDisplay

    history_bars = warmup_bars(settings)  # the model's history and the analytics' windows
    async with contextlib.AsyncExitStack() as stack:
        preflight.hold_state_dir(settings, stack)  # first: a second run stops here
        preflight.check_exchange_id(settings)
        preflight.check_metrics_port(settings)
        preflight.check_strategy(settings)  # the engine is built once the market is open
        market = await open_market(settings, stack, history_bars)
        symbols, source = market.symbols, market.source
        engine = build_engine(settings, symbols, market.timeframe_ms)
        ctx = wire_context(settings, engine, market)
        sink = await open_sink(settings, stack, heartbeat_ttl_s=3 * market.timeframe_ms / 1000)
        following = Following(source)
        telemetry = await open_metrics(settings, stack, market, sink, ctx.model, following)
        files = file_outputs(args, ctx)
        for f in files:
            stack.push_async_callback(f.close)  # once, at the end of the run
        where = f"{market.description} · signals to {sink.url}"
        log.info(
            "service_started",
            model=ctx.model,
            strategy=ctx.strategy,
            warmup_bars=history_bars,
            redis=sink.url,
            signed=settings.signing_key is not None,
        )
        shutdown = asyncio.Event()
        stop_on_signals(shutdown)
        total = RunStats()
        kept = [KeepOpen(f) for f in files]
        while True:
            outputs: list[Output] = [
                *kept,
                PublishingOutput(sink, ctx, telemetry.metrics.publish_latency),
                telemetry,
            ]
            if not getattr(args, "quiet", False):
                outputs.append(LiveDisplay(symbols, where, registry=engine.model.registry))
            left = None if args.max_bars is None else args.max_bars - total.live_cross_sections
            changed = asyncio.create_task(
                watch_universe(market.resolve, symbols, market.refresh_wall_s),
                name="universe-watch",
            )
            stop = asyncio.Event()
            relay = asyncio.create_task(
                _stop_on_first(stop, shutdown.wait(), changed), name="stop-relay"
            )
            try:
                stats = await run_pipeline(
                    source,
                    engine,
                    outputs,
                    max_bars=left,
                    stop=stop,
                    on_step=freeze_heap_when_live(telemetry.on_step),
                )
            finally:
                for task in (changed, relay):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            total.cross_sections += stats.cross_sections
            total.live_cross_sections += stats.live_cross_sections
            total.bars += stats.bars
            total.stopped_early = stats.stopped_early
            if shutdown.is_set() or stats.stopped_early or changed.cancelled():
                break
            # the new universe, from the bar after the last one published
            symbols = changed.result()
            last = engine.last_ts
            source = await market.follow(
                symbols, None if last is None else last + market.timeframe_ms
            )
            engine = build_engine(settings, symbols, market.timeframe_ms)
            ctx = wire_context(settings, engine, market)
            for f in files:
                f.set_context(ctx)
            telemetry = telemetry_for(telemetry.metrics, market, symbols, source, sink)
            following.source, following.telemetry = source, telemetry
            gc.unfreeze()  # the previous universe's objects may go
        log.info("service_stopped", live_bars=total.live_cross_sections, bars=total.bars)
        return total


async def _stop_on_first(stop: asyncio.Event, *waits: Awaitable[Any]) -> None:
    """Set ``stop`` as soon as any of ``waits`` is done."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        stop.set()
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()

"""``factorcast replay``: recorded candles through the same engine, as fast as it goes."""

from __future__ import annotations

import argparse
import contextlib
import time

import structlog

from factorcast.strategy.app import custom, preflight
from factorcast.strategy.app.settings import Settings
from factorcast.strategy.app.wiring import build_engine, file_outputs
from factorcast.strategy.publish import WireContext
from factorcast.strategy.service import Output, RunStats, run_pipeline

log = structlog.get_logger(__name__)


async def run(args: argparse.Namespace, settings: Settings) -> RunStats:
    """``factorcast replay``: recorded candles through the same engine, as fast as it goes."""
    from factorcast.adapters.files.recorded import load_directory
    from factorcast.adapters.files.replay import Panel, ReplaySource
    from factorcast.adapters.observe.console import (
        ReplayProgress,
        SignalCounter,
        counts_table,
        exposure_table,
        wide_console,
    )
    from factorcast.adapters.observe.terminal_log import flush_logs

    preflight.check_strategy(settings)  # before the candles are read
    custom.check(settings)
    candles = load_directory(
        args.data, args.timeframe, size_limit=preflight.candle_size_limit(settings)
    )
    panel = Panel.from_recorded(candles)
    engine = build_engine(
        settings, panel.symbols, candles.timeframe_ms, amend_bars=0, analytics=False
    )
    ctx = WireContext(
        strategy=engine.strategy.name,
        exchange=args.exchange or settings.exchange.id,
        timeframe=candles.timeframe,
        symbols=panel.symbols,
        model=engine.model.tag,
    )
    counter = SignalCounter()
    outputs: list[Output] = [*file_outputs(args, ctx), counter]
    log.info(
        "replay_started",
        data=str(args.data),
        symbols=len(panel.symbols),
        bars=int(panel.present.sum()),
        cross_sections=int(panel.ts.size),
        rejected=sum(candles.rejected.values()),
        model=ctx.model,
    )
    started = time.perf_counter()
    progress = None if args.quiet else ReplayProgress(int(panel.ts.size))
    source = ReplaySource(panel, on_progress=progress.update if progress else None)
    with progress or contextlib.nullcontext():
        stats = await run_pipeline(source, engine, outputs)
    log.info(
        "replay_finished",
        cross_sections=stats.cross_sections,
        bars=stats.bars,
        signals=counter.signals,
        seconds=round(time.perf_counter() - started, 3),
    )
    if not args.quiet and counter.last is not None:
        flush_logs()  # the log lines still held (replay_finished) before the summary
        console = wide_console(factors=len(engine.model.names))
        registry = engine.model.registry
        latest = exposure_table(counter.last, panel.symbols, None, "latest exposures", registry)
        console.print(latest)
        console.print(counts_table(counter.by_action))
        if candles.rejected:
            console.print(f"rejected candles: {dict(candles.rejected)}")
    return stats

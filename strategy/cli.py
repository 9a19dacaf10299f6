"""The composition root: parses the command line, builds the settings once, wires
adapters into the engine and runs it.  Only this module imports concrete adapters.

Exit codes: 0 success, 1 runtime failure, 2 bad configuration or input.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import structlog

from factors import FactorModel
from strategy.config import ConfigError, Settings, load_settings
from strategy.engine import Engine
from strategy.publish import WireContext
from strategy.service import Output, run_pipeline
from strategy.strategies import load_strategy
from strategy.wire import json_schema

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="factorcast", description="Factor-driven signal service for crypto trading."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, help="TOML configuration file")
    common.add_argument("--exposures-out", type=Path, help="exposure table (.csv or .parquet)")
    common.add_argument("--signals-out", type=Path, help="signals as JSON lines")
    common.add_argument("--log-level", choices=("debug", "info", "warning", "error"))

    replay = sub.add_parser("replay", parents=[common], help="recorded candles through the engine")
    replay.add_argument("--data", type=Path, required=True, help="freqtrade-layout candle dir")
    replay.add_argument("--timeframe", help="timeframe to read when the directory has several")
    replay.add_argument("--exchange", help="exchange label in signal ids (default: exchange.id)")
    replay.add_argument("--quiet", action="store_true", help="no progress bar or summary")

    run = sub.add_parser("run", parents=[common], help="the main job: live signals")
    run.add_argument("--max-bars", type=int, help="stop after N live bars")
    run.add_argument("--sim-symbols", type=int, help="symbols in the simulated market")
    run.add_argument("--sim-speed", type=float, help="simulated bars per second")

    sub.add_parser("schema", help="print the JSON Schema of factorcast.signal/1")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, dict[str, Any]] = {}
    if args.log_level:
        out.setdefault("log", {})["level"] = args.log_level
    if getattr(args, "sim_symbols", None) is not None:
        out.setdefault("sim", {})["symbols"] = args.sim_symbols
    if getattr(args, "sim_speed", None) is not None:
        out.setdefault("sim", {})["speed"] = args.sim_speed
    return out


def build_engine(
    settings: Settings, symbols: Sequence[str], timeframe_ms: int, supply: Any = None
) -> Engine:
    model = FactorModel(len(symbols), settings.factors.to_params(), supply=supply)
    try:
        strategy = load_strategy(settings.strategy.name, symbols, settings.strategy.params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config error: strategy: {e}") from None
    return Engine(symbols, timeframe_ms, model, strategy, settings.signals.to_view())


def _file_outputs(args: argparse.Namespace, ctx: WireContext) -> list[Output]:
    from adapters.files import ExposureWriter, SignalWriter

    outputs: list[Output] = []
    if args.exposures_out:
        outputs.append(ExposureWriter(args.exposures_out, ctx.symbols))
    if args.signals_out:
        outputs.append(SignalWriter(args.signals_out, ctx))
    return outputs


async def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from rich.console import Console

    from adapters.console import ReplayProgress, SignalCounter, counts_table, exposure_table
    from adapters.recorded import load_directory
    from adapters.replay import Panel, ReplaySource

    candles = load_directory(args.data, args.timeframe)
    panel = Panel.from_recorded(candles)
    engine = build_engine(settings, panel.symbols, candles.timeframe_ms)
    ctx = WireContext(
        strategy=engine.strategy.name,
        exchange=args.exchange or settings.exchange.id,
        timeframe=candles.timeframe,
        symbols=panel.symbols,
        model=engine.model.params.tag(),
    )
    counter = SignalCounter()
    outputs = [*_file_outputs(args, ctx), counter]
    log = structlog.get_logger(__name__)
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
    show = not args.quiet
    progress = ReplayProgress(int(panel.ts.size)) if show else None
    source = ReplaySource(panel, on_progress=progress.update if progress else None)
    if progress is not None:
        with progress:
            stats = await run_pipeline(source, engine, outputs)
    else:
        stats = await run_pipeline(source, engine, outputs)
    elapsed = time.perf_counter() - started
    log.info(
        "replay_finished",
        cross_sections=stats.cross_sections,
        bars=stats.bars,
        signals=counter.signals,
        seconds=round(elapsed, 3),
    )
    if show and counter.last is not None:
        console = Console()
        console.print(exposure_table(counter.last, panel.symbols, title="latest exposures"))
        console.print(counts_table(counter.by_action))
        if candles.rejected:
            console.print(f"rejected candles: {dict(candles.rejected)}")
    return EXIT_OK


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from adapters.console import LiveDisplay
    from adapters.recorded import timeframe_to_ms
    from adapters.simmarket import SimulatedMarket
    from adapters.simsource import SimSource

    sim = settings.sim
    timeframe_ms = timeframe_to_ms(sim.timeframe)
    warmup = settings.factors.to_params().history_bars
    now_ms = int(time.time() * 1000) // timeframe_ms * timeframe_ms
    market = SimulatedMarket(
        sim.symbols,
        seed=sim.seed,
        timeframe_ms=timeframe_ms,
        start_ms=now_ms - warmup * timeframe_ms,
        missing_prob=sim.missing_prob,
    )
    symbols = tuple(market.symbols)
    engine = build_engine(settings, symbols, timeframe_ms)
    ctx = WireContext(
        strategy=engine.strategy.name,
        exchange="sim",
        timeframe=sim.timeframe,
        symbols=symbols,
        model=engine.model.params.tag(),
    )
    log = structlog.get_logger(__name__)
    log.info(
        "service_started",
        source="simulated market",
        symbols=len(symbols),
        timeframe=sim.timeframe,
        speed=sim.speed,
        warmup_bars=warmup,
        model=ctx.model,
    )
    display = LiveDisplay(symbols, f"simulated market ({len(symbols)} symbols, {sim.timeframe})")
    source = SimSource(market, warmup_bars=warmup, speed=sim.speed)
    stats = await run_pipeline(
        source, engine, [*_file_outputs(args, ctx), display], max_bars=args.max_bars
    )
    log.info("service_stopped", live_bars=stats.live_cross_sections, bars=stats.bars)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "schema":
        sys.stdout.write(orjson.dumps(json_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK

    from adapters.logsetup import configure_logging
    from adapters.recorded import CandleDataError

    try:
        settings = load_settings(args.config, **_overrides(args))
    except ConfigError as e:
        print(f"factorcast: {e}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log.level, settings.log.format)
    command = _replay if args.command == "replay" else _run
    try:
        return asyncio.run(command(args, settings))
    except (ConfigError, CandleDataError) as e:
        print(f"factorcast: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

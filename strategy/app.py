"""Composition of the commands: which adapters serve a run, wired into the engine.

Part of the composition root with ``strategy.cli``: the only modules that import
concrete adapters.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from factors import FactorModel
from strategy import preflight
from strategy.config import ConfigError, Settings
from strategy.engine import Engine, StepResult
from strategy.publish import PublishingOutput, WireContext
from strategy.service import Output, RunStats, StepObserver, run_pipeline
from strategy.strategies import load_strategy

log = structlog.get_logger(__name__)


def build_engine(
    settings: Settings, symbols: Sequence[str], timeframe_ms: int, supply: Any = None
) -> Engine:
    model = FactorModel(len(symbols), settings.factors.to_params(), supply=supply)
    try:
        strategy = load_strategy(settings.strategy.name, symbols, settings.strategy.params)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config error: strategy: {e}") from None
    return Engine(symbols, timeframe_ms, model, strategy, settings.signals.to_view())


def file_outputs(args: argparse.Namespace, ctx: WireContext) -> list[Output]:
    from adapters.files import ExposureWriter, SignalWriter

    outputs: list[Output] = []
    if getattr(args, "exposures_out", None):
        outputs.append(ExposureWriter(args.exposures_out, ctx.symbols))
    if getattr(args, "signals_out", None):
        outputs.append(SignalWriter(args.signals_out, ctx))
    return outputs


@dataclass(frozen=True, slots=True)
class Market:
    """An open connection to the exchange a run reads from."""

    source: Any  # adapters.ccxt_source.CcxtSource
    symbols: tuple[str, ...]
    timeframe: str
    timeframe_ms: int
    label: str  # the exchange in signal ids
    description: str


async def open_market(
    settings: Settings, stack: contextlib.AsyncExitStack, history_bars: int
) -> Market:
    """Start the embedded exchange if configured, connect ccxt, resolve the universe."""
    import ccxt

    from adapters.ccxt_source import CcxtSource, FeedTiming, pro_client
    from adapters.exchange import ExchangeClient, client_config, resolve_universe
    from adapters.recorded import timeframe_to_ms

    ex, src = settings.exchange, settings.source
    timeframe = ex.timeframe
    api_url, ws_url, clock_rate = ex.api_url, ex.ws_url, 1.0
    what = ex.id
    if ex.embedded:
        sim, timeframe, what = await _start_embedded(settings, stack, history_bars)
        api_url, ws_url = sim.base_url, sim.base_url.replace("http://", "ws://")
        clock_rate = settings.sim.speed * timeframe_to_ms(timeframe) / 1000
    config = client_config(
        ex.id,
        api_url=api_url,
        ws_url=ws_url,
        options=ex.options,
        api_key=ex.api_key,
        secret=ex.secret,
    )
    client = ExchangeClient(ex.id, config)
    stack.push_async_callback(client.close)
    pro = None
    if src.mode == "ws":
        pro = pro_client(ex.id, config)
        stack.push_async_callback(pro.close)
    top = ex.top_by_volume
    if not ex.embedded and not ex.symbols and top is None:
        top = 20
    symbols = await resolve_universe(client, ex.symbols, top, None if ex.embedded else ex.quote)
    tf_ms = timeframe_to_ms(timeframe)
    stale = src.stale_after_s if src.stale_after_s is not None else 2 * tf_ms / 1000
    source = CcxtSource(
        client,
        symbols,
        timeframe,
        history_bars=history_bars,
        mode=src.mode,
        pro=pro,
        timing=FeedTiming(grace_s=src.grace_s, stale_after_s=stale, clock_rate=clock_rate),
    )
    stack.push_async_callback(source.aclose)
    log.info(
        "exchange_connected",
        exchange=ex.id,
        url=client.url,
        client=f"ccxt {ccxt.__version__} ({'ccxt.pro websockets' if pro else 'REST polling'})",
        event_loop=type(asyncio.get_running_loop()).__module__.split(".")[0],
        embedded=ex.embedded,
        symbols=len(symbols),
        timeframe=timeframe,
    )
    label = "sim" if ex.embedded else ex.id
    description = f"{what} via {client.url} · {len(symbols)} symbols · {timeframe} · {src.mode}"
    return Market(source, symbols, timeframe, tf_ms, label, description)


async def _start_embedded(
    settings: Settings, stack: contextlib.AsyncExitStack, history_bars: int
) -> tuple[Any, str, str]:
    from adapters.binance_sim import BinanceSim, aligned_start_ms, retime
    from adapters.recorded import load_directory, timeframe_to_ms
    from adapters.simmarket import SimulatedMarket

    sim_cfg = settings.sim
    now_ms = sim_cfg.epoch_ms if sim_cfg.epoch_ms is not None else int(time.time() * 1000)
    feed: Any
    if sim_cfg.data is not None:
        candles = load_directory(sim_cfg.data, size_limit=preflight.candle_size_limit(settings))
        timeframe = candles.timeframe
        feed = retime(
            candles.series,
            timeframe_ms=candles.timeframe_ms,
            history_bars=history_bars,
            now_ms=now_ms,
        )
        what = f"recorded candles {sim_cfg.data}"
    else:
        timeframe = settings.exchange.timeframe
        tf_ms = timeframe_to_ms(timeframe)
        feed = SimulatedMarket(
            sim_cfg.symbols,
            seed=sim_cfg.seed,
            timeframe_ms=tf_ms,
            start_ms=aligned_start_ms(now_ms, tf_ms, history_bars),
            missing_prob=sim_cfg.missing_prob,
        )
        what = f"simulated market (seed {sim_cfg.seed})"
    sim = await stack.enter_async_context(
        BinanceSim(
            feed,
            history_bars=history_bars,
            sim_speed=sim_cfg.speed,
            decimals=None,  # lossless prices: the recorded candles exactly
            clock_on_demand=True,
        )
    )
    log.info("embedded_exchange_started", url=sim.base_url, serving=what, speed=sim_cfg.speed)
    return sim, timeframe, f"embedded exchange serving {what}"


def _stop_on_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT stop the sources; the pipeline then finishes the current
    cross-section, flushes the outputs and returns (exit code 0)."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        log.info("shutdown_requested", signal=signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


async def open_sink(
    settings: Settings, stack: contextlib.AsyncExitStack, heartbeat_ttl_s: float
) -> Any:
    """The Redis sink: to the configured server, or to one started here."""
    from adapters.redis_sink import RedisSink

    cfg = settings.redis
    url = cfg.url
    if url is None:
        from adapters.redis_server import EmbeddedRedis

        server = EmbeddedRedis(directory=settings.state_dir / "redis", password=cfg.password)
        await stack.enter_async_context(server)
        url = server.url
        log.info("redis_embedded", url=url, note="stopped on exit; factorcast subscribe reads it")
    sink = RedisSink(
        url,
        spool_dir=settings.state_dir / "spool",
        password=cfg.password,
        prefix=cfg.prefix,
        maxlen=cfg.maxlen,
        heartbeat_ttl_s=cfg.heartbeat_ttl_s or heartbeat_ttl_s,
        spool_max_bytes=cfg.spool_max_bytes,
        spool_fsync=cfg.spool_fsync,
    )
    return await stack.enter_async_context(sink)


async def open_metrics(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    market: Market,
    sink: Any,
    model_tag: str,
) -> Any:
    """Metrics, their HTTP endpoint and the telemetry output that keeps them current."""
    from importlib.metadata import version

    from adapters.http import MetricsServer
    from adapters.metrics import Metrics
    from adapters.telemetry import Telemetry

    cfg = settings.metrics
    per_symbol = cfg.per_symbol_exposures
    if per_symbol is None:
        per_symbol = len(market.symbols) <= 200
    source = market.source
    # bar lag against the exchange's clock (the embedded one runs accelerated)
    metrics = Metrics(
        per_symbol_exposures=per_symbol, clock=lambda: source.exchange_now_ms() / 1000
    )
    metrics.set_build_info(
        version=version("factorcast"),
        model=model_tag,
        exchange=market.label,
        timeframe=market.timeframe,
    )
    telemetry = Telemetry(
        metrics,
        market.symbols,
        market.timeframe_ms,
        source=source,
        sink=sink,
        bar_wall_s=market.timeframe_ms / 1000 / source.timing.clock_rate,
    )
    if cfg.enabled:
        server = MetricsServer(metrics.registry, telemetry.readiness, host=cfg.host, port=cfg.port)
        try:
            await stack.enter_async_context(server)
        except OSError as e:  # taken since the check at start
            raise preflight.metrics_bind_error(settings, e) from None
        log.info("metrics_serving", url=server.url, endpoints="/metrics /healthz /readyz")
    return telemetry


def _freeze_heap_when_live(on_step: StepObserver) -> StepObserver:
    """At the first live bar, move everything the warm-up allocated (ccxt's markets
    and caches, the model's rings) out of the garbage collector's reach: full
    collections over it otherwise stall a bar now and then for tens of ms."""
    frozen = False

    def observe(result: StepResult, seconds: float, xs_depth: int, out_depth: int) -> None:
        nonlocal frozen
        if result.xs.live and not frozen:
            frozen = True
            gc.collect()
            gc.freeze()
        on_step(result, seconds, xs_depth, out_depth)

    return observe


async def run_live(args: argparse.Namespace, settings: Settings) -> RunStats:
    """``factorcast run``: live candles through the engine to Redis until stopped."""
    from adapters.console import LiveDisplay

    history_bars = settings.factors.to_params().history_bars
    async with contextlib.AsyncExitStack() as stack:
        preflight.hold_state_dir(settings, stack)  # first: a second run stops here
        preflight.check_exchange_id(settings)
        preflight.check_metrics_port(settings)
        market = await open_market(settings, stack, history_bars)
        engine = build_engine(settings, market.symbols, market.timeframe_ms)
        key = settings.signing_key
        ctx = WireContext(
            strategy=engine.strategy.name,
            exchange=market.label,
            timeframe=market.timeframe,
            symbols=market.symbols,
            model=engine.model.params.tag(),
            signing_key=key.get_secret_value().encode() if key is not None else None,
        )
        sink = await open_sink(settings, stack, heartbeat_ttl_s=3 * market.timeframe_ms / 1000)
        telemetry = await open_metrics(settings, stack, market, sink, ctx.model)
        outputs: list[Output] = [
            *file_outputs(args, ctx),
            PublishingOutput(sink, ctx, telemetry.metrics.publish_latency),
            telemetry,
        ]
        if not getattr(args, "quiet", False):
            where = f"{market.description} · signals to {sink.url}"
            outputs.append(LiveDisplay(market.symbols, where))
        log.info(
            "service_started",
            model=ctx.model,
            strategy=ctx.strategy,
            warmup_bars=history_bars,
            redis=sink.url,
            signed=key is not None,
        )
        stop = asyncio.Event()
        _stop_on_signals(stop)
        stats = await run_pipeline(
            market.source,
            engine,
            outputs,
            max_bars=args.max_bars,
            stop=stop,
            on_step=_freeze_heap_when_live(telemetry.on_step),
        )
        log.info("service_stopped", live_bars=stats.live_cross_sections, bars=stats.bars)
        return stats


async def replay(args: argparse.Namespace, settings: Settings) -> RunStats:
    """``factorcast replay``: recorded candles through the same engine, as fast as it goes."""
    from adapters.console import (
        ReplayProgress,
        SignalCounter,
        counts_table,
        exposure_table,
        wide_console,
    )
    from adapters.recorded import load_directory
    from adapters.replay import Panel, ReplaySource

    candles = load_directory(
        args.data, args.timeframe, size_limit=preflight.candle_size_limit(settings)
    )
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
    outputs = [*file_outputs(args, ctx), counter]
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
        console = wide_console()
        console.print(exposure_table(counter.last, panel.symbols, title="latest exposures"))
        console.print(counts_table(counter.by_action))
        if candles.rejected:
            console.print(f"rejected candles: {dict(candles.rejected)}")
    return stats


async def subscribe(args: argparse.Namespace, settings: Settings) -> int:
    """``factorcast subscribe``: a consumer-group reader of the signal stream."""
    from adapters.subscriber import run_subscriber

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
    _stop_on_signals(stop)
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

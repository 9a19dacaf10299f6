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
from collections.abc import Awaitable, Callable, Sequence
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
from strategy.universe import FileOutput, Following, KeepOpen, watch_universe

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


def file_outputs(args: argparse.Namespace, ctx: WireContext) -> list[FileOutput]:
    from adapters.files import ExposureWriter, SignalWriter

    outputs: list[FileOutput] = []
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
    #: a source for another universe, live from a bar on (the previous one is closed)
    follow: Callable[[tuple[str, ...], int | None], Awaitable[Any]]
    #: the universe now, or None if the exchange could not tell (top_by_volume only)
    resolve: Callable[[], Awaitable[tuple[str, ...] | None]]
    #: wall seconds between resolutions of the universe; None: it is fixed
    refresh_wall_s: float | None


async def open_market(
    settings: Settings, stack: contextlib.AsyncExitStack, history_bars: int
) -> Market:
    """Start the embedded exchange if configured, connect ccxt, resolve the universe."""
    import ccxt

    from adapters.ccxt_source import CcxtSource, FeedTiming, pro_client
    from adapters.exchange import (
        ExchangeClient,
        FeedError,
        FeedUnavailable,
        client_config,
        resolve_universe,
    )
    from adapters.recorded import timeframe_to_ms

    ex, src = settings.exchange, settings.source
    timeframe = ex.timeframe
    api_url, ws_url, clock_rate = ex.api_url, ex.ws_url, 1.0
    what = ex.id
    sim_symbols: tuple[str, ...] = ()
    if ex.embedded:
        sim, timeframe, what = await _start_embedded(settings, stack, history_bars)
        sim_symbols = sim.book.symbols
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
    top = ex.top_by_volume
    if not ex.embedded and not ex.symbols and top is None:
        top = 20
    wanted = ex.symbols
    if ex.embedded and not wanted and top is None:
        # the embedded exchange's own universe, as a replay of its candles has it: the
        # symbols it will list later too
        wanted = list(sim_symbols)
    symbols = await resolve_universe(
        client,
        wanted,
        top,
        None if ex.embedded else ex.quote,
        await_listing=ex.embedded,
    )
    tf_ms = timeframe_to_ms(timeframe)
    stale = src.stale_after_s if src.stale_after_s is not None else 2 * tf_ms / 1000
    timing = FeedTiming(
        grace_s=src.grace_s,
        stale_after_s=stale,
        clock_rate=clock_rate,
        delist_after_s=src.delist_after_s,
        refresh_s=ex.refresh_universe_s,
    )
    pro: Any = None

    async def follow(universe: tuple[str, ...], resume_from: int | None) -> Any:
        nonlocal pro
        if pro is not None:
            await pro.close()  # its subscriptions were the previous universe's
        if src.mode == "ws":
            pro = pro_client(ex.id, config)
            stack.push_async_callback(pro.close)
        source = CcxtSource(
            client,
            universe,
            timeframe,
            history_bars=history_bars,
            mode=src.mode,
            pro=pro,
            timing=timing,
            resume_from=resume_from,
        )
        stack.push_async_callback(source.aclose)
        return source

    quote = None if ex.embedded else ex.quote

    async def resolve() -> tuple[str, ...] | None:
        try:
            return await resolve_universe(client, None, top, quote)
        except (FeedError, FeedUnavailable) as e:
            log.warning("universe_refresh_failed", error=str(e))
            return None

    refresh = ex.refresh_universe_s
    refresh_wall_s = None
    if top is not None and refresh is not None:
        refresh_wall_s = max(refresh / clock_rate, 5.0)
    source = await follow(symbols, None)
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
    return Market(
        source, symbols, timeframe, tf_ms, label, description, follow, resolve, refresh_wall_s
    )


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
        backlog_max_bytes=cfg.backlog_max_bytes,
    )
    return await stack.enter_async_context(sink)


async def open_metrics(
    settings: Settings,
    stack: contextlib.AsyncExitStack,
    market: Market,
    sink: Any,
    model_tag: str,
    following: Following,
) -> Any:
    """Metrics, their HTTP endpoint and the telemetry output that keeps them current
    (``following.telemetry``; the endpoint and the clock follow a new universe)."""
    from importlib.metadata import version

    from adapters.http import MetricsServer
    from adapters.metrics import Metrics

    cfg = settings.metrics
    per_symbol = cfg.per_symbol_exposures
    if per_symbol is None:
        per_symbol = len(market.symbols) <= 200
    # bar lag against the exchange's clock (the embedded one runs accelerated)
    metrics = Metrics(per_symbol_exposures=per_symbol, clock=following.clock)
    metrics.set_build_info(
        version=version("factorcast"),
        model=model_tag,
        exchange=market.label,
        timeframe=market.timeframe,
    )
    following.telemetry = telemetry_for(metrics, market, market.symbols, following.source, sink)
    if cfg.enabled:
        server = MetricsServer(metrics.registry, following.readiness, host=cfg.host, port=cfg.port)
        try:
            await stack.enter_async_context(server)
        except OSError as e:  # taken since the check at start
            raise preflight.metrics_bind_error(settings, e) from None
        log.info("metrics_serving", url=server.url, endpoints="/metrics /healthz /readyz")
    return following.telemetry


def telemetry_for(
    metrics: Any, market: Market, symbols: tuple[str, ...], source: Any, sink: Any
) -> Any:
    from adapters.telemetry import Telemetry

    return Telemetry(
        metrics,
        symbols,
        market.timeframe_ms,
        source=source,
        sink=sink,
        bar_wall_s=market.timeframe_ms / 1000 / source.timing.clock_rate,
    )


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


def _wire_context(settings: Settings, engine: Engine, market: Market) -> WireContext:
    key = settings.signing_key
    return WireContext(
        strategy=engine.strategy.name,
        exchange=market.label,
        timeframe=market.timeframe,
        symbols=engine.symbols,
        model=engine.model.params.tag(),
        signing_key=key.get_secret_value().encode() if key is not None else None,
    )


async def run_live(args: argparse.Namespace, settings: Settings) -> RunStats:
    """``factorcast run``: live candles through the engine to Redis until stopped.

    With ``exchange.top_by_volume``, when the top markets change (resolved every
    ``exchange.refresh_universe_s``), the run follows the new universe from the bar
    after the last one it published: a new source warmed up from REST history (the
    universe's new symbols join after their own warm-up), a new engine; the sink
    and the file outputs go on."""
    from adapters.console import LiveDisplay

    history_bars = settings.factors.to_params().history_bars
    async with contextlib.AsyncExitStack() as stack:
        preflight.hold_state_dir(settings, stack)  # first: a second run stops here
        preflight.check_exchange_id(settings)
        preflight.check_metrics_port(settings)
        market = await open_market(settings, stack, history_bars)
        symbols, source = market.symbols, market.source
        engine = build_engine(settings, symbols, market.timeframe_ms)
        ctx = _wire_context(settings, engine, market)
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
        _stop_on_signals(shutdown)
        total = RunStats()
        kept = [KeepOpen(f) for f in files]
        while True:
            outputs: list[Output] = [
                *kept,
                PublishingOutput(sink, ctx, telemetry.metrics.publish_latency),
                telemetry,
            ]
            if not getattr(args, "quiet", False):
                outputs.append(LiveDisplay(symbols, where))
            left = None if args.max_bars is None else args.max_bars - total.live_cross_sections
            changed = asyncio.create_task(
                watch_universe(market.resolve, symbols, market.refresh_wall_s)
            )
            stop = asyncio.Event()
            relay = asyncio.create_task(_stop_on_first(stop, shutdown.wait(), changed))
            try:
                stats = await run_pipeline(
                    source,
                    engine,
                    outputs,
                    max_bars=left,
                    stop=stop,
                    on_step=_freeze_heap_when_live(telemetry.on_step),
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
            ctx = _wire_context(settings, engine, market)
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
    from adapters.terminal_log import flush_logs

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

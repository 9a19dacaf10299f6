"""What the commands share: which adapters serve a run, wired into the engine.

Part of the composition root (:mod:`factorcast.strategy.app`): the only package
that imports concrete adapters.
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
from typing import TYPE_CHECKING, Any

import structlog

from factorcast.factors import FactorModel
from factorcast.factors.analytics.pipeline import FactorAnalytics
from factorcast.strategy.app import custom, preflight
from factorcast.strategy.app.settings import ConfigError, Settings
from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.events import AMEND_BARS
from factorcast.strategy.ports import LiveSource
from factorcast.strategy.publish import WireContext
from factorcast.strategy.service import StepObserver
from factorcast.strategy.signals import FactorView
from factorcast.strategy.strategies import StrategyError, load_strategy
from factorcast.strategy.timeframes import timeframe_ms
from factorcast.strategy.universe import FileOutput, Following

if TYPE_CHECKING:  # the adapters are imported where a command needs them
    from factorcast.adapters.exchange.source import CcxtSource
    from factorcast.adapters.observe.metrics import Metrics
    from factorcast.adapters.observe.telemetry import Telemetry

log = structlog.get_logger(__name__)


def build_engine(
    settings: Settings,
    symbols: Sequence[str],
    timeframe_ms: int,
    supply: Any = None,
    *,
    amend_bars: int = AMEND_BARS,
    analytics: bool = True,
) -> Engine:
    """The engine of a command.  ``amend_bars=0`` where no bar can come late (replay):
    no undo log is kept then.  ``analytics``: factor returns, health and risk at every
    grid step (ANALYTICS.md sections 1-3).  The custom factors of ``factors.custom``
    are rows of the model after the six, and of the view with their own weights and
    directions."""
    built = custom.build(settings)
    model = FactorModel(len(symbols), settings.factors, supply=supply, custom=built)
    try:
        strategy = load_strategy(settings.strategy.name, symbols, settings.strategy.params)
    except StrategyError as e:  # past preflight.check_strategy: refused this universe
        raise preflight.strategy_config_error(e) from None
    view = settings.signals.to_view(settings.factors.custom)
    return Engine(
        symbols,
        timeframe_ms,
        model,
        strategy,
        view,
        amend_bars=amend_bars,
        analytics=build_analytics(settings, len(symbols), view) if analytics else None,
    )


def warmup_bars(settings: Settings, analytics: bool = True) -> int:
    """Bars of history a live run backfills before its first live bar.

    The factor model needs ``factors.history_bars`` (with the custom factors'
    lookbacks: :func:`custom.history_bars`) before its exposures are those
    of a run that never stopped.  The analytics (ANALYTICS.md sections 2 and 3) then
    need their own windows of such exposures: the health statistics at bar ``T``
    read the ICs of the exposures of ``T - window - h + 1 ..`` and the factor returns
    of ``T - window + 1 ..`` (depth ``window + max(horizons) + 1``), the risk model
    the factor returns of ``T - risk.window + 1 ..``, and a factor return at ``t``
    needs the exposures of ``t - 1``.  Both windows must lie where the exposures are
    already exact, so the two needs add up: ``history_bars + max(health.window +
    max(health.horizons) + 1, risk.window)``.  A shorter warm-up (only the longest
    of the two) would leave the first live bars' health and risk over factor
    returns that a run that never stopped has and the restarted one lacks (its
    first exposures are missing for want of history).  REST serves the history in
    pages of 1000 candles per symbol (``RestFeed.fetch_range``), so any length is
    one or a few requests per symbol."""
    bars = custom.history_bars(settings)
    if not analytics:
        return bars
    health, risk = settings.health, settings.risk
    return bars + max(health.window + max(health.horizons) + 1, risk.window)


def build_analytics(settings: Settings, n_symbols: int, view: FactorView) -> FactorAnalytics:
    """The analytics of the settings' model over ``n_symbols`` symbols.  Building
    them compiles their kernels, or loads them from numba's cache: the first run on a
    machine takes some seconds there, and says so."""
    started = time.perf_counter()
    analytics = FactorAnalytics(
        view.names,
        n_symbols,
        view.directions,
        weighting=settings.factors.weighting,
        regression=settings.factors.analytics,
        health=settings.health,
        risk=settings.risk,
    )
    seconds = time.perf_counter() - started
    if seconds > 1.0:
        log.info("analytics_kernels_compiled", seconds=round(seconds, 1))
    return analytics


def file_outputs(args: argparse.Namespace, ctx: WireContext) -> list[FileOutput]:
    from factorcast.adapters.files.outputs import ExposureWriter, SignalWriter

    outputs: list[FileOutput] = []
    if getattr(args, "exposures_out", None):
        outputs.append(ExposureWriter(args.exposures_out, ctx.symbols))
    if getattr(args, "signals_out", None):
        outputs.append(SignalWriter(args.signals_out, ctx))
    return outputs


@dataclass(frozen=True, slots=True)
class Market:
    """An open connection to the exchange a run reads from."""

    source: LiveSource
    symbols: tuple[str, ...]
    timeframe: str
    timeframe_ms: int
    label: str  # the exchange in signal ids
    description: str
    #: a source for another universe, live from a bar on (the previous one is closed)
    follow: Callable[[tuple[str, ...], int | None], Awaitable[LiveSource]]
    #: the universe now, or None if the exchange could not tell (top_by_volume only)
    resolve: Callable[[], Awaitable[tuple[str, ...] | None]]
    #: wall seconds between resolutions of the universe; None: it is fixed
    refresh_wall_s: float | None


async def open_market(
    settings: Settings, stack: contextlib.AsyncExitStack, history_bars: int
) -> Market:
    """Start the embedded exchange if configured, connect ccxt, resolve the universe."""
    from factorcast.adapters.exchange.client import (
        ExchangeClient,
        FeedError,
        FeedUnavailable,
        ccxt_rate_limit_ms,
        client_config,
        resolve_universe,
    )
    from factorcast.adapters.exchange.source import CcxtSource, FeedTiming, pro_client

    ex, src = settings.exchange, settings.source
    timeframe = ex.timeframe
    api_url, ws_url, clock_rate = ex.api_url, ex.ws_url, 1.0
    what = ex.id
    sim_symbols: tuple[str, ...] = ()
    if ex.embedded:
        sim, timeframe, what = await _start_embedded(settings, stack, history_bars)
        sim_symbols = sim.book.symbols
        api_url, ws_url = sim.base_url, sim.base_url.replace("http://", "ws://")
        clock_rate = settings.sim.speed * timeframe_ms(timeframe) / 1000
    config = client_config(
        ex.id,
        api_url=api_url,
        ws_url=ws_url,
        options=ex.options,
        api_key=ex.api_key,
        secret=ex.secret,
    )
    if ex.embedded:
        # The embedded exchange's clock runs clock_rate times faster than the wall's, and
        # so does its request budget: ccxt's wall-time rate limit shrinks alike, or a
        # warm-up of the whole universe would outlast dozens of accelerated bars.
        config["rateLimit"] = ccxt_rate_limit_ms(ex.id) / clock_rate
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
    tf_ms = timeframe_ms(timeframe)
    stale = src.stale_after_s if src.stale_after_s is not None else 2 * tf_ms / 1000
    timing = FeedTiming(
        grace_s=src.grace_s,
        stale_after_s=stale,
        clock_rate=clock_rate,
        delist_after_s=src.delist_after_s,
        refresh_s=ex.refresh_universe_s,
    )
    pro: Any = None

    async def follow(universe: tuple[str, ...], resume_from: int | None) -> CcxtSource:
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
        client=source.client_description,
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
    from factorcast.adapters.files.recorded import load_directory
    from factorcast.adapters.sim.binance import (
        BinanceSim,
        HistoryTooShort,
        aligned_start_ms,
        retime,
    )
    from factorcast.adapters.sim.market import SimulatedMarket

    sim_cfg = settings.sim
    now_ms = sim_cfg.epoch_ms if sim_cfg.epoch_ms is not None else int(time.time() * 1000)
    feed: Any
    if sim_cfg.data is not None:
        candles = load_directory(sim_cfg.data, size_limit=preflight.candle_size_limit(settings))
        timeframe = candles.timeframe
        try:
            feed = retime(
                candles.series,
                timeframe_ms=candles.timeframe_ms,
                history_bars=history_bars,
                now_ms=now_ms,
            )
        except HistoryTooShort as e:
            raise ConfigError(
                f"sim.data: {sim_cfg.data}: {e} (the warm-up: factors.history_bars and the"
                " health and risk windows)"
            ) from None
        what = f"recorded candles {sim_cfg.data}"
    else:
        timeframe = settings.exchange.timeframe
        tf_ms = timeframe_ms(timeframe)
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


def stop_on_signals(stop: asyncio.Event) -> None:
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
    from factorcast.adapters.redis.sink import RedisSink

    cfg = settings.redis
    url = cfg.url
    if url is None:
        from factorcast.adapters.redis.server import EmbeddedRedis

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
) -> Telemetry:
    """Metrics, their HTTP endpoint and the telemetry output that keeps them current
    (``following.telemetry``; the endpoint and the clock follow a new universe)."""
    from importlib.metadata import version

    from factorcast.adapters.observe.http import MetricsServer
    from factorcast.adapters.observe.metrics import Metrics

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
    telemetry = telemetry_for(metrics, market, market.symbols, following.source, sink)
    following.telemetry = telemetry
    if cfg.enabled:
        server = MetricsServer(metrics.registry, following.readiness, host=cfg.host, port=cfg.port)
        try:
            await stack.enter_async_context(server)
        except OSError as e:  # taken since the check at start
            raise preflight.metrics_bind_error(settings, e) from None
        log.info("metrics_serving", url=server.url, endpoints="/metrics /healthz /readyz")
    return telemetry


def telemetry_for(
    metrics: Metrics, market: Market, symbols: tuple[str, ...], source: LiveSource, sink: Any
) -> Telemetry:
    from factorcast.adapters.observe.telemetry import Telemetry

    return Telemetry(
        metrics,
        symbols,
        market.timeframe_ms,
        source=source,
        sink=sink,
        bar_wall_s=market.timeframe_ms / 1000 / source.clock_rate,
    )


def freeze_heap_when_live(on_step: StepObserver) -> StepObserver:
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


def wire_context(settings: Settings, engine: Engine, market: Market) -> WireContext:
    key = settings.signing_key
    return WireContext(
        strategy=engine.strategy.name,
        exchange=market.label,
        timeframe=market.timeframe,
        symbols=engine.symbols,
        model=engine.model.tag,
        signing_key=key.get_secret_value().encode() if key is not None else None,
    )

"""Bar close to signal over websockets: 100 symbols from the embedded exchange,
through the real ccxt.pro client, the integrity gate, the engine and the wire
serialization.

    python bench/live_latency.py [--symbols 100] [--bars 300] [--interval 0.05]
                                 [--repeat 3] [--event-loop auto|uvloop|asyncio] [--no-pin]

The exchange runs in its own process, as a real one would, and records when it
sent each bar's closing klines (``time.perf_counter``: CLOCK_MONOTONIC, shared by
the processes of one machine).  The clock stops when the bar's signals exist as
wire JSON.  The primary figure is from the last closing kline of the bar (the
moment the bar is closed for every symbol) to the signals; the figure from the
first closing kline is printed too, and where the time went: reading the burst
through the gate up to the engine, the engine step, the hand-over to the output,
and serialization.  The serialization is then timed again by itself, back to back
and after idle spells as long as the bench's, which tells the pipeline's cost from
the machine's: how much slower the same work runs after the CPU sat idle.  Bars
are measured once the feed has caught up after its warm-up.  Each run has its own
exchange process; the summary is the median over ``--repeat`` runs of each
figure.  The last line is JSON.

A real exchange runs on other machines: its CPU time is not the client's.  So on
a machine with two or more CPUs the exchange process is pinned to the last one
and the client to the others (``--no-pin`` lets the kernel place both, which then
often share one CPU: the exchange's sending is then charged to the client's
latency).  The client, like ``factorcast run``, runs on the event loop
:func:`strategy.service.loop_factory` picks.  The bench talks to the exchange
process over a pipe read by the event loop itself, not by a thread, so that its
own control traffic does not compete with the client for the interpreter.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import multiprocessing as mp
import os
import platform
import time
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from factorcast.adapters.exchange.client import ExchangeClient, resolve_universe
from factorcast.adapters.exchange.source import CcxtSource, FeedTiming, pro_client
from factorcast.adapters.sim.binance import BinanceSim, aligned_start_ms, ccxt_config
from factorcast.adapters.sim.market import SimulatedMarket
from factorcast.factors import FactorModel, FactorParams
from factorcast.strategy.app.settings import SignalSettings
from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.publish import WireContext, publication
from factorcast.strategy.service import EventLoopChoice, loop_factory, run_pipeline
from factorcast.strategy.strategies import Trend

TF = 60_000


def exchange_process(conn: Connection, symbols: int, history: int, cpus: set[int] | None) -> None:
    """The embedded exchange, advanced one bar per ``advance`` command."""
    from factorcast.adapters.observe.logsetup import configure_logging

    configure_logging("warning", "console")
    if cpus:
        os.sched_setaffinity(0, cpus)

    async def serve() -> None:
        start = aligned_start_ms(int(time.time() * 1000), TF, history)
        feed = SimulatedMarket(symbols, seed=5, timeframe_ms=TF, start_ms=start, missing_prob=0)
        async with BinanceSim(feed, history_bars=history, decimals=None) as sim:
            conn.send(sim.base_url)
            loop = asyncio.get_running_loop()
            while True:
                command = await loop.run_in_executor(None, conn.recv)
                if command == "stop":
                    conn.send(list(sim.sent))
                    return
                await sim.advance(1)
                conn.send(sim.sent[-1])

    asyncio.run(serve())


def exchange_advancer(conn: Connection) -> Callable[[], Awaitable[tuple[int, float, float]]]:
    """``advance()``: the exchange process pushes one bar and answers with (bar time,
    its first closing kline's send time, its last's).  The pipe is read by the event
    loop itself, not by a thread, so that the bench's control traffic does not
    compete with the client for the interpreter."""
    loop = asyncio.get_running_loop()

    async def advance() -> tuple[int, float, float]:
        conn.send("advance")
        answer: asyncio.Future[tuple[int, float, float]] = loop.create_future()

        def readable() -> None:
            loop.remove_reader(conn.fileno())
            os.set_blocking(conn.fileno(), True)  # uvloop made it non-blocking
            answer.set_result(conn.recv())

        loop.add_reader(conn.fileno(), readable)
        return await answer

    return advance


class Stopwatch:
    """The pipeline output that marks when a bar's signals exist as wire JSON, and
    the engine's step observer: where each bar's time went."""

    def __init__(self, ctx: WireContext) -> None:
        self.ctx = ctx
        self.done: dict[int, float] = {}
        self.serializing: dict[int, float] = {}  # bar time -> when serialization began
        self.stepping: dict[int, tuple[float, float]] = {}  # bar time -> (began, took)
        self.last: StepResult | None = None

    def on_step(self, result: StepResult, took: float, *_: int) -> None:
        self.stepping[result.ts] = (time.perf_counter() - took, took)

    async def handle(self, result: StepResult) -> None:
        if result.xs.live:
            began = time.perf_counter()
            publication(result, self.ctx)
            self.done[result.ts] = time.perf_counter()
            self.serializing[result.ts] = began
            self.last = result

    def serialization_alone_ms(self, runs: int, idle_s: float = 0.0) -> float:
        """The last bar's serialization again, by itself: back to back (what it costs
        with everything in the CPU's caches), or each time after ``idle_s`` of doing
        nothing (what this machine makes of the same work after an idle spell)."""
        assert self.last is not None
        took = []
        for _ in range(runs):
            if idle_s:
                time.sleep(idle_s)
            began = time.perf_counter()
            publication(self.last, self.ctx)
            took.append(time.perf_counter() - began)
        return float(np.median(took)) * 1000

    async def close(self) -> None:
        return None


async def measure(args: argparse.Namespace, conn: Connection) -> dict[str, Any]:
    params = FactorParams()
    base_url = await asyncio.to_thread(conn.recv)
    host, port = base_url.removeprefix("http://").split(":")
    config = ccxt_config(host, int(port))
    client = ExchangeClient("binance", config)
    pro = pro_client("binance", config)
    loop = asyncio.get_running_loop()
    advance = exchange_advancer(conn)

    try:
        symbols = await resolve_universe(client, None, None, None)
        source = CcxtSource(
            client,
            symbols,
            "1m",
            history_bars=params.history_bars,
            pro=pro,
            timing=FeedTiming(grace_s=30, stale_after_s=3600, min_stale_wall_s=3600),
        )
        engine = Engine(
            symbols,
            TF,
            FactorModel(len(symbols), params),
            Trend(symbols),
            SignalSettings().to_view(),
        )
        watch = Stopwatch(WireContext("trend", "sim", "1m", symbols, params.tag()))
        stop = asyncio.Event()
        pipeline = asyncio.create_task(
            run_pipeline(source, engine, [watch], stop=stop, on_step=watch.on_step)
        )
        # warm up and catch up: until three bars in a row are done within the interval
        quick = 0
        while quick < 3:
            bar_ts, _, _ = await advance()
            await asyncio.sleep(args.interval)
            quick = quick + 1 if bar_ts in watch.done else 0
        gc.collect()  # as the service does at its first live bar
        gc.freeze()
        measured = []
        for _ in range(args.bars):
            measured.append(await advance())
            await asyncio.sleep(args.interval)
        await asyncio.sleep(0.5)
        stop.set()
        await pipeline
    finally:
        await source.aclose()
        await client.close()
        await pro.close()
    from_last = np.array([watch.done[ts] - last for ts, _, last in measured]) * 1000
    from_first = np.array([watch.done[ts] - first for ts, first, _ in measured]) * 1000
    sending = from_first - from_last
    # where the time from the last closing kline went: reading the burst and the gate
    # up to the engine, the step, handing the result on, serialization
    parts = (
        np.array(
            [
                (
                    watch.stepping[ts][0] - last,
                    watch.stepping[ts][1],
                    watch.serializing[ts] - sum(watch.stepping[ts]),
                    watch.done[ts] - watch.serializing[ts],
                )
                for ts, _, last in measured
            ]
        )
        * 1000
    )
    breakdown = {
        f"{name}_{q}_ms": round(float(np.percentile(parts[:, j], pct)), 3)
        for j, name in enumerate(("to_engine", "step", "to_output", "serialization"))
        for q, pct in (("p50", 50), ("p99", 99))
    }
    if args.log_level == "debug":
        print("latencies (ms):", np.round(from_last, 2).tolist())
    return {
        "n_symbols": len(symbols),
        "bars": int(from_last.size),
        "p50_ms": round(float(np.percentile(from_last, 50)), 3),
        "p99_ms": round(float(np.percentile(from_last, 99)), 3),
        "max_ms": round(float(from_last.max()), 3),
        "from_first_kline_p50_ms": round(float(np.percentile(from_first, 50)), 3),
        "from_first_kline_p99_ms": round(float(np.percentile(from_first, 99)), 3),
        # the exchange's own time to send a bar's klines: the machine's noise, seen
        # from a process that does the same work every bar
        "exchange_send_p50_ms": round(float(np.percentile(sending, 50)), 3),
        "exchange_send_p99_ms": round(float(np.percentile(sending, 99)), 3),
        **breakdown,
        "serialization_warm_ms": round(watch.serialization_alone_ms(200), 3),
        "serialization_after_idle_ms": round(watch.serialization_alone_ms(40, args.interval), 3),
        "late_symbols": source.gate.stats.late,
        "event_loop": type(loop).__module__.split(".")[0],
        "pinned": args.pinned,
        "python": platform.python_version(),
    }


def against_exchange(
    symbols: int,
    exchange_cpus: set[int] | None,
    event_loop: EventLoopChoice,
    client: Callable[[argparse.Namespace, Connection], Coroutine[Any, Any, dict[str, Any]]],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Start the embedded exchange in its own process (on ``exchange_cpus``), run
    ``client(args, pipe)`` on the service's event loop, stop the exchange."""
    parent, child = mp.get_context("spawn").Pipe()
    proc = mp.get_context("spawn").Process(
        target=exchange_process,
        args=(child, symbols, FactorParams().history_bars, exchange_cpus),
    )
    proc.start()
    try:
        with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
            result: dict[str, Any] = runner.run(client(args, parent))
    finally:
        parent.send("stop")
        parent.recv()
        proc.join(10)
    return result


def one_run(args: argparse.Namespace, exchange_cpus: set[int] | None) -> dict[str, Any]:
    """One measurement against a fresh exchange process."""
    result = against_exchange(args.symbols, exchange_cpus, args.event_loop, measure, args)
    print(
        f"bar close -> signal over websockets, {result['n_symbols']} symbols, "
        f"{result['bars']} bars: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms "
        f"(from the bar's first closing kline: p50 {result['from_first_kline_p50_ms']} ms, "
        f"p99 {result['from_first_kline_p99_ms']} ms); the exchange's own send: "
        f"p50 {result['exchange_send_p50_ms']} ms, p99 {result['exchange_send_p99_ms']} ms"
    )
    print(
        "  where it went, p50: to the engine "
        f"{result['to_engine_p50_ms']} ms, step {result['step_p50_ms']} ms, to the output "
        f"{result['to_output_p50_ms']} ms, serialization {result['serialization_p50_ms']} ms; "
        f"the same serialization by itself: {result['serialization_warm_ms']} ms back to back, "
        f"{result['serialization_after_idle_ms']} ms after {args.interval * 1000:g} ms idle"
    )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=100)
    ap.add_argument("--bars", type=int, default=300)
    ap.add_argument("--interval", type=float, default=0.05, help="seconds between bars")
    ap.add_argument("--repeat", type=int, default=3, help="runs; the summary is their median")
    ap.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    ap.add_argument("--no-pin", action="store_true", help="no CPU affinity for either process")
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args()
    from factorcast.adapters.observe.logsetup import configure_logging

    configure_logging(args.log_level, "console")
    cpus = sorted(os.sched_getaffinity(0))
    args.pinned = not args.no_pin and len(cpus) >= 2
    exchange_cpus = {cpus[-1]} if args.pinned else None
    if args.pinned:
        os.sched_setaffinity(0, set(cpus[:-1]))
    runs = [one_run(args, exchange_cpus) for _ in range(args.repeat)]
    summary: dict[str, Any] = {
        key: round(float(np.median([r[key] for r in runs])), 3)
        for key in runs[0]
        if key.endswith("_ms")
    }
    first = runs[0]
    print(
        f"median of {len(runs)} runs: p50 {summary['p50_ms']} ms, p99 {summary['p99_ms']} ms; "
        f"{first['event_loop']}, {'exchange on its own CPU' if args.pinned else 'not pinned'}"
    )
    static = ("n_symbols", "bars", "event_loop", "pinned", "python")
    print(json.dumps({**{k: first[k] for k in static}, **summary, "runs": runs}))


if __name__ == "__main__":
    main()

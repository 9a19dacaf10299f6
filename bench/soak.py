"""Soak: a large universe at a steady bar rate for a long time, through the whole
live path to Redis.

    python bench/soak.py [--symbols 500] [--rate 5] [--minutes 30] [--slice 5]
                         [--event-loop auto|uvloop|asyncio] [--no-redis]

The embedded exchange runs in its own process (as in ``bench/live_latency.py``: a
real exchange's CPU and memory are not the service's) and pushes one bar every
``1 / rate`` seconds for ``--minutes``.  This process is the service: the real
ccxt.pro client, the feed with the service's default timing (grace, staleness
watchdog), the integrity gate, the engine, and the publication of every live bar
to a real Redis server (started here, in its own process) through the sink.

It prints, per ``--slice`` minutes of bars: the resident memory (RSS) of this
process at the slice's end, the late symbols and stale events in the slice, and
the p50/p99 from a bar's last closing kline to its signals handed to the sink.
Then RSS at start and end and their ratio, the totals, and whether the targets
hold: RSS flat within 5 %, zero late, a p99 that does not drift (last slice's p99
within 1.5x of the first's).  The last line is JSON.

``--minutes 2 --slice 0.5`` is the short form.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import platform
import resource
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from live_latency import TF, against_exchange, exchange_advancer

from factorcast.adapters.exchange.client import ExchangeClient, resolve_universe
from factorcast.adapters.exchange.source import CcxtSource, FeedTiming, pro_client
from factorcast.adapters.redis.server import EmbeddedRedis
from factorcast.adapters.redis.sink import RedisSink
from factorcast.adapters.sim.binance import ccxt_config
from factorcast.factors import FactorModel, FactorParams
from factorcast.strategy.app.settings import SignalSettings, SourceSettings
from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.publish import PublishingOutput, WireContext
from factorcast.strategy.service import Output, run_pipeline
from factorcast.strategy.strategies import Trend


def rss_bytes() -> int:
    """This process's resident set size now (``VmRSS``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Clock:
    """The last output of the pipeline: when each live bar's signals were handed on."""

    def __init__(self) -> None:
        self.done: dict[int, float] = {}

    async def handle(self, result: StepResult) -> None:
        if result.xs.live:
            self.done[result.ts] = time.perf_counter()

    async def close(self) -> None:
        return None


class StaleCounter:
    """Counts the watchdog's ``feed_stale`` events (they go to the log only)."""

    def __init__(self, source: CcxtSource) -> None:
        self.source = source
        self.events = 0
        self._seen: set[int] = set()

    def sample(self) -> None:
        now = set(self.source.stats.stale_symbols)
        self.events += len(now - self._seen)
        self._seen = now


async def soak(args: argparse.Namespace, conn: Connection) -> dict[str, Any]:
    params = FactorParams()
    base_url = await asyncio.to_thread(conn.recv)
    host, port = base_url.removeprefix("http://").split(":")
    config = ccxt_config(host, int(port))
    client = ExchangeClient("binance", config)
    pro = pro_client("binance", config)
    loop = asyncio.get_running_loop()
    interval = 1.0 / args.rate
    advance = exchange_advancer(conn)

    defaults = SourceSettings()
    clock_rate = args.rate * TF / 1000  # exchange seconds per wall second
    timing = FeedTiming(
        grace_s=defaults.grace_s, stale_after_s=2 * TF / 1000, clock_rate=clock_rate
    )
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(client.close)
        stack.push_async_callback(pro.close)
        symbols = await resolve_universe(client, None, None, None)
        source = CcxtSource(
            client, symbols, "1m", history_bars=params.history_bars, pro=pro, timing=timing
        )
        stack.push_async_callback(source.aclose)
        engine = Engine(
            symbols,
            TF,
            FactorModel(len(symbols), params),
            Trend(symbols),
            SignalSettings().to_view(),
        )
        ctx = WireContext("trend", "sim", "1m", symbols, params.tag())
        clock = Clock()
        outputs: list[Output] = []
        if not args.no_redis:
            state = Path(tempfile.mkdtemp(prefix="fc-soak-"))
            server = await stack.enter_async_context(EmbeddedRedis(directory=state / "redis"))
            sink = await stack.enter_async_context(RedisSink(server.url, spool_dir=state / "spool"))
            outputs.append(PublishingOutput(sink, ctx))
        outputs.append(clock)
        stop = asyncio.Event()
        pipeline = asyncio.create_task(run_pipeline(source, engine, outputs, stop=stop))
        # warm up and catch up: until three bars in a row are done within the interval
        quick = 0
        while quick < 3:
            bar_ts, _, _ = await advance()
            await asyncio.sleep(interval)
            quick = quick + 1 if bar_ts in clock.done else 0
        gc.collect()  # as the service does at its first live bar
        gc.freeze()
        stale = StaleCounter(source)
        late_before = source.gate.stats.late
        rss_start = rss_bytes()
        total = max(1, round(args.minutes * 60 * args.rate))
        per_slice = max(1, round(args.slice * 60 * args.rate))
        measured: list[tuple[int, float, float]] = []
        slices: list[dict[str, Any]] = []
        late_mark, stale_mark = late_before, 0
        started = time.monotonic()
        for k in range(total):
            # hold the rate by absolute deadlines, not by sleeping after the work
            await asyncio.sleep(max(0.0, started + k * interval - time.monotonic()))
            measured.append(await advance())
            stale.sample()
            if (k + 1) % per_slice == 0 or k + 1 == total:
                await asyncio.sleep(interval)  # the slice's last bar comes out
                slices.append(slice_figures(measured[-per_slice:], clock, source, stale))
                slices[-1].update(
                    slice=len(slices),
                    late=source.gate.stats.late - late_mark,
                    stale_events=stale.events - stale_mark,
                )
                late_mark, stale_mark = source.gate.stats.late, stale.events
                print_slice(slices[-1])
        await asyncio.sleep(0.5)
        stop.set()
        await pipeline
    rss_end = slices[-1]["rss_mb"] * 2**20
    lost = sum(1 for ts, _, _ in measured if ts not in clock.done)
    p99 = [s["p99_ms"] for s in slices if s["p99_ms"] is not None]
    return {
        "n_symbols": len(symbols),
        "rate_bars_per_s": args.rate,
        "bars": len(measured),
        "rss_start_mb": round(rss_start / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "rss_end_over_start": round(rss_end / rss_start, 3),
        # the high-water mark, warm-up included (ru_maxrss is in KiB on Linux)
        "rss_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "late_symbols": source.gate.stats.late - late_before,
        "stale_events": stale.events,
        "bars_without_signals": lost,
        "p99_last_over_first": round(p99[-1] / p99[0], 3) if len(p99) > 1 else None,
        "slices": slices,
        "event_loop": type(loop).__module__.split(".")[0],
        "redis": not args.no_redis,
        "python": platform.python_version(),
    }


def slice_figures(
    bars: list[tuple[int, float, float]], clock: Clock, source: CcxtSource, stale: StaleCounter
) -> dict[str, Any]:
    lat = np.array([clock.done[ts] - last for ts, _, last in bars if ts in clock.done]) * 1000
    return {
        "bars": len(bars),
        "rss_mb": round(rss_bytes() / 2**20, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
        "without_signals": len(bars) - int(lat.size),
    }


def print_slice(s: dict[str, Any]) -> None:
    print(
        f"slice {s['slice']:>3}: {s['bars']} bars, RSS {s['rss_mb']} MB, late {s['late']}, "
        f"stale {s['stale_events']}, last closing kline -> signals p50 {s['p50_ms']} ms, "
        f"p99 {s['p99_ms']} ms, bars without signals {s['without_signals']}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", type=int, default=500)
    ap.add_argument("--rate", type=float, default=5.0, help="bars per second")
    ap.add_argument("--minutes", type=float, default=30.0, help="how long to push bars")
    ap.add_argument("--slice", type=float, default=5.0, help="minutes per reported slice")
    ap.add_argument("--event-loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    ap.add_argument("--no-redis", action="store_true", help="stop at the wire JSON")
    ap.add_argument("--log-level", default="warning")
    args = ap.parse_args()
    from factorcast.adapters.observe.logsetup import configure_logging

    configure_logging(args.log_level, "console")
    cpus = sorted(os.sched_getaffinity(0))
    pinned = len(cpus) >= 2
    if pinned:
        os.sched_setaffinity(0, set(cpus[:-1]))
    exchange_cpus = {cpus[-1]} if pinned else None
    result = against_exchange(args.symbols, exchange_cpus, args.event_loop, soak, args)
    drift = result["p99_last_over_first"]
    print(
        f"{result['n_symbols']} symbols at {args.rate:g} bars/s, {result['bars']} bars: "
        f"RSS {result['rss_start_mb']} -> {result['rss_end_mb']} MB "
        f"(x{result['rss_end_over_start']}, peak {result['rss_peak_mb']} MB), "
        f"late symbols {result['late_symbols']}, "
        f"stale events {result['stale_events']}, bars without signals "
        f"{result['bars_without_signals']}, p99 last slice / first {drift}"
    )
    targets = {
        "rss_flat_within_5pct": abs(result["rss_end_over_start"] - 1) <= 0.05,
        "zero_late": result["late_symbols"] == 0,
        "p99_no_drift": drift is None or (math.isfinite(drift) and drift <= 1.5),
    }
    print("targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in targets.items()))
    print(json.dumps({**result, "targets": targets}))


if __name__ == "__main__":
    main()

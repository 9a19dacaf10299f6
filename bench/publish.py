"""Signal publishing: RedisSink throughput against bare redis-py and redis-benchmark, and
the latency from a bar's publication to its last signal reaching a SignalSubscriber.

    python bench/publish.py [--publications 500] [--symbols 100] [--repeat 3] [--tcp] [--sign]

All phases use one private redis-server (EmbeddedRedis, persistence off) on the same
transport (a unix socket, or loopback TCP with ``--tcp``) and the same payloads
(realistic ``factorcast.signal/1`` JSON, about 700 bytes). Throughput figures are
medians over ``--repeat`` runs; the latency phase spreads ``--publications`` over the
runs and its percentiles pool them.

(a) ``sink``: ``RedisSink.publish`` of one publication per bar, back to back: one
    guarded MULTI/EXEC per publication (per signal XADD with an explicit id + PUBLISH,
    one HSET of the exposures, a SET; see adapters/redis/sink.py), several in flight.
    ``server_us``: Redis's CPU time per publication during (a) (INFO cpu: commands,
    protocol and I/O), the part no client can make faster; ``server_ceiling`` is the
    signals/s a client costing nothing would reach with it.
(b) ``bare_xadd``: a redis-py pipeline of the same XADDs (``MAXLEN ~``, ``*`` ids), one
    round trip per publication; ``multi_exec``: the sink's commands (XADD + PUBLISH per
    signal, HSET, SET) as a redis-py MULTI/EXEC pipeline, one round trip per
    publication: what the sink would cost written with redis-py's client.
(c) ``redis_benchmark``: ``redis-benchmark -c 1 -P 100`` XADD of the same payload.
(d) ``latency``: time from just before ``publish`` to the subscriber receiving the last
    signal of that publication (one process, one event loop; the subscriber is blocked
    in XREADGROUP when each publication starts).

The last line is a JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import structlog
from redis.asyncio import Redis
from redis.utils import HIREDIS_AVAILABLE

from factorcast.adapters.redis.server import EmbeddedRedis
from factorcast.adapters.redis.sink import RedisSink
from factorcast.adapters.redis.subscriber import SignalSubscriber
from factorcast.factors import CANONICAL
from factorcast.factors.registry import VALUE
from factorcast.strategy.ports import Publication
from factorcast.strategy.publish import WireContext, signal_object
from factorcast.strategy.wire import iso_ms, sign

T0 = 1_700_000_040_000
BAR_MS = 60_000
MAXLEN = 100_000
KEY = b"bench-signing-key"
WIRE = WireContext("trend", "binance", "1m", (), "fm1-3a5c9e0b")


def signal(symbol: str, bar_ts: int, rng: np.random.Generator, key: bytes | None) -> bytes:
    """One wire object as strategy.publish lays it out, serialized."""
    exp = rng.normal(0.0, 1.0, len(CANONICAL)).tolist()
    exposures: dict[str, float | None] = dict(zip(CANONICAL, exp, strict=True))
    exposures[VALUE] = None
    score = float(np.tanh(rng.normal()))
    obj = signal_object(
        WIRE,
        symbol,
        bar_ts,
        iso_ms(bar_ts),
        iso_ms(bar_ts + BAR_MS + 37),
        "buy" if score > 0.3 else "sell" if score < -0.3 else "hold",
        "buy",
        "hold",
        float(rng.uniform()),
        float(rng.uniform()),
        score,
        exposures,
        {VALUE: "insufficient_history"},
        ["factor_confirm", "low_confidence"],
        float(rng.lognormal()),
    )
    if key is not None:
        obj["sig"] = sign(obj, key)
    return orjson.dumps(obj)


def publications(n: int, symbols: int, start: int, key: bytes | None) -> list[Publication]:
    rng = np.random.default_rng(7 + start)
    names = [f"SYM{j:03d}/USDT" for j in range(symbols)]
    out = []
    for k in range(start, start + n):
        bar_ts = T0 + k * BAR_MS
        sigs = tuple((f"trend:binance:{s}:1m:{bar_ts}", signal(s, bar_ts, rng, key)) for s in names)
        exposures = {
            s: orjson.dumps(
                {
                    "bar_ts": bar_ts,
                    "exposures": dict(zip(CANONICAL, rng.normal(size=6).tolist(), strict=True)),
                    "missing": {},
                    "model": "fm1-3a5c9e0b",
                }
            )
            for s in names
        }
        out.append(Publication(bar_ts, sigs, exposures, iso_ms(bar_ts)))
    return out


async def timed(fn: Callable[[], Coroutine[Any, Any, None]]) -> float:
    t0 = time.perf_counter()
    await fn()
    return time.perf_counter() - t0


# -- (a) the sink --------------------------------------------------------------------------


async def run_sink(url: str, pubs: list[Publication], spool: Path) -> float:
    async with RedisSink(url, spool_dir=spool, prefix="bench-sink", maxlen=MAXLEN) as sink:

        async def go() -> None:
            for pub in pubs:
                await sink.publish(pub)

        elapsed = await timed(go)
    assert sink.stats.published == sum(len(p.signals) for p in pubs), sink.stats
    return elapsed


# -- (b) bare redis-py ---------------------------------------------------------------------


async def run_bare_xadd(client: Redis, pubs: list[Publication]) -> float:
    async def go() -> None:
        for pub in pubs:
            async with client.pipeline(transaction=False) as pipe:
                for _sid, data in pub.signals:
                    pipe.xadd("bench-bare:signals", {"data": data}, maxlen=MAXLEN, approximate=True)
                await pipe.execute()

    return await timed(go)


async def run_multi_exec(client: Redis, pubs: list[Publication]) -> float:
    stream = "bench-multi:signals"

    async def go() -> None:
        for pub in pubs:
            async with client.pipeline(transaction=True) as pipe:
                for i, (_sid, data) in enumerate(pub.signals):
                    pipe.xadd(
                        stream,
                        {"data": data},
                        id=f"{pub.bar_ts}-{i}",
                        maxlen=MAXLEN,
                        approximate=True,
                    )
                for _sid, data in pub.signals:
                    pipe.publish(stream, data)
                pipe.hset("bench-multi:exposures", mapping=dict(pub.exposures))  # type: ignore[arg-type]
                pipe.set("bench-multi:heartbeat", pub.heartbeat, px=180_000)
                await pipe.execute()

    return await timed(go)


# -- (c) redis-benchmark -------------------------------------------------------------------


def run_redis_benchmark(srv: EmbeddedRedis, payload: bytes, n: int) -> float | None:
    exe = shutil.which("redis-benchmark")
    if exe is None:
        return None
    url = srv.url
    if url.startswith("unix://"):
        target = ["-s", url.removeprefix("unix://")]
    else:
        host, _, port = url.removeprefix("redis://").split("/")[0].rpartition(":")
        target = ["-h", host, "-p", port]
    cmd = [exe, *target, "-c", "1", "-P", "100", "-n", str(n), "--csv"]
    cmd += ["XADD", "bench-rb:signals", "MAXLEN", "~", str(MAXLEN), "*", "data", payload.decode()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    # --csv: "test","rps",<6 latency columns>; the test name (our payload) is not
    # escaped, so take the columns from the right.
    last = proc.stdout.strip().splitlines()[-1]
    return float(last.rsplit(",", 7)[1].strip('"'))


# -- (d) latency ---------------------------------------------------------------------------


async def run_latency(
    url: str, pubs: list[Publication], spool: Path, key: bytes | None
) -> tuple[list[float], list[float]]:
    """Per publication: (ms to the last signal received, ms for publish itself)."""
    n = len(pubs[0].signals)
    received_at: dict[int, int] = {}
    seen: dict[int, int] = {}
    done = asyncio.Event()
    latencies: list[float] = []
    publish_ms: list[float] = []

    async def consume(sub: SignalSubscriber) -> None:
        while (r := await sub.get()) is not None:
            bar_ts = r.signal["bar_ts"]
            seen[bar_ts] = seen.get(bar_ts, 0) + 1
            if seen[bar_ts] == n:
                received_at[bar_ts] = time.perf_counter_ns()
                done.set()

    stop = asyncio.Event()
    async with (
        RedisSink(url, spool_dir=spool, prefix="bench-lat", maxlen=MAXLEN) as sink,
        SignalSubscriber(
            url, prefix="bench-lat", group="bench", signing_key=key, count=max(100, n), stop=stop
        ) as sub,
    ):
        consumer = asyncio.create_task(consume(sub), name="bench-consumer")
        try:
            for pub in pubs:
                await asyncio.sleep(0.001)  # the subscriber is back in its blocking read
                done.clear()
                t0 = time.perf_counter_ns()
                await sink.publish(pub)
                t1 = time.perf_counter_ns()
                async with asyncio.timeout(5):
                    await done.wait()
                latencies.append((received_at[pub.bar_ts] - t0) / 1e6)
                publish_ms.append((t1 - t0) / 1e6)
        finally:
            stop.set()
            await consumer
    assert sub.stats.yielded == n * len(pubs) and not sub.stats.rejected, sub.stats
    return latencies, publish_ms


async def server_cpu_s(client: Redis) -> float:
    cpu = await client.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


# -- main ----------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    return round(float(np.percentile(xs, q)), 3)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    key = KEY if args.sign else None
    pubs = publications(args.publications, args.symbols, 10, key)
    per_run = -(-args.publications // args.repeat)  # latency: N publications over all runs
    lat_pubs = publications(per_run, args.symbols, 10 + args.publications, key)
    payload = pubs[0].signals[0][1]
    n_signals = args.publications * args.symbols
    figures: dict[str, list[float]] = {
        "sink": [],
        "bare_xadd": [],
        "multi_exec": [],
        "redis_benchmark": [],
        "server_us": [],
        "sink_vs_rb": [],
    }
    latencies: list[float] = []
    publish_ms: list[float] = []
    workdir = Path(tempfile.mkdtemp(prefix="fc-bench-"))
    try:
        async with EmbeddedRedis(unix_socket=not args.tcp, persistent=False) as srv:
            client = Redis.from_url(srv.url)
            try:
                redis_version = (await client.info("server"))["redis_version"]
                for run in range(args.repeat):
                    await client.flushall()
                    # a few publications first: connections, pipelines, allocator warm
                    await run_sink(srv.url, pubs[:5], workdir / f"warm{run}")
                    await client.flushall()
                    cpu0 = await server_cpu_s(client)
                    s = await run_sink(srv.url, pubs, workdir / f"sink{run}")
                    figures["sink"].append(n_signals / s)
                    cpu = await server_cpu_s(client) - cpu0
                    figures["server_us"].append(cpu * 1e6 / len(pubs))
                    figures["bare_xadd"].append(n_signals / await run_bare_xadd(client, pubs))
                    s = await run_multi_exec(client, pubs)
                    figures["multi_exec"].append(n_signals / s)
                    rps = await asyncio.to_thread(
                        run_redis_benchmark, srv, payload, max(200_000, n_signals)
                    )
                    if rps is not None:
                        figures["redis_benchmark"].append(rps)
                        # Same-run ratios: load from elsewhere moves both figures.
                        figures["sink_vs_rb"].append(figures["sink"][-1] / rps)
                    await client.flushall()
                    lat, pub_ms = await run_latency(srv.url, lat_pubs, workdir / f"lat{run}", key)
                    latencies += lat
                    publish_ms += pub_ms
                    print(
                        f"run {run + 1}: sink {figures['sink'][-1]:,.0f}/s, bare xadd "
                        f"{figures['bare_xadd'][-1]:,.0f}/s, redis-py multi/exec "
                        f"{figures['multi_exec'][-1]:,.0f}/s, redis-benchmark "
                        + (f"{rps:,.0f}/s" if rps is not None else "n/a")
                        + f", latency p99 {pct(lat, 99)} ms",
                        flush=True,
                    )
            finally:
                await client.aclose()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    med = {k: statistics.median(v) if v else None for k, v in figures.items()}
    sink, bare, rb = med["sink"], med["bare_xadd"], med["redis_benchmark"]
    assert sink is not None and bare is not None
    return {
        "symbols": args.symbols,
        "publications": args.publications,
        "latency_samples": len(latencies),
        "repeat": args.repeat,
        "transport": "tcp" if args.tcp else "unix",
        "signed": args.sign,
        "payload_bytes": len(payload),
        "sink_signals_per_s": round(sink),
        "bare_xadd_signals_per_s": round(bare),
        "multi_exec_signals_per_s": round(med["multi_exec"] or 0),
        "server_us_per_publication": round(med["server_us"] or 0),
        "server_ceiling_vs_redis_benchmark": None
        if rb is None or not med["server_us"]
        else round(args.symbols / (med["server_us"] / 1e6) / rb, 3),
        "redis_benchmark_xadd_per_s": None if rb is None else round(rb),
        "sink_vs_redis_benchmark": None if rb is None else round(med["sink_vs_rb"] or 0, 3),
        "sink_vs_bare_xadd": round(sink / bare, 3),
        "multi_exec_vs_redis_benchmark": None
        if rb is None or not med["multi_exec"]
        else round(med["multi_exec"] / rb, 3),
        "latency_ms_p50": pct(latencies, 50),
        "latency_ms_p99": pct(latencies, 99),
        "latency_ms_max": pct(latencies, 100),
        "publish_ms_p50": pct(publish_ms, 50),
        "publish_ms_p99": pct(publish_ms, 99),
        "redis": redis_version,
        "python": platform.python_version(),
        "hiredis": HIREDIS_AVAILABLE,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--publications", type=int, default=500, help="per phase and run")
    ap.add_argument("--symbols", type=int, default=100, help="signals per publication")
    ap.add_argument("--repeat", type=int, default=3, help="runs; throughput is the median")
    ap.add_argument("--tcp", action="store_true", help="loopback TCP instead of a unix socket")
    ap.add_argument("--sign", action="store_true", help="HMAC-sign signals; verify on receipt")
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    r = asyncio.run(main_async(args))
    if r["redis_benchmark_xadd_per_s"] is None:
        print("redis-benchmark: not on PATH, (c) not measured")
    else:
        print(
            f"(c) redis-benchmark XADD -c 1 -P 100: {r['redis_benchmark_xadd_per_s']:,}/s; "
            f"sink / redis-benchmark (median of the runs' ratios) = {r['sink_vs_redis_benchmark']} "
            "(target >= 0.5)"
        )
    print(
        f"(a) sink: {r['sink_signals_per_s']:,} signals/s ({r['symbols']} per publication, "
        f"{r['payload_bytes']} B each, {r['transport']} socket, medians of {r['repeat']}); "
        f"Redis spends {r['server_us_per_publication']} us of CPU per publication, "
        f"so a client costing nothing would reach {r['server_ceiling_vs_redis_benchmark']} "
        "of redis-benchmark"
    )
    print(
        f"(b) bare XADD pipeline: {r['bare_xadd_signals_per_s']:,}/s (sink / bare = "
        f"{r['sink_vs_bare_xadd']}); the sink's commands in a redis-py MULTI/EXEC: "
        f"{r['multi_exec_signals_per_s']:,}/s ({r['multi_exec_vs_redis_benchmark']} of "
        f"redis-benchmark); hiredis {'on' if r['hiredis'] else 'off'}"
    )
    print(
        f"(d) publish -> last of {r['symbols']} received: p50 {r['latency_ms_p50']} ms, "
        f"p99 {r['latency_ms_p99']} ms (target <= 10), max {r['latency_ms_max']} ms; "
        f"publish itself p50 {r['publish_ms_p50']} ms"
    )
    with contextlib.suppress(Exception):
        print(f"load average {os.getloadavg()}, {os.cpu_count()} cpus")
    print(json.dumps(r))


if __name__ == "__main__":
    main()

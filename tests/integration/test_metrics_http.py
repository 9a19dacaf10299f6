"""Metrics and MetricsServer: a real HTTP scrape over loopback, parsed as Prometheus does.

Every :class:`Metrics` method is exercised, then ``/metrics`` is fetched with an
aiohttp client and parsed with ``prometheus_client``'s own parsers; ``/healthz``
and ``/readyz`` are hit on a real bound port.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Mapping

import aiohttp
import ccxt
import numpy as np
import pytest
from numpy.typing import NDArray
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from factorcast.adapters.observe.http import DEFAULT_HOST, DEFAULT_PORT, MetricsServer, Readiness
from factorcast.adapters.observe.metrics import Metrics
from factorcast.factors import CANONICAL

pytestmark = pytest.mark.integration

NOW = 1_700_000_130.0  # the injected clock
BAR_CLOSE = 1_700_000_100.0
SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT")

#: The families the service exposes (counters without ``_total``, as the parser names them).
FAMILIES = {
    "factorcast_bars_ingested": "counter",
    "factorcast_bars_rejected": "counter",
    "factorcast_gaps_backfilled": "counter",
    "factorcast_late_bars": "counter",
    "factorcast_exchange_errors": "counter",
    "factorcast_reconnects": "counter",
    "factorcast_rest_fallbacks": "counter",
    "factorcast_feed_faults": "counter",
    "factorcast_late_bars_amended": "counter",
    "factorcast_feed_degraded": "gauge",
    "factorcast_cross_section_completeness": "gauge",
    "factorcast_bar_lag_seconds": "gauge",
    "factorcast_last_bar_timestamp_seconds": "gauge",
    "factorcast_engine_step_duration_seconds": "histogram",
    "factorcast_signals": "counter",
    "factorcast_publish_latency_seconds": "histogram",
    "factorcast_publish_failures": "counter",
    "factorcast_spool_depth": "gauge",
    "factorcast_spool_bytes": "gauge",
    "factorcast_spool_full": "counter",
    "factorcast_spool_backlog_depth": "gauge",
    "factorcast_spool_backlog_bytes": "gauge",
    "factorcast_publications_dropped": "counter",
    "factorcast_queue_depth": "gauge",
    "factorcast_build_info": "gauge",
    "factorcast_ready": "gauge",
    "factorcast_exposure": "gauge",
    "factorcast_factor_return": "gauge",
    "factorcast_factor_ic": "gauge",
    "factorcast_factor_icir": "gauge",
    "factorcast_factor_cum_return": "gauge",
    "factorcast_factor_state": "gauge",
    "factorcast_factor_alerts": "counter",
}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def exposures() -> NDArray[np.float64]:
    """A (symbols x factors) matrix with one NaN."""
    m = np.arange(len(SYMBOLS) * len(CANONICAL), dtype=np.float64).reshape(len(SYMBOLS), -1)
    m -= m.mean()
    m /= 10.0
    m[1, 2] = np.nan
    return m


def exercise(metrics: Metrics) -> None:
    """Call every method once or more, with known values."""
    metrics.bars_ingested(5)
    metrics.bars_ingested()
    metrics.bar_rejected("nan_price", 2)
    metrics.bar_rejected("high_below_low")
    metrics.gaps_backfilled(3)
    metrics.late_bars()
    metrics.exchange_error(ccxt.RateLimitExceeded("binance 429 Too Many Requests"))
    metrics.exchange_error(ccxt.NetworkError("connection reset"))
    metrics.exchange_error("NetworkError")
    metrics.reconnect("ws")
    metrics.reconnect("ws")
    metrics.reconnect("rest")
    metrics.rest_fallback()
    metrics.feed_fault("subscription_refused")
    metrics.late_bars_amended(2)
    metrics.feed_fault("task_restarted", 3)
    metrics.set_feed_degraded(True)
    metrics.cross_section(present=45, universe=50)
    metrics.bar_processed(BAR_CLOSE)
    metrics.step_duration(0.0003)
    metrics.step_duration(0.002)
    metrics.signals({"buy": 3, "sell": 1, "hold": 46})
    metrics.signals({"buy": 1, "sell": 0})
    metrics.publish_latency(0.0004)
    metrics.publish_latency(1.5)
    metrics.publish_failure()
    metrics.set_spool(depth=7, nbytes=4096)
    metrics.spool_full()
    metrics.spool_full(2)
    metrics.set_backlog(depth=2, nbytes=512)
    metrics.dropped()
    metrics.set_queue_depth("cross_sections", 2)
    metrics.set_queue_depth("results", 0)
    metrics.set_build_info(version="0.0.1", model="old", exchange="binance", timeframe="1m")
    metrics.set_build_info(version="0.1.0", model="fc6-abc123", exchange="binance", timeframe="1m")
    metrics.set_ready(False)
    metrics.set_ready(True)
    metrics.set_exposures(SYMBOLS, CANONICAL, exposures())


async def fetch(url: str, headers: Mapping[str, str] | None = None) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session,
        session.get(url, headers=headers) as resp,
    ):
        return resp.status, resp.headers["Content-Type"], await resp.text()


async def scrape(server: MetricsServer) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, labels) -> value) from a real GET /metrics."""
    status, content_type, text = await fetch(f"{server.url}/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    assert "version=0.0.4" in content_type
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
async def metrics_server() -> AsyncIterator[tuple[Metrics, MetricsServer]]:
    metrics = Metrics(clock=lambda: NOW)
    async with MetricsServer(metrics.registry, port=0) as server:
        yield metrics, server


async def test_scrape_shows_every_metric_with_its_value(
    metrics_server: tuple[Metrics, MetricsServer],
) -> None:
    metrics, server = metrics_server
    exercise(metrics)
    types, s = await scrape(server)

    ours = {k: v for k, v in types.items() if not k.endswith("_created")}
    assert ours == FAMILIES

    assert value(s, "factorcast_bars_ingested_total") == 6
    assert value(s, "factorcast_bars_rejected_total", reason="nan_price") == 2
    assert value(s, "factorcast_bars_rejected_total", reason="high_below_low") == 1
    assert value(s, "factorcast_gaps_backfilled_total") == 3
    assert value(s, "factorcast_late_bars_total") == 1
    assert value(s, "factorcast_exchange_errors_total", type="RateLimitExceeded") == 1
    assert value(s, "factorcast_exchange_errors_total", type="NetworkError") == 2
    assert value(s, "factorcast_reconnects_total", transport="ws") == 2
    assert value(s, "factorcast_reconnects_total", transport="rest") == 1
    assert value(s, "factorcast_rest_fallbacks_total") == 1
    assert value(s, "factorcast_feed_faults_total", kind="subscription_refused") == 1
    assert value(s, "factorcast_feed_faults_total", kind="task_restarted") == 3
    assert value(s, "factorcast_feed_degraded") == 1
    assert value(s, "factorcast_late_bars_amended_total") == 2
    assert value(s, "factorcast_cross_section_completeness") == pytest.approx(0.9)
    assert value(s, "factorcast_last_bar_timestamp_seconds") == BAR_CLOSE
    assert value(s, "factorcast_bar_lag_seconds") == NOW - BAR_CLOSE

    step = "factorcast_engine_step_duration_seconds"
    assert value(s, f"{step}_count") == 2
    assert value(s, f"{step}_sum") == pytest.approx(0.0023)
    assert value(s, f"{step}_bucket", le="5e-05") == 0
    assert value(s, f"{step}_bucket", le="0.0005") == 1
    assert value(s, f"{step}_bucket", le="1.0") == 2
    assert value(s, f"{step}_bucket", le="+Inf") == 2

    assert value(s, "factorcast_signals_total", action="buy") == 4
    assert value(s, "factorcast_signals_total", action="sell") == 1
    assert value(s, "factorcast_signals_total", action="hold") == 46

    pub = "factorcast_publish_latency_seconds"
    assert value(s, f"{pub}_count") == 2
    assert value(s, f"{pub}_bucket", le="0.0001") == 0
    assert value(s, f"{pub}_bucket", le="0.0005") == 1
    assert value(s, f"{pub}_bucket", le="1.0") == 1
    assert value(s, f"{pub}_bucket", le="5.0") == 2
    assert value(s, "factorcast_publish_failures_total") == 1

    assert value(s, "factorcast_spool_depth") == 7
    assert value(s, "factorcast_spool_bytes") == 4096
    assert value(s, "factorcast_spool_full_total") == 3
    assert value(s, "factorcast_spool_backlog_depth") == 2
    assert value(s, "factorcast_spool_backlog_bytes") == 512
    assert value(s, "factorcast_publications_dropped_total") == 1
    assert value(s, "factorcast_queue_depth", queue="cross_sections") == 2
    assert value(s, "factorcast_queue_depth", queue="results") == 0

    build = [k for k in s if k[0] == "factorcast_build_info"]
    assert build == [
        (
            "factorcast_build_info",
            frozenset(
                {
                    ("version", "0.1.0"),
                    ("model", "fc6-abc123"),
                    ("exchange", "binance"),
                    ("timeframe", "1m"),
                }
            ),
        )
    ]
    assert s[build[0]] == 1
    assert value(s, "factorcast_ready") == 1

    matrix = exposures()
    for i, symbol in enumerate(SYMBOLS):
        for j, factor in enumerate(CANONICAL):
            got = value(s, "factorcast_exposure", symbol=symbol, factor=factor)
            if math.isnan(matrix[i, j]):
                assert got is None, "a NaN exposure has no series"
            else:
                assert got == pytest.approx(matrix[i, j])


async def test_openmetrics_when_the_scraper_asks_for_it(
    metrics_server: tuple[Metrics, MetricsServer],
) -> None:
    metrics, server = metrics_server
    exercise(metrics)
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    status, content_type, text = await fetch(f"{server.url}/metrics", {"Accept": accept})
    assert status == 200
    assert content_type.startswith("application/openmetrics-text")
    assert text.endswith("# EOF\n")
    families = {f.name: f for f in openmetrics_families(text)}
    assert families["factorcast_bars_ingested"].type == "counter"
    assert families["factorcast_engine_step_duration_seconds"].type == "histogram"


async def test_healthz(metrics_server: tuple[Metrics, MetricsServer]) -> None:
    _, server = metrics_server
    status, content_type, text = await fetch(f"{server.url}/healthz")
    assert (status, text.strip()) == (200, "ok")
    assert content_type.startswith("text/plain")


async def test_readyz_ready_with_a_sync_check() -> None:
    def check() -> Readiness:
        return True, {"data_age_s": 12.5, "redis": "up"}

    async with MetricsServer(CollectorRegistry(), check, port=0) as server:
        status, content_type, text = await fetch(f"{server.url}/readyz")
    assert status == 200
    assert content_type == "application/json"
    assert json.loads(text) == {"ready": True, "details": {"data_age_s": 12.5, "redis": "up"}}


async def test_readyz_not_ready_with_an_async_check_gives_503_and_reasons() -> None:
    calls = 0

    async def check() -> Readiness:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return False, {"data": "stale: last bar 400 s ago", "redis": "down, spool full"}

    async with MetricsServer(CollectorRegistry(), check, port=0) as server:
        status, content_type, text = await fetch(f"{server.url}/readyz")
    assert status == 503
    assert content_type == "application/json"
    assert json.loads(text) == {
        "ready": False,
        "details": {"data": "stale: last bar 400 s ago", "redis": "down, spool full"},
    }
    assert calls == 1


async def test_readyz_a_failing_check_is_not_ready_and_keeps_its_message_out() -> None:
    def check() -> Readiness:
        raise ConnectionError("redis://:hunter2@redis:6379 refused")

    async with MetricsServer(CollectorRegistry(), check, port=0) as server:
        status, _, text = await fetch(f"{server.url}/readyz")
    assert status == 503
    assert json.loads(text) == {
        "ready": False,
        "details": {"readiness_check": "failed: ConnectionError"},
    }
    assert "hunter2" not in text


async def test_readyz_a_slow_check_times_out_as_not_ready() -> None:
    async def check() -> Readiness:
        await asyncio.sleep(10)
        return True, {}

    async with MetricsServer(CollectorRegistry(), check, port=0, ready_timeout_s=0.05) as server:
        status, _, text = await fetch(f"{server.url}/readyz")
        health, _, _ = await fetch(f"{server.url}/healthz")
    assert status == 503
    assert json.loads(text) == {"ready": False, "details": {"readiness_check": "timed out"}}
    assert health == 200


async def test_per_symbol_exposures_follow_the_last_cross_section() -> None:
    metrics = Metrics(per_symbol_exposures=True)
    async with MetricsServer(metrics.registry, port=0) as server:
        metrics.set_exposures(SYMBOLS, CANONICAL, exposures())
        _, first = await scrape(server)
        assert sum(k[0] == "factorcast_exposure" for k in first) == exposures().size - 1

        nxt = exposures()
        nxt[1, 2] = 0.25  # was NaN: the series appears
        nxt[0, :] = np.nan  # the first symbol has no exposures now: its series go
        metrics.set_exposures(SYMBOLS, CANONICAL, nxt)
        _, second = await scrape(server)
    assert value(second, "factorcast_exposure", symbol=SYMBOLS[1], factor=CANONICAL[2]) == 0.25
    assert not [k for k in second if ("symbol", SYMBOLS[0]) in k[1]]
    assert sum(k[0] == "factorcast_exposure" for k in second) == 2 * len(CANONICAL)
    assert set(metrics.exposure_series()) == {(s, f) for s in SYMBOLS[1:] for f in CANONICAL}

    with pytest.raises(ValueError, match="shape"):
        metrics.set_exposures(SYMBOLS, CANONICAL, np.zeros((2, len(CANONICAL))))


async def test_per_symbol_exposures_off_exports_no_exposure_series() -> None:
    metrics = Metrics(per_symbol_exposures=False)
    exercise(metrics)
    async with MetricsServer(metrics.registry, port=0) as server:
        types, samples = await scrape(server)
    assert "factorcast_exposure" not in types
    assert not [k for k in samples if k[0] == "factorcast_exposure"]
    assert metrics.exposure_series() == ()
    assert value(samples, "factorcast_bars_ingested_total") == 6  # the rest is there


async def test_two_instances_with_separate_registries_do_not_collide() -> None:
    a, b = Metrics(), Metrics()  # each builds its own registry
    assert a.registry is not b.registry
    a.bars_ingested(10)
    b.bars_ingested(1)
    a.exchange_error("NetworkError")
    async with (
        MetricsServer(a.registry, port=0) as server_a,
        MetricsServer(b.registry, port=0) as server_b,
    ):
        assert server_a.port != server_b.port
        _, sa = await scrape(server_a)
        _, sb = await scrape(server_b)
    assert value(sa, "factorcast_bars_ingested_total") == 10
    assert value(sb, "factorcast_bars_ingested_total") == 1
    assert value(sb, "factorcast_exchange_errors_total", type="NetworkError") is None
    # The process-global registry is never touched.
    assert REGISTRY.get_sample_value("factorcast_bars_ingested_total") is None
    # One registry takes one Metrics: a second would duplicate every series.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Metrics(a.registry)


def test_labels_stay_in_their_closed_sets() -> None:
    metrics = Metrics()
    with pytest.raises(ValueError, match="action"):
        metrics.signals({"long": 1})
    with pytest.raises(ValueError, match="transport"):
        metrics.reconnect("grpc")  # type: ignore[arg-type]


async def test_port_defaults_and_a_taken_port() -> None:
    server = MetricsServer(CollectorRegistry())
    assert (server.host, DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", "127.0.0.1", 9464)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.port
    async with MetricsServer(CollectorRegistry(), port=0) as first:
        with pytest.raises(OSError):
            async with MetricsServer(CollectorRegistry(), port=first.port):
                pass
        status, _, _ = await fetch(f"{first.url}/healthz")
        assert status == 200

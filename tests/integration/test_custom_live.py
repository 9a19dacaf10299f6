"""Custom factors in `factorcast run` (ANALYTICS.md section 9): recorded candles served
live by the embedded exchange, signals to a real redis-server, a real scrape of
/metrics.  An expression and a plug-in are in every signal's exposures (or missing,
with their reason), in the exposures hash, in the per-symbol exposure gauges, in the
factor returns and health, exactly as an offline engine over the same files has
them, and the model tag is that of the configuration with them."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from factorcast.adapters.files.recorded import load_directory
from factorcast.adapters.files.replay import Panel, ReplaySource
from factorcast.adapters.redis.server import EmbeddedRedis
from factorcast.factors import REASON_LABELS
from factorcast.strategy.app.settings import load_settings
from factorcast.strategy.app.wiring import build_engine
from factorcast.strategy.engine import StepResult
from factorcast.strategy.service import run_pipeline
from tests.integration.test_service_redis import Service, wait_until

pytestmark = pytest.mark.integration

CONFIG = """
[signals.weights]
market = 0.10

[factors.custom.rev]
expr = "-1 * ts_sum(returns, 12)"
weight = 0.10
direction = 1
words = ["recent winners", "recent losers"]

[factors.custom.rng]
mode = "plugin"
class = "tests.custom_plugins:RangeMean"
params = { window = 4 }
direction = -1
"""
CUSTOM = ("rev", "rng")
#: short analytics windows: a short warm-up
ENV = {
    "FACTORCAST_HEALTH__WINDOW": "20",
    "FACTORCAST_HEALTH__MIN_OBS": "5",
    "FACTORCAST_RISK__WINDOW": "30",
    "FACTORCAST_RISK__MIN_OBS": "10",
}
LIVE_BARS = 30


class Collect:
    def __init__(self) -> None:
        self.results: list[StepResult] = []

    async def handle(self, result: StepResult) -> None:
        self.results.append(result)

    async def close(self) -> None:
        pass


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_custom_factors_flow_through_signals_redis_and_metrics(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "custom.toml"
    config.write_text(CONFIG)
    with EmbeddedRedis() as server:
        service = Service(
            "--sim-data", str(shared_data), "--sim-speed", "8",
            "--max-bars", str(LIVE_BARS), "--config", str(config),
            "--exposures-out", str(tmp_path / "exposures.csv"),
            env={"FACTORCAST_REDIS__URL": server.url, **ENV},
        )  # fmt: skip
        r = redis.Redis.from_url(server.url)
        try:
            wait_until(lambda: r.xlen("factorcast:signals") >= 50, timeout=180)
            url = service.events("metrics_serving")[0]["url"]
            samples = scrape(url)
            assert service.wait(180) == 0, service.output[-3000:]
            signals = [json.loads(f[b"data"]) for _, f in r.xrange("factorcast:signals")]
            states = {
                k.decode(): json.loads(v) for k, v in r.hgetall("factorcast:exposures").items()
            }
            returns = [json.loads(f[b"data"]) for _, f in r.xrange("factorcast:factor_returns")]
            health = {k.decode(): json.loads(v) for k, v in r.hgetall("factorcast:health").items()}
        finally:
            r.close()

    # the offline engine of the same configuration over the same files
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(config)
    candles = load_directory(shared_data)
    panel = Panel.from_recorded(candles)
    engine = build_engine(settings, panel.symbols, candles.timeframe_ms, amend_bars=0)
    out = Collect()
    asyncio.run(run_pipeline(ReplaySource(panel), engine, [out]))
    symbols = panel.symbols
    model = engine.model.tag
    assert engine.model.names[6:] == CUSTOM
    assert model != build_engine(load_settings(), symbols, candles.timeframe_ms).model.tag

    # the embedded exchange re-times the candles by whole bars; the live warm-up starts
    # at the first recorded bar, as the offline run does
    written = pd.read_csv(tmp_path / "exposures.csv", usecols=["timestamp"])
    shift = int(written["timestamp"].min()) - out.results[0].ts
    assert shift > 0 and shift % candles.timeframe_ms == 0
    by_ts = {s.ts + shift: s for s in out.results}
    assert len({s["bar_ts"] for s in signals}) == LIVE_BARS

    # signals: the custom factors' exposures, or null and the reason, and the tag
    finite = 0
    for s in signals:
        assert s["model"] == model
        step = by_ts[s["bar_ts"]]
        i = symbols.index(s["symbol"])
        assert list(s["exposures"])[6:] == list(CUSTOM)
        for name in CUSTOM:
            k = step.factors.names.index(name)
            e = float(step.factors.exposure[i, k])
            if np.isfinite(e):
                assert s["exposures"][name] == e and name not in s["missing"]
                finite += 1
            else:
                assert s["exposures"][name] is None
                assert s["missing"][name] == REASON_LABELS[step.factors.reason[i, k]]
    assert finite > len(signals)  # most symbols have both

    # the exposures hash: the latest of each symbol, with the custom factors
    for symbol, state in states.items():
        step, i = by_ts[state["bar_ts"]], symbols.index(symbol)
        assert state["model"] == model
        for name in CUSTOM:
            e = float(step.factors.exposure[i, step.factors.names.index(name)])
            assert state["exposures"][name] == (e if np.isfinite(e) else None)

    # factor returns and health carry them
    assert all(set(CUSTOM) <= set(e["returns"]) for e in returns)
    assert set(CUSTOM) <= set(health)
    last = by_ts[returns[-1]["bar_ts"]]
    assert last.analytics is not None
    names = last.analytics.returns.names
    for name in CUSTOM:
        want = float(last.analytics.returns.returns[names.index(name)])
        got: Any = returns[-1]["returns"][name]
        assert got == (want if np.isfinite(want) else None)

    # the metrics of the bar the scrape saw
    closed = samples[("factorcast_last_bar_timestamp_seconds", frozenset())]
    step = by_ts[round(closed * 1000) - candles.timeframe_ms]
    gauges = {
        dict(labels)["symbol"]: value
        for (metric, labels), value in samples.items()
        if metric == "factorcast_exposure" and dict(labels)["factor"] == "rev"
    }
    k = step.factors.names.index("rev")
    want_gauges = {
        symbol: float(step.factors.exposure[i, k])
        for i, symbol in enumerate(symbols)
        if np.isfinite(step.factors.exposure[i, k])
    }
    assert gauges == want_gauges and gauges
    build = next(labels for (m, labels), _ in samples.items() if m == "factorcast_build_info")
    assert dict(build)["model"] == model
    states_seen = {
        dict(labels)["state"]
        for (m, labels), v in samples.items()
        if m == "factorcast_factor_state" and dict(labels)["factor"] in CUSTOM and v == 1
    }
    assert len(states_seen) >= 1

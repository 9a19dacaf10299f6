"""The analytics of `factorcast run` on Redis (ANALYTICS.md section 12), through the
real ccxt client, the embedded exchange and a real redis-server.

- Recorded candles served live give, on Redis, exactly the factor returns, risk model,
  health and alerts an offline engine computes over the same files through the
  replay source.  Exactly, not to a tolerance: the live warm-up starts at the first
  recorded bar, as the offline run does, and both engines take the same grid steps
  with the same inputs (the exposures are bit for bit those of replay,
  test_parity.py), so every running sum sees the same additions in the same order.
  The `factorcast factor risk` and `factor returns` commands over the files agree.
- An alert is published once per transition across a SIGKILL and a restart, and the
  metrics a scrape of /metrics shows are those the engine computed.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import tempfile
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
from factorcast.factors.analytics.health import HealthState
from factorcast.strategy.analytics_wire import (
    alert_event,
    factor_returns_event,
    health_objects,
    risk_object,
)
from factorcast.strategy.app.settings import load_settings
from factorcast.strategy.app.wiring import build_engine, warmup_bars
from factorcast.strategy.engine import StepResult
from factorcast.strategy.service import run_pipeline
from tests.conftest import factorcast
from tests.integration.test_service_redis import Service, wait_until

pytestmark = pytest.mark.integration

LIVE_BARS = 150


class Collect:
    def __init__(self) -> None:
        self.results: list[StepResult] = []

    async def handle(self, result: StepResult) -> None:
        self.results.append(result)

    async def close(self) -> None:
        pass


def offline(data: Path) -> tuple[list[StepResult], tuple[str, ...]]:
    """The offline engine (no late bars: amend_bars=0) with analytics, over the files
    through the replay source, on the default settings `factorcast run` has."""
    candles = load_directory(data)
    panel = Panel.from_recorded(candles)
    engine = build_engine(load_settings(), panel.symbols, candles.timeframe_ms, amend_bars=0)
    out = Collect()
    asyncio.run(run_pipeline(ReplaySource(panel), engine, [out]))
    return out.results, panel.symbols


def xrange_data(r: redis.Redis, key: str) -> list[dict[str, Any]]:
    return [json.loads(fields[b"data"]) for _, fields in r.xrange(key)]


def test_live_analytics_on_redis_equal_the_offline_engine(
    shared_data: Path, tmp_path: Path
) -> None:
    with EmbeddedRedis() as server:
        proc = factorcast(
            "run",
            "--sim-data",
            str(shared_data),
            "--sim-speed",
            "100",
            "--max-bars",
            str(LIVE_BARS),
            "--quiet",
            "--exposures-out",
            str(tmp_path / "exposures.csv"),
            env={"FACTORCAST_REDIS__URL": server.url, "FACTORCAST_LOG__FORMAT": "json"},
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        r = redis.Redis.from_url(server.url)
        try:
            returns = xrange_data(r, "factorcast:factor_returns")
            alerts = xrange_data(r, "factorcast:alerts")
            risk = json.loads(r.get("factorcast:risk") or b"null")
            health = {k.decode(): json.loads(v) for k, v in r.hgetall("factorcast:health").items()}
            signals = xrange_data(r, "factorcast:signals")
            states = {
                k.decode(): json.loads(v) for k, v in r.hgetall("factorcast:exposures").items()
            }
        finally:
            r.close()

    steps, symbols = offline(shared_data)
    live_start = int(pd.read_csv(tmp_path / "exposures.csv", usecols=["timestamp"]).min().iloc[0])
    shift = live_start - steps[0].ts  # the embedded exchange re-times by whole bars
    assert shift > 0 and shift % 300_000 == 0
    by_ts = {s.ts + shift: s for s in steps}
    model = signals[0]["model"]

    # the warm-up covers the model's history and the analytics' windows
    events = [json.loads(x) for x in proc.stderr.splitlines() if x.startswith("{")]
    started = next(e for e in events if e["event"] == "service_started")
    st = load_settings()
    windows = max(st.health.window + max(st.health.horizons) + 1, st.risk.window)
    assert started["warmup_bars"] == warmup_bars(st) == st.factors.history_bars + windows

    # one factor-returns entry per live bar, each the offline engine's, exactly
    assert len(returns) == LIVE_BARS
    for event in returns:
        step = by_ts[event["bar_ts"]]
        assert step.analytics is not None
        assert event == factor_returns_event(event["bar_ts"], step.analytics.returns, model)
    assert sum(v is not None for e in returns for v in e["returns"].values()) > 0.9 * 7 * len(
        returns
    )

    last_ts = returns[-1]["bar_ts"]
    last = by_ts[last_ts]
    assert last.analytics is not None
    assert risk == risk_object(last_ts, last.analytics.risk, symbols, model)
    assert risk["covariance"] is not None and risk["reason"] == "ok"
    want_health = {
        name: {"bar_ts": last_ts, **obj, "model": model}
        for name, obj in health_objects(last.analytics.health, last.factors.names).items()
    }
    assert health == want_health
    assert all(h["mean_ic"] is not None for h in health.values())

    # the alerts the offline engine raised over the live bars, each once
    first_live = returns[0]["bar_ts"]
    want_alerts = [
        alert_event(a, model)
        for s in steps
        if s.ts + shift >= first_live and s.ts + shift <= last_ts
        for a in s.alerts
    ]
    for a in want_alerts:
        a.update(bar_ts=a["bar_ts"] + shift, id=f"{a['kind']}:{a['factor']}:{a['bar_ts'] + shift}")
    assert [{k: v for k, v in a.items() if k != "bar_time"} for a in alerts] == want_alerts

    # ... and the same as the `factorcast factor` commands give over the files
    cli = factorcast(
        "factor", "risk", "--data", str(shared_data), "--at", str(last_ts - shift), "--json"
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert json.loads(cli.stdout) == {**risk, "bar_ts": last_ts - shift, "model": model}
    cli = factorcast(
        "factor", "returns", "--data", str(shared_data), "--out", str(tmp_path / "fr.csv")
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    table = pd.read_csv(tmp_path / "fr.csv", keep_default_na=False, na_values=[""])
    rows = table.set_index(["timestamp", "factor"])
    for event in returns:
        for name, value in event["returns"].items():
            row = rows.loc[(event["bar_ts"] - shift, name)]
            want = [np.nan if v is None else v for v in (value, event["r2"])]
            assert np.array_equal([row["return"], row["r2"]], want, equal_nan=True)
            assert row["n"] == event["n"]
            assert row["reason"] == event["reasons"].get(name, "ok")

    # signals and the exposures hash carry the bar's close
    for s in signals:
        step = by_ts[s["bar_ts"]]
        i = symbols.index(s["symbol"])
        assert step.xs.present[i] and s["close"] == float(step.xs.close[i])
    for symbol, state in states.items():
        step, i = by_ts[state["bar_ts"]], symbols.index(symbol)
        assert state["close"] == (float(step.xs.close[i]) if step.xs.present[i] else None)


# -- alerts across a crash, and the metrics ----------------------------------------------

SYMBOLS = 12
BARS = 40
#: short windows, so that health states change within the run
ANALYTICS_ENV = {
    "FACTORCAST_SIM__SYMBOLS": str(SYMBOLS),
    "FACTORCAST_HEALTH__WINDOW": "20",
    "FACTORCAST_HEALTH__MIN_OBS": "5",
    "FACTORCAST_RISK__WINDOW": "30",
    "FACTORCAST_RISK__MIN_OBS": "10",
    "FACTORCAST_SIM__EPOCH_MS": str(1_790_000_000_000 // 60_000 * 60_000),
}


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def series(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def labels(**kw: str) -> frozenset[tuple[str, str]]:
    return frozenset(kw.items())


def test_alerts_once_across_a_crash_and_metrics_over_http() -> None:
    with EmbeddedRedis() as server:
        r = redis.Redis.from_url(server.url)
        try:
            # the reference: one run that never stops, its metrics scraped while it runs
            ref = Service(
                "--sim-speed",
                "10",
                env={
                    **ANALYTICS_ENV,
                    "FACTORCAST_REDIS__URL": server.url,
                    "FACTORCAST_REDIS__PREFIX": "ref",
                    "FACTORCAST_STATE_DIR": tempfile.mkdtemp(),
                },
            )
            try:
                wait_until(lambda: r.xlen("ref:signals") >= BARS * SYMBOLS, timeout=120)
                url = ref.events("metrics_serving")[0]["url"]
                got: dict[str, Any] = {}

                def settled() -> bool:
                    """A scrape between two bars: the gauges are those of the bar the
                    stream's last entry holds, and every alert published is counted."""
                    before = r.xlen("ref:factor_returns")
                    samples = scrape(url)
                    got.update(
                        samples=samples,
                        alerts=xrange_data(r, "ref:alerts"),
                        last=xrange_data(r, "ref:factor_returns")[-1]["returns"],
                        health=r.hgetall("ref:health"),
                    )
                    returns = series(samples, "factorcast_factor_return")
                    counted = series(samples, "factorcast_factor_alerts_total")
                    return (
                        before == r.xlen("ref:factor_returns")
                        and {dict(k)["factor"]: v for k, v in returns.items()}
                        == {k: v for k, v in got["last"].items() if v is not None}
                        and len(got["alerts"]) == sum(counted.values())
                    )

                wait_until(settled, timeout=60)
            finally:
                ref.proc.send_signal(signal.SIGTERM)
                assert ref.wait() == 0, ref.output[-3000:]
            samples = got["samples"]
            assert got["alerts"], "no alert in the reference run: the test proves nothing"
            counted = series(samples, "factorcast_factor_alerts_total")
            for kind in ("factor_decay", "factor_inverted", "factor_recovered"):
                want = sum(a["kind"] == kind for a in got["alerts"])
                assert counted[labels(kind=kind)] == want
            assert len(got["last"]) == 7  # universe and the six factors
            health = {k.decode(): json.loads(v) for k, v in got["health"].items()}
            ic = series(samples, "factorcast_factor_ic")
            icir = series(samples, "factorcast_factor_icir")
            state = series(samples, "factorcast_factor_state")
            cum = series(samples, "factorcast_factor_cum_return")
            assert len(health) == 6 and any(h["mean_ic"] is not None for h in health.values())
            for name, h in health.items():
                # a NaN figure is no series, as a null is on Redis
                assert ic.get(labels(factor=name, horizon="1")) == h["mean_ic"]
                assert icir.get(labels(factor=name, horizon="1")) == h["icir"]
                assert cum.get(labels(factor=name)) == h["cum_return"]
                for st in HealthState:
                    one = 1.0 if str(st) == h["state"] else 0.0
                    assert state[labels(factor=name, state=str(st))] == one

            # killed mid-run after an alert went out, then restarted over the same bars
            env = {
                **ANALYTICS_ENV,
                "FACTORCAST_REDIS__URL": server.url,
                "FACTORCAST_STATE_DIR": tempfile.mkdtemp(),
            }
            first = Service("--max-bars", str(BARS), "--sim-speed", "10", env=env)
            first_alert = got["alerts"][0]["bar_ts"]
            wait_until(
                lambda: (
                    r.xlen("factorcast:alerts") >= 1
                    and json.loads(r.xrevrange("factorcast:signals", count=1)[0][1][b"data"])[
                        "bar_ts"
                    ]
                    > first_alert
                ),
                timeout=120,
            )
            first.proc.send_signal(signal.SIGKILL)
            first.wait()
            before = r.xlen("factorcast:alerts")
            second = Service("--max-bars", str(BARS), "--sim-speed", "20", env=env)
            assert second.wait() == 0, second.output[-3000:]
            alerts = xrange_data(r, "factorcast:alerts")
            last_bar = json.loads(r.xrevrange("factorcast:signals", count=1)[0][1][b"data"])
        finally:
            r.close()
    ids = [a["id"] for a in alerts]
    assert before >= 1 and len(ids) == len(set(ids))  # never twice
    # every transition of the uninterrupted run over the same bars, once, in order
    assert ids == [a["id"] for a in got["alerts"] if a["bar_ts"] <= last_bar["bar_ts"]]
    assert all(math.isfinite(a["t_stat"]) for a in alerts)
    assert np.all(np.diff([a["bar_ts"] for a in alerts]) >= 0)

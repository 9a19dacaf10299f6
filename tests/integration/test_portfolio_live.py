"""``--redis``: the portfolio commands over what a live ``factorcast run`` published
(the exposures hash, the risk model, the closes on the signal stream) give what
they give over the same candles offline (``--data --at``), through the real ccxt
client, the embedded exchange and a real redis-server.

The live run serves the recorded Bittrex candles (as test_analytics_live.py does:
the warm-up starts at the first recorded bar, so the live exposures and risk model
are the offline engine's, bit for bit); it runs past the historical VaR's window,
so every number is the same, only the bar's time differs (the embedded exchange
re-times by whole bars).  With the signal stream trimmed, the historical VaR uses
the bars the stream still reaches, and says how many.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from factorcast.adapters.redis.server import EmbeddedRedis
from tests.conftest import factorcast
from tests.integration.test_analytics_live import xrange_data
from tests.test_factor_cli import _grid_of, error_lines

pytestmark = pytest.mark.integration

#: past the historical VaR's window of 500 bars (501 closes)
LIVE_BARS = 510
#: the signal stream is trimmed to this many entries for the last run
TRIMMED = 1200
QUANTITIES = {"ETH/BTC": 10.0, "LTC/BTC": 30.0, "XMR/BTC": 20.0, "ADA/BTC": -20000.0,
              "DASH/BTC": 5.0}  # fmt: skip
CASH = 0.5
PLACE = ("portfolio", "scan", "suggest")


def _command(label: str, holdings: str, groups: str) -> list[str]:
    return {
        "portfolio": ["portfolio", "--holdings", holdings, "--groups", groups],
        "scan": ["factor", "scan", "--want", "size=-1,momentum=1", "--top", "4"],
        "suggest": ["factor", "suggest", "--holdings", holdings, "--target",
                    "value=0.2,momentum=0.1", "--max-weight", "0.4", "--long-short"],
    }[label]  # fmt: skip


@pytest.fixture(scope="module")
def live(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("live-portfolio")
    holdings = out / "h.csv"
    rows = [f"{s},{q}" for s, q in QUANTITIES.items()] + [f"CASH,{CASH}"]
    holdings.write_text("symbol,quantity\n" + "\n".join(rows) + "\n")
    groups = out / "g.csv"
    groups.write_text("symbol,sector\nETH/BTC,platform\nLTC/BTC,coin\nXMR/BTC,privacy\n")
    got: dict[str, Any] = {}
    with EmbeddedRedis() as server:
        env = {"FACTORCAST_REDIS__URL": server.url, "FACTORCAST_LOG__FORMAT": "json"}
        proc = factorcast(
            "run", "--sim-data", str(shared_data), "--sim-speed", "100",
            "--max-bars", str(LIVE_BARS), "--quiet", "--exposures-out",
            str(out / "exposures.csv"), env=env, timeout=600,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        r = redis.Redis.from_url(server.url)
        try:
            bar_ts = json.loads(r.get("factorcast:risk") or b"null")["bar_ts"]
            times = pd.read_csv(out / "exposures.csv", usecols=["timestamp"])
            live_start = int(times["timestamp"].min())
            shift = live_start - int(_grid_of(shared_data)[0][0])
            jobs: list[tuple[str, list[str], dict[str, str]]] = []
            for label in PLACE:
                args = _command(label, str(holdings), str(groups))
                at = ["--data", str(shared_data), "--at", str(bar_ts - shift), "--json"]
                jobs.append((f"{label}.data", [*args, *at], {}))
                # the URL as a flag, or (scan) from the settings
                where = ["--redis"] if label == "scan" else ["--redis", server.url]
                jobs.append((f"{label}.redis", [*args, *where, "--json"], env))

            def one(job: tuple[str, list[str], dict[str, str]]) -> None:
                label, args, job_env = job
                done = factorcast(*args, env=job_env)
                assert done.returncode == 0, (label, done.stderr[-2000:])
                got[label] = json.loads(done.stdout)

            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(one, jobs))
            r.xtrim("factorcast:signals", maxlen=TRIMMED, approximate=False)
            signals = xrange_data(r, "factorcast:signals")
            one(("trimmed", [*_command("portfolio", str(holdings), str(groups)), "--redis",
                             server.url, "--json"], {}))  # fmt: skip
        finally:
            r.close()
    got.update(bar_ts=bar_ts, shift=shift, signals=signals)
    return got


def _without_time(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in ("bar_ts", "bar_time", "source")}


@pytest.mark.parametrize("label", PLACE)
def test_redis_equals_data_on_the_same_candles(live: dict[str, Any], label: str) -> None:
    data, red = live[f"{label}.data"], live[f"{label}.redis"]
    assert red["source"] == "redis" and data["source"] == "data"
    assert red["bar_ts"] == live["bar_ts"] and data["bar_ts"] == live["bar_ts"] - live["shift"]
    assert _without_time(red) == _without_time(data)
    if label == "portfolio":  # the run reached past the window: every figure is there
        assert red["var"]["historical_bars"] >= 490 and red["reasons"] == {}
        assert red["risk"]["sigma"] is not None and red["nav"] is not None


def test_historical_var_over_the_bars_the_stream_still_reaches(live: dict[str, Any]) -> None:
    full, trimmed = live["portfolio.redis"], live["trimmed"]
    assert {k: v for k, v in _without_time(trimmed).items() if k not in ("var", "es")} == (
        {k: v for k, v in _without_time(full).items() if k not in ("var", "es")}
    )
    assert trimmed["var"]["parametric"] == full["var"]["parametric"]
    # the oracle: the closes left on the stream, on the grid, their simple returns
    frame = pd.DataFrame(live["signals"])
    close = frame.pivot(index="bar_ts", columns="symbol", values="close")
    tf = 300_000
    grid = np.arange(close.index.min(), live["bar_ts"] + tf, tf)
    returns = close.reindex(grid).pct_change(fill_method=None).iloc[-500:]
    w = pd.Series(trimmed["weights"])[list(trimmed["contributions"])]
    usable = returns[list(w.index)].dropna()
    p = usable.to_numpy() @ w.to_numpy()
    assert trimmed["var"]["historical_bars"] == len(p) < full["var"]["historical_bars"]
    assert len(p) > 50
    for a in ("0.95", "0.99"):
        var = -np.quantile(p, 1 - float(a))
        np.testing.assert_allclose(trimmed["var"]["historical"][a], var, rtol=1e-12)
        np.testing.assert_allclose(trimmed["es"]["historical"][a], -p[p <= -var].mean(), rtol=1e-12)


def test_nothing_on_redis_is_one_line_exit_1(tmp_path: Path) -> None:
    holdings = tmp_path / "h.csv"
    holdings.write_text("symbol,weight\nETH/BTC,1\n")
    with EmbeddedRedis() as server:
        proc = factorcast("portfolio", "--holdings", str(holdings), "--redis", server.url)
    assert proc.returncode == 1, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "no risk model at factorcast:risk" in lines[0], lines
    assert proc.stdout == ""


def test_unreachable_redis_is_one_line_exit_1_without_the_password(tmp_path: Path) -> None:
    holdings = tmp_path / "h.csv"
    holdings.write_text("symbol,weight\nETH/BTC,1\n")
    proc = factorcast(
        "factor", "suggest", "--holdings", str(holdings), "--target", "size=1",
        "--redis", "redis://:s3cret@127.0.0.1:1/0",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and "redis://:***@127.0.0.1:1/0" in lines[0], lines
    assert "s3cret" not in proc.stderr and proc.stdout == ""

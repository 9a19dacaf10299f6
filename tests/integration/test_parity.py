"""Recorded candles served live through the embedded exchange and the real ccxt
client give exactly the exposures and signals `factorcast replay` gives.

The embedded exchange re-times the candles by a whole number of bars (history in
the past, the rest arriving live), so bar times are compared after that shift.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from factorcast.factors.registry import MARKET
from tests.conftest import factorcast

pytestmark = pytest.mark.integration

LIVE_BARS = 1400  # past ADA/BTC's recorded gaps (grid rows 1502-1557)
#: binance-1h: past GRT/USDT's listing (grid row 404), REEF/USDT's (678) and ATM/USDT's
#: (702), and the maintenance hours without a bar of any pair (rows 495-497 and 578);
#: 25 pairs are not listed yet when the run starts (row 275), 22 of them all along
LIVE_BARS_1H = 460
WARMUP_BARS = 253  # the factor model's history
#: the 1h run keeps the analytics' windows short, so that its warm-up (the model's
#: history plus the analytics' 20 + 1 + 1 bars) ends before GRT/USDT's listing
ANALYTICS_1H = {
    "FACTORCAST_HEALTH__WINDOW": "20",
    "FACTORCAST_HEALTH__MIN_OBS": "10",
    "FACTORCAST_RISK__WINDOW": "20",
    "FACTORCAST_RISK__MIN_OBS": "10",
}
WARMUP_BARS_1H = WARMUP_BARS + 22


def read_exposures(path: Path, until: int | None = None) -> pd.DataFrame:
    if path.suffix == ".parquet":
        filters = None if until is None else [("timestamp", "<=", until)]
        return pd.read_parquet(path, filters=filters)
    return pd.read_csv(path, keep_default_na=False, na_values={"raw": [""], "exposure": [""]})


def read_signals(path: Path, until: int | None = None) -> list[dict[str, Any]]:
    with path.open("rb") as lines:
        signals = (orjson.loads(line) for line in lines)
        return [s for s in signals if until is None or s["bar_ts"] <= until]


def events_of(stderr: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in stderr.splitlines() if x.startswith("{")]


def assert_live_equals_replay(
    live: pd.DataFrame,
    replay: pd.DataFrame,
    live_signals: Iterable[dict[str, Any]],
    replay_signals: Iterable[dict[str, Any]],
    timeframe: str,
    tf_ms: int,
) -> int:
    """Bit for bit, after the shift of bar times; returns the shift (ms)."""
    shift = int(live["timestamp"].min() - replay["timestamp"].min())
    assert shift % tf_ms == 0 and shift > 0
    live = live.assign(timestamp=live["timestamp"] - shift)
    key = ["timestamp", "symbol", "factor"]
    merged = live.merge(replay, on=key, how="left", suffixes=("", "_replay"), indicator=True)
    assert (merged["_merge"] == "both").all(), "live has bars replay does not"
    # the replay rows for those bar times are all there too
    assert len(replay[replay["timestamp"].isin(live["timestamp"].unique())]) == len(live)
    for col in ("raw", "exposure"):
        np.testing.assert_array_equal(merged[col], merged[f"{col}_replay"])
    assert (merged["reason"] == merged["reason_replay"]).all()
    assert (merged["reason"] == "ok").mean() > 0.7

    by_key = {(s["symbol"], s["bar_ts"]): s for s in replay_signals}
    count = 0
    for s in live_signals:
        count += 1
        r = by_key[(s["symbol"], s["bar_ts"] - shift)]
        assert s["id"] == f"trend:sim:{s['symbol']}:{timeframe}:{s['bar_ts']}"
        for field, value in s.items():
            if field not in ("id", "bar_ts", "bar_time", "produced_at", "exchange"):
                assert value == r[field], (field, s["symbol"], s["bar_ts"])
    assert count == (live["factor"] == MARKET).sum()
    return shift


def test_live_through_ccxt_equals_replay(
    shared_data: Path, tmp_path: Path, replay_run: dict[str, Any]
) -> None:
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
        "--signals-out",
        str(tmp_path / "signals.jsonl"),
        env={"FACTORCAST_LOG__FORMAT": "json"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = events_of(proc.stderr)
    assert not [e for e in events if e["event"] == "cross_section_late"]
    connected = next(e for e in events if e["event"] == "exchange_connected")
    assert connected["client"].startswith("ccxt ") and "websockets" in connected["client"]

    live = read_exposures(tmp_path / "exposures.csv")
    # warm-up (the model's history and the analytics' windows) plus live bars
    assert live["timestamp"].nunique() >= LIVE_BARS + WARMUP_BARS
    assert_live_equals_replay(
        live,
        replay_run["exposures"],
        read_signals(tmp_path / "signals.jsonl"),
        replay_run["signals"],
        "5m",
        300_000,
    )


def test_staggered_listings_live_equal_replay(shared_data: Path, tmp_path: Path) -> None:
    """Binance's hourly candles, with pairs listed months after the start: a pair not
    listed yet is missing (no row at all, as in the replay), never late, and joins
    from its first bar; an hour without any bar is no cross-section."""
    data = shared_data.parent / "binance-1h"
    replay_out = tmp_path / "replay"
    with ThreadPoolExecutor(1) as pool:  # the whole replay, meanwhile, on the other core
        replayed = pool.submit(
            factorcast,
            "replay",
            "--data",
            str(data),
            "--quiet",
            "--exposures-out",
            str(replay_out / "exposures.parquet"),
            "--signals-out",
            str(replay_out / "signals.jsonl"),
            timeout=600,
        )
        proc = factorcast(
            "run",
            "--sim-data",
            str(data),
            "--sim-speed",
            "20",
            "--max-bars",
            str(LIVE_BARS_1H),
            "--quiet",
            "--exposures-out",
            str(tmp_path / "exposures.csv"),
            "--signals-out",
            str(tmp_path / "signals.jsonl"),
            # a deadline of 20 bars (1 s of wall time): nothing waits for it, and a
            # busy machine does not make a bar late
            env={
                "FACTORCAST_LOG__FORMAT": "json",
                "FACTORCAST_SOURCE__GRACE_S": "72000",
                **ANALYTICS_1H,
            },
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert replayed.result().returncode == 0, replayed.result().stderr[-3000:]
    events = events_of(proc.stderr)
    counts = Counter(e["event"] for e in events)
    assert counts["cross_section_late"] == 0 and counts["bar_too_late"] == 0
    left = {e["symbol"]: e["reason"] for e in events if e["event"] == "symbol_left"}
    assert len(left) == 25 and set(left.values()) == {"not_listed"}
    joined = {e["symbol"]: e["reason"] for e in events if e["event"] == "symbol_joined"}
    assert joined == {"GRT/USDT": "listed", "REEF/USDT": "listed", "ATM/USDT": "listed"}

    live = read_exposures(tmp_path / "exposures.csv")
    hour = 3_600_000
    first = int(live["timestamp"].min())
    bars = (live["timestamp"] - first) // hour
    assert live["timestamp"].nunique() == WARMUP_BARS_1H + LIVE_BARS_1H
    assert bars.max() == WARMUP_BARS_1H + LIVE_BARS_1H + 4 - 1  # 4 hours are no cross-section
    assert "late" not in set(live["reason"])
    for symbol, listed in (("GRT/USDT", 404), ("REEF/USDT", 678), ("ATM/USDT", 702)):
        assert bars[live["symbol"] == symbol].min() == listed  # from its first bar
    replayed_ts = pd.read_parquet(replay_out / "exposures.parquet", columns=["timestamp"])
    until = int(replayed_ts["timestamp"].min()) + int(bars.max()) * hour
    assert_live_equals_replay(
        live,
        read_exposures(replay_out / "exposures.parquet", until),
        read_signals(tmp_path / "signals.jsonl"),
        read_signals(replay_out / "signals.jsonl", until),
        "1h",
        hour,
    )

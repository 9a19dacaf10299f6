"""Recorded candles served live through the embedded exchange and the real ccxt
client give exactly the exposures and signals `factorcast replay` gives.

The embedded exchange re-times the candles by a whole number of bars (history in
the past, the rest arriving live), so bar times are compared after that shift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from factors.registry import MARKET
from tests.conftest import factorcast

pytestmark = pytest.mark.integration

LIVE_BARS = 1400  # past ADA/BTC's recorded gaps (grid rows 1502-1557)


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
    events = [json.loads(x) for x in proc.stderr.splitlines() if x.startswith("{")]
    assert not [e for e in events if e["event"] == "cross_section_late"]
    connected = next(e for e in events if e["event"] == "exchange_connected")
    assert connected["client"].startswith("ccxt ") and "websockets" in connected["client"]

    live = pd.read_csv(
        tmp_path / "exposures.csv", keep_default_na=False, na_values={"raw": [""], "exposure": [""]}
    )
    replay = replay_run["exposures"]
    shift = live["timestamp"].min() - replay["timestamp"].min()
    assert shift % 300_000 == 0 and shift > 0
    live["timestamp"] -= shift
    cross_sections = live["timestamp"].nunique()
    assert cross_sections >= LIVE_BARS + 253  # warm-up history plus the live bars
    key = ["timestamp", "symbol", "factor"]
    merged = live.merge(replay, on=key, how="left", suffixes=("", "_replay"), indicator=True)
    assert (merged["_merge"] == "both").all(), "live has bars replay does not"
    # the replay rows for those bar times are all there too
    assert len(replay[replay["timestamp"].isin(live["timestamp"].unique())]) == len(live)
    for col in ("raw", "exposure"):
        np.testing.assert_array_equal(merged[col], merged[f"{col}_replay"])
    assert (merged["reason"] == merged["reason_replay"]).all()
    assert (merged["reason"] == "ok").mean() > 0.7

    replay_signals = {(s["symbol"], s["bar_ts"]): s for s in replay_run["signals"]}
    live_signals = [json.loads(x) for x in (tmp_path / "signals.jsonl").read_text().splitlines()]
    assert len(live_signals) == (live["factor"] == MARKET).sum()
    for s in live_signals:
        r = replay_signals[(s["symbol"], s["bar_ts"] - shift)]
        assert s["id"] == f"trend:sim:{s['symbol']}:5m:{s['bar_ts']}"
        for field, value in s.items():
            if field not in ("id", "bar_ts", "bar_time", "produced_at", "exchange"):
                assert value == r[field], (field, s["symbol"], s["bar_ts"])

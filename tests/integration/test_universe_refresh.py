"""`factorcast run` with `exchange.top_by_volume`: the top markets are resolved again
on a schedule, and a new listing that trades more than a member takes its place.

The embedded exchange serves hourly candles made here: three pairs, and a fourth
listed 20 bars into the run with ten times the volume of the largest.  Before the
switch the run equals a replay of the first three pairs, bit for bit; after it, a
replay of the new three to 1e-12 (the new universe's model was warmed up from 253
bars of REST history, not from the first candle, so its rolling sums were summed
afresh at other bars: the same numbers up to rounding).  Every bar time is written
and published once, none lost at the switch.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import factorcast
from tests.integration.test_parity import ANALYTICS_1H, events_of, read_exposures
from tests.integration.test_parity import WARMUP_BARS_1H as WARMUP_BARS

pytestmark = pytest.mark.integration

HOUR = 3_600_000
ROWS = WARMUP_BARS + 267
LISTED_AT = WARMUP_BARS + 20
LIVE_BARS = 200
#: quote volume per bar, roughly: DDD/USDT's is far above the others' once listed
VOLUMES = {"AAA": 1000.0, "BBB": 100.0, "CCC": 10.0, "DDD": 10000.0}


def write_candles(directory: Path) -> None:
    """freqtrade's JSON layout: ``[open_time_ms, open, high, low, close, volume]`` rows."""
    rng = np.random.default_rng(7)
    t0 = 1_609_459_200_000  # 2021-01-01 00:00 UTC
    for base, volume in VOLUMES.items():
        close = 10.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, ROWS)))
        open_ = close * np.exp(rng.normal(0.0, 0.003, ROWS))
        first = LISTED_AT if base == "DDD" else 0
        rows = [
            [
                t0 + k * HOUR,
                open_[k],
                max(open_[k], close[k]) * 1.002,
                min(open_[k], close[k]) * 0.998,
                close[k],
                volume * rng.uniform(0.8, 1.2),
            ]
            for k in range(first, ROWS)
        ]
        (directory / f"{base}_USDT-1h.json").write_text(json.dumps(rows))


def replay(data: Path, bases: list[str], out: Path) -> pd.DataFrame:
    """A replay of some of the pairs (links to their files, not copies)."""
    some = out / "candles"
    some.mkdir(parents=True)
    for base in bases:
        (some / f"{base}_USDT-1h.json").symlink_to(data / f"{base}_USDT-1h.json")
    exposures = out / "exposures.csv"
    proc = factorcast("replay", "--data", str(some), "--quiet", "--exposures-out", str(exposures))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return read_exposures(exposures)


def test_a_new_listing_with_more_volume_joins_the_top_markets(tmp_path: Path) -> None:
    data = tmp_path / "candles"
    data.mkdir()
    write_candles(data)
    proc = factorcast(
        "run",
        "--sim-data",
        str(data),
        "--sim-speed",
        "20",
        "--max-bars",
        str(LIVE_BARS),
        "--quiet",
        "--exposures-out",
        str(tmp_path / "exposures.csv"),
        "--signals-out",
        str(tmp_path / "signals.jsonl"),
        # resolved again every bar, at most every 5 s of wall time: 100 bars here,
        # while the run lasts 200 (the exchange's clock runs on wall time)
        env={
            "FACTORCAST_LOG__FORMAT": "json",
            "FACTORCAST_EXCHANGE__TOP_BY_VOLUME": "3",
            "FACTORCAST_EXCHANGE__REFRESH_UNIVERSE_S": "3600",
            "FACTORCAST_SOURCE__GRACE_S": "72000",
            **ANALYTICS_1H,  # a short warm-up: the listing comes live
        },
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    events = events_of(proc.stderr)
    changes = [e for e in events if e["event"] == "universe_changed"]
    assert [(c["joined"], c["left"]) for c in changes] == [(["DDD/USDT"], ["CCC/USDT"])]
    assert Counter(e["event"] for e in events)["feed_warmed_up"] == 2
    assert not [e for e in events if e["event"] in ("cross_section_late", "bar_too_late")]

    live = read_exposures(tmp_path / "exposures.csv")
    assert not live.duplicated(["timestamp", "symbol", "factor"]).any()
    times = np.sort(live["timestamp"].unique())
    assert len(times) == WARMUP_BARS + LIVE_BARS and (np.diff(times) == HOUR).all()
    signals = [json.loads(x) for x in (tmp_path / "signals.jsonl").read_text().splitlines()]
    per_bar = Counter(s["bar_ts"] for s in signals)
    assert sorted(per_bar) == times.tolist() and set(per_bar.values()) == {3}

    before = replay(data, ["AAA", "BBB", "CCC"], tmp_path / "abc")
    after = replay(data, ["AAA", "BBB", "DDD"], tmp_path / "abd")
    live["timestamp"] -= int(live["timestamp"].min() - before["timestamp"].min())
    switch = live.loc[live["symbol"] == "DDD/USDT", "timestamp"].min()
    assert switch > before["timestamp"].min() + LISTED_AT * HOUR  # DDD after the switch only
    key = ["timestamp", "symbol", "factor"]
    for rows, replayed, tolerance in (
        (live[live["timestamp"] < switch], before, 0.0),
        (live[live["timestamp"] >= switch], after, 1e-12),
    ):
        merged = rows.merge(replayed, on=key, how="left", suffixes=("", "_replay"))
        assert len(replayed[replayed["timestamp"].isin(rows["timestamp"].unique())]) == len(rows)
        assert (merged["reason"] == merged["reason_replay"]).all()
        for col in ("raw", "exposure"):
            np.testing.assert_allclose(merged[col], merged[f"{col}_replay"], rtol=0, atol=tolerance)

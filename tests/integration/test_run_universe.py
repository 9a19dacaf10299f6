"""`factorcast run` on its defaults, end to end: the embedded exchange, the real
ccxt.pro client, the embedded Redis.  Every live bar of every symbol comes out on
time: no symbol late, none stale, no websocket given up after the warm-up (a
warm-up longer than the stale limit used to kill the websocket for good)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import factorcast

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LIVE_BARS = 20


@pytest.mark.parametrize(
    ("mode", "symbols", "speed"),
    [
        ("ws", 50, "10"),
        ("ws", 200, "10"),
        # a rate-limited REST poll round over 50 symbols outlasts the grace period at
        # one bar a second: the bars come a little later, every one of them
        ("rest", 50, "1"),
    ],
)
def test_every_live_bar_of_every_symbol_comes_out(
    mode: str, symbols: int, speed: str, tmp_path: Path
) -> None:
    out = tmp_path / "signals.jsonl"
    proc = factorcast(
        "run",
        "--max-bars",
        str(LIVE_BARS),
        "--sim-symbols",
        str(symbols),
        "--sim-speed",
        speed,
        "--mode",
        mode,
        "--quiet",
        "--signals-out",
        str(out),
        env={"FACTORCAST_SIM__MISSING_PROB": "0", "FACTORCAST_LOG__FORMAT": "json"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = Counter(json.loads(line)["event"] for line in proc.stderr.splitlines() if line)
    assert events["feed_live"] == 1
    for bad in (
        "cross_section_late",
        "bar_too_late",
        "feed_stale",
        "feed_reconnecting",
        "feed_task_restarted",
    ):
        assert events[bad] == 0, (bad, events[bad])
    per_bar = Counter(json.loads(line)["bar_ts"] for line in out.read_text().splitlines())
    live = sorted(per_bar)[-LIVE_BARS:]
    assert [per_bar[ts] for ts in live] == [symbols] * LIVE_BARS

"""The log's terminal path (adapters.observe.terminal_log): floods collapsed into one line with
a count, nothing held back past a window or past shutdown, and the JSON path untouched."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from factorcast.adapters.observe import terminal_log
from factorcast.adapters.observe.logsetup import configure_logging
from factorcast.adapters.observe.terminal_log import FloodCollapser, TerminalLog

SYMBOLS = [f"S{i:02d}/USDT" for i in range(12)]


def ev(event: str, level: str = "info", **kw: Any) -> dict[str, Any]:
    return {"event": event, "level": level, "timestamp": "2026-01-01T00:00:00Z", **kw}


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    terminal_log.install(None)
    structlog.reset_defaults()


def test_a_flood_is_one_event_with_its_count_and_symbols() -> None:
    c = FloodCollapser(window_s=1.0)
    for k in range(37):
        first = {"timestamp": "first"} if k == 0 else {}
        assert c.add({**ev("bar_too_late", symbol=SYMBOLS[k % 12], ts=k), **first}, 0.01 * k) == []
    [out] = c.flush()
    assert out["event"] == (
        "bar_too_late ×37 (symbols: S00/USDT, S01/USDT, S02/USDT, S03/USDT, S04/USDT, … 12 in all)"
    )
    assert out["level"] == "info"
    assert out["timestamp"] == "first"
    assert "ts" not in out and "symbol" not in out  # differing fields don't survive
    assert c.flush() == [] and c.deadline is None


def test_few_symbols_are_all_named_and_agreed_fields_survive() -> None:
    c = FloodCollapser()
    c.add(ev("feed_stale", "warning", symbol="A", silent_s=1.5, exchange="binance"), 0.0)
    c.add(ev("feed_stale", "warning", symbol="B", silent_s=1.7, exchange="binance"), 0.1)
    c.add(ev("cross_section_late", "warning", symbols=["A", "B"], ts=1), 0.2)
    c.add(ev("cross_section_late", "warning", symbols=["B", "C"], ts=1), 0.3)
    stale, late = c.flush()
    assert stale["event"] == "feed_stale ×2 (symbols: A, B)"
    assert stale["exchange"] == "binance" and "silent_s" not in stale
    assert late["event"] == "cross_section_late ×2 (symbols: A, B, C)"
    assert late["ts"] == 1 and "symbols" not in late


def test_an_event_seen_once_comes_out_unchanged() -> None:
    c = FloodCollapser()
    once = ev("feed_reconnecting", "warning", reason="websocket silent")
    c.add(dict(once), 0.0)
    assert c.flush() == [once]


def test_distinct_events_are_not_merged_and_keep_their_order() -> None:
    c = FloodCollapser()
    c.add(ev("bar_too_late", symbol="A"), 0.0)
    c.add(ev("feed_stale", "warning", symbol="A"), 0.1)
    c.add(ev("bar_too_late", symbol="B"), 0.2)
    c.add(ev("bar_too_late", "warning", symbol="C"), 0.3)  # same name, other level
    c.add(ev("feed_stale", "warning", symbol="B"), 0.4)
    assert [e["event"] for e in c.flush()] == [
        "bar_too_late ×2 (symbols: A, B)",
        "feed_stale ×2 (symbols: A, B)",
        "bar_too_late",
    ]


def test_a_closed_window_comes_out_at_the_next_event() -> None:
    c = FloodCollapser(window_s=1.0)
    assert c.add(ev("bar_too_late", symbol="A"), 10.0) == []
    assert c.deadline == 11.0
    assert c.add(ev("bar_too_late", symbol="B"), 10.9) == []
    assert c.due(10.99) == []
    out = c.add(ev("bar_too_late", symbol="C"), 11.0)
    assert [e["event"] for e in out] == ["bar_too_late ×2 (symbols: A, B)"]
    assert c.deadline == 12.0  # C opened the next window
    assert [e["symbol"] for e in c.due(12.0)] == ["C"]


def test_exceptions_and_a_zero_window_are_never_held() -> None:
    c = FloodCollapser()
    c.add(ev("bar_too_late", symbol="A"), 0.0)
    out = c.add(ev("feed_task_failed", "error", exception="Traceback ..."), 0.1)
    assert [e["event"] for e in out] == ["bar_too_late", "feed_task_failed"]
    now = FloodCollapser(window_s=0)
    assert [e["event"] for e in now.add(ev("bar_too_late"), 0.0)] == ["bar_too_late"]


def test_the_timer_closes_the_window_without_another_event() -> None:
    out = io.StringIO()
    term = TerminalLog(out, lambda e: str(e["event"]), window_s=0.05)
    for s in SYMBOLS[:3]:
        term.msg(ev("bar_too_late", symbol=s))
    assert out.getvalue() == ""
    deadline = time.monotonic() + 5
    while not out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert out.getvalue() == "bar_too_late ×3 (symbols: S00/USDT, S01/USDT, S02/USDT)\n"


def test_shutdown_writes_what_is_held() -> None:
    out = io.StringIO()
    configure_logging("info", "console", stream=out, flood_window_s=60)
    log = structlog.get_logger()
    for s in SYMBOLS:
        log.info("bar_too_late", symbol=s, ts=1)
    log.info("service_stopped", bars=12)
    assert out.getvalue() == ""
    terminal_log.flush_logs()  # what the exit hook runs
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "bar_too_late ×12 (symbols: S00/USDT" in lines[0] and "ts=1" in lines[0]
    assert "service_stopped" in lines[1] and "bars=12" in lines[1]


def test_the_json_log_keeps_every_event() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger()
    for s in SYMBOLS:
        log.info("bar_too_late", symbol=s)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["symbol"] for e in events] == SYMBOLS
    assert all(e["event"] == "bar_too_late" for e in events)

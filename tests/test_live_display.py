"""The live table of ``factorcast run`` (adapters.observe.console.LiveDisplay) with log events
arriving while it is drawn: what a terminal shows, replayed from the bytes written.

The console is a rich Console on a StringIO that claims to be a terminal (CI has no
TTY); the log writes to the same StringIO, as stdout and stderr share one screen.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import re
from collections.abc import Iterator

import numpy as np
import pytest
import structlog
from rich.console import Console

from factorcast.adapters.observe import terminal_log
from factorcast.adapters.observe.console import LiveDisplay, ReplayProgress
from factorcast.adapters.observe.logsetup import configure_logging
from factorcast.adapters.sim.market import SimulatedMarket
from factorcast.factors import CANONICAL, FactorModel, FactorParams
from factorcast.factors.analytics import FactorAnalytics, HealthParams, RiskParams
from factorcast.strategy.app.settings import SignalSettings
from factorcast.strategy.engine import Engine, StepResult
from factorcast.strategy.events import CrossSection
from factorcast.strategy.strategies import Trend

N = 8
SYMBOLS = tuple(f"S{i}/USDT" for i in range(N))
PARAMS = FactorParams(
    beta_window=20,
    beta_min_obs=10,
    size_window=20,
    size_min_obs=10,
    momentum_lag=5,
    value_lag=15,
    volatility_window=8,
    volatility_min_obs=6,
    liquidity_window=8,
    liquidity_min_obs=6,
)
WIDTH = 100
#: the table's columns: each factor by the first four letters of its registry name
HEADER = ["symbol", *(name[:4] for name in CANONICAL), "score", "act", "conf"]
_CSI = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])")


def screen(output: str) -> list[str]:
    """The lines a terminal of unbounded height shows after ``output``: enough of a
    VT100 for what rich's Live writes (CR, LF, cursor up, erase line, SGR)."""
    rows: list[list[str]] = [[]]
    row = col = 0
    pos = 0
    while pos < len(output):
        ch = output[pos]
        if ch == "\x1b":
            m = _CSI.match(output, pos)
            assert m is not None, f"unexpected escape at {output[pos : pos + 10]!r}"
            arg, cmd = m.groups()
            if cmd == "A":
                row = max(0, row - int(arg or 1))
            elif cmd == "K":
                assert arg == "2", m.group()
                rows[row] = []
            else:
                assert cmd in "mhl", m.group()  # colours, cursor shown or hidden
            pos = m.end()
            continue
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row, col = row + 1, 0
            while len(rows) <= row:
                rows.append([])
        else:
            line = rows[row]
            line.extend(" " * (col - len(line) + 1))
            line[col] = ch
            col += 1
        pos += 1
    return ["".join(r).rstrip() for r in rows]


def steps(bars: int = 40) -> Iterator[StepResult]:
    feed = SimulatedMarket(N, seed=3, timeframe_ms=60_000, missing_prob=0.15)
    engine = Engine(
        SYMBOLS, 60_000, FactorModel(N, PARAMS), Trend(SYMBOLS), SignalSettings().to_view()
    )
    h = feed.history_arrays(bars)
    for k, ts in enumerate(h["ts"].tolist()):
        present = np.isfinite(h["close"][k])
        fields = (h[f][k] for f in ("open", "high", "low", "close", "volume"))
        xs = CrossSection(ts, *fields, np.full(N, np.nan), present, ~present, live=k >= 30)
        yield engine.step(xs)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    terminal_log.install(None)
    structlog.reset_defaults()


def _console(out: io.StringIO, monkeypatch: pytest.MonkeyPatch, terminal: bool) -> Console:
    monkeypatch.setenv("TERM", "xterm-256color")  # a dumb TERM in CI turns Live off
    return Console(
        file=out,
        force_terminal=terminal,
        force_interactive=terminal,
        width=WIDTH,
        height=60,
        color_system=None,
    )


async def drive(display: LiveDisplay, logged: dict[str, int]) -> None:
    """Live bars into the display, a flood of log events between refreshes."""
    log = structlog.get_logger()
    for result in steps():
        await display.handle(result)
        if not result.xs.live:
            continue
        for s in SYMBOLS[:5]:
            log.info("bar_too_late", symbol=s, ts=result.ts)
        log.warning("cross_section_late", ts=result.ts, symbols=list(SYMBOLS[5:]))
        logged["bar_too_late"] += 5
        logged["cross_section_late"] += 1
        await asyncio.sleep(0.12)  # past the display's 0.1 s between renders
    log.warning("feed_reconnecting", reason="websocket silent")
    logged["feed_reconnecting"] += 1
    await display.close()


_STAMP = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+Z \[(info|warning) *\] \w")


def records(lines: list[str]) -> list[str]:
    """Log lines as written: rich wraps a long one, and its rest starts no record."""
    assert lines and _STAMP.match(lines[0]), lines[:1]
    out: list[str] = []
    for line in lines:
        if _STAMP.match(line):
            out.append(line)
        else:
            out[-1] += " " + line
    return out


def counted(lines: list[str], event: str) -> int:
    """Events of one name the log lines account for (a line is one, or ``×n``)."""
    total = 0
    for line in lines:
        m = re.search(rf"\] {event}( ×(\d+))?\b", line)
        if m:
            total += int(m.group(2) or 1)
    return total


async def test_log_lines_go_above_one_whole_table(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    configure_logging("info", "console", stream=out, flood_window_s=0.05)
    display = LiveDisplay(SYMBOLS, "test market", console=_console(out, monkeypatch, True))
    logged = dict.fromkeys(("bar_too_late", "cross_section_late", "feed_reconnecting"), 0)
    await drive(display, logged)

    lines = screen(out.getvalue())
    heads = [i for i, line in enumerate(lines) if line.startswith("test market · bar ")]
    assert len(heads) == 1, "\n".join(lines)  # one table, not torn pieces of several
    table = lines[heads[0] :]
    assert table[3].split() == HEADER
    body = [line for line in table if line]
    assert not any("] " in line for line in body), "\n".join(table)  # no log text inside
    assert body[-1].startswith("vola Volatility")  # the caption ends the screen
    logs = records(lines[: heads[0]])
    assert all(len(x) <= WIDTH for x in lines)
    for event, n in logged.items():  # whole lines, every event accounted for
        assert counted(logs, event) == n, (event, "\n".join(logs))
    assert any("bar_too_late ×" in x for x in logs)  # and floods collapsed


async def test_off_a_terminal_the_log_is_written_as_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table, log_stream = io.StringIO(), io.StringIO()
    configure_logging("info", "console", stream=log_stream, flood_window_s=0)
    display = LiveDisplay(SYMBOLS, "test market", console=_console(table, monkeypatch, False))
    await drive(
        display, dict.fromkeys(("bar_too_late", "cross_section_late", "feed_reconnecting"), 0)
    )
    assert "bar_too_late" not in table.getvalue()
    assert table.getvalue().count("test market · bar ") == 1  # the last table, once
    assert re.search(r"Amihud *\n\Z", table.getvalue())  # what follows: its own line
    lines = log_stream.getvalue().splitlines()
    assert sum("] bar_too_late " in x for x in lines) == 50  # window 0: one line each


def test_replay_progress_leaves_only_the_log_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    configure_logging("info", "console", stream=out, flood_window_s=60)
    log = structlog.get_logger()
    with ReplayProgress(1024, console=_console(out, monkeypatch, True)) as progress:
        for done in range(1, 1025):
            progress.update(done)
            if done % 256 == 0:
                log.warning("bar_rejected", symbol=SYMBOLS[done // 256], reason="bad_ohlc")
    [line] = records([x for x in screen(out.getvalue()) if x])  # the bar gone (transient)
    assert line.endswith(
        "bar_rejected ×4 (symbols: S1/USDT, S2/USDT, S3/USDT, S4/USDT) reason=bad_ohlc"
    )


async def test_the_live_table_shows_each_factors_health(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the exposures: a row per factor with its state and rolling IC, as the
    engine's analytics have them at the last bar."""
    view = SignalSettings().to_view()
    analytics = FactorAnalytics(
        view.names,
        N,
        view.directions,
        health=HealthParams(window=20, min_obs=5),
        risk=RiskParams(window=30, min_obs=10),
    )
    engine = Engine(
        SYMBOLS, 60_000, FactorModel(N, PARAMS), Trend(SYMBOLS), view, analytics=analytics
    )
    feed = SimulatedMarket(N, seed=3, timeframe_ms=60_000, missing_prob=0.15)
    h = feed.history_arrays(80)
    out = io.StringIO()
    display = LiveDisplay(SYMBOLS, "test market", console=_console(out, monkeypatch, True))
    last = None
    for k, ts in enumerate(h["ts"].tolist()):
        present = np.isfinite(h["close"][k])
        fields = (h[f][k] for f in ("open", "high", "low", "close", "volume"))
        xs = CrossSection(ts, *fields, np.full(N, np.nan), present, ~present, live=k >= 70)
        last = engine.step(xs)
        await display.handle(last)
    await display.close()
    assert last is not None and last.analytics is not None
    lines = screen(out.getvalue())
    start = lines.index("factor health")
    rows = {line.split()[0]: line.split() for line in lines[start + 3 :] if line.split()}
    stats = last.analytics.health.stats[1]
    for k, name in enumerate(CANONICAL):
        assert rows[name][1] == str(last.analytics.health.states[k])
        assert rows[name][2] == f"{stats.mean_ic[k]:+.4f}"
        assert rows[name][4] == f"{stats.t_stat[k]:+.2f}"
    assert {s for s in last.analytics.health.states} - {"unknown"}  # figures, not only unknown


def test_the_table_has_the_custom_factors_of_the_model() -> None:
    """A model with custom factors: a column each, headers all different, and the
    caption's labels from the model's registry (not the shared one)."""
    from factorcast.adapters.observe.console import exposure_table, headers
    from factorcast.factors.expressions.spec import CustomFactorSpec

    custom = {
        "alpha006": CustomFactorSpec(expr="-1 * correlation(open, volume, 3)"),
        "alpha012": CustomFactorSpec(expr="sign(delta(volume, 1)) * (-1 * returns)"),
        "vola_x": CustomFactorSpec(expr="ts_std(returns, 3)", label="Short volatility"),
    }
    params = dataclasses.replace(PARAMS, custom=custom)
    model = FactorModel(N, params)
    engine = Engine(SYMBOLS, 60_000, model, Trend(SYMBOLS), SignalSettings().to_view(custom))
    feed = SimulatedMarket(N, seed=3, timeframe_ms=60_000, missing_prob=0.0)
    h = feed.history_arrays(30)
    for k, ts in enumerate(h["ts"].tolist()):
        fields = (h[f][k] for f in ("open", "high", "low", "close", "volume"))
        result = engine.step(CrossSection(ts, *fields, np.full(N, np.nan), np.ones(N, bool)))
    heads = headers(model.names)
    assert heads[:6] == tuple(name[:4] for name in CANONICAL)
    assert heads[6:] == ("a006", "a012", "va_x") and len(set(heads)) == len(heads)
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(
        exposure_table(result, SYMBOLS, registry=model.registry)
    )
    text = out.getvalue()
    header = next(line for line in text.splitlines() if line.lstrip().startswith("symbol"))
    assert header.split() == ["symbol", *heads, "score", "act", "conf"]
    assert "va_x Short volatility" in " ".join(text.split())
    assert "a006 alpha006" in " ".join(text.split())

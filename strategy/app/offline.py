"""What the offline ``factor`` commands share: recorded candles through the engine of
``replay``, with analytics that keep every grid step (:mod:`strategy.analytics`).

The numbers are the live service's: the same engine feeds the same analytics the
same grid steps (the empty ones between cross-sections included) in the same
order, with the settings' ``factors``, ``health``, ``risk`` and
``factors.analytics``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import structlog
from numpy.typing import NDArray

from factorcast.strategy.analytics import AnalyticsHistory, RecordingAnalytics
from factorcast.strategy.app import custom, preflight
from factorcast.strategy.app.commands import UsageError
from factorcast.strategy.app.settings import Settings
from factorcast.strategy.app.wiring import build_engine
from factorcast.strategy.engine import Engine
from factorcast.strategy.service import Output, run_pipeline
from factorcast.strategy.wire import iso_ms

if TYPE_CHECKING:
    from rich.console import RenderableType

    from factorcast.adapters.files.recorded import RecordedCandles
    from factorcast.adapters.files.replay import Panel

log = structlog.get_logger(__name__)

#: seconds in a year of bars: crypto trades every day (ANALYTICS.md section 0)
YEAR_S = 365 * 86_400


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """``--data``, ``--timeframe``, ``--json`` and ``--quiet``."""
    parser.add_argument("--data", type=Path, required=True, help="freqtrade-layout candle dir")
    parser.add_argument("--timeframe", help="timeframe to read when the directory has several")
    parser.add_argument(
        "--json", action="store_true", help="print the result as one JSON object, nothing else"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar or tables")


@dataclass(frozen=True, slots=True)
class Recorded:
    """Candles read for an offline command."""

    candles: RecordedCandles
    panel: Panel

    @property
    def timeframe_ms(self) -> int:
        return self.candles.timeframe_ms

    @property
    def bars_per_year(self) -> float:
        return YEAR_S * 1000 / self.candles.timeframe_ms

    def check_bar(self, ts: int) -> None:
        """``ts`` must be a grid time from the data's first bar to its last."""
        tf, times = self.timeframe_ms, self.panel.ts
        first, last = int(times[0]), int(times[-1])
        if ts % tf or not first <= ts <= last:
            where = "off the grid" if ts % tf else "outside the data"
            raise UsageError(
                f"--at {ts}: {where}: a bar open time of the {self.candles.timeframe} grid "
                f"from {first} ({iso_ms(first)}) to {last} ({iso_ms(last)})"
            )


def load(args: argparse.Namespace, settings: Settings) -> Recorded:
    from factorcast.adapters.files.recorded import load_directory
    from factorcast.adapters.files.replay import Panel

    preflight.check_strategy(settings)  # the engine runs it, as replay does
    custom.check(settings)
    candles = load_directory(
        args.data, args.timeframe, size_limit=preflight.candle_size_limit(settings)
    )
    return Recorded(candles, Panel.from_recorded(candles))


@dataclass(frozen=True, slots=True)
class OfflineRun:
    """An offline run of the analytics: what went in and what it kept."""

    symbols: tuple[str, ...]
    #: the model's factors (health, exposures) and the regression's names (``universe`` first)
    names: tuple[str, ...]
    regressed: tuple[str, ...]
    directions: NDArray[np.float64]
    model: str
    history: AnalyticsHistory


def offline_engine(
    settings: Settings, symbols: Sequence[str], timeframe_ms: int, history: AnalyticsHistory
) -> Engine:
    """The engine of ``replay`` with analytics that hand every grid step to ``history``
    (built as :func:`wiring.build_analytics` builds the live ones)."""
    engine = build_engine(settings, symbols, timeframe_ms, amend_bars=0, analytics=False)
    view = engine.view
    analytics = RecordingAnalytics(
        history,
        view.names,
        len(symbols),
        view.directions,
        weighting=settings.factors.weighting,
        regression=settings.factors.analytics,
        health=settings.health,
        risk=settings.risk,
    )
    return Engine(
        engine.symbols,
        timeframe_ms,
        engine.model,
        engine.strategy,
        view,
        amend_bars=0,
        analytics=analytics,
    )


async def analyze(
    settings: Settings,
    data: Recorded,
    history: AnalyticsHistory,
    *,
    progress: bool,
    until: int | None = None,
    outputs: Sequence[Output] = (),
) -> OfflineRun:
    """Run the candles (up to the bar ``until``, or all) through the engine; the
    analytics of every grid step go to ``history``, the step results to ``outputs``."""
    from factorcast.adapters.files.replay import Panel, ReplaySource
    from factorcast.adapters.observe.console import ReplayProgress

    panel = data.panel
    if until is not None:  # the first cross-section at or after it brings the grid step in
        stop = int(np.searchsorted(panel.ts, until, side="left")) + 1
        panel = Panel(
            panel.symbols,
            panel.ts[:stop],
            {f: a[:stop] for f, a in panel.fields.items()},
            panel.present[:stop],
        )
    engine = offline_engine(settings, panel.symbols, data.timeframe_ms, history)
    assert engine.analytics is not None
    model = engine.model.tag
    log.info(
        "analytics_started",
        symbols=len(panel.symbols),
        cross_sections=int(panel.ts.size),
        model=model,
    )
    started = time.perf_counter()
    bar = ReplayProgress(int(panel.ts.size)) if progress else None
    source = ReplaySource(panel, on_progress=bar.update if bar else None)
    with bar or contextlib.nullcontext():
        await run_pipeline(source, engine, list(outputs))
    log.info(
        "analytics_finished",
        grid_steps=len(history),
        alerts=len(history.alerts),
        seconds=round(time.perf_counter() - started, 3),
    )
    return OfflineRun(
        panel.symbols,
        engine.analytics.names,
        engine.analytics.returns.names,
        engine.view.directions,
        model,
        history,
    )


def show(
    args: argparse.Namespace,
    obj: dict[str, Any],
    tables: Callable[[], Iterable[RenderableType]],
) -> None:
    """A command's result on stdout: its JSON object with ``--json``, else its tables
    (built only then), none with ``--quiet``."""
    if args.json:
        print_json(obj)
    elif not args.quiet:
        print_tables(*tables())


def print_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def print_tables(*tables: RenderableType) -> None:
    from factorcast.adapters.observe.console import wide_console
    from factorcast.adapters.observe.terminal_log import flush_logs

    flush_logs()  # the log lines still held, before the tables
    console = wide_console()
    for table in tables:
        console.print(table)

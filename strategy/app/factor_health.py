"""``factorcast factor health``: factor health and decay over recorded candles
(ANALYTICS.md section 2): the state and figures of each factor at the last bar,
the decay curve, and every alert of the run; the rank ICs to a table file."""

from __future__ import annotations

import argparse

from factorcast.strategy.analytics import AnalyticsHistory
from factorcast.strategy.analytics_wire import health_report
from factorcast.strategy.app.commands import (
    Command,
    Overrides,
    int_list,
    positive_int,
    table_path,
)
from factorcast.strategy.app.offline import add_data_arguments, analyze, load, show
from factorcast.strategy.app.settings import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument(
        "--horizons", type=int_list, help="IC horizons in bars, e.g. 1,4,16 (health.horizons)"
    )
    parser.add_argument("--window", type=positive_int, help="rolling IC window (health.window)")
    parser.add_argument(
        "--ic-out",
        type=table_path,
        help="timestamp,factor,horizon,ic,reason per bar, factor and horizon (.csv/.parquet)",
    )
    parser.add_argument(
        "--alerts", type=positive_int, default=30, help="alerts shown in the table (the last N)"
    )


def _overrides(args: argparse.Namespace) -> Overrides:
    health = {"horizons": args.horizons, "window": args.window}
    return {"health": {k: v for k, v in health.items() if v is not None}}


async def run(args: argparse.Namespace, settings: Settings) -> None:
    from factorcast.adapters.files.analytics_outputs import ic_frame, write_table
    from factorcast.adapters.observe.analytics_tables import (
        alerts_table,
        decay_table,
        health_table,
    )

    data = load(args, settings)
    horizons = tuple(sorted(settings.health.horizons))
    history = AnalyticsHistory(horizons, decay=True)
    result = await analyze(settings, data, history, progress=not (args.quiet or args.json))
    if args.ic_out is not None:
        frame = ic_frame([(h, *history.ics(h)) for h in horizons], result.names)
        write_table(frame, args.ic_out)
    decay = history.decay_figures(result.directions)
    assert history.last is not None and decay is not None
    report = health_report(
        history.last.health,
        result.names,
        result.regressed,
        decay,
        result.directions,
        history.alerts,
        window=settings.health.window,
        horizons=horizons,
        model=result.model,
    )
    show(
        args,
        report,
        lambda: (
            health_table(report),
            decay_table(report),
            alerts_table(report["alerts"], args.alerts),
        ),
    )


COMMAND = Command(
    path=("factor", "health"),
    help="factor health and decay over recorded candles: states, IC figures, alerts",
    arguments=_arguments,
    run=run,
    overrides=_overrides,
)

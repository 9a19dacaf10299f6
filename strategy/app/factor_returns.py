"""``factorcast factor returns``: the factor returns of every bar of recorded candles
(ANALYTICS.md section 1) to a table file, and their summary."""

from __future__ import annotations

import argparse
from collections import Counter

from factorcast.factors import REASON_LABELS
from factorcast.strategy.analytics import AnalyticsHistory, summarize_returns
from factorcast.strategy.analytics_wire import returns_summary_object
from factorcast.strategy.app.commands import Command, table_path
from factorcast.strategy.app.offline import add_data_arguments, analyze, load, show
from factorcast.strategy.app.settings import Settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument(
        "--out",
        type=table_path,
        required=True,
        help="timestamp,factor,return,reason,r2,n per bar and name (.csv, or .parquet/.pq)",
    )


async def run(args: argparse.Namespace, settings: Settings) -> None:
    from factorcast.adapters.files.analytics_outputs import factor_returns_frame, write_table
    from factorcast.adapters.observe.analytics_tables import returns_table

    data = load(args, settings)
    history = AnalyticsHistory(settings.health.horizons)
    result = await analyze(settings, data, history, progress=not (args.quiet or args.json))
    returns, r2, n, reason = history.factor_returns()
    times = history.times
    write_table(factor_returns_frame(times, result.regressed, returns, reason, r2, n), args.out)
    counts = Counter(REASON_LABELS[int(code)] for code in reason)
    summary = returns_summary_object(
        summarize_returns(result.regressed, returns),
        {label: counts[label] for label in REASON_LABELS if counts[label]},
        first_ts=int(times[0]),
        bar_ts=int(times[-1]),
        bars=int(times.size),
        model=result.model,
    )
    show(
        args,
        {**summary, "out": str(args.out)},
        lambda: (returns_table(summary, data.bars_per_year),),
    )


COMMAND = Command(
    path=("factor", "returns"),
    help="factor returns of every bar of recorded candles, to a CSV or Parquet file",
    arguments=_arguments,
    run=run,
)

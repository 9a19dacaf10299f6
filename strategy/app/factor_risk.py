"""``factorcast factor risk``: the risk model (ANALYTICS.md section 3) at one bar of
recorded candles: the factor covariance, the specific variances and their
fallbacks."""

from __future__ import annotations

import argparse

from factorcast.strategy.analytics import AnalyticsHistory
from factorcast.strategy.analytics_wire import risk_object
from factorcast.strategy.app.commands import Command, UsageError, timestamp_ms
from factorcast.strategy.app.offline import add_data_arguments, analyze, load, show
from factorcast.strategy.app.settings import Settings

#: specific variances shown at each end without --all
SHOWN = 10


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_data_arguments(parser)
    parser.add_argument(
        "--at",
        type=timestamp_ms,
        help="the bar (open time: ms or ISO-8601, UTC by default); default the last",
    )
    parser.add_argument(
        "--all", action="store_true", help=f"every symbol's specific variance (not {SHOWN}+{SHOWN})"
    )


async def run(args: argparse.Namespace, settings: Settings) -> None:
    from factorcast.adapters.observe.analytics_tables import risk_tables

    data = load(args, settings)
    if args.at is not None:
        data.check_bar(args.at)
    history = AnalyticsHistory(settings.health.horizons, risk_at=args.at)
    result = await analyze(
        settings, data, history, progress=not (args.quiet or args.json), until=args.at
    )
    if history.risk is None or history.risk_ts is None:  # a grid step the engine skipped
        raise UsageError(f"--at {args.at}: no grid step there (inside a long gap in the data)")
    risk = risk_object(history.risk_ts, history.risk, result.symbols, result.model)
    show(args, risk, lambda: risk_tables(risk, data.bars_per_year, None if args.all else SHOWN))


COMMAND = Command(
    path=("factor", "risk"),
    help="the risk model at one bar of recorded candles: factor covariance, specific risk",
    arguments=_arguments,
    run=run,
)

"""``factorcast factor scan``: the symbols that carry a wanted tilt (ANALYTICS.md
section 8), ranked by efficiency (alignment per unit of volatility), and the
equal-weighted basket of the top ``N``, at one bar of recorded candles or at the
live service's latest bar on Redis.

The factors a tilt can name are those of the risk model (``universe`` aside): the
model's, or ``factors.analytics.factors`` where set."""

from __future__ import annotations

import argparse

from factorcast.factors.analytics.portfolio import PortfolioInputError
from factorcast.factors.analytics.scan import DEFAULT_TOP, parse_factor_values, scan
from factorcast.strategy.app.commands import Command, positive_int
from factorcast.strategy.app.market import add_market_arguments, market_state, regression_names
from factorcast.strategy.app.offline import show
from factorcast.strategy.app.settings import Settings
from factorcast.strategy.factor_tools_wire import scan_object
from factorcast.strategy.market_state import StateUnavailable


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--want", required=True, help="the wanted tilt, e.g. size=-1,momentum=1 (factor=weight)"
    )
    parser.add_argument(
        "--top", type=positive_int, default=DEFAULT_TOP, help=f"basket size (default {DEFAULT_TOP})"
    )
    add_market_arguments(parser)


async def run(args: argparse.Namespace, settings: Settings) -> None:
    from factorcast.adapters.observe.portfolio_tables import scan_tables

    if args.data is not None:  # before the run
        parse_factor_values(args.want, regression_names(settings))
    state = await market_state(args, settings)
    names = state.risk_names[1:]
    want = parse_factor_values(args.want, names)
    result = scan(
        state.symbols,
        names,
        state.risk_exposure,
        state.covariance,
        state.specific,
        want,
        top=args.top,
    )
    obj = scan_object(
        result,
        bar_ts=state.bar_ts,
        source=state.source,
        top=args.top,
        bars_per_year=state.bars_per_year,
        model=state.model,
    )
    show(args, obj, lambda: scan_tables(obj))


COMMAND = Command(
    path=("factor", "scan"),
    help="the symbols that carry a wanted factor tilt, and their basket",
    arguments=_arguments,
    run=run,
    usage_errors=(PortfolioInputError,),
    failures=(StateUnavailable,),
)

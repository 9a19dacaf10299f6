"""``factorcast factor suggest``: the trades that move a portfolio to target factor
exposures at the least tracking variance (ANALYTICS.md section 8), at one bar of
recorded candles or at the live service's latest bar on Redis.

Reported: the trades, the new weights, the exposures before and after with the
new tilt sentence, the tracking error (annualized) and the turnover.  A target
that cannot be met says which constraint binds and exits 1."""

from __future__ import annotations

import argparse

import numpy as np

from factorcast.factors.analytics.optimizer import (
    DEFAULT_MAX_WEIGHT,
    OptimizationError,
    suggest,
)
from factorcast.factors.analytics.portfolio import PortfolioInputError, holdings_weights
from factorcast.factors.analytics.scan import parse_factor_values
from factorcast.factors.custom import model_registry
from factorcast.strategy.app.commands import Command, positive_float
from factorcast.strategy.app.market import (
    add_holdings_argument,
    add_market_arguments,
    check_holdings,
    market_state,
    regression_names,
)
from factorcast.strategy.app.offline import show
from factorcast.strategy.app.settings import Settings
from factorcast.strategy.factor_tools_wire import suggestion_object
from factorcast.strategy.market_state import StateUnavailable


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_holdings_argument(parser)
    parser.add_argument(
        "--target", required=True, help="target exposures, e.g. size=-0.5,momentum=0.3"
    )
    parser.add_argument(
        "--max-weight",
        type=positive_float,
        default=DEFAULT_MAX_WEIGHT,
        help=f"the largest |weight| of a symbol (default {DEFAULT_MAX_WEIGHT:g})",
    )
    parser.add_argument(
        "--long-short", action="store_true", help="allow short weights (default long-only)"
    )
    add_market_arguments(parser)


async def run(args: argparse.Namespace, settings: Settings) -> None:
    from factorcast.adapters.files.holdings import read_holdings
    from factorcast.adapters.observe.portfolio_tables import suggestion_tables

    holdings = read_holdings(args.holdings)
    if args.data is not None:  # before the run
        parse_factor_values(args.target, regression_names(settings), what="target")
    state = await market_state(args, settings, check_holdings(holdings))
    names = state.risk_names[1:]
    target = parse_factor_values(args.target, names, what="target")
    w = holdings_weights(holdings, state.symbols, state.close)
    current = np.zeros(len(state.symbols))
    current[w.index] = w.weights
    x = state.risk_exposure
    result = suggest(
        state.symbols,
        names,
        x,
        state.covariance,
        state.specific,
        current,
        target,
        bars_per_year=state.bars_per_year,
        max_weight=args.max_weight,
        long_only=not args.long_short,
    )
    rows = [state.symbols.index(s) for s in result.symbols]
    obj = suggestion_object(
        result,
        x[rows],
        bar_ts=state.bar_ts,
        source=state.source,
        max_weight=args.max_weight,
        long_only=not args.long_short,
        model=state.model,
        registry=model_registry(settings.factors),
    )
    show(args, obj, lambda: suggestion_tables(obj))


COMMAND = Command(
    path=("factor", "suggest"),
    help="trades toward target factor exposures at the least tracking variance",
    arguments=_arguments,
    run=run,
    usage_errors=(PortfolioInputError,),
    failures=(OptimizationError, StateUnavailable),
)

"""``factorcast portfolio``: a portfolio at one bar (ANALYTICS.md sections 4, 5 and
7): its exposures per position and in total, the tilt in words, its risk with the
Euler attribution by factor, specific and position, VaR and expected shortfall
(parametric and historical, 95 and 99 %), diversification and groups.

From recorded candles (``--data``, at ``--at``) or from what the live service
published last (``--redis``); ``--json`` prints the object of
:func:`factorcast.strategy.portfolio_wire.portfolio_report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from factorcast.factors.analytics.portfolio import PortfolioInputError
from factorcast.factors.analytics.riskattr import DEFAULT_VAR_WINDOW
from factorcast.factors.custom import model_registry
from factorcast.strategy.app.commands import Command, positive_int
from factorcast.strategy.app.market import (
    add_holdings_argument,
    add_market_arguments,
    check_holdings,
    market_state,
)
from factorcast.strategy.app.offline import show
from factorcast.strategy.app.settings import Settings
from factorcast.strategy.market_state import StateUnavailable
from factorcast.strategy.portfolio_wire import portfolio_report


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_holdings_argument(parser)
    add_market_arguments(parser)
    parser.add_argument("--groups", type=Path, help="CSV mapping: symbol,sector,region")
    parser.add_argument(
        "--horizon",
        type=positive_int,
        default=1,
        help="VaR, ES and volatility over this many bars (sqrt(h) scaling; default 1)",
    )


async def run(args: argparse.Namespace, settings: Settings) -> None:
    from factorcast.adapters.files.holdings import read_groups, read_holdings
    from factorcast.adapters.observe.portfolio_tables import portfolio_tables

    holdings = read_holdings(args.holdings)
    mapping = None if args.groups is None else read_groups(args.groups)
    state = await market_state(args, settings, check_holdings(holdings))
    report = portfolio_report(
        state,
        holdings,
        mapping,
        horizon=args.horizon,
        var_window=DEFAULT_VAR_WINDOW,
        registry=model_registry(settings.factors),
    )
    show(args, report, lambda: portfolio_tables(report))


COMMAND = Command(
    path=("portfolio",),
    help="a portfolio's exposures, tilt, risk attribution, VaR/ES and groups at one bar",
    arguments=_arguments,
    run=run,
    usage_errors=(PortfolioInputError,),
    failures=(StateUnavailable,),
)

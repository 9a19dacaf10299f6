"""``factorcast factor regress``: a portfolio's returns regressed on the factor
returns of recorded candles (ANALYTICS.md section 6): alpha per bar and
annualized, the loadings with Newey-West standard errors, t-statistics and
p-values, R^2, adjusted R^2, ``T`` and the lag; or ridge.  For holdings, the same
regression of each position and the largest disagreement between the weighted
positions and the portfolio.

The factor returns are those of the offline runner over ``--data`` (up to
``--at``); the portfolio's returns are the holdings' held constant (weights as
given, or from quantities at the closes of ``--at``, the last bar by default),
or a returns file.

Choices the contract leaves open, made here: a returns file's timestamps outside
the data (before its first bar or after ``--at``) are not used; one inside it
that is not a bar open time of the grid is an error, and so is a file with no
timestamp on the data's grid (it does not overlap the data).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from factorcast.factors.analytics.portfolio import PortfolioInputError, holdings_weights
from factorcast.factors.analytics.regression import (
    DEFAULT_PENALTY,
    METHODS,
    holdings_returns,
    regress_returns,
)
from factorcast.strategy.app.commands import Command, nonnegative_float, nonnegative_int
from factorcast.strategy.app.market import (
    add_market_arguments,
    offline_closes,
    offline_state,
)
from factorcast.strategy.app.offline import show
from factorcast.strategy.app.settings import Settings
from factorcast.strategy.factor_tools_wire import regression_object
from factorcast.strategy.market_state import grid_returns
from factorcast.strategy.wire import iso_ms


def _arguments(parser: argparse.ArgumentParser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--holdings", type=Path, help="CSV (or .json): symbol and weight or quantity")
    what.add_argument("--returns", type=Path, help="CSV: timestamp (bar open, ms),return")
    add_market_arguments(parser, redis=False)
    parser.add_argument("--method", choices=METHODS, default="ols", help="ols (default) or ridge")
    parser.add_argument(
        "--lambda",
        dest="penalty",
        type=nonnegative_float,
        default=DEFAULT_PENALTY,
        help=f"the ridge penalty (default {DEFAULT_PENALTY:g})",
    )
    parser.add_argument(
        "--maxlags",
        type=nonnegative_int,
        help="Newey-West lags (default floor(4 (T/100)^(2/9)))",
    )


async def run(args: argparse.Namespace, settings: Settings) -> None:
    from factorcast.adapters.files.holdings import read_holdings, read_returns
    from factorcast.adapters.observe.portfolio_tables import regression_tables

    holdings = None if args.holdings is None else read_holdings(args.holdings)
    series = None if args.returns is None else read_returns(args.returns)
    off = offline_closes(args, settings)
    tf, first = off.data.timeframe_ms, int(off.grid[0])
    weights = None if holdings is None else holdings_weights(holdings, off.symbols, off.asof)
    if series is not None:
        inside = (series.ts >= first) & (series.ts <= off.bar_ts)
        off_grid = series.ts[inside & ((series.ts - first) % tf != 0)]
        if off_grid.size:
            raise PortfolioInputError(
                f"returns {series.path}: timestamp {int(off_grid[0])} is not a bar open time "
                f"of the {off.data.candles.timeframe} grid"
            )
        if not inside.any():
            raise PortfolioInputError(
                f"returns {series.path}: no timestamp within the data ({first} "
                f"{iso_ms(first)} .. {off.bar_ts} {iso_ms(off.bar_ts)}): it does not overlap"
            )
    state, result = await offline_state(off, settings, progress=not (args.quiet or args.json))
    f = result.history.factor_returns()[0]
    times = result.history.times
    rows = (times - first) // tf
    common = {
        "bars_per_year": state.bars_per_year,
        "method": args.method,
        "penalty": args.penalty,
        "maxlags": args.maxlags,
    }
    if weights is not None:
        r = grid_returns(off.closes)[rows][:, weights.index]
        y = holdings_returns(weights.weights, r)
        reg = regress_returns(
            y,
            f,
            result.regressed,
            position_returns=r,
            weights=weights.weights,
            symbols=weights.symbols,
            **common,
        )
        held = dict(zip(weights.symbols, weights.weights.tolist(), strict=True))
    else:
        assert series is not None
        y = np.full(times.size, np.nan)
        at = np.searchsorted(series.ts, times)
        found = (at < series.ts.size) & (series.ts[np.minimum(at, series.ts.size - 1)] == times)
        y[found] = series.returns[at[found]]
        reg = regress_returns(y, f, result.regressed, **common)
        held = None
    obj = regression_object(
        reg,
        times,
        bar_ts=off.bar_ts,
        weights=held,
        bars_per_year=state.bars_per_year,
        model=result.model,
    )
    show(args, obj, lambda: regression_tables(obj))


COMMAND = Command(
    path=("factor", "regress"),
    help="regress a portfolio's returns on the factor returns of recorded candles",
    arguments=_arguments,
    run=run,
    usage_errors=(PortfolioInputError,),
)

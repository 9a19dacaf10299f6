"""``factorcast factor check EXPR``: a custom-factor expression (ANALYTICS.md section 9)
parsed, its lookback and operator tree printed, and with ``--data`` evaluated over
recorded candles: the raw values of the last bar, one line per symbol.

``EXPR`` is an expression, or the name of a custom factor of the configuration
(mode ``expr``).  The candles are evaluated on the timeframe grid, a grid time
without any bar included, as the live engine steps its custom factors; a symbol
without a value shows the reason the engine would give (``missing_bar``,
``insufficient_history``, ``undefined``).  A bad expression is one line naming the
column, exit code 2.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from factorcast.factors import REASON_LABELS, Reason
from factorcast.factors.expressions import CustomFactorError, Expression, bars_of_panel
from factorcast.strategy.app import preflight
from factorcast.strategy.app.commands import Command, UsageError
from factorcast.strategy.app.settings import Settings
from factorcast.strategy.wire import iso_ms


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "expr", metavar="EXPR", help="an expression, or a custom factor's name (factors.custom)"
    )
    parser.add_argument(
        "--data", type=Path, help="recorded candles (freqtrade layout) to evaluate it over"
    )
    parser.add_argument("--timeframe", help="timeframe to read when the directory has several")
    parser.add_argument("--name", default="expr", help="the factor's name in messages")


def compile_argument(text: str, name: str, settings: Settings) -> Expression:
    """``text`` compiled, or the expression of the custom factor it names."""
    named = text.strip()
    spec = settings.factors.custom.get(named)
    if spec is not None:
        if spec.expr is None:
            raise UsageError(f"custom factor {named!r} is mode {spec.mode}, not an expression")
        name, text = named, spec.expr
    try:
        return Expression.compile(name, text)
    except CustomFactorError as e:
        raise UsageError(str(e)) from None


async def run(args: argparse.Namespace, settings: Settings) -> None:
    expression = compile_argument(args.expr, args.name, settings)
    out = sys.stdout
    out.write(expression.tree() + "\n")
    if args.data is None:
        return
    from factorcast.adapters.files.recorded import load_directory
    from factorcast.adapters.files.replay import Panel

    candles = load_directory(
        args.data, args.timeframe, size_limit=preflight.candle_size_limit(settings)
    )
    panel = Panel.from_recorded(candles)
    if not panel.ts.size:
        raise UsageError(f"--data {args.data}: no candles")
    # on the grid: a row per grid time from the first bar to the last
    rows = ((panel.ts - panel.ts[0]) // candles.timeframe_ms).astype(np.intp)
    present = np.zeros((int(rows[-1]) + 1, len(panel.symbols)), dtype=bool)
    present[rows] = panel.present
    fields = {}
    for f, values in panel.fields.items():
        full = np.full(present.shape, np.nan)
        full[rows] = values
        fields[f] = full
    last = None
    for bar in bars_of_panel(fields, present):
        last = expression.update(bar)
    assert last is not None
    run_length = _runs(present)
    ts = int(panel.ts[-1])
    finite = np.isfinite(last)
    out.write(
        f"\nlast bar {iso_ms(ts)} ({candles.timeframe}, {present.shape[0]} grid steps):"
        f" {int(finite.sum())} of {len(panel.symbols)} symbols with a value\n"
    )
    order = sorted(range(len(panel.symbols)), key=lambda i: (not finite[i], -last[i], i))
    width = max(len(s) for s in panel.symbols)
    for i in order:
        value = float(last[i])
        if math.isfinite(value):
            shown = f"{value:.10g}"
        else:
            shown = "null  " + _reason(bool(present[-1, i]), int(run_length[i]), expression)
        out.write(f"  {panel.symbols[i]:<{width}}  {shown}\n")


def _runs(present: np.ndarray) -> np.ndarray:
    """Per symbol, the grid steps up to the last at each of which it had a bar."""
    run = np.zeros(present.shape[1], dtype=np.int64)
    for row in present:
        run = np.where(row, run + 1, 0)
    return run


def _reason(present: bool, run: int, expression: Expression) -> str:
    """The engine's reason for a NaN raw value (``factors.custom.CustomRows``)."""
    if not present:
        return REASON_LABELS[Reason.MISSING_BAR]
    if run > expression.lookback:
        return REASON_LABELS[Reason.UNDEFINED]
    return REASON_LABELS[Reason.INSUFFICIENT_HISTORY]


COMMAND = Command(
    path=("factor", "check"),
    help="parse a custom-factor expression, print its lookback and operator tree, and "
    "with --data its values at the last bar of recorded candles",
    arguments=_arguments,
    run=run,
)

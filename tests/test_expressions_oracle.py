"""Every operator of ANALYTICS.md section 9 against a plain pandas recomputation
(tests/expr_oracle.py) over real Binance 1h candles: listings, a symbol's
96-bar hole, grid times without any bar, zero-volume bars.  Incremental updates
equal the batch evaluation bar for bar."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from numpy.typing import NDArray

from factorcast.adapters.files.recorded import load_directory
from factorcast.adapters.files.replay import Panel
from factorcast.factors.expressions import Expression, bars_of_panel, evaluate_panel
from tests.conftest import REPO
from tests.expr_oracle import Oracle, Tree, render

BINANCE = REPO.parent / "shared" / "data" / "binance-1h"
FIELDS = ("open", "high", "low", "close", "volume", "quote_volume")
RTOL = 1e-9
#: grid rows of the slices: [380, 800) has a listing (404), two grid times without
#: any bar (494, 574) and zero-volume bars (494); [1150, 1450) a 96-bar hole (1174)
SLICES = ((380, 800), (1150, 1450))


@dataclass(frozen=True)
class Grid:
    fields: dict[str, NDArray[np.float64]]
    present: NDArray[np.bool_]


@pytest.fixture(scope="module")
def grids() -> list[Grid]:
    if not BINANCE.is_dir():
        pytest.fail(f"shared candle data missing: {BINANCE}")
    recorded = load_directory(BINANCE)
    panel = Panel.from_recorded(recorded)
    tf = recorded.timeframe_ms
    rows = ((panel.ts - panel.ts[0]) // tf).astype(int)
    steps = int(rows[-1]) + 1
    present = np.zeros((steps, len(panel.symbols)), dtype=bool)
    present[rows] = panel.present
    out = []
    for lo, hi in SLICES:
        fields = {}
        for f in FIELDS:
            full = np.full(present.shape, np.nan)
            full[rows] = panel.fields[f]
            fields[f] = full[lo:hi]
        out.append(Grid(fields, present[lo:hi]))
    # the slices hold what they are chosen for
    a, b = out
    assert (~a.present.any(axis=1)).sum() >= 2
    assert (a.fields["volume"][a.present] == 0).any()
    assert (~b.present[:, a.present.shape[1] // 2 :]).any()
    return out


C, OP, H, LO, V = ("close",), ("open",), ("high",), ("low",), ("volume",)
Q, R, VW = ("quote_volume",), ("returns",), ("vwap",)

CASES: list[Tree] = [
    C,
    Q,
    R,
    VW,
    ("-", C, OP),
    ("/", ("-", C, OP), ("-", H, LO)),  # 0 / 0 on bars with high == low
    ("*", V, ("number", 2.5)),
    ("+", ("number", 1.0), R),
    ("neg", C),
    ("^", VW, ("number", 0.5)),
    ("^", R, ("number", 2.0)),
    ("abs", R),
    ("log", V),  # log 0 on zero-volume bars
    ("sign", R),
    ("sqrt", ("-", C, OP)),
    ("signedpower", R, ("number", 0.5)),
    ("max", OP, C),
    ("min", OP, C),
    ("delay", C, 3),
    ("delta", C, 5),
    ("ts_sum", R, 10),
    ("ts_mean", V, 7),
    ("ts_std", C, 12),  # prices: the cancellation case
    ("ts_std", R, 20),
    ("ts_std", V, 2),
    ("ts_min", LO, 8),
    ("ts_max", H, 8),
    ("ts_rank", C, 10),
    ("ts_rank", ("sign", R), 6),  # ties
    ("correlation", C, V, 15),
    ("correlation", VW, C, 6),
    ("correlation", ("sign", R), R, 4),  # constant windows
    ("covariance", R, V, 9),
    ("covariance", C, OP, 24),
    ("decay_linear", C, 10),
    ("decay_linear", R, 30),
    ("rank", R),
    ("rank", ("sign", R)),  # ties
    ("scale", V),
    ("scale", R, -2.0),
    ("zscore", ("log", V)),
    ("demean", R),
    # nested, alpha-like
    ("neg", ("correlation", OP, V, 10)),
    ("correlation", ("rank", C), ("rank", V), 5),
    ("rank", ("correlation", C, V, 5)),
    ("ts_rank", ("decay_linear", ("delta", VW, 2), 4), 5),
    ("zscore", ("ts_mean", ("/", ("-", C, ("delay", C, 1)), ("delay", C, 1)), 3)),
]


def _ids(tree: Tree) -> str:
    return render(tree)


def _close(actual: NDArray[np.float64], grid: Grid, tree: Tree) -> None:
    """Equal NaN pattern and values to ``RTOL`` (absolute: ``RTOL * 1e-3`` of the
    largest value), except where the oracle finds the value undetermined at float64
    precision (a rank between values that tie up to rounding, tests/expr_oracle.py):
    fewer than 1% of the values."""
    ball = Oracle(grid.fields, grid.present).ball(tree)
    expected = ball.v.to_numpy()
    judged = ~ball.amb
    assert ball.amb.sum() <= 0.01 * np.isfinite(expected).sum()
    scale = np.nanmax(np.abs(expected)) if np.isfinite(expected).any() else 1.0
    np.testing.assert_array_equal(np.isnan(actual)[judged], np.isnan(expected)[judged])
    np.testing.assert_allclose(
        actual[judged], expected[judged], rtol=RTOL, atol=RTOL * 1e-3 * scale
    )


@pytest.mark.parametrize("tree", CASES, ids=_ids)
def test_operator_matches_pandas(grids: list[Grid], tree: Tree) -> None:
    for grid in grids:
        expr = Expression.compile("custom", render(tree))
        incremental = np.array(
            [expr.update(bar) for bar in bars_of_panel(grid.fields, grid.present)]
        )
        assert np.isfinite(incremental).sum() > 0.2 * grid.present.sum(), "a vacuous case"
        _close(incremental, grid, tree)
        # the batch evaluator is the same nodes in a loop: equal, bit for bit
        batch = evaluate_panel(expr, grid.fields, grid.present)
        np.testing.assert_array_equal(batch, incremental)


def test_lookback_is_where_values_start(grids: list[Grid]) -> None:
    """On symbols with every bar of the slice, the first finite value is at row
    ``lookback`` exactly."""
    rows = slice(0, 100)  # before the first grid time without any bar
    fields = {f: v[rows] for f, v in grids[0].fields.items()}
    present = grids[0].present[rows]
    full = present.all(axis=0) & (fields["volume"] > 0).all(axis=0)
    assert full.sum() > 10
    for tree in CASES:
        expr = Expression.compile("custom", render(tree))
        values = evaluate_panel(expr, fields, present)[:, full]
        assert not np.isfinite(values[: expr.lookback]).any(), render(tree)
        assert np.isfinite(values[expr.lookback]).any(), render(tree)


def test_long_run_stays_accurate(grids: list[Grid]) -> None:
    """Running sums over thousands of updates stay at the oracle's precision: the
    periodic recomputation bounds the drift."""
    grid = grids[0]
    reps = 8  # the slice again and again: ~3,400 updates
    fields = {f: np.vstack([v] * reps) for f, v in grid.fields.items()}
    present = np.vstack([grid.present] * reps)
    long = Grid(fields, present)
    for tree in [("ts_std", C, 12), ("covariance", C, OP, 24), ("decay_linear", C, 10)]:
        expr = Expression.compile("custom", render(tree))
        _close(evaluate_panel(expr, fields, present), long, tree)

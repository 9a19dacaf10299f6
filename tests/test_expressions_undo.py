"""Taking steps back: run k steps, undo some, run again with a changed bar (a late
bar taken in, as the engine does) -> bit for bit what a fresh run on the changed
data gives.  For compiled expressions, model factors and copy-undo plug-ins."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from factorcast.factors import UndoExhausted
from factorcast.factors.expressions import (
    Bar,
    CopyUndo,
    Expression,
    ModelFactor,
    bars_of_panel,
    feature_expression,
    with_undo,
)
from tests.expr_oracle import Tree, render
from tests.test_expressions_properties import T, random_panel, trees

DEPTH = 8
#: one expression per kind of node state (every window, the inputs' delay)
EVERY_WINDOW = [
    "returns",
    "delay(close, 3)",
    "delta(vwap, 2)",
    "ts_sum(returns, 3)",
    "ts_mean(volume, 4)",
    "ts_std(close, 5)",
    "ts_min(low, 3)",
    "ts_max(high, 3)",
    "ts_rank(close, 4)",
    "correlation(close, volume, 5)",
    "covariance(open, close, 3)",
    "decay_linear(vwap, 4)",
    "rank(ts_mean(returns, 2)) * scale(ts_std(volume, 3))",
]


def _bars(fields: dict[str, NDArray[np.float64]], present: NDArray[np.bool_]) -> list[Bar]:
    return list(bars_of_panel(fields, present))


def _late_bar(
    fields: dict[str, NDArray[np.float64]], present: NDArray[np.bool_], t: int, seed: int
) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.bool_]]:
    """The panel with bar ``t`` of one missing symbol delivered (or, if none is
    missing, one symbol's close at ``t`` changed)."""
    rng = np.random.default_rng(seed)
    fields = {k: v.copy() for k, v in fields.items()}
    present = present.copy()
    missing = np.flatnonzero(~present[t])
    i = int(rng.choice(missing)) if missing.size else int(rng.integers(present.shape[1]))
    c = 10.0 * np.exp(rng.normal(0, 0.05))
    fields["close"][t, i] = c
    fields["open"][t, i] = c * 1.001
    fields["high"][t, i] = c * 1.01
    fields["low"][t, i] = c * 0.99
    fields["volume"][t, i] = 50.0
    present[t, i] = True
    return fields, present


def _replay(factor: object, bars: list[Bar]) -> NDArray[np.float64]:
    return np.array([factor.update(b) for b in bars])  # type: ignore[attr-defined]


def _check_undo(make: object, k: int, back: int, seed: int) -> None:
    """``make()`` builds a fresh factor with ``keep_undo``."""
    fields, present = random_panel(seed)
    original = _bars(fields, present)
    changed = original  # nothing left to change after the last bar
    if k - back < T:  # the late bar at the first step taken back
        changed = _bars(*_late_bar(fields, present, k - back, seed))

    live = make()  # type: ignore[operator]
    live.keep_undo(DEPTH)
    first = _replay(live, original[:k])
    assert live.undoable == min(k, DEPTH)
    live.undo(back)
    assert live.undoable == min(k, DEPTH) - back
    parts = [first[: k - back]]
    if k - back < T:
        parts.append(_replay(live, changed[k - back :]))

    fresh = _replay(make(), changed)  # type: ignore[operator]
    np.testing.assert_array_equal(np.vstack(parts), fresh)


@pytest.mark.parametrize("text", EVERY_WINDOW)
@pytest.mark.parametrize(("k", "back"), [(1, 1), (9, 8), (20, 5), (T, 8), (T, 0)])
def test_undo_then_late_bar_equals_fresh_run(text: str, k: int, back: int) -> None:
    _check_undo(lambda: Expression.compile("late", text), k, back, seed=k * 31 + back)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, k=st.integers(1, T), data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_random_expression_undo(tree: Tree, k: int, data: st.DataObject, seed: int) -> None:
    back = data.draw(st.integers(0, min(k, DEPTH)), label="back")
    _check_undo(lambda: Expression.compile("late", render(tree)), k, back, seed)


def test_model_factor_undoes_its_features() -> None:
    class Weighted:  # a fitted linear model: 2 x0 - x1 + 0.5
        def predict(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
            return 2.0 * X[:, 0] - X[:, 1] + 0.5

    def make() -> ModelFactor:
        features = [
            feature_expression("ml", "mom", "ts_mean(returns, 3)"),
            feature_expression("ml", "vol", "ts_std(returns, 4)"),
        ]
        return ModelFactor("ml", Weighted(), features)

    for k, back in [(12, 8), (T, 3)]:
        _check_undo(make, k, back, seed=k)


class RunningMax:
    """A plug-in without undo of its own: the highest close so far per symbol."""

    lookback = 0

    def __init__(self) -> None:
        self.high: NDArray[np.float64] | None = None

    def update(self, bar: Bar) -> NDArray[np.float64]:
        close = np.where(bar.present, bar.close, -np.inf)
        self.high = close if self.high is None else np.maximum(self.high, close)
        return np.where(bar.present, self.high, np.nan)


def test_copy_undo_takes_a_plugin_back() -> None:
    for k, back in [(10, 8), (T, 1)]:
        _check_undo(lambda: with_undo(RunningMax()), k, back, seed=k)
    assert isinstance(with_undo(RunningMax()), CopyUndo)
    expr = Expression.compile("x", "close")
    assert with_undo(expr) is expr


def test_undo_beyond_the_log_changes_nothing() -> None:
    fields, present = random_panel(3)
    bars = _bars(fields, present)
    expr = Expression.compile("deep", "ts_std(close, 4) + decay_linear(volume, 3)")
    expr.keep_undo(DEPTH)
    _replay(expr, bars[:20])
    with pytest.raises(UndoExhausted):
        expr.undo(DEPTH + 1)
    rest = _replay(expr, bars[20:])
    np.testing.assert_array_equal(rest, _replay(expr.fresh(), bars)[20:])
    unlogged = Expression.compile("none", "ts_sum(close, 3)")
    _replay(unlogged, bars[:5])
    with pytest.raises(UndoExhausted):
        unlogged.undo(1)


def test_keep_undo_after_the_first_bar() -> None:
    """The log can be turned on mid-run (the engine does after the warm-up)."""
    fields, present = random_panel(11)
    changed_fields, changed_present = _late_bar(fields, present, 17, 11)
    bars, changed = _bars(fields, present), _bars(changed_fields, changed_present)
    expr = Expression.compile("mid", "correlation(close, volume, 4) + ts_rank(vwap, 3)")
    head = _replay(expr, bars[:10])
    expr.keep_undo(DEPTH)
    middle = _replay(expr, bars[10:20])
    expr.undo(3)
    tail = _replay(expr, changed[17:])
    fresh = _replay(expr.fresh(), changed)
    np.testing.assert_array_equal(np.vstack([head, middle[:7], tail]), fresh)

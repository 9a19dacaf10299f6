"""Random expressions over the whole grammar, evaluated incrementally, against the
pandas recomputation of tests/expr_oracle.py on small random panels with missing
bars, grid times without any bar, zero volumes and missing quote volumes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from factorcast.factors.expressions import Expression, bars_of_panel
from tests.expr_oracle import Oracle, Tree, render

T, N = 36, 7
INPUT_NAMES = ("open", "high", "low", "close", "volume", "quote_volume", "returns", "vwap")

leaves = st.one_of(
    st.sampled_from([(name,) for name in INPUT_NAMES]),
    st.sampled_from([("number", v) for v in (0.5, 1.0, 2.0, 3.0)]),
)


def _extend(x: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
    exponents = st.sampled_from([("number", 2.0), ("number", 0.5), ("number", -1.0)])
    return st.one_of(
        st.tuples(st.sampled_from(["neg", "abs", "log", "sign", "sqrt"]), x),
        st.tuples(st.sampled_from(["+", "-", "*", "/", "max", "min"]), x, x),
        st.tuples(st.sampled_from(["^", "signedpower"]), x, exponents),
        st.tuples(
            st.sampled_from(
                [
                    "delay",
                    "delta",
                    "ts_sum",
                    "ts_mean",
                    "ts_min",
                    "ts_max",
                    "ts_rank",
                    "decay_linear",
                ]
            ),
            x,
            st.integers(1, 4),
        ),
        st.tuples(st.just("ts_std"), x, st.integers(2, 4)),
        st.tuples(st.sampled_from(["correlation", "covariance"]), x, x, st.integers(2, 4)),
        st.tuples(st.sampled_from(["rank", "zscore", "demean"]), x),
        st.tuples(st.just("scale"), x, st.sampled_from([1.0, -2.0, 0.5])),
    )


def _reads_input(tree: Tree) -> bool:
    if tree[0] in INPUT_NAMES:
        return True
    return any(isinstance(a, tuple) and _reads_input(a) for a in tree[1:])


trees = st.recursive(leaves, _extend, max_leaves=5).filter(_reads_input)


def random_panel(seed: int) -> tuple[dict[str, NDArray[np.float64]], NDArray[np.bool_]]:
    rng = np.random.default_rng(seed)
    close = 10.0 * np.exp(np.cumsum(rng.normal(0, 0.03, (T, N)), axis=0))
    open_ = close * np.exp(rng.normal(0, 0.01, (T, N)))
    high = np.maximum(open_, close) * (1 + rng.exponential(0.01, (T, N)))
    low = np.minimum(open_, close) * (1 - rng.exponential(0.01, (T, N)))
    volume = rng.exponential(100.0, (T, N)) * (rng.random((T, N)) > 0.05)
    quote = np.where(rng.random((T, N)) < 0.5, close * volume * 1.01, np.nan)
    present = rng.random((T, N)) > 0.12
    present[rng.integers(T)] = False  # a grid time without any bar
    present[: rng.integers(T // 2), 0] = False  # a listing
    fields = {"open": open_, "high": high, "low": low, "close": close}
    fields |= {"volume": volume, "quote_volume": quote}
    fields = {k: np.where(present, v, np.nan) for k, v in fields.items()}
    return fields, present


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, seed=st.integers(0, 2**32 - 1))
def test_random_expression_matches_pandas(tree: Tree, seed: int) -> None:
    """Equal NaN pattern and values within the oracle's error bound, wherever the
    value is determined at float64 precision (tests/expr_oracle.py, ``Ball``)."""
    fields, present = random_panel(seed)
    expr = Expression.compile("random", render(tree))
    actual = np.array([expr.update(bar) for bar in bars_of_panel(fields, present)])
    ball = Oracle(fields, present).ball(tree)
    expected = ball.v.to_numpy()
    judged = ~ball.amb
    text = render(tree)
    np.testing.assert_array_equal(np.isnan(actual)[judged], np.isnan(expected)[judged], text)
    both = judged & np.isfinite(expected)
    error = np.abs(actual[both] - expected[both])
    allowed = 1e-9 * np.abs(expected[both]) + 10 * ball.r[both]
    worst = np.argmax(error - allowed) if error.size else 0
    assert (error <= allowed).all(), (text, actual[both][worst], expected[both][worst])
    # nothing before the lookback
    assert not np.isfinite(actual[: expr.lookback]).any()

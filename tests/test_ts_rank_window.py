"""``ts_rank``'s compiled counts against scipy's average ranks over each window
(ANALYTICS.md section 9), on the three ways it counts: values apart in float32,
a few symbols with values equal in float32 but not in float64, and many ties;
with NaN in some windows and steps taken back."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata

from factorcast.factors.expressions.order import RankWindow


def oracle(history: np.ndarray, d: int) -> np.ndarray:
    """The rank of the last row among the last ``d`` rows, over ``d``; NaN if any
    of them is NaN or fewer than ``d`` rows."""
    out = np.full(history.shape[1], np.nan)
    if history.shape[0] < d:
        return out
    window = history[-d:]
    for s in range(history.shape[1]):
        col = window[:, s]
        if np.isfinite(col).all():
            out[s] = rankdata(col, method="average")[-1] / d
    return out


def series(kind: str, rng: np.random.Generator, bars: int, n: int) -> np.ndarray:
    if kind == "apart":
        x = rng.normal(size=(bars, n))
    elif kind == "float32_close":  # symbol 0: values one float64 ulp apart
        x = rng.normal(size=(bars, n))
        x[:, 0] = 1.0 + rng.integers(0, 3, size=bars) * np.finfo(np.float64).eps
    else:  # "ties": every symbol
        x = rng.integers(-1, 2, size=(bars, n)).astype(np.float64)
    x[rng.random((bars, n)) < 0.02] = np.nan
    return x


@pytest.mark.parametrize("kind", ["apart", "float32_close", "ties"])
@pytest.mark.parametrize("d", [1, 7, 40])
def test_ts_rank_matches_average_ranks(kind: str, d: int) -> None:
    rng = np.random.default_rng(d)
    n, bars = 24, 160
    x = series(kind, rng, bars, n)
    window = RankWindow(n, d)
    window.keep_undo(5)
    t, taken_back = 0, set()
    while t < bars:
        got = window.push(x[t])
        np.testing.assert_array_equal(got, oracle(x[: t + 1], d))
        t += 1
        if t % 23 == 0 and t not in taken_back:  # take three back, push them again
            taken_back.add(t)
            window.undo(3)
            t -= 3

"""Average ranks and rank ICs (ANALYTICS.md section 2) where their sort keys are
hardest: values that differ only in the low bits of their mantissa (where the keys,
float32, carry the symbol's index), values that differ below float32's precision or
lie beyond its range, -0.0 beside 0.0, subnormals, long runs of ties and more
symbols than one byte of index bits.  scipy's rankdata and spearmanr are the oracle,
the ranks exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from factorcast.factors.analytics import average_ranks, rank_ic, spearman_columns
from factorcast.factors.reasons import Reason


def near_values(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` values drawn from a few bases, each moved by a few ulps or not at all,
    with both zeros, a subnormal and its neighbours among them."""
    bases = np.array([-2.5, -1e-300, -0.0, 0.0, 5e-324, 1e-310, 0.1, 1.0, 3.0, 1e300])
    x = bases[rng.integers(0, bases.size, n)]
    steps = rng.integers(-3, 4, n)
    for _ in range(3):
        up = steps > 0
        down = steps < 0
        x[up] = np.nextafter(x[up], np.inf)
        x[down] = np.nextafter(x[down], -np.inf)
        steps = steps - np.sign(steps)
    return x


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 1500))
def test_ranks_of_nearly_equal_values_equal_scipy(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    x = np.column_stack([near_values(rng, n), rng.normal(size=n), np.round(rng.normal(size=n))])
    mask = rng.random(x.shape) < 0.9
    x[rng.random(x.shape) < 0.05] = np.nan  # left out whatever the mask says
    ranks = average_ranks(x, mask)
    for k in range(x.shape[1]):
        kept = mask[:, k] & np.isfinite(x[:, k])
        assert np.array_equal(ranks[kept, k], stats.rankdata(x[kept, k]))
        assert np.isnan(ranks[~kept, k]).all()


@pytest.mark.parametrize("n", [4, 9, 255, 256, 257, 1025, 3000])
def test_rank_ic_of_nearly_equal_values_equals_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    x = np.asfortranarray(np.column_stack([near_values(rng, n) for _ in range(4)]))
    x[rng.random(n) < 0.1, 2] = np.nan  # a mask of its own
    r = near_values(rng, n)
    r[rng.random(n) < 0.05] = np.nan
    ic, why, count = rank_ic(x, r)
    for k in range(x.shape[1]):
        ok = np.isfinite(x[:, k]) & np.isfinite(r)
        assert count[k] == ok.sum()
        if ok.sum() < 3:
            assert np.isnan(ic[k]) and why[k] == Reason.TOO_FEW_SYMBOLS
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a constant ranking: NaN, with a warning
            want = stats.spearmanr(x[ok, k], r[ok]).statistic
        if np.isnan(want):
            assert np.isnan(ic[k]) and why[k] == Reason.NO_DISPERSION
        else:
            assert ic[k] == pytest.approx(want, abs=1e-12)
            assert why[k] == 0
    # the same figures column by column
    rho, _, n_col = spearman_columns(x, np.repeat(r[:, None], x.shape[1], axis=1))
    assert np.array_equal(rho, ic, equal_nan=True) and np.array_equal(n_col, count)


def test_negative_zero_ties_with_zero() -> None:
    x = np.array([[0.0], [-0.0], [1.0], [-1.0], [-0.0]])
    ranks = average_ranks(x, np.ones(x.shape, dtype=bool))
    assert np.array_equal(ranks[:, 0], stats.rankdata(x[:, 0]))
    assert ranks[0, 0] == ranks[1, 0] == ranks[4, 0] == 3.0


def below_float32(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` values that float32 keys cannot tell apart: a few centres, each moved by
    a relative 1e-9 .. 1e-5 (below a float32 key's resolution of 2^-14 .. 2^-11
    relative), and values beyond float32's range (whose keys are its largest)."""
    centres = np.array([-3.0, -0.01, 0.0, 0.002, 1.0, 3.4e38, -3.4e38])
    x = centres[rng.integers(0, centres.size, n)]
    x = x * (1.0 + rng.choice([0.0, 1e-9, -1e-7, 3e-6, -1e-5], n))
    x[rng.random(n) < 0.05] = rng.choice([1e39, -1e39, 1e300, -1e300])
    return x


@pytest.mark.parametrize("n", [5, 500, 3000])
def test_values_float32_keys_cannot_tell_apart_rank_as_scipy(n: int) -> None:
    rng = np.random.default_rng(n + 1)
    x = np.column_stack([below_float32(rng, n) for _ in range(3)])
    ranks = average_ranks(x, np.ones(x.shape, dtype=bool))
    for k in range(x.shape[1]):
        assert np.array_equal(ranks[:, k], stats.rankdata(x[:, k]))
    r = below_float32(rng, n)
    ic, why, _ = rank_ic(x, r)
    for k in range(x.shape[1]):
        want = stats.spearmanr(x[:, k], r).statistic
        assert ic[k] == pytest.approx(want, abs=1e-12) and why[k] == 0

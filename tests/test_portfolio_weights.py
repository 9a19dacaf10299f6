"""Portfolios (ANALYTICS.md section 4): weights from holdings, exposures and
position contributions against a plain pandas recomputation, groups, every bad
input named in one line, and properties with hypothesis."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from factorcast.factors import CANONICAL, UNIVERSE, Reason
from factorcast.factors.analytics import (
    CASH,
    UNCLASSIFIED,
    Holding,
    PortfolioInputError,
    group_breakdown,
    group_map,
    holdings_weights,
    portfolio_exposure,
)

FloatArray = NDArray[np.float64]
K = len(CANONICAL)
UNIVERSE_SYMBOLS = ("BTC/USDT", "ETH/USDT", "SOL/USDT", "ADA/USDT", "XRP/USDT", "DOGE/USDT")
CLOSE = np.array([50_000.0, 3_000.0, 150.0, 0.5, 0.6, 0.1])


def test_quantities_become_value_over_nav() -> None:
    rows = [
        Holding("ETH/USDT", quantity=2.0),
        Holding("BTC/USDT", quantity=0.1),
        Holding("DOGE/USDT", quantity=-10_000.0),  # a short
        Holding(CASH, quantity=1_500.0),
    ]
    got = holdings_weights(rows, UNIVERSE_SYMBOLS, CLOSE)
    frame = pd.DataFrame({"symbol": ["ETH/USDT", "BTC/USDT", "DOGE/USDT"], "q": [2.0, 0.1, -1e4]})
    frame["price"] = frame["symbol"].map(dict(zip(UNIVERSE_SYMBOLS, CLOSE, strict=True)))
    frame["value"] = frame["q"] * frame["price"]
    nav = frame["value"].sum() + 1_500.0
    assert got.symbols == tuple(frame["symbol"])
    assert got.nav == pytest.approx(nav, rel=1e-15)
    assert got.cash == 1_500.0 and got.quote == "USDT"
    np.testing.assert_allclose(got.weights, frame["value"] / nav, rtol=1e-15)
    assert [UNIVERSE_SYMBOLS[i] for i in got.index] == list(got.symbols)


def test_weights_are_used_as_given() -> None:
    rows = [Holding("SOL/USDT", weight=0.7), Holding("ADA/USDT", weight=-0.2)]
    got = holdings_weights(rows, UNIVERSE_SYMBOLS, CLOSE)
    assert got.weights.tolist() == [0.7, -0.2] and got.nav is None and got.cash is None


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ([Holding("PEPE/USDT", weight=0.5)], "unknown symbol PEPE/USDT"),
        ([Holding("BTC/USDT", weight=0.5), Holding("BTC/USDT", weight=0.1)], "duplicate symbol"),
        ([Holding("BTC/USDT", weight=0.5, quantity=1.0)], "both weight and quantity"),
        ([Holding("BTC/USDT")], "neither weight nor quantity"),
        ([Holding("BTC/USDT", weight=0.5), Holding("ETH/BTC", weight=0.5)], "mixed quote currency"),
        ([Holding("BTC/USDT", quantity=-1.0)], "NAV <= 0"),
        ([Holding("BTC/USDT", quantity=0.1), Holding(CASH, quantity=-5_000.0)], "NAV <= 0"),
        ([Holding("BTC/USDT", weight=0.5), Holding("ETH/USDT", quantity=1.0)], "mix weights"),
        ([Holding("BTC/USDT", weight=0.5), Holding(CASH, quantity=100.0)], "mix weights"),
        ([Holding(CASH, weight=0.5)], "CASH takes a quantity"),
        ([Holding(CASH, quantity=100.0)], "no holdings besides CASH"),
        ([], "no holdings"),
        ([Holding("BTC/USDT", weight=math.nan)], "weight of BTC/USDT is not a finite"),
        ([Holding("", weight=0.1)], "a row has no symbol"),
    ],
)
def test_bad_holdings_are_named_in_one_line(rows: list[Holding], named: str) -> None:
    with pytest.raises(PortfolioInputError) as err:
        holdings_weights(rows, UNIVERSE_SYMBOLS, CLOSE)
    assert named in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)


def test_quantity_without_a_close_is_named() -> None:
    close = CLOSE.copy()
    close[2] = np.nan
    with pytest.raises(PortfolioInputError, match=r"no close for SOL/USDT"):
        holdings_weights([Holding("SOL/USDT", quantity=1.0)], UNIVERSE_SYMBOLS, close)


def random_book(seed: int, m: int) -> tuple[list[str], FloatArray, FloatArray, NDArray[np.int64]]:
    rng = np.random.default_rng(seed)
    symbols = [f"S{i}/USDT" for i in range(m)]
    w = rng.normal(scale=0.2, size=m)
    x = rng.normal(size=(m, K))
    reasons = np.zeros((m, K), dtype=np.int64)
    holes = rng.random((m, K)) < 0.08
    x[holes] = np.nan
    reasons[holes] = int(Reason.INSUFFICIENT_HISTORY)
    return symbols, w, x, reasons


def test_exposures_and_contributions_match_pandas() -> None:
    symbols, w, x, reasons = random_book(1, 40)
    x[5, 3] = np.nan
    reasons[5, 3] = int(Reason.MISSING_BAR)
    reasons[5, :3] = 0
    x[5, :3] = 0.1
    got = portfolio_exposure(symbols, w, CANONICAL, x, reasons)
    frame = pd.DataFrame(x, index=symbols, columns=list(CANONICAL))
    weights = pd.Series(w, index=symbols)
    covered = frame.notna().all(axis=1)
    fc, wc = frame[covered], weights[covered]
    oracle = pd.concat([pd.Series({UNIVERSE: wc.sum()}), fc.mul(wc, axis=0).sum()])
    assert got.names == (UNIVERSE, *CANONICAL)
    assert got.symbols == tuple(fc.index)
    np.testing.assert_allclose(got.exposure, oracle.to_numpy(), rtol=0, atol=1e-14)
    contrib = fc.mul(wc, axis=0)
    np.testing.assert_allclose(got.contributions[:, 1:], contrib.to_numpy(), rtol=0, atol=0)
    np.testing.assert_array_equal(got.contributions[:, 0], wc.to_numpy())
    # the contributions sum to the portfolio exposure
    for j in range(K + 1):
        assert abs(math.fsum(got.contributions[:, j]) - got.exposure[j]) <= 1e-12
    assert got.covered_weight == pytest.approx(wc.abs().sum(), rel=1e-14)
    assert set(got.uncovered) == set(frame.index[~covered])
    assert got.uncovered["S5/USDT"] == Reason.MISSING_BAR
    for s in got.uncovered:
        assert s not in got.symbols


def test_groups_sum_their_members() -> None:
    symbols, w, x, reasons = random_book(2, 12)
    rows = [
        {"symbol": s, "sector": ["l1", "defi", "meme"][i % 3], "region": "" if i % 4 else "us"}
        for i, s in enumerate(symbols[:10])  # the last two have no mapping
    ]
    mapping = group_map(rows)
    assert set(mapping) == {"sector", "region"}
    pf = portfolio_exposure(symbols, w, CANONICAL, x, reasons)
    for dimension in ("sector", "region"):
        got = group_breakdown(pf, mapping[dimension])
        frame = pd.DataFrame(pf.contributions, index=pf.symbols, columns=pf.names)
        label = pd.Series([mapping[dimension].get(s, UNCLASSIFIED) for s in pf.symbols])
        label.index = frame.index
        by = frame.groupby(label).sum()
        weight = pd.Series(pf.weights, index=pf.symbols).groupby(label).sum()
        assert set(got.groups) == set(by.index)
        assert got.groups[-1] == UNCLASSIFIED
        for g, name in enumerate(got.groups):
            np.testing.assert_allclose(got.contributions[g], by.loc[name], rtol=0, atol=1e-14)
            assert got.weights[g] == pytest.approx(weight[name], abs=1e-14)
            assert set(got.members[g]) == set(label.index[label == name])
        np.testing.assert_allclose(got.contributions.sum(axis=0), pf.exposure, rtol=0, atol=1e-12)


def test_mapping_with_a_symbol_twice_is_named() -> None:
    rows = [{"symbol": "BTC/USDT", "sector": "l1"}, {"symbol": "BTC/USDT", "sector": "pow"}]
    with pytest.raises(PortfolioInputError, match=r"symbol BTC/USDT appears twice"):
        group_map(rows)
    with pytest.raises(PortfolioInputError, match=r"a row has no symbol"):
        group_map([{"symbol": " ", "sector": "l1"}])


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.data())
def test_permuting_positions_permutes_contributions(seed: int, m: int, data: st.DataObject) -> None:
    symbols, w, x, reasons = random_book(seed, m)
    perm = np.array(data.draw(st.permutations(range(m))), dtype=np.intp)
    a = portfolio_exposure(symbols, w, CANONICAL, x, reasons)
    b = portfolio_exposure([symbols[i] for i in perm], w[perm], CANONICAL, x[perm], reasons[perm])
    assert set(a.symbols) == set(b.symbols) and a.uncovered == b.uncovered
    where = {s: i for i, s in enumerate(b.symbols)}
    order = [where[s] for s in a.symbols]
    np.testing.assert_array_equal(b.contributions[order], a.contributions)
    np.testing.assert_allclose(a.exposure, b.exposure, rtol=0, atol=1e-12)


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 30), st.floats(-10, 10))
def test_scaling_weights_scales_exposures(seed: int, m: int, c: float) -> None:
    symbols, w, x, reasons = random_book(seed, m)
    a = portfolio_exposure(symbols, w, CANONICAL, x, reasons)
    b = portfolio_exposure(symbols, c * w, CANONICAL, x, reasons)
    scale = max(1.0, float(np.abs(a.contributions).sum()) if a.symbols else 1.0)
    np.testing.assert_allclose(b.exposure, c * a.exposure, rtol=0, atol=1e-12 * abs(c) * scale)
    assert b.covered_weight == pytest.approx(abs(c) * a.covered_weight, rel=1e-12, abs=1e-300)

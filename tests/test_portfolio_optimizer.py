"""The scanner and the tilt optimizer (ANALYTICS.md section 8).

The optimizer against a second solver: the same program written in the weights
(not the trades) and solved by OSQP; the objective within 1e-4 relative, every
constraint within 1e-6; an infeasible program names the constraint that binds,
and OSQP confirms that the whole is infeasible and that dropping it is not.
The scanner against a plain pandas recomputation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import osqp
import pandas as pd
import pytest
from numpy.typing import NDArray
from scipy import sparse

from factorcast.factors import CANONICAL, UNIVERSE
from factorcast.factors.analytics import (
    BUDGET,
    LONG_ONLY,
    MAX_WEIGHT,
    InfeasibleTarget,
    OptimizationError,
    PortfolioInputError,
    Suggestion,
    bars_per_year,
    parse_factor_values,
    scan,
    suggest,
    tilt,
)

FloatArray = NDArray[np.float64]
K = len(CANONICAL)
BPY = bars_per_year(3600)


def universe(seed: int, n: int) -> tuple[list[str], FloatArray, FloatArray, FloatArray]:
    rng = np.random.default_rng(seed)
    f = rng.standard_t(5, size=(500, K + 1)) * rng.uniform(0.002, 0.02, K + 1)
    cov = f.T @ f / f.shape[0]
    x = np.clip(rng.normal(size=(n, K)), -3, 3)
    specific = rng.uniform(2e-5, 4e-4, n)
    return [f"S{i}/USDT" for i in range(n)], x, cov, specific


def plain_v(cov: FloatArray, specific: FloatArray, x: FloatArray) -> FloatArray:
    b = np.column_stack([np.ones(x.shape[0]), x])
    return b @ cov @ b.T + np.diag(specific)


def osqp_solve(
    v: FloatArray,
    x: FloatArray,
    w: FloatArray,
    target: Mapping[str, float],
    max_weight: float | None,
    long_only: bool,
) -> tuple[str, FloatArray]:
    """min (w' - w)' V (w' - w) over w', V in bp^2; ``max_weight`` None drops
    the upper bound.  Returns OSQP's status and w'."""
    n = w.size
    cols = [CANONICAL.index(k) for k in target]
    a = np.vstack([x[:, cols].T, np.ones((1, n)), np.eye(n)])
    lower = np.full(n, 0.0 if long_only else (-max_weight if max_weight else -np.inf))
    upper = np.full(n, max_weight if max_weight else np.inf)
    eq = np.array([*target.values(), w.sum()])
    scale = 1e8
    prob = osqp.OSQP()
    prob.setup(
        sparse.triu(sparse.csc_matrix(2 * scale * v), format="csc"),
        -2 * scale * v @ w,
        sparse.csc_matrix(a),
        np.concatenate([eq, lower]),
        np.concatenate([eq, upper]),
        eps_abs=1e-11,
        eps_rel=1e-11,
        max_iter=400_000,
        polishing=True,
        verbose=False,
    )
    res = prob.solve(raise_error=False)
    return str(res.info.status), np.asarray(res.x, dtype=np.float64)


def check_constraints(
    got: Suggestion,
    x: FloatArray,
    target: Mapping[str, float],
    budget: float,
    max_weight: float,
    long_only: bool,
) -> None:
    for name, value in target.items():
        assert abs(got.weights @ x[:, CANONICAL.index(name)] - value) <= 1e-6, name
    assert abs(got.weights.sum() - budget) <= 1e-6
    assert np.all(np.abs(got.weights) <= max_weight + 1e-6)
    if long_only:
        assert np.all(got.weights >= -1e-6)


CASES = [
    ({"size": -0.5, "momentum": 0.5}, 0.25, True),
    ({"size": -0.5, "momentum": 0.5}, 0.25, False),
    ({"value": 0.3}, 0.1, True),
    ({"market": 0.0, "volatility": -0.8, "liquidity": 0.4}, 0.15, False),
]


@pytest.mark.parametrize(("target", "max_weight", "long_only"), CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_optimum_matches_osqp(
    target: dict[str, float], max_weight: float, long_only: bool, seed: int
) -> None:
    symbols, x, cov, specific = universe(seed, 60)
    rng = np.random.default_rng(seed + 100)
    current = np.zeros(60)
    held = rng.choice(60, 12, replace=False)
    current[held] = rng.dirichlet(np.ones(12)) * 0.95
    if not long_only:
        current[held[:3]] *= -0.5
    got = suggest(
        symbols,
        CANONICAL,
        x,
        cov,
        specific,
        current,
        target,
        bars_per_year=BPY,
        max_weight=max_weight,
        long_only=long_only,
    )
    v = plain_v(cov, specific, x)
    status, other = osqp_solve(v, x, current, target, max_weight, long_only)
    assert status == "solved"
    theirs = (other - current) @ v @ (other - current)
    assert got.objective == pytest.approx(theirs, rel=1e-4)
    check_constraints(got, x, target, current.sum(), max_weight, long_only)
    # the reported figures, from their definitions
    d = got.weights - current
    np.testing.assert_array_equal(got.trades, d)
    assert got.objective == pytest.approx(d @ v @ d, rel=1e-12)
    assert got.tracking_error_annual == pytest.approx(math.sqrt(d @ v @ d * 8760), rel=1e-12)
    assert got.turnover == pytest.approx(np.abs(d).sum(), rel=1e-12)
    assert got.names == (UNIVERSE, *CANONICAL)
    np.testing.assert_allclose(got.exposure[1:], got.weights @ x, rtol=0, atol=1e-14)
    assert got.exposure[0] == pytest.approx(current.sum(), abs=1e-6)
    sentence = tilt(got.names, got.exposure).sentence
    assert sentence.startswith(("Tilted", "No factor"))


def test_symbols_without_exposures_are_left_out() -> None:
    symbols, x, cov, specific = universe(3, 30)
    current = np.zeros(30)
    current[[0, 1, 2]] = [0.3, 0.3, 0.3]
    x[1, 4] = np.nan
    got = suggest(
        symbols, CANONICAL, x, cov, specific, current, {"momentum": 0.2}, bars_per_year=BPY
    )
    assert got.left_out == {symbols[1]: 0.3}
    assert symbols[1] not in got.symbols and len(got.symbols) == 29
    keep = np.isfinite(x).all(axis=1)
    v = plain_v(cov, specific[keep], x[keep])
    status, other = osqp_solve(v, x[keep], current[keep], {"momentum": 0.2}, 0.25, True)
    assert status == "solved"
    theirs = (other - current[keep]) @ v @ (other - current[keep])
    assert got.objective == pytest.approx(theirs, rel=1e-4)
    assert got.weights.sum() == pytest.approx(0.6, abs=1e-6)


def assert_binding(
    err: InfeasibleTarget,
    x: FloatArray,
    v: FloatArray,
    w: FloatArray,
    target: dict[str, float],
    max_weight: float,
    long_only: bool,
) -> None:
    """OSQP: infeasible as posed, feasible with each named constraint dropped."""
    status, _ = osqp_solve(v, x, w, target, max_weight, long_only)
    assert "infeasible" in status
    for name in err.constraints:
        assert name in str(err)
        if name in target:
            rest = {k: t for k, t in target.items() if k != name}
            status, _ = osqp_solve(v, x, w, rest, max_weight, long_only)
        elif name == MAX_WEIGHT:
            status, _ = osqp_solve(v, x, w, target, None, long_only)
        elif name == LONG_ONLY:
            status, _ = osqp_solve(v, x, w, target, max_weight, False)
        else:
            continue
        assert status == "solved", name


def test_unreachable_target_names_it() -> None:
    symbols, x, cov, specific = universe(4, 40)
    current = np.zeros(40)
    current[:5] = 0.2
    target = {"value": 0.2, "size": -5.0}
    with pytest.raises(InfeasibleTarget) as err:
        suggest(symbols, CANONICAL, x, cov, specific, current, target, bars_per_year=BPY)
    assert err.value.constraints == ("size",)
    assert "size=-5 is out of reach" in str(err.value) and "\n" not in str(err.value)
    assert_binding(err.value, x, plain_v(cov, specific, x), current, target, 0.25, True)


def test_budget_beyond_the_bounds_names_it() -> None:
    symbols, x, cov, specific = universe(5, 4)
    current = np.array([0.3, 0.3, 0.3, 0.3])  # 1.2 > 4 * 0.25
    with pytest.raises(InfeasibleTarget) as err:
        suggest(symbols, CANONICAL, x, cov, specific, current, {"size": 0.0}, bars_per_year=BPY)
    assert err.value.constraints == (BUDGET, MAX_WEIGHT)
    assert "budget" in str(err.value)


def test_conflicting_targets_name_each() -> None:
    symbols, x, cov, specific = universe(6, 40)
    rng = np.random.default_rng(6)
    x[:, 3] = x[:, 1] + 0.05 * rng.normal(size=40)  # momentum follows size
    current = np.full(40, 1.0 / 40)
    target = {"size": 0.6, "momentum": -0.6}
    with pytest.raises(InfeasibleTarget) as err:
        suggest(symbols, CANONICAL, x, cov, specific, current, target, bars_per_year=BPY)
    assert {"size", "momentum"} <= set(err.value.constraints)
    assert "cannot be met together" in str(err.value)
    assert_binding(err.value, x, plain_v(cov, specific, x), current, target, 0.25, True)


def test_bad_inputs_are_named() -> None:
    symbols, x, cov, specific = universe(7, 10)
    w = np.zeros(10)
    with pytest.raises(PortfolioInputError, match="unknown factor 'carry'"):
        suggest(symbols, CANONICAL, x, cov, specific, w, {"carry": 1.0}, bars_per_year=BPY)
    with pytest.raises(PortfolioInputError, match="unknown factor 'universe'"):
        suggest(symbols, CANONICAL, x, cov, specific, w, {UNIVERSE: 1.0}, bars_per_year=BPY)
    with pytest.raises(PortfolioInputError, match="max_weight"):
        suggest(
            symbols,
            CANONICAL,
            x,
            cov,
            specific,
            w,
            {"size": 0.0},
            bars_per_year=BPY,
            max_weight=0.0,
        )
    with pytest.raises(OptimizationError, match="no risk model"):
        suggest(
            symbols,
            CANONICAL,
            x,
            np.full_like(cov, np.nan),
            specific,
            w,
            {"size": 0.0},
            bars_per_year=BPY,
        )


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("size=-1,carry=1", "unknown factor 'carry'"),
        ("size=-1,size=1", "factor size named twice"),
        ("size", "'size' is not name=value"),
        ("size=big", "size=big is not a number"),
        ("size=inf", "size=inf is not a finite number"),
        (" , ", "no factor given"),
    ],
)
def test_parse_factor_values_names_the_problem(text: str, named: str) -> None:
    with pytest.raises(PortfolioInputError) as err:
        parse_factor_values(text, CANONICAL)
    assert named in str(err.value)
    assert parse_factor_values("size=-1, momentum=1", CANONICAL) == {"size": -1.0, "momentum": 1.0}


def test_scan_matches_pandas() -> None:
    symbols, x, cov, specific = universe(8, 50)
    x[[3, 17], [2, 5]] = np.nan
    want = {"size": -1.0, "momentum": 1.0}
    got = scan(symbols, CANONICAL, x, cov, specific, want, top=7)
    frame = pd.DataFrame(x, index=symbols, columns=list(CANONICAL)).dropna()
    t = pd.Series(0.0, index=list(CANONICAL))
    t["size"], t["momentum"] = -1.0, 1.0
    v = pd.DataFrame(plain_v(cov, specific, np.nan_to_num(x)), index=symbols, columns=symbols)
    table = pd.DataFrame({"alignment": frame @ t / np.sqrt((t**2).sum())})
    table["purity"] = table["alignment"] / np.sqrt((frame**2).sum(axis=1))
    table["efficiency"] = table["alignment"] / np.sqrt(np.diag(v.loc[frame.index, frame.index]))
    table = table.sort_values("efficiency", ascending=False, kind="stable")
    assert got.symbols == tuple(table.index)
    np.testing.assert_allclose(got.alignment, table["alignment"], rtol=1e-12)
    np.testing.assert_allclose(got.purity, table["purity"], rtol=1e-12)
    np.testing.assert_allclose(got.efficiency, table["efficiency"], rtol=1e-12)
    np.testing.assert_array_equal(got.exposures, frame.loc[table.index].to_numpy())
    top = list(table.index[:7])
    w = np.full(7, 1 / 7)
    assert got.basket.symbols == tuple(top)
    np.testing.assert_allclose(got.basket.exposure[1:], w @ frame.loc[top].to_numpy(), atol=1e-14)
    assert got.basket.exposure[0] == pytest.approx(1.0, abs=1e-15)
    sub = v.loc[top, top].to_numpy()
    assert got.basket.sigma == pytest.approx(math.sqrt(w @ sub @ w), rel=1e-12)
    assert got.want == want


def test_scan_rejects_an_empty_want() -> None:
    symbols, x, cov, specific = universe(9, 5)
    with pytest.raises(PortfolioInputError, match="no factor with a nonzero value"):
        scan(symbols, CANONICAL, x, cov, specific, {"size": 0.0})

"""The incremental risk model (ANALYTICS.md section 3) against a plain recomputation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from factorcast.factors.analytics import (
    RiskModel,
    asset_covariance,
    risk_decomposition,
)
from factorcast.factors.reasons import Reason
from factorcast.factors.registry import CANONICAL, UNIVERSE

FloatArray = NDArray[np.float64]
W, H, MIN_OBS = 50, 9.0, 10  # small, to keep the tests fast
MIN_RES = 30


def small(names: tuple[str, ...], n: int) -> RiskModel:
    return RiskModel(names, n, window=W, half_life=H, min_obs=MIN_OBS)


def synthetic(
    seed: int, bars: int, n: int, k: int = len(CANONICAL)
) -> tuple[FloatArray, FloatArray]:
    """Factor returns (bars x k+1) with NaN bars, residuals (bars x n) with symbols
    entering and leaving the sample and scattered holes."""
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.002, 0.03, k + 1)
    f = rng.standard_t(4, (bars, k + 1)) * scale
    f[rng.uniform(size=bars) < 0.1] = np.nan  # the regression had a reason
    f[rng.uniform(size=bars) < 0.03, rng.integers(0, k + 1)] = np.nan  # one factor missing
    u = rng.standard_t(5, (bars, n)) * rng.uniform(0.005, 0.05, n)
    enter = rng.integers(0, bars // 2, n)
    leave = rng.integers(bars // 2, bars + bars // 3, n)
    t = np.arange(bars)[:, None]
    u[(t < enter) | (t >= leave)] = np.nan
    u[rng.uniform(size=(bars, n)) < 0.08] = np.nan
    u[:, 0] = np.nan  # one symbol never in the sample
    u[: bars // 3, 1] = np.nan  # one enters late
    return f, u


Ref = tuple[FloatArray | None, FloatArray, NDArray[np.bool_]]


def reference(
    f: FloatArray,
    u: FloatArray,
    window: int,
    half_life: float,
    min_obs: int,
    bars: list[int] | None = None,
) -> dict[int, Ref]:
    """The contract, written plainly: per bar T, the window's bars, weights
    2**(-(T-t)/H), normalized over the finite bars."""
    fr = pd.DataFrame(f)
    ur = pd.DataFrame(u)
    out: dict[int, Ref] = {}
    for T in range(len(fr)) if bars is None else bars:
        lo = max(0, T - window + 1)
        fw = fr.iloc[lo : T + 1]
        weight = pd.Series(2.0 ** (-(T - np.arange(lo, T + 1)) / half_life), index=fw.index)
        finite = fw.notna().all(axis=1)
        if finite.sum() >= min_obs:
            a = weight[finite] / weight[finite].sum()
            g = fw[finite]
            cov = sum(a[t] * np.outer(g.loc[t], g.loc[t]) for t in g.index)
            F = np.asarray(cov, dtype=np.float64)
        else:
            F = None
        uw = ur.iloc[lo : T + 1]
        own = {}
        for i in uw.columns:
            col = uw[i].dropna()
            if len(col) >= MIN_RES:
                b = weight[col.index] / weight[col.index].sum()
                own[i] = float((b * col**2).sum())
        D = pd.Series(np.nan, index=uw.columns)
        for i, v in own.items():
            D[i] = v
        fallback = ~D.index.isin(list(own))
        if own:
            D[fallback] = float(np.median(list(own.values())))
        out[T] = (F, np.asarray(D, dtype=np.float64), np.asarray(fallback))
    return out


def rel_close(a: FloatArray, b: FloatArray, rtol: float = 1e-12) -> bool:
    a = np.asarray(a)
    b = np.asarray(b)
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return False
    ok = ~np.isnan(a)
    return bool(np.all(np.abs(a[ok] - b[ok]) <= rtol * np.maximum(np.abs(b[ok]), 1e-300)))


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_plain_recomputation(seed: int) -> None:
    bars = 3 * W + 37  # the ring wraps and the exact recompute runs three times
    f, u = synthetic(seed, bars, n=12)
    ref = reference(f, u, W, H, MIN_OBS)
    model = small(CANONICAL, u.shape[1])
    saw_model = saw_none = saw_fallback = False
    for T in range(bars):
        snap = model.update(f[T], u[T])
        F, D, fallback = ref[T]
        assert snap.names == (UNIVERSE, *CANONICAL)
        if F is None:
            saw_none = True
            assert snap.reason is Reason.INSUFFICIENT_HISTORY
            assert np.isnan(snap.covariance).all()
        else:
            saw_model = True
            assert snap.reason is Reason.OK
            # relative to each entry, and to the diagonal scale for the off-diagonal
            scale = np.sqrt(np.outer(np.diag(F), np.diag(F)))
            assert np.all(np.abs(snap.covariance - F) <= 1e-12 * scale), T
            assert rel_close(np.diag(snap.covariance), np.diag(F)), T
        assert rel_close(snap.specific, D), T
        assert np.array_equal(snap.fallback, fallback), T
        saw_fallback |= bool(fallback.any() and not fallback.all())
    assert saw_model and saw_none and saw_fallback


@pytest.mark.parametrize("saved", [False, True], ids=["copied", "saved-by-update"])
def test_undo_keeps_matching_plain_recomputation(saved: bool) -> None:
    """Take back 1-3 updates of junk at random bars (as the engine does for a late
    bar), across the ring's wrap and the exact recomputes: the model stays the
    plain recomputation, whether a checkpoint copies the ring slot or the updates
    save it (``keep_undo``)."""
    bars = 3 * W + 11
    f, u = synthetic(5, bars, n=9)
    ref = reference(f, u, W, H, MIN_OBS)
    rng = np.random.default_rng(5)
    model = small(CANONICAL, u.shape[1])
    if saved:
        model.keep_undo(3)
    for T in range(bars):
        if rng.random() < 0.3:
            tokens = []
            for _ in range(int(rng.integers(1, 4))):
                tokens.append(model.checkpoint())
                model.update(rng.normal(0, 0.1, f.shape[1]), rng.normal(0, 0.1, u.shape[1]))
            for token in reversed(tokens):
                model.restore(token)
        snap = model.update(f[T], u[T])
        F, D, fallback = ref[T]
        if F is None:
            assert snap.reason is Reason.INSUFFICIENT_HISTORY
        else:
            scale = np.sqrt(np.outer(np.diag(F), np.diag(F)))
            assert np.all(np.abs(snap.covariance - F) <= 1e-12 * scale), T
        assert rel_close(snap.specific, D), T
        assert np.array_equal(snap.fallback, fallback), T


def test_defaults_match_plain_recomputation() -> None:
    window = 500
    bars = 2 * window + 20
    f, u = synthetic(7, bars, n=6)
    # the plain loop at every bar is slow at W = 500: every 5th bar, the recompute's
    # neighbours and the last bars
    check = sorted(
        {
            *range(0, bars, 5),
            window - 1,
            window,
            2 * window - 1,
            2 * window,
            *range(bars - 3, bars),
        }
    )
    ref = reference(f, u, window, 90.0, 60, check)
    model = RiskModel(CANONICAL, u.shape[1])
    assert (model.window, model.half_life, model.min_obs) == (500, 90.0, 60)
    checked = 0
    for T in range(bars):
        snap = model.update(f[T], u[T])
        if T not in ref:
            continue
        F, D, fallback = ref[T]
        if F is None:
            assert snap.reason is Reason.INSUFFICIENT_HISTORY
        else:
            scale = np.sqrt(np.outer(np.diag(F), np.diag(F)))
            assert np.all(np.abs(snap.covariance - F) <= 1e-12 * scale), T
            checked += 1
        assert rel_close(snap.specific, D), T
        assert np.array_equal(snap.fallback, fallback), T
    assert checked > 150


def test_euler_identity_and_asset_covariance() -> None:
    f, u = synthetic(3, 140, n=12)
    model = small(CANONICAL, u.shape[1])
    for t in range(len(f)):
        snap = model.update(f[t], u[t])
    assert snap.reason is Reason.OK
    rng = np.random.default_rng(4)
    x = rng.normal(size=(12, len(CANONICAL)))
    w = rng.normal(size=12) / 12
    w[5] = 0.0
    x[5] = np.nan  # not held: may have missing exposures
    dec = risk_decomposition(snap.covariance, snap.specific, x, w)
    total = dec.factor.sum() + dec.specific.sum()
    assert abs(total - 1.0) <= 1e-12
    held = w != 0
    v = asset_covariance(snap.covariance, snap.specific[held], x[held])
    assert abs(w[held] @ v @ w[held] - dec.variance) <= 1e-12 * dec.variance
    assert np.isnan(asset_covariance(snap.covariance, snap.specific, x)[5]).all()
    with pytest.raises(ValueError, match="held symbol"):
        risk_decomposition(snap.covariance, snap.specific, x, np.ones(12))


@st.composite
def panels(draw: st.DrawFn) -> tuple[FloatArray, FloatArray, list[int]]:
    seed = draw(st.integers(0, 2**32 - 1))
    bars = draw(st.integers(40, 130))
    n = draw(st.integers(3, 9))
    f, u = synthetic(seed, bars, n, k=draw(st.integers(1, 4)))
    return f, u, draw(st.permutations(list(range(n))))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(panels(), st.floats(0.01, 100.0))
def test_scaling_by_c_scales_by_c_squared(
    panel: tuple[FloatArray, FloatArray, list[int]], c: float
) -> None:
    f, u, _ = panel
    names = CANONICAL[: f.shape[1] - 1]
    a = small(names, u.shape[1])
    b = small(names, u.shape[1])
    for t in range(len(f)):
        sa = a.update(f[t], u[t])
        sb = b.update(c * f[t], c * u[t])
        assert sa.reason == sb.reason
        if sa.reason is Reason.OK:
            scale = np.sqrt(np.outer(np.diag(sa.covariance), np.diag(sa.covariance)))
            assert np.all(np.abs(sb.covariance - c**2 * sa.covariance) <= 1e-12 * c**2 * scale)
        assert rel_close(sb.specific, c**2 * sa.specific)
        assert np.array_equal(sa.fallback, sb.fallback)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(panels())
def test_permuting_symbols_permutes_specific(
    panel: tuple[FloatArray, FloatArray, list[int]],
) -> None:
    f, u, perm = panel
    names = CANONICAL[: f.shape[1] - 1]
    a = small(names, u.shape[1])
    b = small(names, u.shape[1])
    for t in range(len(f)):
        sa = a.update(f[t], u[t])
        sb = b.update(f[t], u[t, perm])
        assert rel_close(sb.specific, sa.specific[perm], 1e-14)
        assert np.array_equal(sb.fallback, sa.fallback[perm])
        assert np.array_equal(sb.covariance, sa.covariance, equal_nan=True)


def test_rejects_wrong_shapes() -> None:
    model = small(CANONICAL, 4)
    with pytest.raises(ValueError, match="factor returns"):
        model.update(np.zeros(len(CANONICAL)), np.zeros(4))
    with pytest.raises(ValueError, match="residuals"):
        model.update(np.zeros(len(CANONICAL) + 1), np.zeros(3))


def test_exact_recompute_clears_drift() -> None:
    """A huge factor return and residual leave the window; subtracting them leaves
    rounding residue in the running sums, which the recompute every W bars clears."""
    bars = 2 * W
    f, u = synthetic(11, bars, n=40)
    f[3] = 1e6
    u[3] = 1e6
    model = small(CANONICAL, u.shape[1])
    for t in range(bars):
        snap = model.update(f[t], u[t])
    F, D, fallback = reference(f, u, W, H, MIN_OBS, [bars - 1])[bars - 1]
    assert F is not None
    assert np.array_equal(snap.covariance, 0.5 * (snap.covariance + snap.covariance.T))
    scale = np.sqrt(np.outer(np.diag(F), np.diag(F)))
    assert np.all(np.abs(snap.covariance - F) <= 1e-12 * scale)
    assert rel_close(snap.specific, D)
    assert np.array_equal(snap.fallback, fallback)

"""Properties of the factor model that must hold for any panel (hypothesis)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from factorcast.factors import CANONICAL, FactorModel, FactorParams, UndoExhausted, standardize
from factorcast.factors.registry import MARKET, MOMENTUM, VALUE, VOLATILITY

SMALL = FactorParams(
    beta_window=12,
    beta_min_obs=6,
    size_window=10,
    size_min_obs=5,
    momentum_lag=4,
    value_lag=9,
    volatility_window=6,
    volatility_min_obs=4,
    liquidity_window=6,
    liquidity_min_obs=4,
)
PRICE_INVARIANT = [CANONICAL.index(f) for f in (MARKET, MOMENTUM, VALUE, VOLATILITY)]


@st.composite
def panels(draw: st.DrawFn) -> dict[str, NDArray[np.float64]]:
    n = draw(st.integers(4, 8))
    t = draw(st.integers(20, 40))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    returns = rng.standard_t(3, size=(t, n)) * 0.02 + rng.normal(0, 0.01, (t, 1))
    close = 10 ** rng.uniform(-3, 3, n) * np.exp(np.cumsum(returns, axis=0))
    volume = rng.lognormal(5, 2, (t, n))
    volume[rng.uniform(size=(t, n)) < 0.05] = 0.0
    missing = rng.uniform(size=(t, n)) < draw(st.sampled_from([0.0, 0.05, 0.2]))
    close[missing] = np.nan
    volume[missing] = np.nan
    return {"close": close, "volume": volume}


def run(
    panel: dict[str, NDArray[np.float64]], params: FactorParams = SMALL
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.uint8]]:
    close, volume = panel["close"], panel["volume"]
    t, n = close.shape
    model = FactorModel(n, params)
    raws, exps, whys = [], [], []
    for i in range(t):
        snap = model.update(close[i], volume[i], np.full(n, np.nan), np.isfinite(close[i]))
        raws.append(snap.raw.copy())
        exps.append(snap.exposure.copy())
        whys.append(snap.reason.copy())
    return np.array(raws), np.array(exps), np.array(whys)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(panels(), st.randoms(use_true_random=False))
def test_permuting_symbols_permutes_exposures(
    panel: dict[str, NDArray[np.float64]], rnd: object
) -> None:
    n = panel["close"].shape[1]
    perm = np.array(rnd.sample(range(n), n))  # type: ignore[attr-defined]
    raw, exp, why = run(panel)
    raw_p, exp_p, why_p = run({k: v[:, perm] for k, v in panel.items()})
    np.testing.assert_array_equal(why_p, why[:, perm])
    np.testing.assert_allclose(raw_p, raw[:, perm], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(exp_p, exp[:, perm], rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(panels(), st.integers(0, 7), st.floats(1e-4, 1e4))
def test_scaling_one_symbols_prices_leaves_price_free_factors(
    panel: dict[str, NDArray[np.float64]], which: int, scale: float
) -> None:
    which %= panel["close"].shape[1]
    scaled = {k: v.copy() for k, v in panel.items()}
    scaled["close"][:, which] *= scale
    raw, exp, why = run(panel)
    raw_s, exp_s, why_s = run(scaled)
    cols = PRICE_INVARIANT
    np.testing.assert_array_equal(why_s[:, :, cols], why[:, :, cols])
    np.testing.assert_allclose(raw_s[:, :, cols], raw[:, :, cols], rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(exp_s[:, :, cols], exp[:, :, cols], rtol=1e-8, atol=1e-8)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(3, 60),
    st.integers(0, 2**32 - 1),
    st.sampled_from(["equal", "random"]),
    st.floats(0.0, 0.5),
)
def test_unclipped_exposures_have_weighted_mean_0_and_std_1(
    n: int, seed: int, weighting: str, nan_share: float
) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.standard_t(2, size=(6, n)) * rng.uniform(0.01, 100, (6, 1))
    raw[rng.uniform(size=raw.shape) < nan_share] = np.nan
    weights = np.ones(n) if weighting == "equal" else rng.lognormal(0, 1, n)
    params = FactorParams(clip=1e300)  # no final clip: the property is about z itself
    z, _ = standardize(raw, weights, params)
    for k in range(6):
        ok = np.isfinite(z[k])
        if np.isfinite(raw[k]).sum() < 3:
            assert not ok.any()
            continue
        assert ok.sum() == np.isfinite(raw[k]).sum()
        w = weights[ok]
        assert abs(np.dot(w, z[k, ok]) / w.sum()) < 1e-9
        sd = z[k, ok].std()  # equal-weighted population std
        # weighted mean 0 means z is centred on mu, not on the equal mean
        assert abs(np.sqrt(np.mean((z[k, ok] - z[k, ok].mean()) ** 2)) - 1.0) < 1e-9
        assert sd > 0


def test_clip_bounds_exposures() -> None:
    rng = np.random.default_rng(1)
    raw = rng.standard_cauchy(size=(6, 200))
    z, _ = standardize(raw, np.ones(200), FactorParams(winsor_k=100.0))
    assert np.nanmax(np.abs(z)) <= 3.0
    assert (np.abs(z) == 3.0).any()  # heavy tails do reach the clip at this width


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    panels(),
    st.integers(1, 10),
    st.data(),
    st.sampled_from(["equal", "adv", "cap"]),
)
def test_undo_takes_updates_back_bit_for_bit(
    panel: dict[str, NDArray[np.float64]], depth: int, data: st.DataObject, weighting: str
) -> None:
    """Undone updates, made again, give the same bits as the first time, across
    the exact recomputations of the rolling sums (every window pushes)."""
    close, volume = panel["close"], panel["volume"]
    t, n = close.shape
    params = dataclasses.replace(SMALL, weighting=weighting)
    supply = np.linspace(1e6, 1e8, n) if weighting == "cap" else None
    model = FactorModel(n, params, supply=supply)
    model.keep_undo(depth)
    qv = np.full(n, np.nan)

    def step(i: int) -> tuple[bytes, ...]:
        s = model.update(close[i], volume[i], qv, np.isfinite(close[i]))
        return (s.raw.tobytes(), s.exposure.tobytes(), s.reason.tobytes(), repr(s.market_return))

    first = [step(i) for i in range(t)]
    back = data.draw(st.integers(0, min(depth, t)))
    assert model.undoable == min(depth, t)
    model.undo(back)
    assert model.steps == t - back
    assert [step(i) for i in range(t - back, t)] == first[t - back :]
    with pytest.raises(UndoExhausted):
        model.undo(depth + 1)
    assert model.steps == t  # nothing was taken back


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(panels(), st.integers(1, 12), st.data(), st.sampled_from(["equal", "adv"]))
def test_an_undo_log_changes_no_bit(
    panel: dict[str, NDArray[np.float64]], depth: int, data: st.DataObject, weighting: str
) -> None:
    """Its larger rings give the same bits as the plain ones, also when it is turned
    on midway (the windows move into the new rings) or undoes and redoes on the way."""
    close, volume = panel["close"], panel["volume"]
    t, n = close.shape
    params = dataclasses.replace(SMALL, weighting=weighting)
    start = data.draw(st.integers(0, t - 1))
    plain, logged = FactorModel(n, params), FactorModel(n, params)
    qv = np.full(n, np.nan)
    for i in range(t):
        if i == start:
            logged.keep_undo(depth)
        args = (close[i], volume[i], qv, np.isfinite(close[i]))
        a = plain.update(*args)
        if i > start and i % 3 == 0:
            logged.undo(1)
            logged.update(close[i - 1], volume[i - 1], qv, np.isfinite(close[i - 1]))
        b = logged.update(*args)
        assert a.raw.tobytes() == b.raw.tobytes()
        assert a.exposure.tobytes() == b.exposure.tobytes()
        assert a.reason.tobytes() == b.reason.tobytes()

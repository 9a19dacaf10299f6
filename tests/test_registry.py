"""The one registry of factor names, and the model's rows following it."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from factorcast.factors import CANONICAL, REGISTRY, FactorModel, FactorParams, FactorSpec, Reason
from factorcast.factors.model import (
    DESCRIPTORS,
    BarInputs,
    FloatArray,
    ReasonArray,
    descriptor,
)
from factorcast.factors.registry import canonical_registry


def test_canonical_names_and_order() -> None:
    assert CANONICAL == ("market", "size", "value", "momentum", "volatility", "liquidity")
    assert REGISTRY.names == CANONICAL


def test_display_labels_come_from_the_registry_and_the_parameters() -> None:
    params = FactorParams(beta_window=500, beta_min_obs=100)
    assert REGISTRY["market"].display_label(params) == "Market beta (500 bars)"
    assert REGISTRY["value"].display_label(params) == "Value, reversal (63-252 bars)"
    assert REGISTRY["market"].display_label() == "Market beta"


def test_custom_factors_join_under_their_own_names() -> None:
    registry = canonical_registry()
    registry.register(FactorSpec("carry", "Carry ({momentum_lag} bars)", "high funding"))
    assert registry.names == (*CANONICAL, "carry")
    assert "carry" not in REGISTRY  # the shared registry is untouched
    with pytest.raises(ValueError, match="already registered"):
        registry.register(FactorSpec("size", "Size again", "large"))
    with pytest.raises(ValueError, match="lower-case identifier"):
        registry.register(FactorSpec("Bad Name", "x", "y"))
    with pytest.raises(KeyError, match="unknown factor"):
        registry["nope"]


@pytest.fixture
def reversal() -> Iterator[str]:
    """A custom factor's descriptor, registered for one test: one-bar reversal."""
    name = "reversal_test"

    @descriptor(name)
    def _reversal(model: FactorModel, bar: BarInputs, out: FloatArray, why: ReasonArray) -> None:
        previous = model.asof(1)
        out[:] = -(bar.lc - previous)
        why[~np.isfinite(previous)] = Reason.INSUFFICIENT_HISTORY

    yield name
    del DESCRIPTORS[name]


def test_a_custom_factor_joins_the_model_by_registration(reversal: str) -> None:
    registry = canonical_registry()
    registry.register(FactorSpec(reversal, "One-bar reversal", "fell last bar"))
    n, bars = 8, 40
    rng = np.random.default_rng(5)
    close = np.exp(rng.normal(0, 0.01, (bars, n)).cumsum(axis=0))
    volume = rng.exponential(10, (bars, n))
    present = rng.random((bars, n)) > 0.1
    params = FactorParams(
        beta_window=10,
        beta_min_obs=5,
        size_window=10,
        size_min_obs=5,
        momentum_lag=3,
        value_lag=8,
        volatility_window=6,
        volatility_min_obs=4,
        liquidity_window=6,
        liquidity_min_obs=4,
    )
    six, seven = FactorModel(n, params), FactorModel(n, params, registry=registry)
    assert six.names == CANONICAL and seven.names == (*CANONICAL, reversal)
    seven.keep_undo(2)
    for t in range(bars):
        c = np.where(present[t], close[t], np.nan)
        q = np.full(n, np.nan)
        a = six.update(c, volume[t], q, present[t])
        if t % 10 == 9:  # the custom row is taken back with the rest
            seven.update(c * 1.1, volume[t], q, present[t])
            seven.undo()
        b = seven.update(c, volume[t], q, present[t])
        assert b.raw.shape == b.exposure.shape == b.reason.shape == (n, 7)
        # the canonical columns are bit for bit those of the six-factor model
        np.testing.assert_array_equal(b.raw[:, :6], a.raw)
        np.testing.assert_array_equal(b.reason[:, :6], a.reason)
        if t > 0:
            prev = np.where(present[t - 1], close[t - 1], np.nan)
            expected = -(np.log(c) - np.log(prev))
            both = present[t] & present[t - 1]
            np.testing.assert_array_equal(b.raw[both, 6], expected[both])
    assert (b.reason[:, 6][np.isfinite(b.exposure[:, 6])] == Reason.OK).all()


def test_a_factor_without_descriptor_is_refused() -> None:
    registry = canonical_registry()
    registry.register(FactorSpec("carry", "Carry", "high funding"))
    with pytest.raises(ValueError, match=r"no descriptor registered for factor\(s\) carry"):
        FactorModel(10, registry=registry)
    with pytest.raises(ValueError, match="already has a descriptor"):
        descriptor(CANONICAL[0])(DESCRIPTORS[CANONICAL[0]])


def test_the_registry_of_a_configuration_with_custom_factors() -> None:
    """The six, then the custom factors in the configuration's order, with their
    labels and words; the shared registry is never changed."""
    from factorcast.factors.custom import model_registry
    from factorcast.factors.expressions.spec import CustomFactorSpec

    custom = {
        "rev": CustomFactorSpec(
            expr="-1 * ts_sum(returns, 24)", words=("recent winners", "recent losers")
        ),
        "hl": CustomFactorSpec(expr="(high - low) / close", label="Bar range over close"),
    }
    params = FactorParams(custom=custom)
    registry = model_registry(params)
    assert registry.names == (*CANONICAL, "rev", "hl")
    assert REGISTRY.names == CANONICAL
    assert registry["rev"].tilt_word(+1) == "recent losers"
    assert registry["rev"].tilt_word(-1) == "recent winners"
    assert registry["rev"].positive_means == "recent losers"
    assert registry["hl"].tilt_word(+1) == "high-hl" and registry["hl"].tilt_word(-1) == "low-hl"
    assert registry["hl"].display_label(params) == "Bar range over close"
    assert registry["rev"].display_label() == "rev"
    model = FactorModel(5, params)
    assert model.names == registry.names and model.registry.names == registry.names
    with pytest.raises(ValueError, match=r"custom factor\(s\) rev, hl not in the registry"):
        FactorModel(5, params, registry=REGISTRY)

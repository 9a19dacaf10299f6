"""The one registry of factor names."""

from __future__ import annotations

import pytest

from factorcast.factors import CANONICAL, REGISTRY, FactorParams, FactorSpec
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

"""Tilt in words (ANALYTICS.md section 7), case by case from the contract."""

from __future__ import annotations

import numpy as np
import pytest

from factorcast.factors import CANONICAL, REGISTRY, UNIVERSE, FactorSpec
from factorcast.factors.analytics import tilt
from factorcast.factors.registry import (
    LIQUIDITY,
    MARKET,
    MOMENTUM,
    SIZE,
    VALUE,
    VOLATILITY,
    canonical_registry,
)


def exposures(**values: float) -> list[float]:
    return [values.get(name, 0.0) for name in CANONICAL]


CASES = [
    pytest.param(
        exposures(market=0.2, size=-0.8, value=0.1, momentum=0.6, volatility=-0.05, liquidity=-0.3),
        "Tilted to small, high-momentum; mildly to illiquid. Neutral on market, value, volatility.",
        id="the contract's example",
    ),
    pytest.param(
        exposures(value=0.3, volatility=-0.45, market=0.01),
        "Tilted mildly to low-volatility, cheap. Neutral on market, size, momentum, liquidity.",
        id="no strong word",
    ),
    pytest.param(
        exposures(market=0.24, size=-0.1),
        "No factor tilt.",
        id="nothing mild or strong",
    ),
    pytest.param(
        exposures(market=-1, size=2, value=-0.7, momentum=-0.5, volatility=0.9, liquidity=0.55),
        "Tilted to large, low-beta, high-volatility, expensive, liquid, low-momentum.",
        id="all strong: no neutral clause",
    ),
    pytest.param(
        exposures(market=0.5, size=0.25, value=-0.2499999),
        "Tilted to high-beta; mildly to large. Neutral on value, momentum, volatility, liquidity.",
        id="thresholds are inclusive",
    ),
    pytest.param(
        exposures(market=0.6, liquidity=-0.6, size=0.3, momentum=-0.3, value=0.1, volatility=-0.1),
        "Tilted to high-beta, illiquid; mildly to large, low-momentum. "
        "Neutral on value, volatility.",
        id="ties in registry order",
    ),
    pytest.param(
        exposures(
            size=0.7, market=0.01, value=0.01, momentum=0.01, volatility=0.01, liquidity=0.01
        ),
        "Tilted to large. Neutral on market, value, momentum, volatility, liquidity.",
        id="strong without mild",
    ),
    pytest.param(
        exposures(market=0.7, size=0.3, value=-0.3, momentum=0.3, volatility=-0.3, liquidity=0.3),
        "Tilted to high-beta; mildly to large, expensive, high-momentum, low-volatility, liquid.",
        id="strong and mild without neutral",
    ),
]


@pytest.mark.parametrize(("values", "sentence"), CASES)
def test_sentence(values: list[float], sentence: str) -> None:
    assert tilt(CANONICAL, values).sentence == sentence


WORDS = {
    MARKET: ("high-beta", "low-beta"),
    SIZE: ("large", "small"),
    VALUE: ("cheap", "expensive"),
    MOMENTUM: ("high-momentum", "low-momentum"),
    VOLATILITY: ("high-volatility", "low-volatility"),
    LIQUIDITY: ("liquid", "illiquid"),
}


@pytest.mark.parametrize("name", CANONICAL)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_every_factor_word_and_strength(name: str, sign: float) -> None:
    for size, strength in ((0.9, "strong"), (0.3, "mild"), (0.1, "neutral")):
        got = tilt(CANONICAL, exposures(**{name: sign * size}))
        entry = got.factors[CANONICAL.index(name)]
        assert entry.name == name and entry.exposure == sign * size
        assert entry.strength == strength
        want = None if strength == "neutral" else WORDS[name][0 if sign > 0 else 1]
        assert entry.word == want
    assert REGISTRY[name].tilt_word(sign) == WORDS[name][0 if sign > 0 else 1]


def test_universe_is_not_a_tilt() -> None:
    got = tilt((UNIVERSE, *CANONICAL), [0.9, *exposures(momentum=-0.6)])
    assert [e.name for e in got.factors] == list(CANONICAL)
    assert got.sentence.startswith("Tilted to low-momentum.")


def test_custom_factor_takes_default_words() -> None:
    registry = canonical_registry()
    registry.register(FactorSpec("carry", "Carry", "high funding"))
    registry.register(FactorSpec("flow", "Flow", "inflows", "inflowing", "outflowing"))
    names = (*CANONICAL, "carry", "flow")
    got = tilt(names, np.array([*exposures(), -0.8, 0.3]), registry)
    assert got.sentence == (
        "Tilted to low-carry; mildly to inflowing. "
        "Neutral on market, size, value, momentum, volatility, liquidity."
    )


def test_missing_exposure_is_an_error() -> None:
    with pytest.raises(ValueError, match="exposure to value is not finite"):
        tilt(CANONICAL, exposures(value=float("nan")))

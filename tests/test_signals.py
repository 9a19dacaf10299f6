"""The signal module against SIGNALS.md sections 2 and 3, one case per rule.

Expected values are worked out by hand from the text, with the default view:
market 0.20 (+1), size 0.15 (-1), value 0.15 (+1), momentum 0.20 (+1),
volatility 0.15 (-1), liquidity 0.15 (+1).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from factorcast.factors import CANONICAL
from factorcast.strategy.actions import BUY, HOLD, SELL
from factorcast.strategy.app.settings import SignalSettings
from factorcast.strategy.signals import adjust, factor_score, reason_labels
from factorcast.strategy.strategies import Decision

NAN = math.nan
# exposures (market, size, value, momentum, volatility, liquidity) and their score
E_BUY = (1.0, 0, 0, 0, 0, 0)  # s = +0.20
E_SELL = (-1.0, 0, 0, 0, 0, 0)  # s = -0.20
E_WEAK = (0.25, 0, 0, 0, 0, 0)  # s = +0.05: factor hold
E_EDGE = (0.5, 0, 0, 0, 0, 0)  # s = +0.10 exactly: not > 0.1, factor hold


def view(**options: object) -> object:
    return SignalSettings(**options).to_view()  # type: ignore[arg-type]


CASES = [
    # id, base action, base conf, insufficient, exposures, options,
    #   expected action, confidence, factor action, reasons
    ("confirm-buy", BUY, 0.5, False, E_BUY, {}, "buy", 0.52, "buy", ["factor_confirm"]),
    ("confirm-sell", SELL, 0.5, False, E_SELL, {}, "sell", 0.52, "sell", ["factor_confirm"]),
    ("veto-buy", BUY, 0.5, False, E_SELL, {}, "hold", 0.48, "sell", ["factor_veto"]),
    ("veto-sell", SELL, 0.5, False, E_BUY, {}, "hold", 0.48, "buy", ["factor_veto"]),
    ("neutral-factors-keep-buy", BUY, 0.5, False, E_WEAK, {}, "buy", 0.505, "hold", []),
    ("neutral-factors-keep-sell", SELL, 0.5, False, E_WEAK, {}, "sell", 0.495, "hold", []),
    ("threshold-is-strict", BUY, 0.5, False, E_EDGE, {}, "buy", 0.51, "hold", []),
    ("hold-stays-hold", HOLD, 0.3, False, E_BUY, {}, "hold", 0.3, "buy", []),
    (
        "initiate-buy",
        HOLD,
        0.3,
        False,
        E_BUY,
        {"factors_can_initiate": True},
        "buy",
        0.32,
        "buy",
        ["factor_initiated"],
    ),
    (
        "initiate-sell",
        HOLD,
        0.3,
        False,
        E_SELL,
        {"factors_can_initiate": True},
        "sell",
        0.32,
        "sell",
        ["factor_initiated"],
    ),
    (
        "initiate-needs-factor-action",
        HOLD,
        0.3,
        False,
        E_WEAK,
        {"factors_can_initiate": True},
        "hold",
        0.3,
        "hold",
        [],
    ),
    (
        "low-confidence",
        BUY,
        0.05,
        False,
        E_WEAK,
        {"min_confidence": 0.1},
        "hold",
        0.055,
        "hold",
        ["low_confidence"],
    ),
    (
        "confirm-then-low-confidence",
        BUY,
        0.05,
        False,
        E_BUY,
        {"min_confidence": 0.1},
        "hold",
        0.07,
        "buy",
        ["factor_confirm", "low_confidence"],
    ),
    (
        "initiated-then-low-confidence",
        HOLD,
        0.0,
        False,
        E_BUY,
        {"factors_can_initiate": True, "min_confidence": 0.05},
        "hold",
        0.02,
        "buy",
        ["low_confidence", "factor_initiated"],
    ),
    ("confidence-clipped-high", BUY, 0.99, False, E_BUY, {}, "buy", 1.0, "buy", ["factor_confirm"]),
    ("confidence-clipped-low", SELL, 0.01, False, E_BUY, {}, "hold", 0.0, "buy", ["factor_veto"]),
    (
        "insufficient-history",
        HOLD,
        0.0,
        True,
        E_BUY,
        {},
        "hold",
        0.0,
        "buy",
        ["insufficient_history"],
    ),
    ("all-missing-is-neutral", BUY, 0.4, False, (NAN,) * 6, {}, "buy", 0.4, "hold", []),
    (
        "custom-threshold",
        BUY,
        0.5,
        False,
        E_WEAK,
        {"threshold": 0.04},
        "buy",
        0.505,
        "buy",
        ["factor_confirm"],
    ),
]


@pytest.mark.parametrize(
    (
        "base",
        "conf",
        "insufficient",
        "exposures",
        "options",
        "action",
        "confidence",
        "factor_action",
        "reasons",
    ),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_adjustment_rules(
    base: int,
    conf: float,
    insufficient: bool,
    exposures: tuple[float, ...],
    options: dict[str, object],
    action: str,
    confidence: float,
    factor_action: str,
    reasons: list[str],
) -> None:
    decision = Decision(
        action=np.array([base], dtype=np.int8),
        confidence=np.array([conf]),
        insufficient=np.array([insufficient]),
    )
    out = adjust(decision, np.array([exposures], dtype=float), view(**options))  # type: ignore[arg-type]
    labels = {BUY: "buy", SELL: "sell", HOLD: "hold"}
    assert labels[int(out.action[0])] == action
    assert labels[int(out.factor_action[0])] == factor_action
    assert out.confidence[0] == pytest.approx(confidence, abs=1e-12)
    assert sorted(reason_labels(int(out.reasons[0]))) == sorted(reasons)
    assert int(out.base_action[0]) == base


def test_factor_score_clips_skips_missing_and_is_bounded() -> None:
    v = view()
    exposures = np.array(
        [
            [3.0, -3.0, 3.0, 3.0, -3.0, 3.0],  # every factor fully in its direction: s = 1
            [-3.0, 3.0, -3.0, -3.0, 3.0, -3.0],  # s = -1
            [0.5, NAN, NAN, NAN, NAN, NAN],  # only market: 0.2 * 0.5
            [NAN, 0.4, 0.0, -0.5, 2.0, 0.1],  # -0.15*0.4 + 0.2*-0.5 - 0.15*1 + 0.15*0.1
        ]
    )
    s = factor_score(exposures, v)  # type: ignore[arg-type]
    expected = [1.0, -1.0, 0.1, -0.15 * 0.4 + 0.2 * -0.5 - 0.15 * 1.0 + 0.15 * 0.1]
    np.testing.assert_allclose(s, expected, atol=1e-15)


def test_default_view_matches_signals_md() -> None:
    v = view()
    assert v.names == CANONICAL  # type: ignore[attr-defined]
    np.testing.assert_allclose(
        v.weights,
        [0.20, 0.15, 0.15, 0.20, 0.15, 0.15],  # type: ignore[attr-defined]
    )
    np.testing.assert_array_equal(v.directions, [1, -1, 1, 1, -1, 1])  # type: ignore[attr-defined]
    assert v.weights.sum() == pytest.approx(1.0)  # type: ignore[attr-defined]


def test_vectorized_batch_equals_one_by_one() -> None:
    rng = np.random.default_rng(3)
    n = 200
    decision = Decision(
        action=rng.integers(-1, 2, n).astype(np.int8),
        confidence=rng.uniform(0, 1, n),
        insufficient=rng.uniform(size=n) < 0.1,
    )
    exposures = rng.normal(0, 1.5, (n, 6))
    exposures[rng.uniform(size=(n, 6)) < 0.1] = NAN
    v = view(factors_can_initiate=True, min_confidence=0.2)
    batch = adjust(decision, exposures, v)  # type: ignore[arg-type]
    for i in range(n):
        one = adjust(
            Decision(
                decision.action[i : i + 1],
                decision.confidence[i : i + 1],
                decision.insufficient[i : i + 1],
            ),
            exposures[i : i + 1],
            v,  # type: ignore[arg-type]
        )
        assert one.action[0] == batch.action[i]
        assert one.confidence[0] == batch.confidence[i]
        assert one.reasons[0] == batch.reasons[i]


def test_custom_factors_join_the_view_with_their_own_weight_and_direction() -> None:
    """SIGNALS.md section 2 over the six and the custom factors: each custom factor's
    weight and direction from its own table (``factors.custom.NAME``)."""
    from factorcast.factors.expressions.spec import CustomFactorSpec

    custom = {
        "rev": CustomFactorSpec(expr="-1 * ts_sum(returns, 24)", weight=0.10, direction=1),
        "vol2": CustomFactorSpec(expr="ts_std(returns, 5)", weight=0.05, direction=-1),
    }
    view = SignalSettings(weights={"market": 0.05}).to_view(custom)
    assert view.names == (*CANONICAL, "rev", "vol2")
    exposure = np.array(
        [[0.5, -2.0, np.nan, 0.3, 1.0, -0.4, 0.8, 2.5], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -3, 1]]
    )
    weights = {"market": 0.05, "size": 0.15, "value": 0.15, "momentum": 0.20}
    weights |= {"volatility": 0.15, "liquidity": 0.15, "rev": 0.10, "vol2": 0.05}
    directions = {"market": 1, "size": -1, "value": 1, "momentum": 1, "volatility": -1}
    directions |= {"liquidity": 1, "rev": 1, "vol2": -1}
    expected = [
        sum(
            weights[k] * directions[k] * min(1.0, max(-1.0, float(e)))
            for k, e in zip(view.names, row, strict=True)
            if math.isfinite(e)
        )
        for row in exposure
    ]
    np.testing.assert_allclose(factor_score(exposure, view), expected, atol=1e-15)

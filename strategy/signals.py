"""The factor adjustment of strategy signals (SIGNALS.md sections 2 and 3).

Vectorized over the universe: every function takes and returns arrays aligned
with the engine's symbol list.

Where SIGNALS.md leaves a choice, made here: the confidence formula follows the
*proposed* action, i.e. the base action, or ``factor_action`` when factors
initiate a trade from a base hold.  A vetoed buy therefore carries the buy
confidence lowered by a negative score, which tells a consumer how strong the
overruled view was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntFlag

import numpy as np
from numpy.typing import NDArray

from factorcast.strategy.actions import BUY, HOLD, SELL
from factorcast.strategy.strategies import Decision

FloatArray = NDArray[np.float64]
ActionArray = NDArray[np.int8]


class SignalReason(IntFlag):
    """Reason codes of SIGNALS.md section 3, as bits."""

    FACTOR_CONFIRM = 1
    FACTOR_VETO = 2
    LOW_CONFIDENCE = 4
    FACTOR_INITIATED = 8
    INSUFFICIENT_HISTORY = 16


#: Wire strings in a fixed order, with plain int bits (IntFlag arithmetic is slow).
SIGNAL_REASON_LABELS: tuple[tuple[int, str], ...] = tuple(
    (int(r), (r.name or "").lower()) for r in SignalReason
)


@dataclass(frozen=True, slots=True)
class FactorView:
    """Weights ``w_k >= 0`` and directions ``d_k`` in {-1, 0, +1}, in factor order."""

    names: tuple[str, ...]
    weights: FloatArray
    directions: FloatArray
    threshold: float = 0.1
    confidence_step: float = 0.1
    min_confidence: float = 0.0
    factors_can_initiate: bool = False

    @staticmethod
    def build(
        names: tuple[str, ...],
        weights: Mapping[str, float],
        directions: Mapping[str, int],
        **options: float | bool,
    ) -> FactorView:
        unknown = (set(weights) | set(directions)) - set(names)
        if unknown:
            raise ValueError(f"unknown factors in the factor view: {sorted(unknown)}")
        w = np.array([float(weights.get(n, 0.0)) for n in names])
        d = np.array([float(directions.get(n, 0)) for n in names])
        if (w < 0).any():
            raise ValueError("factor weights must be >= 0")
        if not np.isin(d, (-1.0, 0.0, 1.0)).all():
            raise ValueError("factor directions must be -1, 0 or +1")
        return FactorView(names, w, d, **options)  # type: ignore[arg-type]

    @property
    def signed_weights(self) -> FloatArray:
        return self.weights * self.directions


@dataclass(frozen=True, slots=True)
class SignalBatch:
    """Adjusted signals for the whole universe at one bar time."""

    action: ActionArray
    base_action: ActionArray
    factor_action: ActionArray
    confidence: FloatArray
    base_confidence: FloatArray
    factor_score: FloatArray
    reasons: NDArray[np.uint8]


def factor_score(exposure: FloatArray, view: FactorView) -> FloatArray:
    """``s = sum_k w_k d_k clip(e_k, -1, 1)`` over finite exposures; ``(S, K) -> (S,)``."""
    clipped = np.clip(exposure, -1.0, 1.0)
    # An explicit row sum, not a matrix product: BLAS may round differently for
    # different batch shapes, and a symbol's score must not depend on the universe.
    terms = np.where(np.isfinite(clipped), clipped, 0.0) * view.signed_weights
    score: FloatArray = terms.sum(axis=1)
    return score


def adjust(decision: Decision, exposure: FloatArray, view: FactorView) -> SignalBatch:
    """Apply the factor view to a strategy's decision (SIGNALS.md section 3)."""
    base = decision.action
    base_conf = decision.confidence
    s = factor_score(exposure, view)
    f_act = np.where(s > view.threshold, BUY, np.where(s < -view.threshold, SELL, HOLD))
    f_act = f_act.astype(np.int8)

    initiated = (base == HOLD) & (f_act != HOLD) if view.factors_can_initiate else None
    proposed = base if initiated is None else np.where(initiated, f_act, base).astype(np.int8)
    confidence = np.where(
        proposed == HOLD,
        base_conf,
        np.clip(base_conf + view.confidence_step * s * proposed, 0.0, 1.0),
    )

    veto = (base != HOLD) & (f_act == -base)
    confirm = (base != HOLD) & (f_act == base)
    action = np.where(veto, HOLD, proposed).astype(np.int8)
    low = (action != HOLD) & (confidence < view.min_confidence)
    action[low] = HOLD

    reasons = np.zeros(base.shape, dtype=np.uint8)
    reasons |= np.where(confirm, SignalReason.FACTOR_CONFIRM, 0).astype(np.uint8)
    reasons |= np.where(veto, SignalReason.FACTOR_VETO, 0).astype(np.uint8)
    reasons |= np.where(low, SignalReason.LOW_CONFIDENCE, 0).astype(np.uint8)
    if initiated is not None:
        reasons |= np.where(initiated, SignalReason.FACTOR_INITIATED, 0).astype(np.uint8)
    reasons |= np.where(decision.insufficient, SignalReason.INSUFFICIENT_HISTORY, 0).astype(
        np.uint8
    )
    return SignalBatch(
        action=action,
        base_action=base,
        factor_action=f_act,
        confidence=confidence,
        base_confidence=base_conf,
        factor_score=s,
        reasons=reasons,
    )


def reason_labels(bits: int) -> list[str]:
    return [label for flag, label in SIGNAL_REASON_LABELS if bits & flag]

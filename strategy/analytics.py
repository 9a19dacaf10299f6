"""The analytics of factors/analytics/ over the engine's steps (offline runs).

The engine steps only where some symbol has a bar; the analytics count grid steps
(ANALYTICS.md: ``t-1`` is the previous grid step).  This module puts the grid
steps without any bar back in between, and otherwise is the live update in a loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from factorcast.factors.analytics import FactorReturnBar, FactorReturns
from factorcast.factors.params import Weighting
from factorcast.strategy.engine import StepResult


def factor_returns_of_steps(
    steps: Iterable[StepResult],
    timeframe_ms: int,
    weighting: Weighting = "equal",
    factors: Sequence[str] | None = None,
) -> list[tuple[int, FactorReturnBar]]:
    """Factor returns (ANALYTICS.md section 1) of each step, with its bar time.

    One grid step without any bar already leaves the next bar without returns, so
    a gap of any length costs one :meth:`FactorReturns.skip`.
    """
    out: list[tuple[int, FactorReturnBar]] = []
    fr: FactorReturns | None = None
    last: int | None = None
    for step in steps:
        snap = step.factors
        if fr is None:
            fr = FactorReturns(snap.exposure.shape[0], snap.names, weighting, factors)
        if last is not None and step.ts - last > timeframe_ms:
            fr.skip()
        last = step.ts
        close = np.where(step.xs.present, step.xs.close, np.nan)
        out.append((step.ts, fr.update(close, snap.exposure, snap.weights)))
    return out

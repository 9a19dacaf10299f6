"""Analytics over the factor model (ANALYTICS.md): factor returns, factor health,
the risk model, portfolio exposures, risk attribution, regression, tilt words,
the scanner and the tilt optimizer.  Pure: arrays in, arrays out, one bar at a
time, the same code live and offline.
"""

from factorcast.factors.analytics.factor_returns import (
    REGRESSION_REASON_LABELS,
    FactorReturnBar,
    FactorReturns,
    FactorReturnsPanel,
    RegressionReason,
    factor_returns_panel,
    regress,
)

__all__: list[str] = [
    "REGRESSION_REASON_LABELS",
    "FactorReturnBar",
    "FactorReturns",
    "FactorReturnsPanel",
    "RegressionReason",
    "factor_returns_panel",
    "regress",
]

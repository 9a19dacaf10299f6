"""Analytics over the factor model (ANALYTICS.md): factor returns, factor health,
the risk model, portfolio exposures, risk attribution, regression, tilt words,
the scanner and the tilt optimizer.  Pure: arrays in, arrays out, one bar at a
time, the same code live and offline.
"""

from factorcast.factors.analytics.risk import (
    MIN_RESIDUALS,
    RiskDecomposition,
    RiskModel,
    RiskSnapshot,
    asset_covariance,
    loadings,
    risk_decomposition,
)

__all__ = [
    "MIN_RESIDUALS",
    "RiskDecomposition",
    "RiskModel",
    "RiskSnapshot",
    "asset_covariance",
    "loadings",
    "risk_decomposition",
]

"""Analytics over the factor model (ANALYTICS.md): factor returns, factor health,
the risk model, portfolio exposures, risk attribution, regression, tilt words,
the scanner and the tilt optimizer.  Pure: arrays in, arrays out, one bar at a
time, the same code live and offline.
"""

from factorcast.factors.analytics.decay import (
    decay_curve,
    ic_half_life,
    ic_series,
    quintile_labels,
    quintile_spread,
    rank_autocorrelation,
)
from factorcast.factors.analytics.health import (
    DECAY_HORIZONS,
    AlertKind,
    FactorAlert,
    HealthSnapshot,
    HealthState,
    HealthTracker,
    IcStats,
    average_ranks,
    drawdown_track,
    forward_return,
    ic_statistics,
    next_state,
    rank_ic,
    spearman_columns,
    transition_alert,
)

__all__: list[str] = [
    "DECAY_HORIZONS",
    "AlertKind",
    "FactorAlert",
    "HealthSnapshot",
    "HealthState",
    "HealthTracker",
    "IcStats",
    "average_ranks",
    "decay_curve",
    "drawdown_track",
    "forward_return",
    "ic_half_life",
    "ic_series",
    "ic_statistics",
    "next_state",
    "quintile_labels",
    "quintile_spread",
    "rank_autocorrelation",
    "rank_ic",
    "spearman_columns",
    "transition_alert",
]

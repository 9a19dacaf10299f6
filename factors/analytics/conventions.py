"""The conventions of ANALYTICS.md section 0 that every analytics output states."""

from __future__ import annotations

from typing import Final

#: crypto trades every day: a year is 365 days of 86,400 seconds
SECONDS_PER_YEAR: Final = 365 * 86400


def bars_per_year(timeframe_seconds: float) -> float:
    """``365 * 86400 / timeframe_seconds``: the annualization of a one-bar figure
    (returns by ``* bars_per_year``, volatilities by ``* sqrt(bars_per_year)``)."""
    if not timeframe_seconds > 0:
        raise ValueError(f"timeframe must be positive seconds, got {timeframe_seconds!r}")
    return SECONDS_PER_YEAR / float(timeframe_seconds)

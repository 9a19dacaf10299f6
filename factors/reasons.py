"""Why an exposure is missing.  Codes are small ints on the hot path, strings on the wire."""

from __future__ import annotations

from enum import IntEnum


class Reason(IntEnum):
    """The reason attached to every NaN exposure (``OK`` for a finite one)."""

    OK = 0
    #: fewer valid observations in the window than ``min_obs``, or no as-of close at a lag
    INSUFFICIENT_HISTORY = 1
    #: the symbol has no real bar at this time (it is not in the cross-section)
    MISSING_BAR = 2
    #: size: mean quote volume over the window is 0; liquidity: no bar with quote volume > 0
    ZERO_VOLUME = 3
    #: liquidity: Amihud is 0 (no price change over the whole window)
    NO_PRICE_CHANGE = 4
    #: market: the market return has zero variance over the symbol's paired window
    NO_MARKET_VARIANCE = 5
    #: fewer than 3 symbols with a finite raw value at this time
    TOO_FEW_SYMBOLS = 6
    #: the winsorized raw values have zero dispersion
    NO_DISPERSION = 7
    #: no symbol with a finite raw value has a weight (``adv``/``cap`` weighting)
    NO_WEIGHTS = 8
    #: live only: the symbol's bar had not closed by the cross-section's grace deadline
    LATE = 9
    #: analytics: the weighted design ``[1, X]`` of a factor-return regression has
    #: rank below ``K + 1`` (ANALYTICS.md section 1)
    SINGULAR = 10
    #: a custom factor (ANALYTICS.md section 9) without a finite value although the
    #: symbol had a bar at every grid step its lookback reads (a division by zero, the
    #: log of a value <= 0, a constant window in a correlation, a model's NaN...)
    UNDEFINED = 11

    @property
    def label(self) -> str:
        return self.name.lower()


#: ``REASON_LABELS[code]`` is the wire string of a reason code.
REASON_LABELS: tuple[str, ...] = tuple(r.label for r in Reason)

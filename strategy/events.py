"""Domain values that flow through the engine.

Hot paths carry numpy arrays aligned with the engine's symbol list, never one
object per symbol.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class CrossSection:
    """The closed bars of every symbol at one bar time.

    Arrays are aligned with the engine's universe.  ``present[i]`` is False for a
    symbol without a real bar at ``ts`` (its fields are NaN); ``late[i]`` marks
    the subset of those that were expected but had not closed by the grace
    deadline (live only).  ``quote_volume`` is NaN where the source has none.
    """

    ts: int
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    quote_volume: FloatArray
    present: BoolArray
    late: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    #: False for warm-up history replayed before the first live bar.
    live: bool = True

    @staticmethod
    def empty(ts: int, n_symbols: int) -> CrossSection:
        nan = np.full(n_symbols, np.nan)
        return CrossSection(
            ts,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            np.zeros(n_symbols, dtype=bool),
            np.zeros(n_symbols, dtype=bool),
            live=False,
        )

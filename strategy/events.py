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

#: How many bars late a bar may come and still be taken in: a bar at ``t`` rides on
#: a cross-section at ``t + AMEND_BARS`` bars at the latest.  The engine keeps what
#: it takes to take back that many grid steps; the live gate drops later bars.
AMEND_BARS = 8


@dataclass(frozen=True, slots=True)
class LateBar:
    """A bar that closed after its cross-section had gone out with the symbol
    ``late``: the engine takes it in before the cross-section that carries it
    (one object per late bar: they are rare, and off the hot path)."""

    ts: int
    symbol: int  # index in the engine's universe
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float  # NaN where the source has none


@dataclass(frozen=True, slots=True)
class CrossSection:
    """The closed bars of every symbol at one bar time.

    Arrays are aligned with the engine's universe.  ``present[i]`` is False for a
    symbol without a real bar at ``ts`` (its fields are NaN); ``late[i]`` marks
    the subset of those that were expected but had not closed by the grace
    deadline (live only).  ``quote_volume`` is NaN where the source has none.
    ``amendments`` are bars of earlier cross-sections that came after those went
    out (live only): the engine takes them in before this one.
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
    amendments: tuple[LateBar, ...] = ()

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

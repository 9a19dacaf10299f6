"""Timeframes: a name such as ``"5m"`` and its length in milliseconds, in one place.

Units ``s``, ``m``, ``h``, ``d`` and ``w``, as ccxt and freqtrade write them; a
month has no fixed length and is refused.  Recorded files, the settings, the live
source and the embedded exchange all read timeframes here.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["UNIT_MS", "timeframe_ms", "timeframe_name"]

#: Milliseconds per unit, the largest first (``timeframe_name`` takes the largest
#: unit that divides the length).
UNIT_MS: Final[dict[str, int]] = {
    "w": 604_800_000,
    "d": 86_400_000,
    "h": 3_600_000,
    "m": 60_000,
    "s": 1_000,
}
_NAME: Final = re.compile(r"([1-9][0-9]*)([smhdw])")


def timeframe_ms(name: str) -> int:
    """``"5m"`` -> ``300000``.  ValueError on anything else (``"1M"``: months vary)."""
    m = _NAME.fullmatch(name)
    if m is None:
        raise ValueError(f"invalid timeframe {name!r}: expected <n><unit>, unit one of s m h d w")
    return int(m[1]) * UNIT_MS[m[2]]


def timeframe_name(ms: int) -> str:
    """``300000`` -> ``"5m"``: the largest unit that divides the length.  ValueError
    for a length that is not a positive whole number of seconds."""
    if ms <= 0 or ms % 1_000:
        raise ValueError(f"no timeframe lasts {ms} ms")
    for unit, size in UNIT_MS.items():
        if ms % size == 0:
            return f"{ms // size}{unit}"
    raise AssertionError("unreachable: every whole second divides by 1 s")

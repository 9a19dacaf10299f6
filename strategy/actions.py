"""Actions as small ints on the hot path: +1 buy, -1 sell, 0 hold."""

from __future__ import annotations

from typing import Final

BUY: Final = 1
SELL: Final = -1
HOLD: Final = 0

#: ``ACTION_LABELS[code + 1]`` is the wire string of an action code.
ACTION_LABELS: Final[tuple[str, str, str]] = ("sell", "hold", "buy")

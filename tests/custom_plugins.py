"""Custom-factor plug-ins for the tests (``class = "tests.custom_plugins:RangeMean"``):
plain classes with ``lookback`` and ``update(bar)``, no undo of their own (the engine
wraps them in a copy-undo)."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from numpy.typing import NDArray


class RangeMean:
    """The mean of ``(high - low) / close`` over the last ``window`` grid steps, NaN
    if the symbol lacks a bar at any of them."""

    def __init__(self, window: int = 6) -> None:
        if window < 1:
            raise ValueError("window must be 1 or more")
        self.window = window
        self.lookback = window - 1
        self._seen: deque[NDArray[np.float64]] = deque(maxlen=window)

    def update(self, bar: Any) -> NDArray[np.float64]:
        present = np.asarray(bar.present, dtype=bool)
        with np.errstate(all="ignore"):
            value = (np.asarray(bar.high) - np.asarray(bar.low)) / np.asarray(bar.close)
        self._seen.append(np.where(present, value, np.nan))
        if len(self._seen) < self.window:
            return np.full(present.shape, np.nan)
        out: NDArray[np.float64] = np.mean(np.array(self._seen), axis=0)
        return np.where(present, out, np.nan)

"""Parameters of the six-factor model, with the defaults of FACTORS.md."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Literal

Weighting = Literal["equal", "adv", "cap"]
Scaling = Literal["zscore", "rank"]

#: Version of the factor definitions (FACTORS.md v1).  Part of every ``model`` tag.
MODEL_VERSION = "fc6-v1"


@dataclass(frozen=True, slots=True)
class FactorParams:
    """Windows, lags and thresholds in bars of the configured timeframe."""

    beta_window: int = 252
    beta_min_obs: int = 100
    size_window: int = 252
    size_min_obs: int = 100
    momentum_lag: int = 63
    value_lag: int = 252
    volatility_window: int = 21
    volatility_min_obs: int = 20
    liquidity_window: int = 21
    liquidity_min_obs: int = 20
    weighting: Weighting = "equal"
    scaling: Scaling = "zscore"
    #: Winsorization half-width in robust standard deviations (``k * 1.4826 * MAD``).
    winsor_k: float = 3.0
    #: Final clip of standardized exposures, ``[-clip, clip]``.
    clip: float = 3.0

    def __post_init__(self) -> None:
        for name in (
            "beta_window",
            "size_window",
            "momentum_lag",
            "value_lag",
            "volatility_window",
            "liquidity_window",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for window, min_obs in (
            ("beta_window", "beta_min_obs"),
            ("size_window", "size_min_obs"),
            ("volatility_window", "volatility_min_obs"),
            ("liquidity_window", "liquidity_min_obs"),
        ):
            if not 2 <= getattr(self, min_obs) <= getattr(self, window):
                raise ValueError(f"{min_obs} must be between 2 and {window}")
        if self.value_lag <= self.momentum_lag:
            raise ValueError("value_lag must be greater than momentum_lag")
        if self.winsor_k <= 0 or self.clip <= 0:
            raise ValueError("winsor_k and clip must be positive")

    @property
    def history_bars(self) -> int:
        """Bars of history the longest window or lag needs (the warm-up length)."""
        longest = max(
            self.beta_window,
            self.size_window,
            self.value_lag,
            self.volatility_window,
            self.liquidity_window,
        )
        return longest + 1  # one more bar: returns need the close before the window

    def tag(self) -> str:
        """Model version plus a short hash of these parameters: the wire ``model`` field."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return f"{MODEL_VERSION}+{hashlib.sha256(blob).hexdigest()[:10]}"

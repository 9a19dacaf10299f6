"""Parameters of the analytics (ANALYTICS.md sections 1-3), with its defaults.

Like :class:`factorcast.factors.params.FactorParams`, each is the one declaration
of its fields, defaults and bounds: ``Annotated`` constraints that
``__post_init__`` enforces here and that pydantic reads where the settings
validate the ``health``, ``risk`` and ``factors.analytics`` sections through
these dataclasses, so that a bad value is an error naming the field.

None of them is part of the ``model`` tag: they change what is computed *from*
the exposures, never the exposures or the signals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from annotated_types import Ge, Gt

from factorcast.factors.params import RegressionFactors

__all__ = ["HealthParams", "RegressionFactors", "RiskParams"]

PositiveInt = Annotated[int, Ge(1)]
PositiveFloat = Annotated[float, Gt(0)]
Horizon = Annotated[int, Ge(1)]


@dataclass(frozen=True, slots=True)
class HealthParams:
    """Factor health (section 2): IC horizons in bars, the rolling window, the
    fewest ICs for a statistic, and the state machine's thresholds."""

    horizons: tuple[Horizon, ...] = (1,)
    window: Annotated[int, Ge(2)] = 200
    min_obs: Annotated[int, Ge(2)] = 30
    t_enter: PositiveFloat = 2.0
    t_exit: Annotated[float, Ge(0)] = 1.0

    def __post_init__(self) -> None:
        if not self.horizons or min(self.horizons) < 1:
            raise ValueError("horizons must be whole numbers of bars, 1 or more")
        if 1 not in self.horizons:
            raise ValueError("horizons must include 1 (the state follows horizon 1)")
        if len(set(self.horizons)) != len(self.horizons):
            raise ValueError("horizons: a horizon is named twice")
        if self.window < 2 or not 2 <= self.min_obs <= self.window:
            raise ValueError(
                f"min_obs must be between 2 and window ({self.window}), got {self.min_obs}"
            )
        if not 0 <= self.t_exit <= self.t_enter:
            raise ValueError(
                f"t_exit must be between 0 and t_enter ({self.t_enter}), got {self.t_exit}"
            )

    @property
    def depth(self) -> int:
        """Grid steps after which nothing the tracker holds is older than the window."""
        return self.window + max(self.horizons) + 1


@dataclass(frozen=True, slots=True)
class RiskParams:
    """The risk model (section 3): window and half-life in bars, the fewest bars
    with every factor return finite."""

    window: Annotated[int, Ge(2)] = 500
    half_life: PositiveFloat = 90.0
    min_obs: PositiveInt = 60

    def __post_init__(self) -> None:
        if self.half_life <= 0:
            raise ValueError(f"half_life must be > 0, got {self.half_life}")
        if not 1 <= self.min_obs <= self.window:
            raise ValueError(
                f"min_obs must be between 1 and window ({self.window}), got {self.min_obs}"
            )

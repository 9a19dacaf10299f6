"""Parameters of the six-factor model, with the defaults of FACTORS.md.

:class:`FactorParams` is the one declaration of the fields, their defaults and
their bounds.  The bounds are ``annotated_types`` constraints in ``Annotated``
types: metadata that :meth:`FactorParams.__post_init__` enforces here, and that
pydantic reads where the settings validate the ``factors`` section through this
dataclass (``strategy/app/settings.py``), so a bad value there is an error naming
the field (``factors.beta_window``).  The rules between fields (a ``min_obs``
within its window, ``value_lag`` beyond ``momentum_lag``) live in
``__post_init__`` only, and read the same bounds.

``custom`` holds the custom factors (ANALYTICS.md section 9) by name, in the
order they join the registry after the six (:mod:`factorcast.factors.custom`).
Their expressions are parsed here (an error names the factor, the field and the
column), their lookbacks count in :attr:`FactorParams.history_bars`, and their
definitions in :meth:`FactorParams.tag`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Annotated, Literal, cast, get_args, get_origin, get_type_hints

from annotated_types import Ge, Gt

from factorcast.factors.expressions.grammar import check_name
from factorcast.factors.expressions.spec import CustomFactorSpec
from factorcast.factors.expressions.terms import ExpressionError
from factorcast.factors.registry import CANONICAL

Weighting = Literal["equal", "adv", "cap"]
Scaling = Literal["zscore", "rank"]

#: Valid observations a rolling statistic needs at the least (a sample variance needs 2).
MinObs = Annotated[int, Ge(2)]
#: A rolling window in bars: it must be able to hold ``min_obs`` observations.
Window = Annotated[int, Ge(2)]
#: A lag in bars.
Lag = Annotated[int, Ge(1)]
Positive = Annotated[float, Gt(0)]

#: Version of the factor definitions (FACTORS.md v1).  Part of every ``model`` tag.
MODEL_VERSION = "fc6-v1"


@dataclass(frozen=True, slots=True)
class RegressionFactors:
    """``factors.analytics`` (ANALYTICS.md section 1): the model factors of the
    factor-return regression and the risk model (``None``: all of them; the
    ``universe`` intercept is always in).  Not part of the ``model`` tag: it
    changes what is computed from the exposures, never the exposures."""

    factors: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.factors is not None:
            if not self.factors:
                raise ValueError("factors: name at least one factor, or leave it out for all")
            if len(set(self.factors)) != len(self.factors):
                raise ValueError("factors: a factor is named twice")


@dataclass(frozen=True, slots=True)
class FactorParams:
    """Windows, lags and thresholds in bars of the configured timeframe.

    Each ``<name>_min_obs`` belongs to the window ``<name>_window``.
    """

    beta_window: Window = 252
    beta_min_obs: MinObs = 100
    size_window: Window = 252
    size_min_obs: MinObs = 100
    momentum_lag: Lag = 63
    value_lag: Lag = 252
    volatility_window: Window = 21
    volatility_min_obs: MinObs = 20
    liquidity_window: Window = 21
    liquidity_min_obs: MinObs = 20
    weighting: Weighting = "equal"
    scaling: Scaling = "zscore"
    #: Winsorization half-width in robust standard deviations (``k * 1.4826 * MAD``).
    winsor_k: Positive = 3.0
    #: Final clip of standardized exposures, ``[-clip, clip]``.
    clip: Positive = 3.0
    #: The analytics' choice of factors (not part of the ``model`` tag).
    analytics: RegressionFactors = RegressionFactors()
    #: Custom factors by name (``[factors.custom.NAME]``), after the six in this order.
    custom: dict[str, CustomFactorSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, (choices, bounds) in _CONSTRAINTS.items():
            value = getattr(self, name)
            if choices and value not in choices:
                raise ValueError(f"{name} must be one of {', '.join(map(str, choices))}")
            for bound in bounds:
                if not _within(value, bound):
                    raise ValueError(f"{name} must be {_describe(bound)}, got {value!r}")
        for min_obs, window in _MIN_OBS_WINDOWS:
            low = _lower_bound(min_obs)
            if not low <= getattr(self, min_obs) <= getattr(self, window):
                raise ValueError(
                    f"{min_obs} must be between {low} and {window} ({getattr(self, window)}),"
                    f" got {getattr(self, min_obs)}"
                )
        if self.value_lag <= self.momentum_lag:
            raise ValueError(
                f"value_lag ({self.value_lag}) must be greater than"
                f" momentum_lag ({self.momentum_lag})"
            )
        for name in self.custom:
            try:
                check_name(name, CANONICAL)
            except ExpressionError as e:
                raise ValueError(f"custom.{name}: {e.problem}") from None

    @property
    def custom_lookback(self) -> int:
        """The longest lookback of the custom expressions (0 without any; plug-ins and
        models add theirs once built: ``FactorModel.history_bars``)."""
        return max((s.lookback or 0 for s in self.custom.values()), default=0)

    @property
    def history_bars(self) -> int:
        """Bars of history the longest window, lag or custom expression needs (the
        warm-up length)."""
        longest = max(
            self.beta_window,
            self.size_window,
            self.value_lag,
            self.volatility_window,
            self.liquidity_window,
        )
        # one more bar: returns need the close before the window, and an expression's
        # lookback counts the bars before the one it has a value at
        return max(longest, self.custom_lookback) + 1

    def tag(self, fingerprints: Mapping[str, str] | None = None) -> str:
        """Model version plus a short hash of these parameters: the wire ``model`` field.

        The custom factors count by their definitions (not their view or words);
        ``fingerprints`` adds what the parameters cannot tell, by factor: a digest of
        a model factor's files (``FactorModel.tag``)."""
        fields_ = asdict(self)
        del fields_["analytics"]  # what is computed from the exposures, not the model
        del fields_["custom"]
        if self.custom:  # without any, the tag of a configuration that has none
            fields_["custom"] = [
                [name, spec.definition(), (fingerprints or {}).get(name, "")]
                for name, spec in self.custom.items()
            ]
        blob = json.dumps(fields_, sort_keys=True).encode()
        return f"{MODEL_VERSION}+{hashlib.sha256(blob).hexdigest()[:10]}"


# -- the constraints, read from the annotations once ----------------------------------

_Bound = Ge | Gt


def _read_constraints() -> dict[str, tuple[tuple[object, ...], tuple[_Bound, ...]]]:
    """Per field: the allowed values of a ``Literal`` and the ``Ge``/``Gt`` bounds."""
    hints = get_type_hints(FactorParams, include_extras=True)
    out = {}
    for f in fields(FactorParams):
        hint = hints[f.name]
        bounds = tuple(m for m in getattr(hint, "__metadata__", ()) if isinstance(m, Ge | Gt))
        choices = get_args(hint) if get_origin(hint) is Literal else ()
        out[f.name] = (choices, bounds)
    return out


def _within(value: float, bound: _Bound) -> bool:
    # annotated_types types a bound as what the value compares with: here, numbers
    if isinstance(bound, Ge):
        return value >= cast(float, bound.ge)
    return value > cast(float, bound.gt)


def _describe(bound: _Bound) -> str:
    return f">= {bound.ge}" if isinstance(bound, Ge) else f"> {bound.gt}"


def _lower_bound(name: str) -> int:
    (bound,) = (b for b in _CONSTRAINTS[name][1] if isinstance(b, Ge))
    return cast(int, bound.ge)


_CONSTRAINTS = _read_constraints()
#: ``(min_obs, window)`` field pairs, by the naming rule of :class:`FactorParams`.
_MIN_OBS_WINDOWS = tuple(
    (f.name, f.name.removesuffix("_min_obs") + "_window")
    for f in fields(FactorParams)
    if f.name.endswith("_min_obs")
)

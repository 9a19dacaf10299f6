"""The one registry of factor names.

Every other part of factorcast (signals, Redis keys, metric labels, CLI tables,
reports) reads factor names from here; nothing else spells them.  Custom factors
join the same registry under their own names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

MARKET: Final = "market"
SIZE: Final = "size"
VALUE: Final = "value"
MOMENTUM: Final = "momentum"
VOLATILITY: Final = "volatility"
LIQUIDITY: Final = "liquidity"

#: The six canonical factors, in their canonical order (the column order of every
#: exposure matrix).
CANONICAL: Final[tuple[str, ...]] = (MARKET, SIZE, VALUE, MOMENTUM, VOLATILITY, LIQUIDITY)

#: Analytics names (ANALYTICS.md): not exposure factors, never in an exposure matrix.
#: ``universe`` is the intercept of the cross-sectional factor-return regression and
#: the first factor of the risk model; every symbol's exposure to it is 1.
UNIVERSE: Final = "universe"
ANALYTICS_NAMES: Final[tuple[str, ...]] = (UNIVERSE,)


@dataclass(frozen=True, slots=True)
class FactorSpec:
    """What a factor is called and how to label it for people.

    ``label`` may contain ``{...}`` fields naming attributes of the factor
    parameters (``factors.params.FactorParams``); ``display_label`` fills them.
    ``positive_word`` / ``negative_word`` are the tilt words of ANALYTICS.md
    section 7 for a positive / negative exposure (empty: ``high-{name}`` /
    ``low-{name}``, the default of a custom factor).
    """

    name: str
    label: str
    positive_means: str
    positive_word: str = ""
    negative_word: str = ""

    def tilt_word(self, sign: float) -> str:
        """The tilt word of an exposure of this sign (positive or negative)."""
        if sign > 0:
            return self.positive_word or f"high-{self.name}"
        return self.negative_word or f"low-{self.name}"

    def display_label(self, params: object | None = None) -> str:
        if params is None or "{" not in self.label:
            return self.label.split(" (")[0]
        fields = {f: getattr(params, f) for f in _label_fields(self.label)}
        return self.label.format(**fields)


def _label_fields(label: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(label) if f]


class FactorRegistry:
    """Ordered, append-only mapping of factor name to :class:`FactorSpec`."""

    def __init__(self, specs: tuple[FactorSpec, ...]) -> None:
        self._specs: dict[str, FactorSpec] = {}
        for spec in specs:
            self.register(spec)

    def register(self, spec: FactorSpec) -> None:
        if not spec.name.isidentifier() or spec.name != spec.name.lower():
            raise ValueError(f"factor name must be a lower-case identifier: {spec.name!r}")
        if spec.name in self._specs:
            raise ValueError(f"factor {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def __getitem__(self, name: str) -> FactorSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise KeyError(f"unknown factor {name!r}; known: {', '.join(self._specs)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)


def canonical_registry() -> FactorRegistry:
    """A fresh registry holding the six canonical factors of FACTORS.md."""
    return FactorRegistry(
        (
            FactorSpec(
                MARKET,
                "Market beta ({beta_window} bars)",
                "moves more than the market",
                "high-beta",
                "low-beta",
            ),
            FactorSpec(SIZE, "Size ({size_window} bars)", "large", "large", "small"),
            FactorSpec(
                VALUE,
                "Value, reversal ({momentum_lag}-{value_lag} bars)",
                "fallen long-term",
                "cheap",
                "expensive",
            ),
            FactorSpec(
                MOMENTUM,
                "Momentum ({momentum_lag} bars)",
                "risen recently",
                "high-momentum",
                "low-momentum",
            ),
            FactorSpec(
                VOLATILITY,
                "Volatility ({volatility_window} bars)",
                "volatile",
                "high-volatility",
                "low-volatility",
            ),
            FactorSpec(
                LIQUIDITY,
                "Liquidity, -ln Amihud ({liquidity_window} bars)",
                "liquid",
                "liquid",
                "illiquid",
            ),
        )
    )


REGISTRY: Final = canonical_registry()

"""Tilt in words (ANALYTICS.md section 7).

Per style factor (never ``universe``): ``strong`` if ``|x_k| >= 0.5``, ``mild``
if ``0.25 <= |x_k| < 0.5``, else ``neutral``; the word of a factor for the sign
of its exposure comes from the registry (``FactorSpec.tilt_word``).  The
sentence::

    Tilted to {strong words}; mildly to {mild words}. Neutral on {neutral factors}.

each list joined by ``, `` and ordered by ``|x_k|`` descending (ties in the
order of ``names``, the registry's); with no strong word the first clause is
``Tilted mildly to {mild words}.``; a clause with an empty list is left out;
``No factor tilt.`` alone when no factor is mild or strong.

Choices the contract leaves open, made here: a neutral factor has no word
(``None``); a factor the registry does not know takes the custom default
``high-{name}`` / ``low-{name}``; a non-finite exposure is a ``ValueError``
(portfolio exposures are sums over covered holdings, never NaN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.registry import REGISTRY, UNIVERSE, FactorRegistry, FactorSpec

Strength = Literal["strong", "mild", "neutral"]

#: ``|x_k|`` at or above which a tilt is strong, and mild
STRONG: Final = 0.5
MILD: Final = 0.25
NO_TILT: Final = "No factor tilt."


@dataclass(frozen=True, slots=True)
class FactorTilt:
    """One factor's exposure, its strength and (unless neutral) its word."""

    name: str
    exposure: float
    strength: Strength
    word: str | None


@dataclass(frozen=True, slots=True)
class Tilt:
    """The tilt sentence and the per-factor entries, in the order of ``names``."""

    sentence: str
    factors: tuple[FactorTilt, ...]


def strength(exposure: float, strong: float = STRONG, mild: float = MILD) -> Strength:
    """``strong``, ``mild`` or ``neutral`` by ``|exposure|``."""
    a = abs(exposure)
    if a >= strong:
        return "strong"
    if a >= mild:
        return "mild"
    return "neutral"


def tilt(
    names: Sequence[str],
    exposures: NDArray[np.float64] | Sequence[float],
    registry: FactorRegistry = REGISTRY,
) -> Tilt:
    """The tilt of exposures ``x`` named ``names``; a ``universe`` entry is skipped."""
    values = np.asarray(exposures, dtype=np.float64)
    if values.shape != (len(names),):
        raise ValueError("one exposure per name")
    entries: list[FactorTilt] = []
    for name, x in zip(names, values.tolist(), strict=True):
        if name == UNIVERSE:
            continue
        if not np.isfinite(x):
            raise ValueError(f"tilt: the exposure to {name} is not finite")
        spec = registry[name] if name in registry else FactorSpec(name, name, "")
        s = strength(x)
        entries.append(FactorTilt(name, x, s, None if s == "neutral" else spec.tilt_word(x)))
    return Tilt(sentence(entries), tuple(entries))


def sentence(entries: Sequence[FactorTilt]) -> str:
    """The section's sentence from per-factor entries (given in registry order)."""

    def ordered(which: Strength) -> list[FactorTilt]:
        picked = [e for e in entries if e.strength == which]
        return sorted(picked, key=lambda e: -abs(e.exposure))  # stable: ties keep order

    strong = [e.word or e.name for e in ordered("strong")]
    mild = [e.word or e.name for e in ordered("mild")]
    neutral = [e.name for e in ordered("neutral")]
    if not strong and not mild:
        return NO_TILT
    if strong:
        first = f"Tilted to {', '.join(strong)}"
        first += f"; mildly to {', '.join(mild)}." if mild else "."
    else:
        first = f"Tilted mildly to {', '.join(mild)}."
    if neutral:
        return f"{first} Neutral on {', '.join(neutral)}."
    return first

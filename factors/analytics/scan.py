"""The scanner (ANALYTICS.md section 8): which symbols carry a wanted tilt.

For a wanted tilt ``t`` over named model factors (``size=-1,momentum=1``; the
unnamed ones 0), per symbol with every exposure finite at ``T``:

- ``alignment = t . X[i] / |t|``;
- ``purity = alignment / |X[i]|``, the cosine (``|X[i]|`` the Euclidean norm over
  all ``K`` model factors);
- ``efficiency = alignment / sqrt(V_ii)`` with ``V`` the risk model's asset
  covariance;

sorted by efficiency, descending, and the equal-weighted basket of the top ``N``
(default 10): its exposures (``universe`` first, which is 1) and one-bar
volatility ``sqrt(w'Vw)``.

Choices the contract leaves open, made here:

- Ties in efficiency keep the universe's order.  Without a risk model (or a
  symbol's specific variance), efficiency is NaN: those symbols come after the
  others, by alignment descending, and the basket's ``sigma`` is NaN (reason
  ``insufficient_history``).
- A symbol with all exposures 0 has no direction: purity NaN.
- ``universe`` cannot be wanted (every symbol's exposure to it is 1), nor can a
  factor be named twice or a tilt with no nonzero entry
  (:class:`~factorcast.factors.analytics.portfolio.PortfolioInputError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.portfolio import PortfolioInputError
from factorcast.factors.analytics.risk import asset_covariance
from factorcast.factors.analytics.riskattr import asset_variances
from factorcast.factors.reasons import Reason
from factorcast.factors.registry import UNIVERSE

FloatArray = NDArray[np.float64]

#: the basket's size by default
DEFAULT_TOP: Final = 10


def parse_factor_values(text: str, names: Sequence[str], what: str = "want") -> dict[str, float]:
    """``"size=-1,momentum=1"`` as ``{name: value}`` over the model factors
    ``names``; a :class:`PortfolioInputError` naming ``what`` and the problem."""
    out: dict[str, float] = {}
    items = [part.strip() for part in text.split(",") if part.strip()]
    if not items:
        raise PortfolioInputError(f"{what}: no factor given (name=value,...)")
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise PortfolioInputError(f"{what}: {item!r} is not name=value")
        if name not in names:
            raise PortfolioInputError(f"{what}: unknown factor {name!r}; known: {', '.join(names)}")
        if name in out:
            raise PortfolioInputError(f"{what}: factor {name} named twice")
        try:
            number = float(value)
        except ValueError:
            raise PortfolioInputError(f"{what}: {name}={value.strip()} is not a number") from None
        if not math.isfinite(number):
            raise PortfolioInputError(f"{what}: {name}={value.strip()} is not a finite number")
        out[name] = number
    return out


def want_vector(want: Mapping[str, float], names: Sequence[str], what: str = "want") -> FloatArray:
    """The wanted tilt as a vector over ``names`` (0 where not named)."""
    for name, value in want.items():
        if name == UNIVERSE or name not in names:
            raise PortfolioInputError(f"{what}: unknown factor {name!r}; known: {', '.join(names)}")
        if not math.isfinite(value):
            raise PortfolioInputError(f"{what}: {name} is not a finite number")
    t = np.array([float(want.get(n, 0.0)) for n in names])
    if not (t != 0).any():
        raise PortfolioInputError(f"{what}: no factor with a nonzero value")
    return t


@dataclass(frozen=True, slots=True)
class Basket:
    """The equal-weighted basket of the top symbols; ``names`` are ``universe``
    then the model factors, ``exposure`` one per name."""

    symbols: tuple[str, ...]
    weights: FloatArray
    names: tuple[str, ...]
    exposure: FloatArray
    sigma: float
    reason: Reason


@dataclass(frozen=True, slots=True)
class Scan:
    """The ranked symbols (best first) with their figures and exposures (n, K)
    over ``names`` (the model factors), and the basket."""

    want: dict[str, float]
    names: tuple[str, ...]
    symbols: tuple[str, ...]
    alignment: FloatArray
    purity: FloatArray
    efficiency: FloatArray
    exposures: FloatArray
    basket: Basket


def scan(
    symbols: Sequence[str],
    names: Sequence[str],
    exposures: FloatArray,
    covariance: FloatArray,
    specific: FloatArray,
    want: Mapping[str, float],
    *,
    top: int = DEFAULT_TOP,
) -> Scan:
    """Rank the universe (``exposures`` (n, K) over ``names``, the risk model's
    ``covariance`` (K+1, K+1) and ``specific`` (n,)) for the tilt ``want``."""
    x = np.asarray(exposures, dtype=np.float64)
    d = np.asarray(specific, dtype=np.float64)
    f = np.asarray(covariance, dtype=np.float64)
    k = len(names)
    if x.shape != (len(symbols), k) or d.shape != (len(symbols),) or f.shape != (k + 1, k + 1):
        raise ValueError("exposures, specific and covariance do not fit the symbols and names")
    if top < 1:
        raise PortfolioInputError(f"top: must be at least 1, got {top}")
    t = want_vector(want, names)
    ok = np.flatnonzero(np.isfinite(x).all(axis=1))
    xs = x[ok]
    alignment = xs @ t / np.linalg.norm(t)
    norm = np.linalg.norm(xs, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        purity = np.where(norm > 0, alignment / norm, np.nan)
        variance = (
            asset_variances(f, d[ok], xs) if np.isfinite(f).all() else np.full(ok.size, np.nan)
        )
        efficiency = alignment / np.sqrt(variance)
    efficiency = np.where(np.isfinite(efficiency), efficiency, np.nan)
    primary = np.where(np.isfinite(efficiency), -efficiency, np.inf)
    order = np.lexsort((np.arange(ok.size), -alignment, primary))
    ranked = ok[order]
    chosen = ranked[:top]
    w = np.full(chosen.size, 1.0 / chosen.size) if chosen.size else np.zeros(0)
    exposure = np.concatenate([[w.sum()], w @ x[chosen]])
    v = asset_covariance(f, d[chosen], x[chosen])
    var = float(w @ v @ w)
    finite = bool(np.isfinite(var)) and chosen.size > 0
    reason = (
        Reason.OK
        if finite
        else (Reason.TOO_FEW_SYMBOLS if not chosen.size else Reason.INSUFFICIENT_HISTORY)
    )
    basket = Basket(
        symbols=tuple(symbols[i] for i in chosen.tolist()),
        weights=w,
        names=(UNIVERSE, *names),
        exposure=exposure,
        sigma=float(np.sqrt(var)) if finite else float("nan"),
        reason=reason,
    )
    return Scan(
        want={n: float(want[n]) for n in names if n in want},
        names=tuple(names),
        symbols=tuple(symbols[i] for i in ranked.tolist()),
        alignment=alignment[order],
        purity=purity[order],
        efficiency=efficiency[order],
        exposures=xs[order],
        basket=basket,
    )

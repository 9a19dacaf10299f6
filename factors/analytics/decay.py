"""Offline factor decay (ANALYTICS.md section 2): the IC half-life rule over a
decay curve, and the quintile labels of the quintile spread.  The curve, the rank
autocorrelation and the spread themselves are accumulated one grid step at a time
by the offline run (``strategy.analytics.DecayAccumulator``), never over a panel.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.health import (
    DECAY_HORIZONS,
    FloatArray,
)


def ic_half_life(
    curve: FloatArray, directions: FloatArray, horizons: tuple[int, ...] = DECAY_HORIZONS
) -> list[int | None]:
    """Per factor: the first horizon ``h`` with ``d * mean_ic(h) <= 0.5 * d *
    mean_ic(1)``; None if none, or if ``d * mean_ic(1) <= 0`` (or is NaN).
    ``curve[0]`` must be horizon 1."""
    if horizons[0] != 1:
        raise ValueError("the decay curve must start at horizon 1")
    out: list[int | None] = []
    for j in range(curve.shape[1]):
        d = float(directions[j])
        base = d * float(curve[0, j])
        found: int | None = None
        if base > 0:  # False for NaN too
            for i, h in enumerate(horizons):
                if d * float(curve[i, j]) <= 0.5 * base:
                    found = h
                    break
        out.append(found)
    return out


def quintile_labels(x: FloatArray) -> NDArray[np.int64]:
    """``pandas.qcut(pandas.Series(x).rank(method="first"), 5, labels=False)``
    in numpy, for finite ``x`` (ties broken by position, as ``method="first"``).

    The same rule step by step: ``rank(method="first")`` is a stable argsort's
    position + 1; ``qcut`` takes the bin edges at the linear-interpolated
    quantiles ``0, .2, .4, .6, .8, 1`` of those ranks (``numpy.percentile`` of
    ``linspace(0, 1, 6) * 100``, as pandas computes them) and cuts into
    right-closed bins with the lowest edge included: label = the position of
    the first edge ``>= rank``, minus one, and 0 for the lowest rank.  The
    tests check it against pandas for every sample size from 10 to 300.
    """
    n = x.size
    ranks = np.empty(n)
    ranks[np.argsort(x, kind="stable")] = np.arange(1, n + 1, dtype=np.float64)
    edges = np.percentile(np.arange(1, n + 1, dtype=np.float64), np.linspace(0, 1, 6) * 100)
    labels = np.searchsorted(edges, ranks, side="left") - 1
    return np.maximum(labels, 0).astype(np.int64)

"""Offline factor decay (ANALYTICS.md section 2): the IC series over a whole
panel, the decay curve and IC half-life, alphalens' factor rank autocorrelation
and the top-minus-bottom quintile spread.

Panels: ``exposures`` is ``(T, n, K)`` (bars x symbols x factors), ``closes``
``(T, n)``, one row per grid step, NaN where no bar.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.health import (
    DECAY_HORIZONS,
    MIN_QUINTILE_SYMBOLS,
    FloatArray,
    forward_return,
)
from factorcast.factors.analytics.ranks import rank_ic, spearman_columns


def ic_series(exposures: FloatArray, closes: FloatArray, horizon: int) -> FloatArray:
    """``IC[t, k]`` at ``horizon`` for every bar ``t`` (NaN where ``t + h`` is past
    the panel or the IC is undefined), ``(T, K)``."""
    n_bars, _, k = exposures.shape
    out: FloatArray = np.full((n_bars, k), np.nan)
    for t in range(n_bars - horizon):
        out[t], _, _ = rank_ic(exposures[t], forward_return(closes[t + horizon], closes[t]))
    return out


def _nanmean0(a: FloatArray) -> FloatArray:
    ok = np.isfinite(a)
    n = ok.sum(axis=0)
    total = np.where(ok, a, 0.0).sum(axis=0)
    out: FloatArray = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return out


def decay_curve(
    exposures: FloatArray, closes: FloatArray, horizons: tuple[int, ...] = DECAY_HORIZONS
) -> FloatArray:
    """Mean of the finite ICs over the whole sample at each horizon, ``(H, K)``."""
    return np.stack([_nanmean0(ic_series(exposures, closes, h)) for h in horizons])


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


def rank_autocorrelation(exposures: FloatArray) -> FloatArray:
    """alphalens' factor rank autocorrelation: the Spearman correlation of
    ``X[., k, t]`` with ``X[., k, t-1]`` over the symbols where both are finite,
    averaged over the bars where it is defined, ``(K,)``."""
    n_bars, _, k = exposures.shape
    rho: FloatArray = np.full((max(n_bars - 1, 0), k), np.nan)
    for t in range(1, n_bars):
        rho[t - 1], _, _ = spearman_columns(exposures[t], exposures[t - 1])
    return _nanmean0(rho)


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


def quintile_spread(exposures: FloatArray, closes: FloatArray) -> FloatArray:
    """Mean over bars of the mean next-bar return of the top exposure quintile
    minus that of the bottom one, per factor ``(K,)``; a bar counts for a factor
    when at least 10 symbols have a finite exposure and a finite return."""
    n_bars, _, k = exposures.shape
    spread: FloatArray = np.full((max(n_bars - 1, 0), k), np.nan)
    for t in range(n_bars - 1):
        r = forward_return(closes[t + 1], closes[t])
        for j in range(k):
            x = exposures[t, :, j]
            ok = np.isfinite(x) & np.isfinite(r)
            if ok.sum() < MIN_QUINTILE_SYMBOLS:
                continue
            labels = quintile_labels(x[ok])
            rr = r[ok]
            spread[t, j] = rr[labels == 4].mean() - rr[labels == 0].mean()
    return _nanmean0(spread)

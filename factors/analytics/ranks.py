"""Average ranks and rank ICs of one cross-section (ANALYTICS.md section 2), every
column at once.

The engine takes a rank IC per horizon at every grid step, so this is written for
a few hundred symbols and a handful of factors, where the cost is numpy's per-call
overhead and the sort:

- every column to rank is a *row* of one C-contiguous ``(rows, n)`` array (a
  contiguous row sorts several times faster than a strided column), sorted by one
  ``argsort`` along the rows with numpy's default (unstable) sort: the order
  within a run of ties does not change its average rank, so the ranks are those of
  a stable sort, exactly;
- the symbols left out of a column are keyed ``+inf`` (they sort last), never NaN:
  numpy's vectorized sort does not take NaN, and its fallback is four times slower;
- ties: a run of equal sorted values starts where a value differs from the one
  before it; each run's average rank is ``first + (length - 1) / 2``, repeated
  over the run;
- the rank IC of factor ``k`` stays in the sorted order of its exposures: the
  returns' ranks are gathered in that order, so only the returns' ranks (one
  ranking per distinct mask, usually one or two) go back to the symbols' order;
- Spearman's sums are taken as ``sum r_x r_y - n m^2`` with ``m = (n + 1) / 2``:
  average ranks are multiples of 1/2, so every product, sum and difference here is
  a multiple of 1/4 below ``n^3``, exact in float64 up to about 10^5 symbols, and
  the correlation is, bit for bit, the one the centred sums give.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.reasons import Reason

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
CodeArray = NDArray[np.int8]
IndexArray = NDArray[np.intp]

#: Fewest symbols for a rank IC.
MIN_IC_SYMBOLS: Final = 3

_TOO_FEW: Final = int(Reason.TOO_FEW_SYMBOLS)
_NO_DISPERSION: Final = int(Reason.NO_DISPERSION)


@lru_cache(maxsize=32)
def _positions(rows: int, n: int) -> FloatArray:
    """``1, 2, ..., n`` on each of ``rows`` rows, flat (read-only, shared)."""
    out = np.tile(np.arange(1.0, n + 1.0), rows)
    out.flags.writeable = False
    return out


@lru_cache(maxsize=32)
def _row_starts(rows: int, n: int) -> IndexArray:
    """``r * n`` for each row ``r``, as a column (read-only, shared)."""
    out = (np.arange(rows, dtype=np.intp) * n)[:, None]
    out.flags.writeable = False
    return out


@lru_cache(maxsize=32)
def _column(values: tuple[int, ...]) -> IndexArray:
    """``values`` as a column (read-only, shared)."""
    out = np.array(values, dtype=np.intp)[:, None]
    out.flags.writeable = False
    return out


def sorted_ranks(keys: FloatArray) -> tuple[IndexArray, FloatArray]:
    """Sort each row of ``keys`` ``(rows, n)`` (C-contiguous, no NaN): returns
    ``flat``, where ``flat[r, p]`` is the index into ``keys.ravel()`` of the ``p``-th
    smallest value of row ``r``, and ``ranks[r, p]``, that value's average rank
    (1-based, ties share the mean of their ranks) within its row."""
    rows, n = keys.shape
    flat = np.argsort(keys, axis=1)
    if rows == 0 or n == 0:
        return flat, np.zeros((rows, n))
    flat += _row_starts(rows, n)
    return flat, _run_ranks(keys.ravel()[flat])


def _run_ranks(s: FloatArray) -> FloatArray:
    """The average ranks (1-based) of the values of each sorted row of ``s``: the
    positions, but for the runs of equal values (a few dozen), which get their mean."""
    rows, n = s.shape
    new = np.empty((rows, n), dtype=bool)  # where a run of equal values starts
    new[:, 0] = True
    np.not_equal(s[:, 1:], s[:, :-1], out=new[:, 1:])
    positions = _positions(rows, n)
    tied = np.flatnonzero(~new)  # the positions that continue a run, ascending
    if not tied.size:
        return positions.reshape(rows, n)
    # a run is its start and a block of consecutive continuations
    gaps = np.flatnonzero(tied[1:] - tied[:-1] != 1)
    last = np.concatenate((tied[gaps], tied[-1:]))
    first = np.concatenate((tied[:1], tied[gaps + 1])) - 1
    mean = (positions[first] + positions[last]) * 0.5
    ranks = positions.copy()
    ranks[first] = mean
    ranks[tied] = np.repeat(mean, last - first)
    return ranks.reshape(rows, n)


def average_ranks(values: FloatArray, mask: BoolArray) -> FloatArray:
    """Average ranks (1-based, ties share the mean of their ranks) of each column
    of ``values`` over the rows where ``mask`` holds; NaN elsewhere.

    The same ranks as ``scipy.stats.rankdata(method="average")`` column by
    column, computed for all columns at once."""
    n, k = values.shape
    keys = np.full((k, n), np.inf)  # masked rows sort last, after every value
    np.copyto(keys, values.T, where=mask.T)
    flat, ranks = sorted_ranks(keys)
    out = np.empty(k * n)
    out[flat] = ranks
    return np.where(mask, out.reshape(k, n).T, np.nan)


def spearman_columns(x: FloatArray, y: FloatArray) -> tuple[FloatArray, CodeArray, IntArray]:
    """Spearman correlation of ``x[:, k]`` with ``y[:, k]`` for every column ``k``,
    over the rows where both are finite (a mask per column).

    Returns ``(rho, reason, n)``: NaN with ``too_few_symbols`` below 3 rows,
    NaN with ``no_dispersion`` when either ranking is constant.
    """
    mask = np.isfinite(x) & np.isfinite(y)
    counts = np.count_nonzero(mask, axis=0).astype(np.int64)
    rx, ry = average_ranks(x, mask), average_ranks(y, mask)
    mean = (counts + 1) / 2.0  # the mean of average ranks 1..n, exactly
    cx = np.where(mask, rx - mean, 0.0)
    cy = np.where(mask, ry - mean, 0.0)
    return _correlation(counts, (cx * cx).sum(axis=0), (cy * cy).sum(axis=0), (cx * cy).sum(axis=0))


def rank_ic(
    exposures: FloatArray, forward_returns: FloatArray
) -> tuple[FloatArray, CodeArray, IntArray]:
    """Rank IC of each factor of one cross-section: ``exposures`` is ``(n, K)``,
    ``forward_returns`` ``(n,)``; the numbers of :func:`spearman_columns` with the
    returns in every column.

    One sort for everything: a row per factor, and a row of the returns per
    distinct mask of the factors (usually one or two: the symbols with every
    exposure, and those without some of them)."""
    x = np.asarray(exposures, dtype=np.float64)
    y = np.asarray(forward_returns, dtype=np.float64)
    n, k = x.shape
    xt = x.T  # contiguous rows for the model's exposures (they are stored by factor)
    mask = np.isfinite(xt)
    mask &= np.isfinite(y)
    counts = mask.sum(axis=1)
    count_list: list[int] = counts.tolist()
    if max(count_list, default=0) < MIN_IC_SYMBOLS:
        return np.full(k, np.nan), np.full(k, _TOO_FEW, dtype=np.int8), counts
    # the distinct masks: row k + ymap[j] of ``keys`` ranks the returns over mask j
    seen: dict[bytes, int] = {}
    firsts: list[int] = []
    ymap: list[int] = []
    for j in range(k):
        key = mask[j].tobytes()
        if key not in seen:
            seen[key] = len(firsts)
            firsts.append(j)
        ymap.append(seen[key])
    rows = k + len(firsts)
    keys = np.empty((rows, n))
    keys.fill(np.inf)  # left out: +inf, after every value
    np.copyto(keys[:k], xt, where=mask)
    np.copyto(keys[k:], y, where=mask[firsts])
    flat = np.argsort(keys, axis=1)
    flat += _row_starts(rows, n)
    ranks = _run_ranks(keys.ravel()[flat])
    # the returns' ranks in the symbols' order, then in each factor's sorted order
    back = np.empty(rows * n)
    back[flat[k:]] = ranks[k:]
    ry = back[flat[:k] + _column(tuple((k + m - j) * n for j, m in enumerate(ymap)))]
    # Spearman's sums over all n: the left-out symbols of factor j are the last
    # n - count[j] of its row and of its returns' row, all tied at one rank c
    squares: list[float] = np.einsum("ij,ij->i", ranks, ranks).tolist()
    cross: list[float] = np.einsum("ij,ij->i", ranks[:k], ry).tolist()
    rho: list[float] = []
    reason: list[int] = []
    for count, sq_x, sxy, m in zip(count_list, squares[:k], cross, ymap, strict=True):
        if count < MIN_IC_SYMBOLS:
            rho.append(math.nan)
            reason.append(_TOO_FEW)
            continue
        out = n - count
        c = count + (out + 1) * 0.5
        centre = count * ((count + 1) * 0.5) ** 2 + out * c * c  # n m^2 + the left-out
        sxx = sq_x - centre
        syy = squares[k + m] - centre
        if sxx == 0 or syy == 0:
            rho.append(math.nan)
            reason.append(_NO_DISPERSION)
        else:
            rho.append((sxy - centre) / math.sqrt(sxx * syy))
            reason.append(0)
    return np.array(rho), np.array(reason, dtype=np.int8), counts


def _correlation(
    n: IntArray, sxx: FloatArray, syy: FloatArray, sxy: FloatArray
) -> tuple[FloatArray, CodeArray, IntArray]:
    """``(rho, reason, n)`` from the centred sums of the ranks."""
    few = n < MIN_IC_SYMBOLS
    flat = ~few & ((sxx == 0) | (syy == 0))
    ok = ~(few | flat)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(ok, sxy / np.sqrt(sxx * syy), np.nan)
    reason = np.where(few, _TOO_FEW, np.where(flat, _NO_DISPERSION, 0)).astype(np.int8)
    return rho, reason, n

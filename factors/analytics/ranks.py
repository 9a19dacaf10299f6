"""Average ranks and rank ICs of one cross-section (ANALYTICS.md section 2), every
column at once.

The engine takes a rank IC per horizon at every grid step, for a few hundred
symbols and a handful of factors.  Done in numpy that is dozens of calls whose
fixed cost outweighs the arithmetic, so the work is two compiled kernels
(:mod:`~factorcast.factors.jit`) around one numpy sort:

1. *keys*: every row to rank (a factor's exposures; the returns over each
   distinct mask of the factors, usually one or two) becomes a row of float32
   sort keys: the value rounded to float32 (the largest float32 where it is
   beyond), with the index of its symbol written over the low bits of its
   mantissa (``ceil(log2 n)`` bits, 9 for 500 symbols), ``+inf`` where the symbol
   is left out (it sorts last);
2. numpy sorts the rows of keys in place: its vectorized sort of float32 takes a
   fraction of the time of an argsort (or of numba's own sort, or of float64
   keys, which are twice the bytes), and a sorted key still names its symbol;
3. *ranks*: the symbols are read back from the sorted keys, the ``p``-th with rank
   ``p + 1``.  Rounding and the index bits keep the order of the values except
   among values whose keys agree above the index bits (relative difference below
   about ``2^-14`` for 500 symbols), which come out in the order of their symbols:
   each such run, most often a run of equal values, is put in order of the exact
   values (an insertion sort, which moves nothing where the values are equal).
   Then each run of equal values gets its average rank ``(first + last) / 2``
   (1-based positions), the ranks of ``scipy.stats.rankdata(method="average")``
   exactly, whatever order the sort left within the run.  (The runs grow with the
   universe: a key has ``23 - ceil(log2 n)`` bits of the value, 14 for 500
   symbols, 10 for 8192.)  The rank IC reads each row once, with the ranks
   ``p + 1``, and then puts right what the runs change.

Spearman's correlation is ``(sum r_x r_y - c m^2) / sqrt((sum r_x^2 - c m^2)
(sum r_y^2 - c m^2))`` over the ``c`` symbols of the column, with ``m = (c +
1) / 2``: average ranks are multiples of 1/2, so every product, sum and
difference here is a multiple of 1/4 below ``c^3``, exact in float64 up to about
10^5 symbols, and the correlation is, bit for bit, the one the centred sums give
(in any order of summation).

``-0.0`` is keyed as ``0.0`` (they are equal values).  Non-finite values are
always left out: an infinity or NaN with index bits would not be a key.  The
exact float64 values decide every tie and every run; the keys only sort.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.jit import kernel
from factorcast.factors.reasons import Reason

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]
#: symbol indices in the order of a sorted row
SymbolArray = NDArray[np.int32]
CodeArray = NDArray[np.int8]
KeyArray = NDArray[np.uint32]
#: keys as numpy sorts them: their bits as float32
SortKeys = NDArray[np.float32]

#: Fewest symbols for a rank IC.
MIN_IC_SYMBOLS: Final = 3

_TOO_FEW: Final = int(Reason.TOO_FEW_SYMBOLS)
_NO_DISPERSION: Final = int(Reason.NO_DISPERSION)

#: the bits of the key of a left-out symbol: +inf, after every finite key
_LEFT_OUT = np.uint32(0x7F80_0000)
#: the largest float32: a finite value beyond it is keyed as it (its run settles it)
_MAX32 = float(np.finfo(np.float32).max)


# --------------------------------------------------------------------------- kernels


@kernel
def _index_bits(n: int) -> int:
    """The low mantissa bits that hold a symbol index below ``n``."""
    bits = 0
    while (1 << bits) < n:
        bits += 1
    return bits


@kernel
def _key(value: float, index: int, shift: int) -> np.uint32:
    """The sort key of a finite ``value`` at symbol ``index``: the bits of the value
    as float32 (those of ``0.0`` for ``-0.0``, of the largest float32 beyond it)
    with the index in the low ``shift`` of them."""
    v = min(max(value + 0.0, -_MAX32), _MAX32)  # -0.0 + 0.0 is 0.0
    bits = np.float32(v).view(np.uint32)
    low = (np.uint32(1) << np.uint32(shift)) - np.uint32(1)
    return (bits & ~low) | np.uint32(index)


@kernel
def _settle_run(
    values: FloatArray, order: SymbolArray, rank: FloatArray, start: int, stop: int
) -> None:
    """Positions ``start .. stop - 1`` hold values that came out in symbol order:
    sort them (an insertion sort: nothing moves where they are equal), then give
    each run of equal values at positions ``a + 1 .. b`` their mean ``(a + 1 + b) / 2``."""
    for a in range(start + 1, stop):
        i = order[a]
        v = values[i]
        b = a - 1
        while b >= start and values[order[b]] > v:
            order[b + 1] = order[b]
            b -= 1
        order[b + 1] = i
    a = start
    while a < stop:
        v = values[order[a]]
        b = a + 1
        while b < stop and values[order[b]] == v:
            b += 1
        mean = (a + 1 + b) * 0.5
        for e in range(a, b):
            rank[e] = mean
        a = b


@kernel
def _masked_keys(values: FloatArray, mask: BoolArray) -> tuple[SortKeys, IntArray, int]:
    """The keys of each row of ``values`` ``(rows, n)`` over the finite values where
    ``mask`` holds (their bits as float32, for numpy's sort); the count of each row
    and the index bits."""
    rows, n = values.shape
    shift = _index_bits(n)
    sortable = np.empty((rows, n), dtype=np.float32)  # as numpy sorts them
    keys = sortable.view(np.uint32)
    counts = np.zeros(rows, dtype=np.int64)
    for r in range(rows):
        for i in range(n):
            keep = mask[r, i] & math.isfinite(values[r, i])
            keys[r, i] = _key(values[r, i], i, shift) if keep else _LEFT_OUT
            counts[r] += keep
    return sortable, counts, shift


@kernel
def _ranks_of_rows(
    sorted_keys: SortKeys, values: FloatArray, counts: IntArray, shift: int
) -> FloatArray:
    """The average ranks of each row from its sorted keys, in the symbols' order
    (NaN where left out)."""
    keys = sorted_keys.view(np.uint32)
    rows, n = values.shape
    out = np.full((rows, n), np.nan)
    order = np.empty(n, dtype=np.int32)  # a symbol index: 4 bytes are plenty
    rank = np.empty(n)
    for r in range(rows):
        _ranks_by_symbol(keys[r], values[r], counts[r], shift, order, rank, out[r])
    return out


@kernel
def _rank_ic_keys(xt: FloatArray, y: FloatArray) -> tuple[SortKeys, IntArray, int]:
    """The keys of the rank IC of each factor (a row of ``xt`` ``(K, n)``) with the
    returns ``y``: a row per factor, over the symbols where both are finite, then a
    row of the returns per distinct mask of those.  Also ``(counts, ymap)`` ``(2,
    K)``: the count of each factor's row (its returns' row has the same) and its
    returns' row (less ``K``); and the index bits."""
    k, n = xt.shape
    shift = _index_bits(n)
    # at most one returns' row per factor; float32, as numpy sorts them
    sortable = np.empty((2 * k, n), dtype=np.float32)
    keys = sortable.view(np.uint32)
    rows = np.empty((2, k), dtype=np.int64)  # one array: fewer for the caller to hold
    counts = rows[0]
    ymap = rows[1]
    firsts = np.empty(k, dtype=np.int64)  # the first factor of each distinct mask
    masks = 0
    finite_y = 0
    for i in range(n):
        finite_y += math.isfinite(y[i])
    full = -1  # the mask of the factors finite wherever the returns are
    for j in range(k):
        c = 0
        for i in range(n):
            keep = math.isfinite(y[i]) & math.isfinite(xt[j, i])
            keys[j, i] = _key(xt[j, i], i, shift) if keep else _LEFT_OUT
            c += keep
        counts[j] = c
        ymap[j] = -1
        if c == finite_y and full >= 0:  # that mask, without comparing them
            ymap[j] = full
            continue
        for m in range(masks):
            f = firsts[m]
            if counts[f] != c:
                continue
            differ = 0
            for i in range(n):
                differ += (keys[f, i] == _LEFT_OUT) != (keys[j, i] == _LEFT_OUT)
            if differ == 0:
                ymap[j] = m
                break
        if ymap[j] < 0:
            firsts[masks] = j
            ymap[j] = masks
            if c == finite_y:
                full = masks
            masks += 1
    for m in range(masks):
        f = firsts[m]
        for i in range(n):
            keys[k + m, i] = _LEFT_OUT if keys[f, i] == _LEFT_OUT else _key(y[i], i, shift)
    return sortable[: k + masks], rows, shift


@kernel
def rank_ic_from_keys(
    sorted_keys: SortKeys,
    xt: FloatArray,
    y: FloatArray,
    rows: IntArray,
    shift: int,
) -> tuple[FloatArray, CodeArray]:
    """Spearman's correlation and its reason code per factor from the sorted keys of
    :func:`rank_ic_keys`.

    One pass over each sorted row: the ``p``-th key's symbol has rank ``p + 1``
    unless it is in a run (:func:`_settle_runs` puts those right), the returns'
    ranks go into the symbols' order, and each factor's sum of products with them is
    taken on the way; ``sum r^2`` is ``c (c + 1) (2c + 1) / 6`` put right for the
    runs."""
    keys = sorted_keys.view(np.uint32)
    k, n = xt.shape
    masks = keys.shape[0] - k
    counts = rows[0]
    ymap = rows[1]
    mask_counts = np.empty(masks, dtype=np.int64)  # a mask's count is its factors'
    for j in range(k):
        mask_counts[ymap[j]] = counts[j]
    order = np.empty(n, dtype=np.int32)  # a symbol index: 4 bytes are plenty
    rank = np.empty(n)
    ry = np.empty((masks, n))  # the returns' ranks per mask, in the symbols' order
    syy = np.empty(masks)
    low = (np.uint32(1) << np.uint32(shift)) - np.uint32(1)
    for m in range(masks):
        c = mask_counts[m]
        syy[m] = _squares(c) + _ranks_by_symbol(keys[k + m], y, c, shift, order, rank, ry[m])
    rho = np.full(k, np.nan)
    reason = np.zeros(k, dtype=np.int8)
    for j in range(k):
        c = counts[j]
        if c < MIN_IC_SYMBOLS:
            reason[j] = _TOO_FEW
            continue
        row = keys[j]
        other = ry[ymap[j]]
        sxy = _ordered_dot(row, other, c, low)
        d_xx, d_xy = _settle_runs(row, xt[j], c, shift, order, rank, other, False)
        sxx = _squares(c) + d_xx
        sxy += d_xy
        centre = c * ((c + 1) * 0.5) ** 2  # c m^2
        vx = sxx - centre
        vy = syy[ymap[j]] - centre
        if vx == 0 or vy == 0:
            reason[j] = _NO_DISPERSION
        else:
            rho[j] = (sxy - centre) / math.sqrt(vx * vy)
    return rho, reason


@kernel
def _ranks_by_symbol(
    keys: KeyArray,
    values: FloatArray,
    count: int,
    shift: int,
    order: SymbolArray,
    rank: FloatArray,
    out: FloatArray,
) -> float:
    """The average ranks of one sorted row into ``out`` by symbol (the ``p``-th key's
    symbol has rank ``p + 1``, but in a run: :func:`_settle_runs`); returns what the
    runs change in ``sum r^2``.  ``order`` and ``rank`` are scratch."""
    low = (np.uint32(1) << np.uint32(shift)) - np.uint32(1)
    for p in range(count):
        out[keys[p] & low] = p + 1.0
    return _settle_runs(keys, values, count, shift, order, rank, out, True)[0]


@kernel
def _squares(c: int) -> float:
    """``sum_{p=1..c} p^2``, exactly."""
    return float(c * (c + 1) * (2 * c + 1) // 6)


@kernel
def _ordered_dot(keys: KeyArray, other: FloatArray, count: int, low: np.uint32) -> float:
    """``sum (p + 1) other[symbol of keys[p]]`` over ``p < count``, in four running
    sums (not one chain of additions): sums of products of ranks are exact in any
    order (see the module docstring)."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    p = 0
    while p + 4 <= count:
        s0 += (p + 1.0) * other[keys[p] & low]
        s1 += (p + 2.0) * other[keys[p + 1] & low]
        s2 += (p + 3.0) * other[keys[p + 2] & low]
        s3 += (p + 4.0) * other[keys[p + 3] & low]
        p += 4
    while p < count:
        s0 += (p + 1.0) * other[keys[p] & low]
        p += 1
    return (s0 + s1) + (s2 + s3)


@kernel
def _settle_runs(
    keys: KeyArray,
    values: FloatArray,
    count: int,
    shift: int,
    order: SymbolArray,
    rank: FloatArray,
    other: FloatArray,
    scatter: bool,
) -> tuple[float, float]:
    """Put right what the ranks ``p + 1`` of the sorted ``keys`` got wrong: in each run
    of keys that agree above the index bits (rare but for ties) the symbols are put
    in order of their exact ``values`` and given average ranks (:func:`_settle_run`).
    Returns what that changes in ``sum r^2`` and, unless ``scatter``, in ``sum r
    other[symbol]``; with ``scatter`` the settled ranks go into ``other`` by symbol
    instead.  ``order`` and ``rank`` are scratch."""
    s = np.uint32(shift)
    low = (np.uint32(1) << s) - np.uint32(1)
    d_sq = 0.0
    d_dot = 0.0
    start = -1  # the first position of the run being read
    for p in range(1, count + 1):
        if p < count and not (keys[p] ^ keys[p - 1]) >> s:
            if start < 0:
                start = p - 1
            continue
        if start < 0:
            continue
        for e in range(start, p):
            order[e] = np.int32(keys[e] & low)
            rank[e] = e + 1.0
        _settle_run(values, order, rank, start, p)
        for e in range(start, p):
            d_sq += rank[e] * rank[e] - (e + 1.0) * (e + 1.0)
            if scatter:
                other[order[e]] = rank[e]
            else:
                d_dot += rank[e] * other[order[e]] - (e + 1.0) * other[keys[e] & low]
        start = -1
    return d_sq, d_dot


# --------------------------------------------------------------------------- the API


def average_ranks(values: FloatArray, mask: BoolArray) -> FloatArray:
    """Average ranks (1-based, ties share the mean of their ranks) of each column
    of ``values`` over the rows where ``mask`` holds and the value is finite; NaN
    elsewhere.

    The same ranks as ``scipy.stats.rankdata(method="average")`` column by
    column, computed for all columns at once."""
    vt = np.ascontiguousarray(np.asarray(values, dtype=np.float64).T)
    mt = np.ascontiguousarray(np.asarray(mask, dtype=np.bool_).T)
    keys, counts, shift = _masked_keys(vt, mt)
    keys.sort(axis=1)  # as float32: see the module docstring
    ranks: FloatArray = _ranks_of_rows(keys, vt, counts, shift).T
    return ranks


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
    # the factors as contiguous rows: no copy for the model's exposures (stored by factor)
    xt = np.ascontiguousarray(np.asarray(exposures, dtype=np.float64).T)
    return rank_ic_rows(xt, np.ascontiguousarray(forward_returns, dtype=np.float64))


def rank_ic_rows(xt: FloatArray, y: FloatArray) -> tuple[FloatArray, CodeArray, IntArray]:
    """:func:`rank_ic` with the exposures as a row per factor, ``xt`` ``(K, n)``, and
    the returns ``y``, both C-contiguous float64."""
    keys, rows, shift = rank_ic_keys(xt, y)
    rho, reason = rank_ic_from_keys(keys, xt, y, rows, shift)
    return rho, reason, rows[0]


def rank_ic_keys(xt: FloatArray, y: FloatArray) -> tuple[SortKeys, IntArray, int]:
    """The first two steps of :func:`rank_ic_rows`: the rows of keys, sorted; each
    factor's count and returns' row, ``(2, K)``; the index bits; for
    :func:`rank_ic_from_keys` (a caller may run it inside a compiled call of its
    own)."""
    keys, rows, shift = _rank_ic_keys(xt, y)
    keys.sort(axis=1)  # as float32: see the module docstring
    return keys, rows, shift


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

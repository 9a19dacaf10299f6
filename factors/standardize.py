"""From raw descriptors to exposures (FACTORS.md, "From raw descriptor to exposure").

Vectorized over factors: ``raw`` is ``(n_factors, n_symbols)`` and a row is
standardized over the symbols whose value is finite.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.params import FactorParams
from factorcast.factors.reasons import Reason

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ReasonArray = NDArray[np.uint8]

#: Consistency constant turning a MAD into a normal-equivalent standard deviation.
MAD_TO_SD = 1.4826
#: ``sd`` below this fraction of the values' magnitude counts as zero dispersion.
#: Raw values that come from rolling sums may carry a few ulps of noise where the
#: exact values are identical; their "dispersion" is that noise, not information.
_REL_ZERO_SD = 1e-12
_TOO_FEW = np.uint8(Reason.TOO_FEW_SYMBOLS)
_NO_WEIGHTS = np.uint8(Reason.NO_WEIGHTS)
_NO_DISPERSION = np.uint8(Reason.NO_DISPERSION)


def _row_median(sorted_rows: FloatArray, n: NDArray[np.intp]) -> FloatArray:
    """Median of the first ``n[k]`` (finite, sorted) entries of each row."""
    lo = np.maximum((n - 1) // 2, 0)
    hi = np.maximum(n // 2, 0)
    rows = np.arange(sorted_rows.shape[0])
    return 0.5 * (sorted_rows[rows, lo] + sorted_rows[rows, hi])


def standardize(
    raw: FloatArray,
    weights: FloatArray,
    params: FactorParams,
) -> tuple[FloatArray, ReasonArray]:
    """Exposures and row-level reasons for a ``(K, S)`` matrix of raw values.

    ``raw`` must be NaN for symbols outside the cross-section. ``weights`` is NaN
    (or <= 0) for a symbol without a weight. Returns ``(exposure, reason)``,
    where ``reason`` is ``OK`` for finite exposures, a row-level reason
    (``TOO_FEW_SYMBOLS``, ``NO_WEIGHTS``, ``NO_DISPERSION``) where the row failed,
    and ``OK`` (to be filled by the caller) where ``raw`` itself was NaN.
    """
    finite = np.isfinite(raw)
    n = finite.sum(axis=1)
    equal_weights = bool((weights == 1.0).all())
    if params.scaling == "rank":
        exposure = _rank_scale(raw, finite, n)
        reason = np.zeros(raw.shape, dtype=np.uint8)
        few = (n < 3)[:, None] & finite
        reason[few] = _TOO_FEW
        exposure[few] = np.nan
        return exposure, reason

    # 2. winsorize at med +- k * 1.4826 * MAD (no clip where MAD == 0)
    med = _row_median(np.sort(raw, axis=1), n)[:, None]
    mad = _row_median(np.sort(np.abs(raw - med), axis=1), n)
    half = params.winsor_k * MAD_TO_SD * mad
    half = np.where(half > 0, half, np.inf)[:, None]
    x = np.minimum(np.maximum(raw, med - half), med + half)  # NaN stays NaN

    # 3. standardize: weighted mean, equal-weighted population std
    x0 = np.where(finite, x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_eq = x0.sum(axis=1) / n
        if equal_weights:
            mu, sw = mean_eq, n.astype(float)
        else:
            w = np.where(finite & (weights > 0), weights, 0.0)
            sw = w.sum(axis=1)
            mu = np.einsum("ks,ks->k", w, x0) / sw
        dev = np.where(finite, x - mean_eq[:, None], 0.0)
        sd = np.sqrt(np.einsum("ks,ks->k", dev, dev) / n)
        z = (x - mu[:, None]) / sd[:, None]
    # 4. clip
    exposure = np.minimum(np.maximum(z, -params.clip), params.clip)

    bad_rows = (n < 3) | (sw <= 0) | (sd <= _REL_ZERO_SD * np.abs(x0).max(axis=1))
    if not bad_rows.any():
        return exposure, np.zeros(raw.shape, dtype=np.uint8)
    row_reason = np.zeros(raw.shape[0], dtype=np.uint8)
    row_reason[sd <= _REL_ZERO_SD * np.abs(x0).max(axis=1)] = _NO_DISPERSION
    row_reason[sw <= 0] = _NO_WEIGHTS
    row_reason[n < 3] = _TOO_FEW
    reason = np.where(finite, row_reason[:, None], np.uint8(0))
    exposure[reason != 0] = np.nan
    return exposure, reason


def _rank_scale(raw: FloatArray, finite: BoolArray, n: NDArray[np.intp]) -> FloatArray:
    """``2 * (rank - 0.5) / n - 1`` with average ranks for ties, per row."""
    out = np.full(raw.shape, np.nan)
    for k in range(raw.shape[0]):
        idx = np.flatnonzero(finite[k])
        if idx.size == 0:
            continue
        out[k, idx] = 2.0 * (average_ranks(raw[k, idx]) - 0.5) / n[k] - 1.0
    return out


def average_ranks(values: FloatArray) -> FloatArray:
    """1-based ranks, ties sharing the average of their positions."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    new_group = np.empty(values.size, dtype=bool)
    new_group[0] = True
    np.not_equal(sorted_vals[1:], sorted_vals[:-1], out=new_group[1:])
    group = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], values.size)
    avg = 0.5 * (starts + ends + 1)  # mean of 1-based positions start+1 .. end
    ranks = np.empty(values.size)
    ranks[order] = avg[group]
    return ranks

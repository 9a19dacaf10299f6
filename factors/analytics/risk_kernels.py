"""The compiled kernel of the risk model's update (ANALYTICS.md section 3, risk.py).

Each bar the risk model decays its sums, takes out the bar leaving the window and
adds the bar entering it, for the factor covariance (``K + 1`` squared) and for
the residuals of every symbol, then reads the model off the sums.  In numpy that
was thirty-odd calls on small arrays whose fixed cost was most of the time
(:mod:`~factorcast.factors.jit`); :func:`risk_update` is all of it in
one call:

- the factor sums ``S = g S - g^W [f_old finite] f_old f_old' + [f finite] f f'``,
  their normalizer ``Z`` and count (all 0 when no finite bar is left);
- the residual sums, the same over the rows ``[u^2; 1; 1]`` (the decayed sums of
  ``u^2`` and of 1, and the count; zeroed where the count falls to 0);
- the ring slot of the bar written in place (its factor returns, whether they were
  finite, its residuals; a slot without a bar holds NaN residuals, which take
  nothing out);
- every ``W`` bars, all the sums afresh from the ring, with the weights
  ``2^(-age/H)`` (bounds the drift of add/subtract);
- the covariance ``S / Z`` (:func:`risk_covariance`), returned with ``S`` as the
  two layers of one array (one array for the caller to take).

The specific variances ``D_i`` with the median fallback (:func:`specific_variances`)
are read off the residual sums only when asked for (risk.py's snapshot keeps the
sums, which no later update changes).

The arithmetic is the one risk.py's docstring states, operation by operation.  The
sums are new arrays at every update (the caller's undo tokens keep the old ones);
the ring slot it overwrites is the caller's to save first.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.jit import kernel

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
IntArray = NDArray[np.int64]


@kernel
def risk_update(
    f: FloatArray,
    u: FloatArray,
    sums: tuple[FloatArray, float, int, FloatArray],
    ring: tuple[FloatArray, BoolArray, FloatArray],
    pos: int,
    saved: tuple[FloatArray, BoolArray, FloatArray],
    save_at: int,
    rates: tuple[float, float, float],
    recompute: bool,
    least: tuple[int, int],
) -> tuple[FloatArray, float, int, FloatArray]:
    """Bar ``f`` (``K + 1`` factor returns), ``u`` (residuals) into ring slot ``pos``.

    ``sums`` are ``(factor, Z, count, residual sums (3, n))`` before the bar, with
    ``factor`` ``(2, K + 1, K + 1)`` the sums ``S`` and the covariance; ``ring``
    the factor returns ``(W, K + 1)``, their finiteness ``(W,)`` and the residuals
    ``(W, n)`` of the last ``W`` bars; where ``save_at >= 0`` the slot ``pos`` holds
    before the bar is first saved at ``save_at`` of ``saved`` (the same three, a row
    per saved slot).  ``rates`` are the decay ``g``, the leaving weight ``g^W`` and
    the half-life, ``least`` ``(min_obs, min_residuals)``.  Returns the sums after
    the bar (afresh from the ring where ``recompute``), ``factor`` with the
    covariance (:func:`risk_covariance`)."""
    factor, f_z, f_count, u_sums = sums
    f_sum = factor[0]
    ring_f, ring_ok, ring_u = ring
    if save_at >= 0:
        saved[0][save_at] = ring_f[pos]
        saved[1][save_at] = ring_ok[pos]
        saved[2][save_at] = ring_u[pos]
    decay, leave, half_life = rates
    # the factor sums
    d = f.shape[0]
    ok = True
    for a in range(d):
        ok = ok and math.isfinite(f[a])
    old_ok = ring_ok[pos]
    new_factor = np.empty((2, d, d))
    new_sum = new_factor[0]
    for a in range(d):
        for b in range(d):
            s = f_sum[a, b] * decay
            if old_ok:
                s -= leave * (ring_f[pos, a] * ring_f[pos, b])
            if ok:
                s += f[a] * f[b]
            new_sum[a, b] = s
    z = f_z * decay
    if old_ok:
        z -= leave
        f_count -= 1
    if ok:
        z += 1.0
        f_count += 1
    if f_count == 0:
        new_sum[:, :] = 0.0
        z = 0.0
    ring_f[pos] = f
    ring_ok[pos] = ok
    # the residual sums: the row [u^2; 1; 1] (0 where u is not finite) of the bar in,
    # that of the slot's residuals out; decayed sums of u^2 and of 1, and the count
    n = u.shape[0]
    new_u = np.empty((3, n))
    for i in range(n):
        row0, row1 = _residual_row(u[i])
        old0, old1 = _residual_row(ring_u[pos, i])
        count = u_sums[2, i] - old1 + row1
        if count == 0:
            new_u[0, i] = 0.0
            new_u[1, i] = 0.0
            new_u[2, i] = 0.0
        else:
            new_u[0, i] = u_sums[0, i] * decay - old0 * leave + row0
            new_u[1, i] = u_sums[1, i] * decay - old1 * leave + row1
            new_u[2, i] = count
        ring_u[pos, i] = u[i]
    if recompute:
        z, f_count = _recompute(ring_f, ring_ok, ring_u, pos, half_life, new_sum, new_u)
    risk_covariance(new_sum, z, f_count >= least[0], new_factor[1])
    return new_factor, z, f_count, new_u


@kernel
def _residual_row(u: float) -> tuple[float, float]:
    """A residual's terms of the sums: ``(u^2, 1)``, ``(0, 0)`` where it is not finite."""
    if math.isfinite(u):
        return u * u, 1.0
    return 0.0, 0.0


@kernel
def _recompute(
    ring_f: FloatArray,
    ring_ok: BoolArray,
    ring_u: FloatArray,
    pos: int,
    half_life: float,
    f_sum: FloatArray,
    u_sums: FloatArray,
) -> tuple[float, int]:
    """All sums afresh from the ring into ``f_sum`` and ``u_sums`` (slot ``pos``
    holds the newest bar, age 0; slot ``pos - j`` mod ``W`` age ``j``), with the
    weights ``2^(-age/H)``; returns the normalizer and the count of finite bars."""
    window, d = ring_f.shape
    n = ring_u.shape[1]
    f_sum[:, :] = 0.0
    u_sums[:, :] = 0.0
    z = 0.0
    count = 0
    for age in range(window):
        s = (pos - age) % window
        w = 2.0 ** (-age / half_life)
        if ring_ok[s]:
            z += w
            count += 1
            for a in range(d):
                for b in range(a + 1):
                    f_sum[a, b] += w * ring_f[s, a] * ring_f[s, b]
        for i in range(n):
            row0, row1 = _residual_row(ring_u[s, i])
            u_sums[0, i] += w * row0
            u_sums[1, i] += w * row1
            u_sums[2, i] += row1
    for a in range(d):
        for b in range(a):
            f_sum[b, a] = f_sum[a, b]
    return z, count


@kernel
def risk_covariance(
    f_sum: FloatArray, f_z: float, covariance_ok: bool, covariance: FloatArray
) -> None:
    """The covariance ``S / Z`` from the sums into ``covariance`` (NaN unless
    ``covariance_ok``)."""
    d = f_sum.shape[0]
    for a in range(d):
        for b in range(d):
            covariance[a, b] = f_sum[a, b] / f_z if covariance_ok else np.nan


@kernel
def specific_variances(
    u_sums: FloatArray, min_residuals: int
) -> tuple[FloatArray, BoolArray, IntArray]:
    """``(specific, fallback, n_residuals)`` from the residual sums: ``D_i`` = the
    ratio of the decayed sums where the symbol has ``min_residuals`` residuals, else
    (``fallback``) the median of those ratios (NaN where no symbol has its own)."""
    n = u_sums.shape[1]
    specific = np.full(n, np.nan)
    fallback = np.empty(n, dtype=np.bool_)
    counts = np.empty(n, dtype=np.int64)
    own = np.empty(n)
    m = 0
    for i in range(n):
        counts[i] = np.int64(u_sums[2, i])
        fallback[i] = not u_sums[2, i] >= min_residuals
        if not fallback[i]:
            specific[i] = u_sums[0, i] / u_sums[1, i]
            own[m] = specific[i]
            m += 1
    if 0 < m < n:
        median = np.median(own[:m])
        for i in range(n):
            if fallback[i]:
                specific[i] = median
    return specific, fallback, counts

"""The compiled kernels of the factor-return regression (ANALYTICS.md section 1,
factor_returns.py): the weighted least squares of one bar from its normal
equations, in one pass over the symbols.

A bar's regression has ``K + 1`` unknowns (the universe intercept and ``K``
factors) and a few hundred symbols; in numpy it took a dozen calls whose fixed
cost was most of the time (:mod:`~factorcast.factors.jit`).  Here:

- :func:`wls_normal`: the sample (the symbols with the return, every exposure and
  the weight finite), its size, and the moments ``X'VX`` and ``X'VR`` of the
  design ``[1, X]``: a weighted sum of products over the sample for each, read off
  the exposures' rows and the returns where they are (:func:`_weighted_sum`,
  vectorized; a matrix product would first copy them into a design matrix, and
  BLAS would copy that again, some 100 KB written at every bar after the factor
  model's step has left the caches cold); then, where ``X'VX`` is clearly well
  conditioned, its Cholesky factor gives the factor returns, and :func:`wls_fit`
  the residuals and ``R^2``;
- "clearly well conditioned" is ``trace(X'VX) trace((X'VX)^-1)`` (at least the
  condition number of ``X'VX``) below the caller's bound, ``(X'VX)^-1``'s diagonal
  from the inverse of the Cholesky factor (the squares of its columns).  Below
  10^4, the weighted design ``V^(1/2) X`` has a condition number below 100: its
  smallest singular value is far above ``numpy.linalg.matrix_rank``'s tolerance,
  so it has full column rank as ANALYTICS.md asks, and the solution agrees with an
  SVD's to about 10^-12 of the returns.  Elsewhere (near collinear exposures, few
  symbols, a Cholesky factor that breaks down) the caller solves with
  ``numpy.linalg.lstsq`` and checks the rank with ``matrix_rank``.

Weights ``v`` (one per symbol) are ``sqrt`` of FACTORS.md's weight for ``adv`` and
``cap``: minimize ``sum_i v_i u_i^2``; an empty ``v`` is ``equal`` weighting
(``v_i = 1``).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.jit import kernel, sum_kernel

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: :func:`wls_normal`'s outcomes
SOLVED = 0
TOO_FEW = 1
NEEDS_SVD = 2


@kernel
def simple_returns(now: FloatArray, then: FloatArray) -> FloatArray:
    """``now / then - 1`` per symbol, NaN where either is missing (or the ratio is not
    finite): one loop rather than numpy calls under an ``errstate`` (whose cost is
    most of this for a few hundred symbols)."""
    out = np.empty(now.shape[0])
    for i in range(now.shape[0]):
        q = now[i] / then[i] - 1.0
        out[i] = q if math.isfinite(q) else np.nan
    return out


@kernel
def wls_bar(
    close: FloatArray, prev_close: FloatArray, xt: FloatArray, v: FloatArray, max_bound: float
) -> tuple[int, int, float, FloatArray, FloatArray, FloatArray, float]:
    """One bar of the streaming regression in one call: its returns ``r`` over the
    previous closes (:func:`simple_returns`), then :func:`wls_normal` of them on the
    previous bar's exposures ``xt`` and weights ``v``.  Returns ``(outcome, n, mean,
    r, f, residuals, r2)``: :func:`wls_normal`'s figures, with the returns rather
    than the sample (the rare :data:`NEEDS_SVD` caller works the sample out again)."""
    r = simple_returns(close, prev_close)
    outcome, _, n, mean, f, residuals, r2 = wls_normal(r, xt, v, max_bound)
    return outcome, n, mean, r, f, residuals, r2


@kernel
def wls_normal(
    r: FloatArray, xt: FloatArray, v: FloatArray, max_bound: float
) -> tuple[int, BoolArray, int, float, FloatArray, FloatArray, float]:
    """The regression of returns ``r`` (n,) on the exposures ``xt`` (K, n) (a row
    per factor) with weights ``v`` (n, or empty): ``(outcome, sample, n, mean, f,
    residuals, r2)``, ``mean`` the sample's weighted mean return.  ``f`` (K + 1,
    intercept first), the residuals (NaN outside the sample) and ``R^2`` are NaN
    unless the outcome is :data:`SOLVED`; :data:`TOO_FEW` is a sample below
    ``K + 2`` symbols, :data:`NEEDS_SVD` a ``X'VX`` not clearly well conditioned
    (its bound not below ``max_bound``): :func:`wls_fit` takes the solution found
    otherwise."""
    k, n_sym = xt.shape
    p = k + 1
    equal = v.shape[0] == 0
    sample = np.empty(n_sym, dtype=np.bool_)
    for i in range(n_sym):
        sample[i] = math.isfinite(r[i]) & (equal or math.isfinite(v[i]))
    for j in range(k):
        for i in range(n_sym):
            sample[i] &= math.isfinite(xt[j, i])
    n = int(sample.sum())
    f = np.full(p, np.nan)
    residuals = np.full(n_sym, np.nan)
    if n < k + 2:
        return TOO_FEW, sample, n, np.nan, f, residuals, np.nan
    # X'VX and X'VR of the design [1, X_1 .. X_K] and the returns over the sample,
    # read off the rows where they are: the weights (or the sample's ones) times each
    # row, then its products with the rows before it and the returns
    gram = np.empty((p, p))
    xvy = np.empty(p)
    w = np.empty(n_sym)  # v_i (1 where equal) in the sample, 0 outside
    for i in range(n_sym):
        w[i] = (1.0 if equal else v[i]) if sample[i] else 0.0
    gram[0, 0] = _weighted_sum(w, w, w, sample, 0)
    xvy[0] = _weighted_sum(w, r, r, sample, 1)
    for j in range(k):
        gram[j + 1, 0] = _weighted_sum(w, xt[j], xt[j], sample, 1)
        xvy[j + 1] = _weighted_sum(w, xt[j], r, sample, 2)
        for m in range(j + 1):
            gram[j + 1, m + 1] = _weighted_sum(w, xt[j], xt[m], sample, 2)
    for j in range(p):
        for m in range(j):
            gram[m, j] = gram[j, m]
    mean = xvy[0] / gram[0, 0]  # sum v r / sum v
    if not _cholesky_solve(gram, xvy, max_bound, f):
        f[:] = np.nan
        return NEEDS_SVD, sample, n, mean, f, residuals, np.nan
    r2 = wls_fit(r, xt, v, sample, f, mean, residuals)
    return SOLVED, sample, n, mean, f, residuals, r2


@sum_kernel
def _weighted_sum(
    w: FloatArray, a: FloatArray, b: FloatArray, sample: BoolArray, factors: int
) -> float:
    """``sum w_i``, ``sum w_i a_i`` or ``sum w_i a_i b_i`` (``factors`` 0, 1 or 2) over
    the symbols of the sample (``w`` is 0 outside it, where ``a`` and ``b`` may be
    NaN).  The compiler may reorder the sum (:func:`~factorcast.factors.jit.sum_kernel`)."""
    s = 0.0
    if factors == 2:
        for i in range(w.shape[0]):
            s += w[i] * a[i] * b[i] if sample[i] else 0.0
    elif factors == 1:
        for i in range(w.shape[0]):
            s += w[i] * a[i] if sample[i] else 0.0
    else:
        for i in range(w.shape[0]):
            s += w[i]
    return s


@kernel
def _cholesky_solve(gram: FloatArray, xvy: FloatArray, max_bound: float, f: FloatArray) -> bool:
    """``f`` from ``gram f = xvy`` (``gram``'s lower triangle) where ``gram`` is
    positive definite with ``trace(gram) trace(gram^-1)`` below ``max_bound``;
    False, ``f`` unspecified, where not."""
    p = gram.shape[0]
    low = np.zeros((p, p))  # gram = low low'
    for j in range(p):
        s = gram[j, j]
        for m in range(j):
            s -= low[j, m] * low[j, m]
        if not s > 0:  # not positive definite (or not finite)
            return False
        low[j, j] = math.sqrt(s)
        for i in range(j + 1, p):
            t = gram[i, j]
            for m in range(j):
                t -= low[i, m] * low[j, m]
            low[i, j] = t / low[j, j]
    # trace(gram^-1) is the sum of the squares of low^-1 (column by column)
    inv = np.zeros((p, p))
    trace = 0.0
    trace_inv = 0.0
    for j in range(p):
        trace += gram[j, j]
        inv[j, j] = 1.0 / low[j, j]
        trace_inv += inv[j, j] * inv[j, j]
        for i in range(j + 1, p):
            t = 0.0
            for m in range(j, i):
                t -= low[i, m] * inv[m, j]
            inv[i, j] = t / low[i, i]
            trace_inv += inv[i, j] * inv[i, j]
    if not trace * trace_inv < max_bound:  # also False where it is NaN
        return False
    # low h = xvy, then low' f = h
    h = np.empty(p)
    for i in range(p):
        t = xvy[i]
        for m in range(i):
            t -= low[i, m] * h[m]
        h[i] = t / low[i, i]
    for i in range(p - 1, -1, -1):
        t = h[i]
        for m in range(i + 1, p):
            t -= low[m, i] * f[m]
        f[i] = t / low[i, i]
    return True


@kernel
def wls_fit(
    r: FloatArray,
    xt: FloatArray,
    v: FloatArray,
    sample: BoolArray,
    f: FloatArray,
    mean: float,
    residuals: FloatArray,
) -> float:
    """The residuals ``u = r - f_0 - sum_k f_k x_k`` of the sample into ``residuals``
    (untouched elsewhere) and the weighted ``R^2`` (statsmodels' ``WLS.rsquared``):
    ``1 - sum v u^2 / sum v (r - mean)^2``, ``mean`` the weighted mean of the
    sample's returns; NaN where the returns are all equal."""
    k, n_sym = xt.shape
    for i in range(n_sym):
        if sample[i]:
            residuals[i] = r[i] - f[0]
    for j in range(k):
        for i in range(n_sym):
            if sample[i]:
                residuals[i] -= f[j + 1] * xt[j, i]
    rss = 0.0
    tss = 0.0
    for i in range(n_sym):
        if sample[i]:
            u = residuals[i]
            dev = r[i] - mean
            w = 1.0 if v.shape[0] == 0 else v[i]
            rss += w * u * u
            tss += w * dev * dev
    return 1.0 - rss / tss if tss > 0 else np.nan

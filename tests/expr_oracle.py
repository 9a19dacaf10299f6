"""A plain pandas/numpy evaluator of custom-factor expressions, written from
ANALYTICS.md section 9 (and section 0 for ``returns``), to test
``factors/expressions`` against.

Expressions are nested tuples, not text, so that the oracle shares nothing with
the parser: ``("close",)``, ``("number", 2.0)``, ``("+", a, b)``, ``("neg", a)``,
``("ts_mean", a, 5)``, ``("correlation", a, b, 5)``, ``("scale", a, 2.0)``.
:func:`render` writes one as text (fully parenthesized) for the engine.

Every time-series statistic is computed from whole windows, never from running
sums: pandas' rolling sum/mean/min/max (``min_periods=d`` plus an explicit count of
the NaN in the window, for "NaN if any of the d values is NaN"), and, where
pandas's rolling algorithms are themselves running sums that lose digits on
prices (variance, covariance, correlation: ``mean(xy) - mean(x) mean(y)``), the
two-pass formulas over ``numpy.lib.stride_tricks.sliding_window_view``; ``ts_rank``
with ``scipy.stats.rankdata``.  Non-finite results are NaN (the engine's
documented choice), and a symbol without a bar at ``t`` gets NaN.

Beside each value the oracle carries a *ball* (:class:`Ball`): a radius ``r``
bounding how far any two careful float64 evaluations of the same expression may
differ (first-order propagation of the radii of the arguments plus a rounding
allowance per operation), and a mask ``amb`` of the values that are not
determined at that precision (a ``sign`` of a value within its radius of 0, a
rank between values closer than their radii, a correlation of a window whose
variance is within its radius of 0, a ``log`` of a value within its radius of
0...).  Random expressions compose such cases freely; a comparison is then only
meaningful outside ``amb`` and up to ``r``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from scipy.stats import rankdata

Tree = tuple[Any, ...]
Array = np.ndarray

WINDOWED = {
    "delay",
    "delta",
    "ts_sum",
    "ts_mean",
    "ts_std",
    "ts_min",
    "ts_max",
    "ts_rank",
    "decay_linear",
}
PAIRED = {"correlation", "covariance"}
UNARY = {"neg", "abs", "log", "sign", "sqrt"}
INFIX = {"+", "-", "*", "/", "^"}
CROSS = {"rank", "scale", "zscore", "demean"}
#: rounding allowance of one operation, relative (about 9 ulp)
U = 1e-15
#: the engine's own guarantee on a running second moment (factors/expressions/windows.py)
MOMENT_REL = 1e-10


def render(tree: Tree) -> str:
    op = tree[0]
    if op == "number":
        return f"({tree[1]!r})"
    if len(tree) == 1:
        return op
    if op == "neg":
        return f"(-{render(tree[1])})"
    if op in INFIX:
        return f"({render(tree[1])} {op} {render(tree[2])})"
    args = [render(a) if isinstance(a, tuple) else repr(a) for a in tree[1:]]
    return f"{op}({', '.join(args)})"


@dataclass
class Ball:
    """Values (NaN where none), their radius, and where they are not determined."""

    v: pd.DataFrame
    r: Array
    amb: Array

    @staticmethod
    def of(v: pd.DataFrame, r: Array, amb: Array) -> Ball:
        v = v.replace([np.inf, -np.inf], np.nan)
        finite = np.isfinite(v.to_numpy())
        r = np.where(finite, np.nan_to_num(r, nan=np.inf, posinf=np.inf), 0.0)
        amb = amb | (finite & ~np.isfinite(r))
        return Ball(v, np.where(np.isfinite(r), r, 0.0), amb)


def _frame(values: Array) -> pd.DataFrame:
    return pd.DataFrame(values)


class Oracle:
    """Evaluates trees over a panel: ``fields`` name -> ``(T, n)``, ``present (T, n)``."""

    def __init__(self, fields: dict[str, Array], present: Array) -> None:
        self.present = pd.DataFrame(present.astype(bool))
        p = self.present

        def field(name: str) -> pd.DataFrame:
            return (
                _frame(np.asarray(fields[name], dtype=float))
                .replace([np.inf, -np.inf], np.nan)
                .where(p)
            )

        close, volume = field("close"), field("volume")
        given_q = _frame(np.asarray(fields["quote_volume"], dtype=float))
        q = given_q.where(np.isfinite(given_q), close * volume).where(p)
        self.inputs = {
            "open": field("open"),
            "high": field("high"),
            "low": field("low"),
            "close": close,
            "volume": volume,
            "quote_volume": q,
            # ANALYTICS.md section 0: simple return, NaN if either bar is missing
            "returns": close / close.shift(1) - 1,
            "vwap": q / volume.where(volume != 0),
        }

    def __call__(self, tree: Tree) -> Array:
        return self.eval(tree).v.where(self.present).to_numpy()

    def ball(self, tree: Tree) -> Ball:
        b = self.eval(tree)
        return Ball(b.v.where(self.present), b.r, b.amb & self.present.to_numpy())

    def eval(self, tree: Tree) -> Ball:
        op = tree[0]
        shape = self.present.shape
        if op == "number":
            v = pd.DataFrame(float(tree[1]), index=self.present.index, columns=self.present.columns)
            return Ball.of(v, np.zeros(shape), np.zeros(shape, dtype=bool))
        if len(tree) == 1:
            # exact: the same numbers, and the same operations for returns and vwap
            return Ball.of(self.inputs[op], np.zeros(shape), np.zeros(shape, dtype=bool))
        if op in UNARY:
            return _unary(op, self.eval(tree[1]))
        if op in INFIX or op in ("max", "min", "signedpower"):
            return _binary(op, self.eval(tree[1]), self.eval(tree[2]))
        if op in WINDOWED:
            return _window(op, self.eval(tree[1]), int(tree[2]))
        if op in PAIRED:
            return _paired(op, self.eval(tree[1]), self.eval(tree[2]), int(tree[3]))
        if op in CROSS:
            a = float(tree[2]) if len(tree) > 2 else 1.0
            x = self.eval(tree[1])
            p = self.present.to_numpy()
            return _cross(op, Ball(x.v.where(self.present), np.where(p, x.r, 0.0), x.amb & p), a)
        raise ValueError(f"unknown op {op}")


# -- elementwise -------------------------------------------------------------------


def _straddles_zero(a: Array, r: Array) -> Array:
    return (r > 0) & (a - r <= 0) & (a + r >= 0)


def _endpoints(f: Callable[[Array], Array], a: Array, r: Array) -> Array:
    """Radius of ``f`` over ``[a - r, a + r]`` for ``f`` monotone or convex there."""
    with np.errstate(all="ignore"):
        fa = f(a)
        return np.maximum(np.abs(f(a + r) - fa), np.abs(f(a - r) - fa))


def _unary(op: str, x: Ball) -> Ball:
    a, r = x.v.to_numpy(), x.r
    with np.errstate(all="ignore"):
        if op == "neg":
            return Ball.of(-x.v, r, x.amb)
        if op == "abs":
            return Ball.of(x.v.abs(), r, x.amb)
        if op == "sign":
            return Ball.of(np.sign(x.v), np.zeros(a.shape), x.amb | _straddles_zero(a, r))
        if op == "log":  # NaN at <= 0
            v = _frame(np.log(np.where(a > 0, a, np.nan)))
            return Ball.of(
                v, _endpoints(np.log, a, r) + U * np.abs(v), x.amb | _straddles_zero(a, r)
            )
        v = _frame(np.sqrt(np.where(a >= 0, a, np.nan)))  # sqrt: NaN below 0
        return Ball.of(v, _endpoints(np.sqrt, a, r) + U * np.abs(v), x.amb | _straddles_zero(a, r))


def _binary(op: str, x: Ball, y: Ball) -> Ball:
    a, b, ra, rb = x.v.to_numpy(), y.v.to_numpy(), x.r, y.r
    amb = x.amb | y.amb
    with np.errstate(all="ignore"):
        if op in ("+", "-"):
            v = a + b if op == "+" else a - b
            return Ball.of(_frame(v), ra + rb + U * np.abs(v), amb)
        if op == "*":
            v = a * b
            return Ball.of(
                _frame(v), np.abs(a) * rb + np.abs(b) * ra + ra * rb + U * np.abs(v), amb
            )
        if op == "/":  # a division by zero is NaN
            v = a / np.where(b != 0, b, np.nan)
            margin = np.abs(b) - rb
            r = (np.abs(a) * rb + np.abs(b) * ra) / (np.abs(b) * margin) + U * np.abs(v)
            return Ball.of(_frame(v), r, amb | _straddles_zero(b, rb))
        if op in ("max", "min"):  # NaN if either is NaN
            v = np.maximum(a, b) if op == "max" else np.minimum(a, b)
            return Ball.of(_frame(v), np.maximum(ra, rb), amb)
        # x ^ p and signedpower(x, p) = sign(x) |x|^p, for a number p
        p = float(b[0, 0])
        assert np.all(b == p) and not rb.any(), "the oracle takes a number exponent only"
        if op == "^":
            f: Callable[[Array], Array] = lambda z: np.power(z, p)  # noqa: E731
            singular = not float(p).is_integer() or p < 0
        else:
            f = lambda z: np.sign(z) * np.power(np.abs(z), p)  # noqa: E731
            singular = p < 0
        v = f(a)
        r = _endpoints(f, a, ra) + U * np.abs(v)
        if singular:
            amb = amb | _straddles_zero(a, ra)
        return Ball.of(_frame(v), r, amb)


# -- time series ---------------------------------------------------------------------


def _windows(values: Array, d: int, fill: float = np.nan) -> Array:
    """``(T, n, d)``: the d values ending at t, oldest first (padded at the start)."""
    padded = np.vstack([np.full((d - 1, values.shape[1]), fill, dtype=values.dtype), values])
    return sliding_window_view(padded, d, axis=0)


def _any_nan(x: pd.DataFrame, d: int) -> pd.DataFrame:
    """True where the window of d values ending at t holds a NaN or starts before
    the first bar."""
    counts = x.isna().astype(float).rolling(d, min_periods=d).sum()
    return counts.isna() | (counts > 0)


def _window(op: str, x: Ball, d: int) -> Ball:
    amb_w = _windows(x.amb, d, fill=False).any(axis=2)
    if op in ("delay", "delta"):
        shifted = x.v.shift(d)
        r_shift = np.vstack([np.zeros((d, x.r.shape[1])), x.r[:-d]])[: x.r.shape[0]]
        amb_shift = np.vstack([np.zeros((d, x.r.shape[1]), dtype=bool), x.amb[:-d]])[: x.r.shape[0]]
        if op == "delay":
            return Ball.of(shifted, r_shift, amb_shift)
        v = x.v - shifted
        return Ball.of(v, x.r + r_shift + U * np.abs(v.to_numpy()), x.amb | amb_shift)
    bad = _any_nan(x.v, d)
    roll = x.v.rolling(d, min_periods=d)
    w, wr = _windows(x.v.to_numpy(), d), _windows(x.r, d, fill=0.0)
    absum = np.abs(w).sum(axis=2)
    with np.errstate(all="ignore"):
        if op in ("ts_sum", "ts_mean"):
            v = roll.sum() if op == "ts_sum" else roll.mean()
            r = (wr.sum(axis=2) + d * U * absum) / (1 if op == "ts_sum" else d)
        elif op in ("ts_min", "ts_max"):
            v = roll.min() if op == "ts_min" else roll.max()
            r = wr.max(axis=2)
        elif op == "ts_rank":  # rank of x[t] among the d values, average ties, / d
            v = _frame(rankdata(w, method="average", axis=2)[:, :, -1] / d)
            gap = np.abs(w - w[:, :, -1:])
            close = (gap <= wr + wr[:, :, -1:]) & ((wr + wr[:, :, -1:]) > 0)
            close[:, :, -1] = False
            r, amb_w = np.zeros(v.shape), amb_w | close.any(axis=2)
        elif op == "decay_linear":  # weights d, d-1, ..., 1 from t back, normalized
            weights = np.arange(1, d + 1, dtype=float) / (d * (d + 1) / 2)
            v = _frame((w * weights).sum(axis=2))
            r = (wr * weights).sum(axis=2) + d * U * absum
        else:  # ts_std, ddof=1
            var, r_var, _ = _second_moment(w, w, wr, wr, d)
            v = _frame(np.sqrt(var))
            std = np.sqrt(var)
            r = np.where(std > 0, np.minimum(r_var / (2 * std), np.sqrt(r_var)), np.sqrt(r_var))
    return Ball.of(v.where(~bad), r, amb_w)


def _second_moment(
    wx: Array, wy: Array, rx: Array, ry: Array, d: int
) -> tuple[Array, Array, Array]:
    """Two-pass co-moment of windows ``(T, n, d)`` over ``d - 1``, its radius, and
    the part of the radius that comes from the arguments' radii (rounding aside)."""
    mx, my = wx.mean(axis=2, keepdims=True), wy.mean(axis=2, keepdims=True)
    dx, dy = wx - mx, wy - my
    c = (dx * dy).sum(axis=2)
    big_rx, big_ry = 2 * rx.max(axis=2), 2 * ry.max(axis=2)
    spread = (
        np.abs(dx).sum(axis=2) * big_ry + np.abs(dy).sum(axis=2) * big_rx
    ) + d * big_rx * big_ry
    rounding = (
        d
        * U
        * (
            np.abs(mx[..., 0]) * np.abs(dy).sum(axis=2)
            + np.abs(my[..., 0]) * np.abs(dx).sum(axis=2)
            + np.abs(dx * dy).sum(axis=2)
        )
    )
    scale = np.sqrt((dx * dx).sum(axis=2) * (dy * dy).sum(axis=2))
    return c / (d - 1), (spread + rounding + MOMENT_REL * scale) / (d - 1), spread / (d - 1)


def _paired(op: str, x: Ball, y: Ball, d: int) -> Ball:
    bad = _any_nan(x.v, d) | _any_nan(y.v, d)
    amb = _windows(x.amb | y.amb, d, fill=False).any(axis=2)
    wx, wy = _windows(x.v.to_numpy(), d), _windows(y.v.to_numpy(), d)
    rx, ry = _windows(x.r, d, fill=0.0), _windows(y.r, d, fill=0.0)
    with np.errstate(all="ignore"):
        cov, r_cov, _ = _second_moment(wx, wy, rx, ry, d)
        vx, r_vx, spread_x = _second_moment(wx, wx, rx, rx, d)
        vy, r_vy, spread_y = _second_moment(wy, wy, ry, ry, d)
        constant_x = wx.max(axis=2) == wx.min(axis=2)
        constant_y = wy.max(axis=2) == wy.min(axis=2)
        if op == "covariance":
            v = np.where(constant_x | constant_y, 0.0, cov)
            return Ball.of(_frame(v).where(~bad), r_cov, amb)
        # Pearson; NaN if either window is constant
        corr = cov / np.sqrt(vx * vy)
        v = np.where(constant_x | constant_y, np.nan, corr)
        r = r_cov / np.sqrt(vx * vy) + np.abs(corr) * (r_vx / (2 * vx) + r_vy / (2 * vy))
        # constancy is decided exactly on exact values; a window within its
        # arguments' radii of constant is undetermined
        near_flat = ((vx <= 2 * spread_x) & (spread_x > 0)) | (
            (vy <= 2 * spread_y) & (spread_y > 0)
        )
        loose = np.isfinite(v) & ~(r <= 0.5)  # a correlation known to less than +-0.5
        return Ball.of(_frame(v).where(~bad), r + U, amb | near_flat | loose)


# -- cross-sectional -----------------------------------------------------------------


def _cross(op: str, x: Ball, a: float) -> Ball:
    """Over the symbols in the cross-section with a finite value (row-wise)."""
    v, r = x.v.to_numpy(), x.r
    finite = np.isfinite(v)
    n = np.maximum(finite.sum(axis=1, keepdims=True), 1)
    row_amb = x.amb.any(axis=1, keepdims=True) & np.ones(v.shape, dtype=bool)
    z0 = np.where(finite, v, 0.0)
    with np.errstate(all="ignore"):
        if op == "rank":  # average ranks over their count
            out = x.v.rank(axis=1, method="average", pct=True)
            gap = np.abs(v[:, :, None] - v[:, None, :])
            rr = r[:, :, None] + r[:, None, :]
            close = (gap <= rr) & (rr > 0)
            close[:, np.arange(v.shape[1]), np.arange(v.shape[1])] = False
            return Ball.of(out, np.zeros(v.shape), row_amb | close.any(axis=2))
        if op == "scale":
            total = np.abs(z0).sum(axis=1, keepdims=True)
            r_total = np.where(finite, r, 0.0).sum(axis=1, keepdims=True)
            out = a * v / np.where(total > 0, total, np.nan)
            rad = abs(a) * (r / total + np.abs(v) * r_total / (total * (total - r_total)))
            rad = rad + U * n * np.abs(out)
            return Ball.of(_frame(out), rad, row_amb | _straddles_zero(total, r_total))
        mean = z0.sum(axis=1, keepdims=True) / n
        r_mean = np.where(finite, r, 0.0).sum(axis=1, keepdims=True) / n
        dev = v - mean
        if op == "demean":
            rad = r + r_mean + U * n * (np.abs(v) + np.abs(mean))
            return Ball.of(_frame(dev), rad, row_amb)
        # zscore: population std; NaN where every value is equal
        top = np.where(finite, v, -np.inf).max(axis=1, keepdims=True)
        bottom = np.where(finite, v, np.inf).min(axis=1, keepdims=True)
        dev0 = np.where(finite, dev, 0.0)
        std = np.sqrt((dev0 * dev0).sum(axis=1, keepdims=True) / n)
        big_r = 2 * np.where(finite, r, 0.0).max(axis=1, keepdims=True)
        r_var = (2 * big_r * np.abs(dev0).sum(axis=1, keepdims=True) + n * big_r**2) / n
        r_var = r_var + n * U * (
            np.abs(mean) * np.abs(dev0).sum(axis=1, keepdims=True) / n + std**2
        )
        r_std = np.where(std > 0, np.minimum(r_var / (2 * std), np.sqrt(r_var)), np.sqrt(r_var))
        out = np.where(top == bottom, np.nan, dev / std)
        rad = (r + r_mean) / std + np.abs(out) * r_std / (std - r_std) + U * n * np.abs(out)
        flat = (std <= 2 * r_std) & (r_std > 0)
        return Ball.of(_frame(out), rad, row_amb | flat)

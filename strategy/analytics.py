"""The analytics of an offline run (the ``factor`` commands): every grid step the
engine's analytics take, kept.

The engine steps on cross-sections, and feeds the analytics every grid step
(ANALYTICS.md: ``t-1`` is the previous grid step), the empty ones between
cross-sections included; it hands on only the cross-sections' results.
:class:`RecordingAnalytics` is :class:`FactorAnalytics` that also hands each grid
step to an :class:`AnalyticsHistory`, so that an offline run reports what the live
service computes, bar for bar, the empty grid steps included (their factor
returns, ICs and the alerts they raise).

What is kept is small per grid step (the factor returns, the ICs, the alerts; the
risk model at one bar); the whole-sample decay figures (section 2) are
accumulated as the steps come by :class:`DecayAccumulator`, which holds the last
65 grid steps, never the panel of exposures.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics import (
    DECAY_HORIZONS,
    AnalyticsBar,
    FactorAlert,
    FactorAnalytics,
    RiskSnapshot,
    drawdown_track,
    forward_return,
    ic_half_life,
    quintile_labels,
    spearman_columns,
)
from factorcast.factors.analytics.health import MIN_QUINTILE_SYMBOLS

FloatArray = NDArray[np.float64]
CodeArray = NDArray[np.int8]


class DecayAccumulator:
    """The offline decay figures of ANALYTICS.md section 2 over a run, one grid
    step at a time: the mean IC over the whole sample at each horizon of
    :data:`DECAY_HORIZONS`, alphalens' factor rank autocorrelation and the
    top-minus-bottom quintile spread.

    Per bar: the Spearman correlation (``spearman_columns``, whose columns are
    independent, so all of a step's pairs go through one call) of ``X[t]`` with
    ``C[t+h] / C[t] - 1`` and of ``X[t]`` with ``X[t-1]``, and the mean return of
    bar ``t+1`` in the top minus the bottom exposure quintile of bar ``t``
    (``quintile_labels``, which depends on the sample size only through the
    ranks, looked up per size; at least 10 symbols).  They are averaged over the
    bars where they are finite, in time order.
    """

    def __init__(self, k: int, horizons: tuple[int, ...] = DECAY_HORIZONS) -> None:
        self.k = k
        self.horizons = horizons
        self._ring: deque[tuple[FloatArray, FloatArray]] = deque(maxlen=max(horizons))
        self._ic = np.zeros((2, len(horizons), k))  # sums and counts of the finite ICs
        self._ac = np.zeros((2, k))
        self._qs = np.zeros((2, k))
        self._labels: dict[int, NDArray[np.int64]] = {}

    def update(self, exposure: FloatArray, close: FloatArray) -> None:
        """Grid step ``t``: its exposures ``(n, K)`` and closes ``(n,)`` (NaN where none)."""
        x = np.array(exposure, dtype=np.float64)  # copies: the ring outlives the caller's arrays
        c = np.array(close, dtype=np.float64)
        xs: list[FloatArray] = []
        ys: list[FloatArray] = []
        slots: list[int] = []
        for i, h in enumerate(self.horizons):
            if len(self._ring) >= h:
                x_then, c_then = self._ring[-h]
                xs.append(x_then)
                ys.append(np.repeat(forward_return(c, c_then)[:, None], self.k, axis=1))
                slots.append(i)
        if self._ring:
            x_prev, c_prev = self._ring[-1]
            xs.append(x)
            ys.append(x_prev)
            rho = spearman_columns(np.hstack(xs), np.hstack(ys))[0].reshape(len(xs), self.k)
            for j, i in enumerate(slots):
                _add(self._ic[:, i], rho[j])
            _add(self._ac, rho[-1])
            _add(self._qs, self._spread(x_prev, forward_return(c, c_prev)))
        self._ring.append((x, c))

    def _spread(self, x: FloatArray, r: FloatArray) -> FloatArray:
        """Mean return of the top exposure quintile minus the bottom one, per factor."""
        out: FloatArray = np.full(self.k, np.nan)
        for j in range(self.k):
            ok = np.isfinite(x[:, j]) & np.isfinite(r)
            m = int(ok.sum())
            if m < MIN_QUINTILE_SYMBOLS:
                continue
            if m not in self._labels:  # the labels of ranks 1..m
                self._labels[m] = quintile_labels(np.arange(m, dtype=np.float64))
            labels = np.empty(m, dtype=np.int64)
            labels[np.argsort(x[ok, j], kind="stable")] = self._labels[m]
            rr = r[ok]
            out[j] = rr[labels == 4].mean() - rr[labels == 0].mean()
        return out

    def curve(self) -> FloatArray:
        """``mean_ic`` at each horizon, ``(H, K)``; NaN where no IC was finite."""
        return _mean(self._ic)

    def rank_autocorrelation(self) -> FloatArray:
        return _mean(self._ac)

    def quintile_spread(self) -> FloatArray:
        return _mean(self._qs)

    def half_life(self, directions: FloatArray) -> list[int | None]:
        return ic_half_life(self.curve(), directions, self.horizons)


def _add(acc: FloatArray, values: FloatArray) -> None:
    ok = np.isfinite(values)
    acc[0] += np.where(ok, values, 0.0)
    acc[1] += ok


def _mean(acc: FloatArray) -> FloatArray:
    total, count = acc[0], acc[1]
    out: FloatArray = np.where(count > 0, total / np.maximum(count, 1.0), np.nan)
    return out


@dataclass(frozen=True, slots=True)
class DecayFigures:
    """The whole-sample decay figures per model factor (section 2)."""

    horizons: tuple[int, ...]
    curve: FloatArray  # (H, K)
    half_life: list[int | None]
    rank_autocorrelation: FloatArray
    quintile_spread: FloatArray


class AnalyticsHistory:
    """What an offline run keeps of every grid step the analytics take.

    ``risk_at``: the bar whose risk model is kept (None: the last); ``decay``: feed
    a :class:`DecayAccumulator` every grid step's exposures and closes.
    """

    def __init__(
        self,
        horizons: Sequence[int],
        *,
        risk_at: int | None = None,
        decay: bool = False,
    ) -> None:
        self.horizons = tuple(sorted(set(horizons)))
        self.risk_at = risk_at
        self._with_decay = decay
        self.decay: DecayAccumulator | None = None
        self.ts: list[int] = []
        self._returns: list[FloatArray] = []
        self._r2: list[float] = []
        self._n: list[int] = []
        self._reason: list[int] = []
        self._ic: dict[int, list[tuple[FloatArray, CodeArray]]] = {h: [] for h in self.horizons}
        self.alerts: list[FactorAlert] = []
        self.last: AnalyticsBar | None = None
        self.risk: RiskSnapshot | None = None
        self.risk_ts: int | None = None

    def record(self, bar: AnalyticsBar, close: FloatArray, exposure: FloatArray) -> None:
        """One grid step: its analytics, and the closes and exposures they were fed."""
        fr = bar.returns
        self.ts.append(bar.bar_ts)
        self._returns.append(fr.returns)
        self._r2.append(fr.r2)
        self._n.append(fr.n)
        self._reason.append(int(fr.reason))
        for h in self.horizons:
            if len(self.ts) > h:  # the IC of the grid step h back became known here
                stats = bar.health.stats[h]
                self._ic[h].append((stats.ic, stats.ic_reason))
        self.alerts.extend(bar.alerts)
        self.last = bar
        if self.risk_at is None or bar.bar_ts == self.risk_at:
            self.risk, self.risk_ts = bar.risk, bar.bar_ts
        if self._with_decay:
            if self.decay is None:
                self.decay = DecayAccumulator(exposure.shape[1])
            self.decay.update(exposure, close)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def times(self) -> NDArray[np.int64]:
        return np.array(self.ts, dtype=np.int64)

    def factor_returns(self) -> tuple[FloatArray, FloatArray, NDArray[np.int64], NDArray[np.int8]]:
        """``returns (S, K+1), r2 (S,), n (S,), reason (S,)`` of the ``S`` grid steps."""
        k1 = 0 if self.last is None else len(self.last.returns.names)
        returns = np.array(self._returns, dtype=np.float64).reshape(len(self.ts), k1)
        return (
            returns,
            np.array(self._r2, dtype=np.float64),
            np.array(self._n, dtype=np.int64),
            np.array(self._reason, dtype=np.int8),
        )

    def ics(self, h: int) -> tuple[NDArray[np.int64], FloatArray, CodeArray]:
        """``t (S-h,), IC[t, k, h] (S-h, K), reason (S-h, K)``: the ICs at horizon ``h``
        of the grid steps ``t`` whose step ``t + h`` the run reached."""
        rows = self._ic[h]
        times = self.times[: len(rows)]
        k = 0 if self.last is None else len(self.last.health.states)
        ic = np.array([r[0] for r in rows], dtype=np.float64).reshape(len(rows), k)
        reason = np.array([r[1] for r in rows], dtype=np.int8).reshape(len(rows), k)
        return times, ic, reason

    def decay_figures(self, directions: FloatArray) -> DecayFigures | None:
        d = self.decay
        if d is None:
            return None
        return DecayFigures(
            d.horizons, d.curve(), d.half_life(directions), d.rank_autocorrelation(),
            d.quintile_spread(),
        )  # fmt: skip


class RecordingAnalytics(FactorAnalytics):
    """:class:`FactorAnalytics` that hands every grid step to ``history``.

    For runs where no bar comes late (offline): it keeps no undo log.
    """

    def __init__(self, history: AnalyticsHistory, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.history = history

    def keep_undo(self, depth: int) -> None:
        if depth:
            raise ValueError("a recording of the analytics takes no bar back (amend_bars=0)")
        super().keep_undo(depth)

    def update_rows(
        self,
        bar_ts: int,
        close: FloatArray,
        xt: FloatArray,
        weights: FloatArray | None = None,
    ) -> AnalyticsBar:
        bar = super().update_rows(bar_ts, close, xt, weights)
        self.history.record(bar, close, xt.T)
        return bar


@dataclass(frozen=True, slots=True)
class ReturnsSummary:
    """Per name of the regression, over the whole run: the finite factor returns'
    count, mean, standard deviation (ddof=1), ``t = mean / std * sqrt(n)``, the
    cumulative return ``prod(1 + f) - 1`` and its maximum drawdown."""

    names: tuple[str, ...]
    n: NDArray[np.int64]
    mean: FloatArray
    std: FloatArray
    t_stat: FloatArray
    cum_return: FloatArray
    max_drawdown: FloatArray


def summarize_returns(names: Sequence[str], returns: FloatArray) -> ReturnsSummary:
    ok = np.isfinite(returns)
    n = ok.sum(axis=0)
    v = np.where(ok, returns, 0.0)
    with np.errstate(all="ignore"):
        mean = np.where(n > 0, v.sum(axis=0) / n, np.nan)
        dev = np.where(ok, returns - mean, 0.0)
        std = np.where(n > 1, np.sqrt((dev * dev).sum(axis=0) / (n - 1)), np.nan)
        t = np.where(std > 0, mean / std * np.sqrt(n), np.nan)
    cum, mdd = drawdown_track(returns)
    return ReturnsSummary(tuple(names), n.astype(np.int64), mean, std, t, cum, mdd)

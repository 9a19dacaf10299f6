"""The market at one bar ``T`` as the portfolio commands see it (ANALYTICS.md
sections 4-8): the universe's exposures and reasons, the as-of closes, the risk
model, and the simple returns of the grid steps up to ``T``.

It comes from either side of the service, with the same numbers: an offline run
over recorded candles (``strategy.app.market``), or what the live service
published on Redis (``adapters.redis.snapshot_reader``).  The portfolio, scan and
suggest commands compute from a :class:`MarketState` only, so a portfolio's
report is the same whichever side it was read from (the historical VaR's window
aside: Redis keeps the closes of the signal stream, as far back as it reaches).

``R[i,t] = C[i,t] / C[i,t-1] - 1`` with ``t-1`` the previous grid time, NaN where
either bar is missing (:func:`grid_returns`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.conventions import bars_per_year
from factorcast.factors.reasons import Reason

FloatArray = NDArray[np.float64]
ReasonArray = NDArray[np.int8]

__all__ = [
    "DATA",
    "REDIS",
    "MarketState",
    "StateUnavailable",
    "asof_close",
    "grid_closes",
    "grid_returns",
]

#: where a state was read: an offline run over candle files, or the live service's Redis
DATA = "data"
REDIS = "redis"


class StateUnavailable(Exception):
    """No market state could be read (the live service's Redis is unreachable, or
    holds nothing usable): one line, a runtime failure (exit 1)."""


@dataclass(frozen=True, slots=True)
class MarketState:
    """The market at the bar ``bar_ts``.

    ``exposure`` and ``reason`` are ``(n, K)`` over the model's factors ``names``
    (``Reason`` codes, ``OK`` exactly where the exposure is finite); ``close`` the
    as-of close of each symbol (its last close at or before ``T``, NaN if none).
    The risk model: ``risk_names`` (``universe`` first, then the factors of the
    factor-return regression), ``covariance`` (all NaN unless ``risk_reason`` is
    ``OK``) and ``specific`` per symbol (NaN where none).  ``returns`` are the
    simple returns ``(rows, n)`` of the grid times ``returns_ts``, the last of
    them ``T``.
    """

    source: str
    bar_ts: int
    timeframe_ms: int
    symbols: tuple[str, ...]
    names: tuple[str, ...]
    exposure: FloatArray
    reason: ReasonArray
    close: FloatArray
    risk_names: tuple[str, ...]
    covariance: FloatArray
    risk_reason: Reason
    specific: FloatArray
    returns_ts: NDArray[np.int64]
    returns: FloatArray
    model: str

    def __post_init__(self) -> None:
        n, k = len(self.symbols), len(self.names)
        if self.exposure.shape != (n, k) or self.reason.shape != (n, k):
            raise ValueError("exposure and reason must be (symbols, names)")
        if self.close.shape != (n,) or self.specific.shape != (n,):
            raise ValueError("close and specific need one entry per symbol")
        r = len(self.risk_names)
        if self.covariance.shape != (r, r):
            raise ValueError("the covariance must match the risk model's names")
        if not set(self.risk_names[1:]) <= set(self.names):
            raise ValueError("the risk model names a factor the model does not have")
        if self.returns.shape != (self.returns_ts.size, n):
            raise ValueError("returns must be (returns_ts, symbols)")

    @property
    def bars_per_year(self) -> float:
        return bars_per_year(self.timeframe_ms / 1000)

    @property
    def risk_columns(self) -> NDArray[np.intp]:
        """Where each factor of the risk model (after ``universe``) is among ``names``."""
        return np.array([self.names.index(f) for f in self.risk_names[1:]], dtype=np.intp)

    @property
    def risk_exposure(self) -> FloatArray:
        """The exposures ``(n, K')`` in the risk model's order (without ``universe``)."""
        out: FloatArray = self.exposure[:, self.risk_columns]
        return out

    @property
    def history_bars(self) -> int:
        """Rows of ``returns`` (grid times up to ``T``)."""
        return int(self.returns_ts.size)


def grid_closes(
    ts: NDArray[np.int64], close: FloatArray, timeframe_ms: int, first: int, last: int
) -> tuple[NDArray[np.int64], FloatArray]:
    """The closes ``(rows, n)`` of bar times ``ts`` placed on the dense grid
    ``first, first + tf, ..., last`` (NaN at grid times without a row); rows of
    ``ts`` outside it are left out."""
    if first % timeframe_ms or last % timeframe_ms or last < first:
        raise ValueError("first and last must be grid times, first <= last")
    grid = np.arange(first, last + timeframe_ms, timeframe_ms, dtype=np.int64)
    out = np.full((grid.size, close.shape[1]), np.nan)
    keep = (ts >= first) & (ts <= last) & (ts % timeframe_ms == 0)
    out[(ts[keep] - first) // timeframe_ms] = close[keep]
    return grid, out


def grid_returns(closes: FloatArray) -> FloatArray:
    """Simple returns of closes on a dense grid: the first row NaN (its previous
    close is not there), NaN wherever either close is missing."""
    c = np.asarray(closes, dtype=np.float64)
    out: FloatArray = np.full_like(c, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[1:] = c[1:] / c[:-1] - 1.0
    out[~np.isfinite(out)] = np.nan
    return out


def asof_close(closes: FloatArray) -> FloatArray:
    """Per column, the last finite close (NaN where none)."""
    c = np.asarray(closes, dtype=np.float64)
    ok = np.isfinite(c)
    last = np.where(ok.any(axis=0), c.shape[0] - 1 - np.argmax(ok[::-1], axis=0), -1)
    out: FloatArray = np.full(c.shape[1], np.nan)
    has = last >= 0
    out[has] = c[last[has], np.flatnonzero(has)]
    return out

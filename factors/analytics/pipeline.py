"""The analytics of one grid step: factor returns, factor health and the risk
model (ANALYTICS.md sections 1-3), fed the way the factor model is fed.

:class:`FactorAnalytics` is the one place that wires the three together, so the
live engine and the offline commands run the same code on the same sequence of
grid steps:

- :meth:`FactorAnalytics.update` takes a grid step's closes (NaN where a symbol
  has no bar; every close NaN on a grid step without any bar) and the exposures
  and weights the factor model gave for it;
- the factor returns of bar ``t`` go into the risk model at ``t`` and, by model
  factor, into the health tracker's factor-return track (a factor left out of the
  regression by ``factors.analytics.factors`` has no factor return there: NaN);
- like the model, it keeps an undo log (:meth:`keep_undo`, :meth:`undo`) so that
  the engine can take back its last steps to let a late bar in: each entry is a
  few references (each part replaces its arrays at an update rather than change
  them in place; the ring slots an update overwrites it saves itself, in its own
  compiled call), never a copy of a window; with no undo log (replay, offline) no
  entry is made at all.

Speed: the engine runs this at every grid step, for a few hundred symbols and a
handful of factors, where numpy's cost per call (and the caches the factor model
leaves cold) outweigh the arithmetic.  So each part is one or two compiled
kernels (jit.py) that loop over the symbols once: the regression's moments and
Cholesky solve (wls.py), the rank ICs around one numpy sort of every row
(ranks.py), the risk model's sums, ring and figures (risk_kernels.py), the IC
window with its statistics and the factor-return track (track.py).  The exposures
are kept as the model gives them (read-only, a row per factor), shared by the
regression and the health tracker; whatever the parts keep is read-only, so each
kernel sees one kind of array (numba compiles a read-only argument apart) and
:func:`compile_kernels`, when the analytics are built, compiles every version a
step needs.  ``bench/replay.py`` measures their share of the step.

After :attr:`FactorAnalytics.saturation` grid steps without any bar nothing it
holds is from before them: more such steps change nothing (the engine stops
feeding empty steps there).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from functools import cache
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.analytics.factor_returns import FactorReturnBar, FactorReturns
from factorcast.factors.analytics.health import (
    FactorAlert,
    HealthSnapshot,
    HealthState,
    HealthTracker,
    next_state,
)
from factorcast.factors.analytics.params import HealthParams, RegressionFactors, RiskParams
from factorcast.factors.analytics.ranks import average_ranks
from factorcast.factors.analytics.risk import RiskModel, RiskSnapshot
from factorcast.factors.analytics.risk_kernels import specific_variances
from factorcast.factors.params import Weighting
from factorcast.factors.registry import CANONICAL

FloatArray = NDArray[np.float64]


class AnalyticsBar(NamedTuple):
    """Everything the analytics know at the close of one grid step.

    A named tuple: immutable, and made at every grid step for a fraction of the
    cost of a frozen dataclass.
    """

    bar_ts: int
    returns: FactorReturnBar
    health: HealthSnapshot
    risk: RiskSnapshot

    @property
    def alerts(self) -> tuple[FactorAlert, ...]:
        return self.health.alerts


@cache
def compile_kernels() -> None:
    """Run every compiled kernel of the analytics once, on a few symbols, so that
    each is compiled (or loaded from numba's cache) before the first bar.  Once per
    process (later calls return at once).

    The kernels are compiled for the types of their arguments, which do not depend
    on the universe, the factors or the parameters: float64 C-contiguous arrays,
    with and without weights, through both solvers of the regression."""
    names = CANONICAL[:2]
    rng = np.random.default_rng(0)
    n = 12
    returns = FactorReturns(n, names, "adv")
    health = HealthTracker(names, np.zeros(len(names)), (1, 2), window=2, min_obs=2)
    risk = RiskModel(names, n, window=2, min_obs=1)
    x = rng.normal(size=(n, len(names)))
    near = x.copy()
    near[:, 1] = near[:, 0] + 1e-6 * rng.normal(size=n)  # the SVD's path
    for step, exposure in enumerate((x, near, x, x)):
        close = 100.0 * np.exp(0.01 * rng.normal(size=n))
        close[step] = np.nan
        xt = np.array(exposure.T, order="C")
        xt.flags.writeable = close.flags.writeable = False  # as the pipeline keeps them
        fr = returns.update_rows(close, xt, np.exp(rng.normal(size=n)))
        health.update_rows(step, xt, close, fr.returns[1:])
        risk.update(fr.returns, fr.residuals)
    specific_variances(np.zeros((3, n)), 1)  # the risk snapshot reads them when asked
    next_state(HealthState.UNKNOWN, 0.0, 1.0)
    average_ranks(x, np.isfinite(x))  # the expressions' rank


def _kept(a: FloatArray) -> FloatArray:
    """``a`` where it is C-contiguous and read-only down to the array that owns its
    memory (nobody changes it), else a C-contiguous copy, made read-only: the parts
    keep what they are given, and their compiled calls see one kind of array."""
    flags = a.flags
    if not flags.writeable and flags.c_contiguous:
        owner = a.base
        if owner is None or not owner.flags.writeable:
            return a
    copy = np.array(a, order="C")
    copy.flags.writeable = False
    return copy


class UndoExhausted(RuntimeError):
    """More steps asked back than the undo log holds."""


class FactorAnalytics:
    """Factor returns, health and risk over a fixed universe, one grid step at a time.

    ``names`` are the model's factors (the columns of the exposure matrices),
    ``directions`` their ``d_k`` (SIGNALS.md section 2) in the same order.
    """

    __slots__ = (
        "_every_factor",
        "_track_columns",
        "_undo",
        "health",
        "health_params",
        "n_symbols",
        "names",
        "returns",
        "risk",
        "risk_params",
    )

    def __init__(
        self,
        names: Sequence[str],
        n_symbols: int,
        directions: FloatArray,
        *,
        weighting: Weighting = "equal",
        regression: RegressionFactors | None = None,
        health: HealthParams | None = None,
        risk: RiskParams | None = None,
    ) -> None:
        self.names = tuple(names)
        self.n_symbols = n_symbols
        self.health_params = health or HealthParams()
        self.risk_params = risk or RiskParams()
        chosen = None if regression is None else regression.factors
        self.returns = FactorReturns(n_symbols, self.names, weighting, chosen)
        hp = self.health_params
        self.health = HealthTracker(
            self.names,
            np.asarray(directions, dtype=np.float64),
            horizons=tuple(hp.horizons),
            window=hp.window,
            min_obs=hp.min_obs,
            t_enter=hp.t_enter,
            t_exit=hp.t_exit,
        )
        rp = self.risk_params
        self.risk = RiskModel(
            self.returns.names[1:],
            n_symbols,
            window=rp.window,
            half_life=rp.half_life,
            min_obs=rp.min_obs,
        )
        # where each regression factor sits among the model's factors
        self._track_columns = np.array(
            [self.names.index(f) for f in self.returns.names[1:]], dtype=np.intp
        )
        self._every_factor = self._track_columns.size == len(self.names)
        self._undo: deque[tuple[Any, Any, Any]] = deque(maxlen=0)
        # the first call of a kernel compiles it (seconds; or loads it from numba's
        # cache): here, once per process, rather than inside a live bar's deadline
        compile_kernels()

    @property
    def saturation(self) -> int:
        """Grid steps without any bar after which more of them change nothing."""
        return max(self.health_params.depth, self.risk_params.window) + 1

    def update(
        self,
        bar_ts: int,
        close: FloatArray,
        exposure: FloatArray,
        weights: FloatArray | None = None,
    ) -> AnalyticsBar:
        """Grid step ``bar_ts`` closed: closes ``(n,)`` (NaN where no bar), the
        model's exposures ``(n, K)`` and weights ``(n,)`` at that step."""
        # kept by every part, as they are where nobody can change them (read-only, as
        # the engine and the model give them), else copied: the exposures as a row
        # per factor, and the closes
        xt = _kept(np.asarray(exposure, dtype=np.float64).T)
        c = _kept(np.asarray(close, dtype=np.float64))
        return self.update_rows(bar_ts, c, xt, weights)

    def update_rows(
        self,
        bar_ts: int,
        close: FloatArray,
        xt: FloatArray,
        weights: FloatArray | None = None,
    ) -> AnalyticsBar:
        """:meth:`update` with the exposures as a row per factor, ``xt`` ``(K, n)``;
        ``xt`` and ``close`` C-contiguous float64 and read-only down to the array that
        owns their memory (nobody changes them: the parts keep them by reference),
        as the factor model and the engine give them.  Unchecked."""
        if self._undo.maxlen:
            self._undo.append(
                (self.returns.checkpoint(), self.health.checkpoint(), self.risk.checkpoint())
            )
        fr = self.returns.update_rows(close, xt, weights)
        # the bar's returns over the previous step's closes, once: the regression's
        # and the health tracker's horizon 1 (both were fed the same closes)
        if self._every_factor:  # the regression has every factor
            track = fr.returns[1:]
        else:
            track = np.full(len(self.names), np.nan)
            track[self._track_columns] = fr.returns[1:]
        health = self.health.update_rows(bar_ts, xt, close, track, fr.asset_returns)
        risk = self.risk.update_rows(fr.returns, fr.residuals)
        return AnalyticsBar(bar_ts, fr, health, risk)

    # -- late bars -----------------------------------------------------------------------
    def keep_undo(self, depth: int) -> None:
        """From now on keep what it takes to undo each of the last ``depth`` updates."""
        if depth < 0:
            raise ValueError("undo depth must be >= 0")
        self._undo = deque(maxlen=depth)
        # the parts save the ring slots an update overwrites themselves, in its call
        self.health.keep_undo(depth)
        self.risk.keep_undo(depth)

    @property
    def undoable(self) -> int:
        return len(self._undo)

    def undo(self, steps: int = 1) -> None:
        """Take back the last ``steps`` updates: the analytics are then, bit for bit,
        as they were before them (the alerts those steps raised are not taken back:
        they went out; an alert raised again has the same id)."""
        if not 0 <= steps <= len(self._undo):
            raise UndoExhausted(f"cannot undo {steps} updates, {len(self._undo)} kept")
        for _ in range(steps):  # newest first: each puts back the ring slots it overwrote
            returns, health, risk = self._undo.pop()
            self.returns.restore(returns)
            self.health.restore(health)
            self.risk.restore(risk)

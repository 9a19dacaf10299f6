"""The live six-factor model: one ``update`` per bar close, O(symbols) each.

Follows FACTORS.md exactly.  Choices it leaves open, made here:

* Time advances on the timeframe grid: the caller pushes one update per grid
  step, an empty one (no symbol present) for a grid time without any bar, so
  windows and lags count grid steps.
* ``adv`` weight at t: mean quote volume over the symbol's real bars in the
  liquidity window ending at t-1 (at least one bar, mean > 0).  ``cap`` weight:
  as-of close at t-1 times supply.
* ``size`` counts a symbol's real bars in the window for ``min_obs``; its NaN
  reason is ``zero_volume`` when no bar in the window has quote volume > 0.
* ``liquidity``: ``insufficient_history`` when the window has fewer than
  ``min_obs`` valid returns, ``zero_volume`` when fewer than ``min_obs`` of them
  have quote volume > 0, ``no_price_change`` when every |r| is 0.
* Zero tests on quantities built from rolling sums (market variance, Amihud,
  mean volume) use exact counts of non-zero terms, so add/subtract drift can
  never turn an exact zero into a tiny non-zero value.
* ``undo`` takes back the last updates exactly (the state is bit for bit what it
  was before them), within the depth given to ``keep_undo``: the live engine
  takes back the bars after a late one and updates again with it in.

The rows of the raw and reason matrices are the factors of the registry the model
is built with (``factors.registry.REGISTRY`` by default), in its order; the
function that fills a factor's row is its *descriptor*, registered under the
factor's name with :func:`descriptor`.  Adding a factor is therefore two steps:

1. register its name and label: ``registry.register(FactorSpec("carry", ...))``
   (a canonical factor goes into ``canonical_registry`` instead);
2. register its descriptor, a function ``(model, bar, out, why) -> None`` that
   writes the raw value of each symbol into ``out`` (leave NaN where there is none)
   and, where there is none, the reason code into ``why``::

       @descriptor("carry")
       def carry(model: FactorModel, bar: BarInputs, out: FloatArray, why: ReasonArray) -> None:
           ...

A descriptor runs after the bar at ``t`` is in every window and reads the bar
(:class:`BarInputs`) and the windows the model keeps (``model.asof(lag)``, the
rolling sums).  One that needs a window of its own adds it in ``__init__``, pushes
it in ``_update`` and lists it in ``_windows`` (so that ``undo`` takes it back).
Standardization, the reasons of symbols without a bar and the snapshot's columns
then follow the registry without further change.

Custom factors (ANALYTICS.md section 9; ``params.custom``) are rows after the six,
in the registry of :func:`factors.custom.model_registry`: objects fed the whole bar
(open, high, low too: :meth:`FactorModel.step`) at every grid step the model takes,
the empty ones included, and taken back with its windows by ``undo``
(:class:`factors.custom.CustomRows`).  Their raw values go through the same
standardization.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.custom import CustomRows, build_custom, model_registry
from factorcast.factors.expressions import Bar, BarLike, CustomFactor
from factorcast.factors.params import FactorParams
from factorcast.factors.reasons import Reason
from factorcast.factors.registry import (
    LIQUIDITY,
    MARKET,
    MOMENTUM,
    SIZE,
    VALUE,
    VOLATILITY,
    FactorRegistry,
)
from factorcast.factors.rolling import LagRing, RollingSums, UndoExhausted
from factorcast.factors.standardize import standardize

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]
ReasonArray = NDArray[np.uint8]

# plain ints: enum attribute look-ups cost more than the numpy work they index
_OK = int(Reason.OK)
_INSUFFICIENT = int(Reason.INSUFFICIENT_HISTORY)
_MISSING = int(Reason.MISSING_BAR)
_ZERO_VOLUME = int(Reason.ZERO_VOLUME)
_NO_CHANGE = int(Reason.NO_PRICE_CHANGE)
_NO_MKT_VAR = int(Reason.NO_MARKET_VARIANCE)
#: Below this fraction of sum(m^2), the paired market variance counts as zero.
_REL_ZERO_VAR = 1e-13


@dataclass(frozen=True, slots=True)
class FactorSnapshot:
    """Factor state after one bar close.

    Matrices are ``(n_symbols, n_factors)`` with columns in ``names`` order.
    ``reason`` holds :class:`factors.reasons.Reason` codes, ``OK`` exactly where
    ``exposure`` is finite.  ``members`` marks the symbols in the cross-section.
    ``weights`` is per symbol.
    """

    names: tuple[str, ...]
    raw: FloatArray
    exposure: FloatArray
    reason: ReasonArray
    members: BoolArray
    market_return: float
    #: FACTORS.md's weight of each symbol at t (for ``m[t]`` and ``mu``; from the
    #: state up to t-1), NaN where a symbol has none; all 1 for ``equal``
    weights: FloatArray


@dataclass(frozen=True, slots=True)
class BarInputs:
    """The bar at ``t`` as the descriptors see it, one entry per symbol."""

    #: ln close, NaN where the symbol has no bar at t
    lc: FloatArray
    #: log return from the close at t-1, NaN where either bar is missing
    r: FloatArray
    #: quote volume (the exchange's, else close * volume), NaN where no bar
    q: FloatArray
    present: BoolArray


#: Fills one factor's row: ``(model, bar, out, why)``; ``out`` comes NaN, ``why`` OK.
Descriptor = Callable[["FactorModel", BarInputs, FloatArray, ReasonArray], None]
DESCRIPTORS: dict[str, Descriptor] = {}


def descriptor(name: str) -> Callable[[Descriptor], Descriptor]:
    """Register the decorated function as the descriptor of factor ``name``."""

    def register(fn: Descriptor) -> Descriptor:
        if name in DESCRIPTORS:
            raise ValueError(f"factor {name!r} already has a descriptor")
        DESCRIPTORS[name] = fn
        return fn

    return register


class FactorModel:
    """Incremental cross-sectional factor model over a fixed universe: one row per
    factor of ``registry`` (by default the six canonical ones, then the custom
    factors of ``params``: :func:`factors.custom.model_registry`).

    ``custom`` hands in built custom factors by name (a model factor must be: its
    files are read outside ``factors``); the others of ``params.custom`` are built
    here (:func:`factors.custom.build_custom`)."""

    def __init__(
        self,
        n_symbols: int,
        params: FactorParams | None = None,
        supply: FloatArray | None = None,
        registry: FactorRegistry | None = None,
        custom: Mapping[str, CustomFactor] | None = None,
    ) -> None:
        p = params or FactorParams()
        self.params = p
        self.registry = model_registry(p) if registry is None else registry
        self.names: tuple[str, ...] = self.registry.names
        built = build_custom(p, custom)
        strays = [name for name in built if name not in self.registry]
        if strays:
            raise ValueError(f"custom factor(s) {', '.join(strays)} not in the registry")
        missing = [name for name in self.names if name not in DESCRIPTORS and name not in built]
        if missing:
            raise ValueError(f"no descriptor registered for factor(s) {', '.join(missing)}")
        self._descriptors = tuple(
            (k, DESCRIPTORS[name]) for k, name in enumerate(self.names) if name not in built
        )
        self.custom = CustomRows(self.names, built, n_symbols)
        self.n_symbols = n_symbols
        self._supply: FloatArray = (
            np.full(n_symbols, np.nan) if supply is None else np.asarray(supply, dtype=float)
        )
        if self._supply.shape != (n_symbols,):
            raise ValueError("supply must have one entry per symbol")
        if p.weighting == "cap" and not np.isfinite(self._supply).any():
            raise ValueError("cap weighting needs circulating supply for some symbols")
        self._log_supply = np.log(np.where(self._supply > 0, self._supply, np.nan))
        # [pair, r, m, r*m, m*m, m != 0]
        self._beta = RollingSums(n_symbols, p.beta_window, 6)
        # [bar, Q, Q > 0]
        self._size = RollingSums(n_symbols, p.size_window, 3)
        # [valid r, r, r*r]
        self._vol = RollingSums(n_symbols, p.volatility_window, 3)
        # [valid r, valid r & Q > 0, |r|/Q, |r| > 0 & Q > 0]
        self._liq = RollingSums(n_symbols, p.liquidity_window, 4)
        # [bar, Q] for the adv weight, read before the push (window ends at t-1)
        self._adv = RollingSums(n_symbols, p.liquidity_window, 2) if p.weighting == "adv" else None
        self._asof = LagRing(n_symbols, p.value_lag + 1)
        self._asof_lc: FloatArray = np.full(n_symbols, np.nan)  # ln of as-of close at t-1
        self._prev_lc: FloatArray = np.full(n_symbols, np.nan)  # ln close at t-1 if a bar
        self.steps = 0
        # undo log of the per-step state outside the rings: (prev_lc, asof_lc) per
        # update; both are replaced by new arrays at every update, never written in place
        self._undo_state: list[tuple[FloatArray, FloatArray]] = []
        self._undoable = 0

    @property
    def history_bars(self) -> int:
        """Bars of history every factor needs: ``params.history_bars`` and the
        lookbacks of the custom factors as built (plug-ins and models too)."""
        return max(self.params.history_bars, self.custom.lookback + 1)

    @property
    def tag(self) -> str:
        """The wire ``model`` field: ``params.tag()`` with the fingerprints of the
        custom factors that have one (a model factor's files)."""
        return self.params.tag(self.custom.fingerprints())

    # -- taking updates back ---------------------------------------------------
    def _windows(self) -> list[RollingSums | LagRing]:
        sums = [self._beta, self._size, self._vol, self._liq]
        return [*sums, self._asof] if self._adv is None else [*sums, self._adv, self._asof]

    def keep_undo(self, depth: int) -> None:
        """From now on, keep what it takes to undo each of the last ``depth`` updates
        (0: keep nothing).  Costs two copies of each window's sums per update
        (factors/rolling.py)."""
        if depth < 0:
            raise ValueError("undo depth must be >= 0")
        for w in self._windows():
            w.keep_undo(depth)
        self.custom.keep_undo(depth)
        self._undo_state = [(self._prev_lc, self._asof_lc)] * depth
        self._undoable = 0

    @property
    def undoable(self) -> int:
        """How many of the last updates :meth:`undo` can take back."""
        return self._undoable

    def undo(self, steps: int = 1) -> None:
        """Take back the last ``steps`` updates: the model is then exactly, bit for
        bit, as it was before them.  Raises :class:`UndoExhausted` (and changes
        nothing) for more than :attr:`undoable`."""
        if not 0 <= steps <= self._undoable:
            raise UndoExhausted(f"cannot undo {steps} updates, {self._undoable} kept")
        self.custom.check_undo(steps)
        if not steps:
            return
        for w in self._windows():
            w.undo(steps)
        self.custom.undo(steps)
        self.steps -= steps
        self._undoable -= steps
        self._prev_lc, self._asof_lc = self._undo_state[self.steps % len(self._undo_state)]

    # -- weights ------------------------------------------------------------
    def _weights(self) -> FloatArray:
        """Per-symbol weight at t (NaN = no weight), from state up to t-1."""
        p = self.params
        if p.weighting == "equal":
            return np.ones(self.n_symbols)
        if p.weighting == "adv":
            assert self._adv is not None
            bars, q = self._adv.sums[:, 0], self._adv.sums[:, 1]
            adv = q / bars
            return np.where((bars > 0) & (adv > 0), adv, np.nan)
        cap = np.exp(self._asof_lc) * self._supply
        return np.where(cap > 0, cap, np.nan)

    # -- one bar close ------------------------------------------------------
    def step(self, bar: BarLike) -> FactorSnapshot:
        """Advance one grid step with the bars at t: the arrays ``open, high, low,
        close, volume, quote_volume`` of ``bar`` (NaN where no bar) and ``present``
        (a ``strategy.events.CrossSection`` is one; a grid time without any bar is
        a step with ``present`` all False)."""
        # NaN propagation (missing bars, 0/0 on empty windows) is the design here;
        # every such value is masked by an explicit count or validity test.
        with np.errstate(all="ignore"):
            return self._update(bar.close, bar.volume, bar.quote_volume, bar.present, bar)

    def update(
        self,
        close: FloatArray,
        volume: FloatArray,
        quote_volume: FloatArray,
        present: BoolArray,
        *,
        open: FloatArray | None = None,
        high: FloatArray | None = None,
        low: FloatArray | None = None,
    ) -> FactorSnapshot:
        """:meth:`step` with the arrays one by one; ``open``, ``high``, ``low`` (read
        by custom factors only) are NaN where not given."""
        nan = np.full(self.n_symbols, np.nan)
        o, h, lo = (nan if a is None else a for a in (open, high, low))
        return self.step(Bar(o, h, lo, close, volume, quote_volume, present))

    def _update(
        self,
        close: FloatArray,
        volume: FloatArray,
        quote_volume: FloatArray,
        present: BoolArray,
        whole: BarLike,
    ) -> FactorSnapshot:
        p = self.params
        n = self.n_symbols
        lc = np.where(present, np.log(close), np.nan)
        q = np.where(np.isfinite(quote_volume), quote_volume, close * volume)
        q = np.where(present, q, np.nan)
        r = lc - self._prev_lc
        rvalid = np.isfinite(r)
        r0 = np.where(rvalid, r, 0.0)

        weights = self._weights()
        wm = rvalid & np.isfinite(weights)
        m = float(np.dot(weights[wm], r[wm]) / weights[wm].sum()) if wm.any() else np.nan

        # rolling windows
        pair = rvalid if np.isfinite(m) else np.zeros(n, dtype=bool)
        mp = np.where(pair, m, 0.0)
        rp = np.where(pair, r0, 0.0)
        self._beta.push(pair, rp, mp, rp * mp, mp * mp, pair & (m != 0.0))
        q0 = np.where(present, q, 0.0)
        qpos = present & (q > 0)
        self._size.push(present, q0, qpos)
        self._vol.push(rvalid, r0, r0 * r0)
        lterm = rvalid & qpos
        amihud_term = np.where(lterm, np.abs(r0) / q, 0.0)
        self._liq.push(rvalid, lterm, amihud_term, lterm & (r0 != 0.0))
        if self._adv is not None:
            self._adv.push(present, q0)

        asof_lc = np.where(present, lc, self._asof_lc)
        self._asof.push(asof_lc)
        if self._undo_state:
            depth = len(self._undo_state)
            self._undo_state[self.steps % depth] = (self._prev_lc, self._asof_lc)
            if self._undoable < depth:
                self._undoable += 1
        self._asof_lc = asof_lc
        self._prev_lc = lc
        self.steps += 1

        bar = BarInputs(lc=lc, r=r, q=q, present=present)
        raw = np.full((len(self.names), n), np.nan)
        why = np.zeros(raw.shape, dtype=np.uint8)
        for row, describe in self._descriptors:
            describe(self, bar, raw[row], why[row])
        if self.custom:
            self.custom.fill(whole, raw, why)

        raw[:, ~present] = np.nan
        exposure, row_why = standardize(raw, weights, p)
        reason = np.where(np.isfinite(raw), row_why, why).astype(np.uint8)
        reason[:, ~present] = _MISSING
        # C-contiguous (a row per factor) and read-only: consumers keep it by reference
        # (the analytics, as those rows)
        exposure = np.ascontiguousarray(exposure)
        exposure.flags.writeable = False
        return FactorSnapshot(
            names=self.names,
            raw=raw.T,
            exposure=exposure.T,
            reason=reason.T,
            members=present.copy(),
            market_return=m,
            weights=weights,
        )

    # -- the windows, for descriptors ----------------------------------------
    def asof(self, lag: int) -> FloatArray:
        """ln of the as-of close at ``t - lag`` (``0 <= lag <= value_lag``)."""
        return self._asof.ago(lag)

    # -- raw descriptors (FACTORS.md, "The six raw descriptors") ----------------
    @descriptor(MARKET)
    def _market(self, bar: BarInputs, out: FloatArray, why: ReasonArray) -> None:
        k, sr, sm, srm, smm, nz = self._beta.sums.T
        cov = srm - sr * sm / k
        var = smm - sm * sm / k
        beta = cov / var
        enough = k >= self.params.beta_min_obs
        flat = (nz == 0) | (var <= _REL_ZERO_VAR * smm)
        ok = enough & ~flat
        out[ok] = beta[ok]
        why[~enough] = _INSUFFICIENT
        why[enough & flat] = _NO_MKT_VAR

    @descriptor(SIZE)
    def _size_raw(self, bar: BarInputs, out: FloatArray, why: ReasonArray) -> None:
        bars, q, qpos = self._size.sums.T
        by_volume = np.log(q / bars)
        enough = bars >= self.params.size_min_obs
        ok = enough & (qpos > 0)
        out[ok] = by_volume[ok]
        why[~enough] = _INSUFFICIENT
        why[enough & (qpos == 0)] = _ZERO_VOLUME
        has_supply = np.isfinite(self._log_supply)
        out[has_supply] = (bar.lc + self._log_supply)[has_supply]
        why[has_supply] = _OK

    @descriptor(VALUE)
    def _value(self, bar: BarInputs, out: FloatArray, why: ReasonArray) -> None:
        a_mom = self.asof(self.params.momentum_lag)
        a_val = self.asof(self.params.value_lag)
        out[:] = -(a_mom - a_val)
        why[~(np.isfinite(a_mom) & np.isfinite(a_val))] = _INSUFFICIENT

    @descriptor(MOMENTUM)
    def _momentum(self, bar: BarInputs, out: FloatArray, why: ReasonArray) -> None:
        a_mom = self.asof(self.params.momentum_lag)
        out[:] = bar.lc - a_mom
        why[~np.isfinite(a_mom)] = _INSUFFICIENT

    @descriptor(VOLATILITY)
    def _volatility(self, bar: BarInputs, out: FloatArray, why: ReasonArray) -> None:
        k, s, ss = self._vol.sums.T
        enough = k >= self.params.volatility_min_obs
        var = np.maximum(ss - s * s / k, 0.0) / (k - 1)
        out[enough] = np.sqrt(var[enough])
        why[~enough] = _INSUFFICIENT

    @descriptor(LIQUIDITY)
    def _liquidity(self, bar: BarInputs, out: FloatArray, why: ReasonArray) -> None:
        nr, nterm, total, nonzero = self._liq.sums.T
        min_obs = self.params.liquidity_min_obs
        enough = nr >= min_obs
        volume_ok = enough & (nterm >= min_obs)
        ok = volume_ok & (nonzero > 0)
        liq = -np.log(total / nterm)
        out[ok] = liq[ok]
        why[~enough] = _INSUFFICIENT
        why[enough & ~volume_ok] = _ZERO_VOLUME
        why[volume_ok & (nonzero == 0)] = _NO_CHANGE

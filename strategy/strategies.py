"""Strategy plug-ins: the base view the factor scores adjust (SIGNALS.md section 1).

A strategy is a class, named in the configuration by dotted path
(``package.module:Class`` or ``package.module.Class``) or by a built-in name.
It is constructed with the universe and its parameters, and sees every closed
cross-section together with the factor snapshot.

A strategy that keeps state across bars should also be :class:`Rewindable`
(``snapshot``/``restore``): when a late bar comes in, the engine takes back the
bars after it and runs them again, and only a rewindable strategy can run them
again.  One that is not is left alone (it keeps the bars as it saw them, without
the late one): its decisions after a late bar are exact only if it keeps no state.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from factorcast.factors import FactorSnapshot
from factorcast.strategy.actions import BUY, HOLD, SELL
from factorcast.strategy.events import CrossSection

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Decision:
    """A strategy's base view, aligned with the universe.

    ``action`` holds action codes (+1 buy, -1 sell, 0 hold); ``insufficient``
    marks symbols without enough history for a view (their action is hold).
    """

    action: NDArray[np.int8]
    confidence: FloatArray
    insufficient: NDArray[np.bool_]


@runtime_checkable
class Strategy(Protocol):
    name: str

    def decide(self, xs: CrossSection, factors: FactorSnapshot) -> Decision: ...


@runtime_checkable
class Rewindable(Protocol):
    """A strategy whose state can be taken back: ``restore(snapshot())`` must leave
    it exactly (bit for bit) as it was when the snapshot was taken, whatever
    ``decide`` calls came in between.  The engine takes a snapshot before every
    ``decide`` and keeps the last few (``AMEND_BARS``): keep it cheap."""

    def snapshot(self) -> Any: ...

    def restore(self, state: Any) -> None: ...


class Trend:
    """EMA-crossover trend strategy, the built-in default (SIGNALS.md section 1)."""

    name = "trend"

    def __init__(
        self,
        symbols: Sequence[str],
        fast: int = 12,
        slow: int = 26,
        full_confidence_gap: float = 0.02,
    ) -> None:
        if not 1 <= fast < slow:
            raise ValueError("trend needs 1 <= fast < slow")
        if full_confidence_gap <= 0:
            raise ValueError("full_confidence_gap must be positive")
        n = len(symbols)
        self.slow = slow
        self.full_confidence_gap = full_confidence_gap
        self._a_fast = 2.0 / (fast + 1)
        self._a_slow = 2.0 / (slow + 1)
        self._fast: FloatArray = np.full(n, np.nan)
        self._slow: FloatArray = np.full(n, np.nan)
        self._bars = np.zeros(n, dtype=np.int64)

    def snapshot(self) -> tuple[FloatArray, FloatArray, NDArray[np.int64]]:
        return self._fast.copy(), self._slow.copy(), self._bars.copy()

    def restore(self, state: tuple[FloatArray, FloatArray, NDArray[np.int64]]) -> None:
        fast, slow, bars = state
        self._fast[...] = fast
        self._slow[...] = slow
        self._bars[...] = bars

    def decide(self, xs: CrossSection, factors: FactorSnapshot) -> Decision:
        c, present = xs.close, xs.present
        seed = present & (self._bars == 0)
        upd = present & ~seed
        self._fast[seed] = c[seed]
        self._slow[seed] = c[seed]
        af, as_ = self._a_fast, self._a_slow
        self._fast[upd] = af * c[upd] + (1.0 - af) * self._fast[upd]
        self._slow[upd] = as_ * c[upd] + (1.0 - as_) * self._slow[upd]
        self._bars += present
        ready = self._bars >= self.slow
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = self._fast / self._slow - 1.0
        action = np.where(gap > 0, BUY, np.where(gap < 0, SELL, HOLD)).astype(np.int8)
        action[~ready] = HOLD
        confidence = np.where(ready, np.minimum(1.0, np.abs(gap) / self.full_confidence_gap), 0.0)
        return Decision(action=action, confidence=confidence, insufficient=~ready)


BUILTIN: Mapping[str, Callable[..., Strategy]] = {"trend": Trend}


def load_strategy(spec: str, symbols: Sequence[str], params: Mapping[str, Any]) -> Strategy:
    """Build the strategy named by ``spec`` (built-in name or dotted path)."""
    factory: Any
    if spec in BUILTIN:
        factory = BUILTIN[spec]
    else:
        module_name, sep, attr = spec.partition(":")
        if not sep:
            module_name, _, attr = spec.rpartition(".")
        if not module_name or not attr:
            raise ValueError(f"strategy {spec!r} is neither built-in nor module.Class")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"cannot load strategy {spec!r}: {e}") from e
    strategy = factory(symbols, **params)
    if not isinstance(strategy, Strategy):
        raise ValueError(f"strategy {spec!r} has no name/decide(xs, factors)")
    return strategy

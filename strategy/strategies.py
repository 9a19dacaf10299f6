"""Strategy plug-ins: the base view the factor scores adjust (SIGNALS.md section 1).

A strategy is a class, named in the configuration by dotted path
(``package.module:Class`` or ``package.module.Class``) or by a built-in name.
It is constructed with the universe and its parameters, and sees every closed
cross-section together with the factor snapshot.  Before the service connects to
anything it builds the class once for an empty universe, to check the name and
the parameters (:func:`check_strategy`): a constructor must accept an empty
universe.  A name or parameters it cannot use are a :class:`StrategyError` naming
the setting (``strategy.name``, ``strategy.params``).

A strategy that keeps state across bars should also be :class:`Rewindable`
(``snapshot``/``restore``): when a late bar comes in, the engine takes back the
bars after it and runs them again, and only a rewindable strategy can run them
again.  One that is not is left alone (it keeps the bars as it saw them, without
the late one): its decisions after a late bar are exact only if it keeps no state.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

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


#: What builds a strategy: a strategy class, ``(symbols, **params) -> Strategy``.
StrategyClass = Callable[..., Strategy]
BUILTIN: Mapping[str, StrategyClass] = {"trend": Trend}


class StrategyError(ValueError):
    """The configured strategy cannot be loaded or built.  ``field`` is the setting at
    fault: ``name`` (the class cannot be had) or ``params`` (it refuses them)."""

    def __init__(self, field: Literal["name", "params"], message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line
        self.field = field


def resolve_strategy(spec: str) -> StrategyClass:
    """The strategy class ``spec`` names: a built-in name, ``module:Class`` or
    ``module.Class``.  Imports the module; changes nothing else."""
    if spec in BUILTIN:
        return BUILTIN[spec]
    module_name, sep, attr = spec.partition(":")
    if not sep:
        module_name, _, attr = spec.rpartition(".")
    if not module_name or not attr:
        builtin = ", ".join(BUILTIN)
        raise StrategyError(
            "name", f"{spec!r} is neither a built-in strategy ({builtin}) nor module:Class"
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name + ".").startswith(e.name + "."):
            raise StrategyError("name", f"no module named {e.name!r} (in {spec!r})") from None
        raise StrategyError("name", f"cannot import {module_name!r}: {_what(e)}") from None
    except Exception as e:  # whatever the module raises while it is imported
        raise StrategyError("name", f"cannot import {module_name!r}: {_what(e)}") from None
    try:
        found = getattr(module, attr)
    except AttributeError:
        raise StrategyError("name", f"module {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(found, type):
        kind = type(found).__name__
        raise StrategyError("name", f"{spec!r} is not a strategy class but a {kind} object")
    if not callable(getattr(found, "decide", None)):
        raise StrategyError(
            "name", f"{spec!r} is not a strategy class: it has no decide(xs, factors) method"
        )
    strategy_class: StrategyClass = found
    return strategy_class


def load_strategy(spec: str, symbols: Sequence[str], params: Mapping[str, Any]) -> Strategy:
    """Build the strategy named by ``spec`` (built-in name or dotted path) for
    ``symbols``; raise :class:`StrategyError` naming the setting at fault."""
    cls = resolve_strategy(spec)
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # no signature to read: the call below tells
        pass
    else:
        try:
            signature.bind(symbols, **params)
        except TypeError as e:
            raise StrategyError("params", f"{spec}: {e}") from None
    try:
        strategy = cls(symbols, **params)
    except (TypeError, ValueError) as e:
        raise StrategyError("params", f"{spec}: {e}") from None
    if not isinstance(strategy, Strategy):
        raise StrategyError("name", f"{spec!r} builds no strategy: it has no name")
    return strategy


def check_strategy(spec: str, params: Mapping[str, Any]) -> None:
    """What :func:`load_strategy` checks, before the universe is known (the service
    calls it before it connects to anything): the class, and its parameters, with a
    build for an empty universe, which a strategy must therefore accept."""
    load_strategy(spec, (), params)


def _what(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"

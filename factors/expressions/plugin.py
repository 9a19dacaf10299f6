"""Custom factors of mode ``plugin``: a class named by ``"package.module:Class"``.

A plug-in is any class whose instances have ``lookback`` (bars of history before
its first finite value, an int >= 0) and ``update(bar) -> (n,) raw values``, fed
one bar per grid step as :class:`CustomFactor` says.  :func:`load_plugin` imports
it with :mod:`importlib` (the only thing here that touches the outside: the
import system) and creates it with the keyword parameters of the configuration.

The engine takes back up to a few recent steps to insert a late bar.  A plug-in
that can do that itself implements :class:`Undoable` as well (``keep_undo``,
``undoable``, ``undo``; compiled expressions and model factors do); for any other,
:func:`with_undo` wraps it in :class:`CopyUndo`, which keeps a deep copy of the
plug-in before each of the last ``depth`` updates (O(its state) per update).
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.expressions.bars import BarLike
from factorcast.factors.expressions.terms import CustomFactorError
from factorcast.factors.rolling import UndoExhausted

FloatArray = NDArray[np.float64]

__all__ = [
    "CopyUndo",
    "CustomFactor",
    "PluginError",
    "Undoable",
    "UndoableFactor",
    "load_plugin",
    "with_undo",
]


@runtime_checkable
class CustomFactor(Protocol):
    """A custom factor: fed every grid step (a step without any bar included)."""

    @property
    def lookback(self) -> int:
        """Bars of history before the first bar that can have a finite value."""
        ...

    def update(self, bar: BarLike) -> FloatArray:
        """The raw values of this grid step, one per symbol, NaN where none."""
        ...


@runtime_checkable
class Undoable(Protocol):
    """Takes back its last updates exactly (as ``FactorModel`` does)."""

    @property
    def undoable(self) -> int: ...

    def keep_undo(self, depth: int) -> None: ...

    def undo(self, steps: int = 1) -> None: ...


@runtime_checkable
class UndoableFactor(CustomFactor, Undoable, Protocol):
    """A custom factor that takes back its last updates."""


class PluginError(CustomFactorError):
    """A plug-in that cannot be loaded; the message is one line naming the factor."""

    def __init__(self, factor: str, target: str, problem: str) -> None:
        self.factor = factor
        self.target = target
        super().__init__(f"factor {factor!r}: plugin {target!r}: {_one_line(problem)}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_plugin(
    factor: str, target: str, params: Mapping[str, object] | None = None
) -> CustomFactor:
    """Import ``"package.module:Class"`` and return ``Class(**params)``, checked to
    be a :class:`CustomFactor`.  Raises :class:`PluginError` (one line)."""
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr.isidentifier():
        raise PluginError(factor, target, "expected 'package.module:Class'")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        raise PluginError(factor, target, f"cannot import {module_name!r}: {e}") from None
    except Exception as e:  # the plug-in's own import-time failure, whatever it is
        raise PluginError(factor, target, f"importing failed: {type(e).__name__}: {e}") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise PluginError(factor, target, f"module {module_name!r} has no {attr!r}")
    if not isinstance(cls, type):
        raise PluginError(factor, target, f"{attr!r} is not a class")
    try:
        instance = cls(**dict(params or {}))
    except Exception as e:  # a constructor refusing its parameters
        raise PluginError(factor, target, f"cannot create it: {type(e).__name__}: {e}") from None
    lookback = getattr(instance, "lookback", None)
    if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 0:
        raise PluginError(factor, target, f"lookback must be an int >= 0, got {lookback!r}")
    if not callable(getattr(instance, "update", None)):
        raise PluginError(factor, target, "has no update(bar) method")
    assert isinstance(instance, CustomFactor)
    return instance


class CopyUndo:
    """Undo for a custom factor without its own: a deep copy of it before each of
    the last ``depth`` updates."""

    def __init__(self, factor: CustomFactor) -> None:
        self.factor = factor
        self._copies: list[CustomFactor] = []
        self._undoable = 0
        self._updates = 0

    @property
    def lookback(self) -> int:
        return self.factor.lookback

    def update(self, bar: BarLike) -> FloatArray:
        if self._copies:
            depth = len(self._copies)
            self._copies[self._updates % depth] = copy.deepcopy(self.factor)
            self._undoable = min(self._undoable + 1, depth)
        self._updates += 1
        return self.factor.update(bar)

    def keep_undo(self, depth: int) -> None:
        if depth < 0:
            raise ValueError("undo depth must be >= 0")
        self._copies = [self.factor] * depth
        self._undoable = 0

    @property
    def undoable(self) -> int:
        return self._undoable

    def undo(self, steps: int = 1) -> None:
        if not 0 <= steps <= self._undoable:
            raise UndoExhausted(f"cannot undo {steps} updates, {self._undoable} kept")
        if not steps:
            return
        self._updates -= steps
        self._undoable -= steps
        self.factor = self._copies[self._updates % len(self._copies)]


def with_undo(factor: CustomFactor) -> UndoableFactor:
    """``factor`` itself if it can undo, else wrapped in :class:`CopyUndo`."""
    if isinstance(factor, Undoable):
        assert isinstance(factor, UndoableFactor)
        return factor
    return CopyUndo(factor)

"""The custom factors of a configuration (ANALYTICS.md section 9): their registry and
the objects that compute them.

* :func:`model_registry`: a fresh registry of the six canonical factors followed
  by the custom ones of ``params.custom``, in their order, with their labels and
  tilt words.  The shared ``REGISTRY`` is never changed: everything downstream of
  a model (signals, the wire, Redis, metrics, tables, analytics) reads the names
  of the model's snapshot, and labels from this registry.
* :func:`build_custom`: one fresh custom factor (with undo) per custom name.
  Expressions and plug-ins are built here; a model factor needs its files read
  (``adapters/files/custom_models.py``) and is handed in by the caller.
* :class:`CustomRows`: what ``FactorModel`` does with them at each grid step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.expressions import (
    BarLike,
    CustomFactor,
    CustomFactorError,
    Expression,
    UndoableFactor,
    clean_bar,
    load_plugin,
    with_undo,
)
from factorcast.factors.expressions.spec import CustomFactorSpec
from factorcast.factors.params import FactorParams
from factorcast.factors.reasons import Reason
from factorcast.factors.registry import FactorRegistry, FactorSpec, canonical_registry
from factorcast.factors.rolling import UndoExhausted

__all__ = ["CustomRows", "build_custom", "custom_factor_spec", "model_registry"]

FloatArray = NDArray[np.float64]
ReasonArray = NDArray[np.uint8]
_OK = int(Reason.OK)
_INSUFFICIENT = int(Reason.INSUFFICIENT_HISTORY)
_UNDEFINED = int(Reason.UNDEFINED)


def custom_factor_spec(name: str, spec: CustomFactorSpec) -> FactorSpec:
    """The registry entry of custom factor ``name``: its label (the name unless the
    configuration gives one), what a positive exposure means and the tilt words
    (``words = [negative, positive]``; ``high-NAME`` / ``low-NAME`` without)."""
    negative, positive = spec.words or ("", "")
    return FactorSpec(
        name,
        spec.label or name,
        positive or f"high {name}",
        positive_word=positive,
        negative_word=negative,
    )


def model_registry(params: FactorParams) -> FactorRegistry:
    """The six canonical factors, then the custom factors of ``params``."""
    registry = canonical_registry()
    for name, spec in params.custom.items():
        registry.register(custom_factor_spec(name, spec))
    return registry


def build_custom(
    params: FactorParams, loaded: Mapping[str, CustomFactor] | None = None
) -> dict[str, UndoableFactor]:
    """A fresh custom factor per name of ``params.custom``, in order: ``loaded[name]``
    where given (model factors must be), else the expression compiled or the plug-in
    created.  Raises :class:`CustomFactorError` (one line naming the factor)."""
    loaded = loaded or {}
    unknown = set(loaded) - set(params.custom)
    if unknown:
        raise CustomFactorError(f"not custom factors of the configuration: {sorted(unknown)}")
    out: dict[str, UndoableFactor] = {}
    for name, spec in params.custom.items():
        factor: CustomFactor
        if name in loaded:
            factor = loaded[name]
        elif spec.mode == "expr":
            assert spec.expr is not None
            factor = Expression.compile(name, spec.expr)
        elif spec.mode == "plugin":
            assert spec.class_ is not None
            factor = load_plugin(name, spec.class_, spec.params)
        else:
            raise CustomFactorError(
                f"factor {name!r}: a model factor is read from its files"
                " (adapters/files/custom_models.py) and handed in"
            )
        out[name] = with_undo(factor)
    return out


@dataclass(frozen=True, slots=True)
class _Row:
    row: int
    name: str
    factor: UndoableFactor
    lookback: int


class CustomRows:
    """The custom factors of a model: which rows of its raw matrix they fill, at each
    grid step, with their reasons; and their undo, in lockstep with the model's.

    A NaN raw value of a symbol with a bar is ``insufficient_history`` while the
    symbol has not had a bar at each of the last ``lookback`` grid steps before this
    one, ``undefined`` after that (a division by zero, the log of a value <= 0, a
    constant window in a correlation, a model's NaN...)."""

    def __init__(
        self, names: tuple[str, ...], built: Mapping[str, UndoableFactor], n_symbols: int
    ) -> None:
        self.rows = tuple(
            _Row(k, name, built[name], int(built[name].lookback))
            for k, name in enumerate(names)
            if name in built
        )
        self.n_symbols = n_symbols
        at = [r.row for r in self.rows]
        contiguous = bool(at) and at == list(range(at[0], at[0] + len(at)))
        #: the rows of the raw matrix (a slice where they follow each other, as the
        #: registry of a configuration has them)
        self._rows: slice | NDArray[np.intp] = (
            slice(at[0], at[0] + len(at)) if contiguous else np.array(at, dtype=np.intp)
        )
        #: ``update``, or an update that leaves ``np.errstate`` to the model (which sets it)
        self._updates = tuple(
            getattr(r.factor, "update_unguarded", r.factor.update) for r in self.rows
        )
        self._lookbacks = np.array([[r.lookback] for r in self.rows], dtype=np.int64)
        #: per symbol, the grid steps up to t at each of which it had a bar
        self._run: NDArray[np.int64] = np.zeros(n_symbols, dtype=np.int64)
        self._saved: list[NDArray[np.int64]] = []  # ``_run`` before each kept step
        self._steps = 0

    def __bool__(self) -> bool:
        return bool(self.rows)

    @property
    def lookback(self) -> int:
        """The longest lookback (0 without custom factors)."""
        return max((r.lookback for r in self.rows), default=0)

    def fingerprints(self) -> dict[str, str]:
        """Per factor that has one (a model factor's files), its ``fingerprint``."""
        prints = {r.name: getattr(r.factor, "fingerprint", None) for r in self.rows}
        return {k: v for k, v in prints.items() if isinstance(v, str) and v}

    def fill(self, bar: BarLike, raw: FloatArray, why: ReasonArray) -> None:
        """Step every custom factor with ``bar``; its raw values into its row of
        ``raw`` (NaN where none) and the reasons of the NaN ones into ``why``."""
        if self._saved:
            self._saved[self._steps % len(self._saved)] = self._run
        self._steps += 1
        inputs = clean_bar(bar)  # once for all of them
        self._run = np.where(inputs.present, self._run + 1, 0)
        n = self.n_symbols
        for r, update in zip(self.rows, self._updates, strict=True):
            values = np.asarray(update(inputs), dtype=np.float64)
            if values.shape != (n,):
                raise CustomFactorError(
                    f"factor {r.name!r}: update gave values of shape {values.shape},"
                    f" not one per symbol ({n},)"
                )
            raw[r.row] = values
        block = raw[self._rows]
        finite = np.isfinite(block)
        if isinstance(self._rows, slice):
            np.copyto(block, np.nan, where=~finite)  # +-inf too
        else:
            raw[self._rows] = np.where(finite, block, np.nan)
        short = np.where(self._run > self._lookbacks, _UNDEFINED, _INSUFFICIENT)
        why[self._rows] = np.where(finite, _OK, short)

    def keep_undo(self, depth: int) -> None:
        for r in self.rows:
            r.factor.keep_undo(depth)
        self._saved = [self._run] * depth

    def check_undo(self, steps: int) -> None:
        """Raise :class:`UndoExhausted` unless every factor can take back ``steps``."""
        short = [r.name for r in self.rows if r.factor.undoable < steps]
        if short:
            raise UndoExhausted(f"custom factor(s) {', '.join(short)} cannot undo {steps}")

    def undo(self, steps: int) -> None:
        """Take back the last ``steps`` steps (within the model's undo depth)."""
        if not steps or not self.rows:
            return
        for r in self.rows:
            r.factor.undo(steps)
        self._steps -= steps
        self._run = self._saved[self._steps % len(self._saved)]

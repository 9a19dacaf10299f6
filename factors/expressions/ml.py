"""Custom factors of mode ``ml``: a fitted estimator scored on feature expressions.

The pure part of ANALYTICS.md section 9's model mode: given an estimator that has
``predict`` (a fitted scikit-learn estimator, loaded by
``adapters/files/custom_models.py``) and compiled feature expressions in the
estimator's column order, each grid step evaluates the features (the same
incremental nodes as mode ``expression``) and scores the symbols in the
cross-section whose features are all finite: one ``predict`` call on those rows.
The others get NaN; so does a prediction that is not finite.  The lookback is
the longest of the features'.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from factorcast.factors.expressions.bars import BarLike
from factorcast.factors.expressions.compiled import Expression
from factorcast.factors.expressions.grammar import parse
from factorcast.factors.expressions.terms import CustomFactorError
from factorcast.factors.rolling import UndoExhausted

FloatArray = NDArray[np.float64]

__all__ = ["Estimator", "ModelFactor", "feature_expression"]


class Estimator(Protocol):
    """What the model mode needs of a fitted estimator."""

    def predict(self, X: FloatArray) -> Any: ...


def feature_expression(factor: str, feature: str, text: str) -> Expression:
    """A feature of model factor ``factor``: an expression whose errors name
    ``factor[feature]``.  Raises :class:`ExpressionError`."""
    label = f"{factor}[{feature}]"
    return Expression(label, text, parse(label, text))


class ModelFactor:
    """``estimator.predict`` on the features of each bar; a :class:`CustomFactor`
    with undo (its features' undo: the estimator holds no state)."""

    def __init__(
        self,
        name: str,
        estimator: Estimator,
        features: Sequence[Expression],
        fingerprint: str = "",
    ) -> None:
        if not features:
            raise CustomFactorError(f"factor {name!r}: a model needs at least one feature")
        if not callable(getattr(estimator, "predict", None)):
            raise CustomFactorError(f"factor {name!r}: the estimator has no predict method")
        self.name = name
        self.estimator = estimator
        self.features = tuple(features)
        self.lookback: int = max(f.lookback for f in self.features)
        #: a digest of the files it was read from (part of the ``model`` tag), if any
        self.fingerprint = fingerprint

    def update(self, bar: BarLike) -> FloatArray:
        columns = [f.update(bar) for f in self.features]
        X = np.column_stack(columns)
        rows = np.asarray(bar.present, dtype=bool) & np.isfinite(X).all(axis=1)
        out = np.full(X.shape[0], np.nan)
        if rows.any():
            predicted = np.asarray(self.estimator.predict(X[rows]), dtype=np.float64).reshape(-1)
            if predicted.size != int(rows.sum()):
                raise CustomFactorError(
                    f"factor {self.name!r}: the model gave {predicted.size} predictions"
                    f" for {int(rows.sum())} rows"
                )
            out[rows] = np.where(np.isfinite(predicted), predicted, np.nan)
        return out

    def keep_undo(self, depth: int) -> None:
        for f in self.features:
            f.keep_undo(depth)

    @property
    def undoable(self) -> int:
        return min(f.undoable for f in self.features)

    def undo(self, steps: int = 1) -> None:
        if not 0 <= steps <= self.undoable:
            raise UndoExhausted(f"cannot undo {steps} updates, {self.undoable} kept")
        for f in self.features:
            f.undo(steps)

    def tree(self) -> str:
        """The estimator and each feature's operator tree."""
        head = f"{self.name} = {type(self.estimator).__name__}.predict  (lookback {self.lookback})"
        return "\n".join([head, *(f.tree() for f in self.features)])

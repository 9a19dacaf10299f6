"""Custom factors: the operator grammar of ANALYTICS.md section 9 compiled to
incremental nodes over one bar's arrays, plug-ins and model-scored factors.

Every custom factor is a :class:`CustomFactor`: ``lookback`` and ``update(bar)``
giving the raw values of one grid step (FACTORS.md's standardization then makes
them exposures).  Three modes build one:

* ``expression``: :meth:`Expression.compile` (:mod:`.grammar` parses into the
  terms of :mod:`.terms`; :mod:`.compiled` runs them as the nodes of :mod:`.nodes`,
  :mod:`.windows` and :mod:`.moments`);
* ``plugin``: :func:`load_plugin` (:mod:`.plugin`);
* ``ml``: :class:`ModelFactor` over :func:`feature_expression` features (:mod:`.ml`).

Errors in any of them are :class:`CustomFactorError` (a ``ValueError``) with a
one-line message naming the factor.
"""

from factorcast.factors.expressions.bars import (
    BAR_FIELDS,
    INPUTS,
    Bar,
    BarLike,
    CleanBar,
    bars_of_panel,
    clean_bar,
)
from factorcast.factors.expressions.compiled import Expression, evaluate_panel
from factorcast.factors.expressions.grammar import MAX_LENGTH, check_name, parse
from factorcast.factors.expressions.ml import Estimator, ModelFactor, feature_expression
from factorcast.factors.expressions.plugin import (
    CopyUndo,
    CustomFactor,
    PluginError,
    Undoable,
    UndoableFactor,
    load_plugin,
    with_undo,
)
from factorcast.factors.expressions.terms import (
    MAX_WINDOW,
    OPERATORS,
    CustomFactorError,
    ExpressionError,
    OpSpec,
    Term,
)

__all__ = [
    "BAR_FIELDS",
    "INPUTS",
    "MAX_LENGTH",
    "MAX_WINDOW",
    "OPERATORS",
    "Bar",
    "BarLike",
    "CleanBar",
    "CopyUndo",
    "CustomFactor",
    "CustomFactorError",
    "Estimator",
    "Expression",
    "ExpressionError",
    "ModelFactor",
    "OpSpec",
    "PluginError",
    "Term",
    "Undoable",
    "UndoableFactor",
    "bars_of_panel",
    "check_name",
    "clean_bar",
    "evaluate_panel",
    "feature_expression",
    "load_plugin",
    "parse",
    "with_undo",
]

"""One custom factor of the configuration: ``[factors.custom.NAME]``.

A frozen dataclass, like :class:`factorcast.factors.params.FactorParams` (which
holds them by name in ``custom``), validated by pydantic where the settings read
it: an unknown key is an error naming it, a bad value an error naming the field
(``factors.custom.reversal_1d: expr: column 9: unknown name 'clos' ...``).

* ``mode``: ``"expr"`` (the default) takes ``expr``, an expression of ANALYTICS.md
  section 9; ``"plugin"`` takes ``class`` (``"package.module:Class"``) and its
  keyword ``params`` (:mod:`.plugin`); ``"model"`` takes ``path``, the metadata file
  of a saved scikit-learn estimator (``adapters/files/custom_models.py``; ANALYTICS.md
  calls the mode ``ml``, accepted as the same).  A key of another mode is an error.
* ``direction`` (-1, 0, +1) and ``weight`` (>= 0): the factor's place in the
  signal view (SIGNALS.md section 2); ``words``: ``[negative, positive]``, the tilt
  words of a negative and a positive exposure (ANALYTICS.md section 7); ``label``:
  its name for people (the factor's name by default).

:meth:`CustomFactorSpec.definition` is what defines the factor's values (mode and
expression, class and parameters, or model file): the part of the ``model`` tag.
The view and the words are not: like the six factors' weights, they change what is
made of the exposures, not the exposures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Literal

from annotated_types import Ge

from factorcast.factors.expressions.grammar import parse
from factorcast.factors.expressions.terms import ExpressionError, Term

__all__ = ["MODES", "CustomFactorSpec", "Mode", "parsed"]

Mode = Literal["expr", "plugin", "model", "ml"]
#: The keys each mode takes besides the view (``direction``, ``weight``, ``words``, ``label``).
MODES: dict[str, tuple[str, ...]] = {
    "expr": ("expr",),
    "plugin": ("class_", "params"),
    "model": ("path",),
}
_KEYS = {"class_": "class"}  # ``class`` is a Python keyword: the field is ``class_``


def _alias(name: str) -> str:
    return _KEYS.get(name, name)


@lru_cache(maxsize=256)
def parsed(text: str) -> Term:
    """The parsed expression (cached: the settings, the tag and the warm-up all read
    it).  Raises :class:`ExpressionError` naming the factor ``?``."""
    return parse("?", text)


@dataclass(frozen=True, slots=True)
class CustomFactorSpec:
    """``[factors.custom.NAME]``: how the factor is computed, and its view."""

    #: pydantic reads this where the settings validate the section: the TOML key
    #: ``class`` fills ``class_``
    __pydantic_config__: ClassVar[dict[str, Any]] = {
        "alias_generator": _alias,
        "populate_by_name": True,
        "extra": "forbid",
    }

    mode: Mode = "expr"
    expr: str | None = None
    class_: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    direction: Literal[-1, 0, 1] = 1
    weight: Annotated[float, Ge(0)] = 0.0
    words: tuple[str, str] | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.mode == "ml":
            object.__setattr__(self, "mode", "model")
        if self.mode not in MODES:
            raise ValueError(f"mode: must be one of {', '.join(MODES)}, got {self.mode!r}")
        wanted = MODES[self.mode]
        for key in wanted:
            if key != "params" and getattr(self, key) is None:
                raise ValueError(f"{_alias(key)}: mode {self.mode!r} needs {_alias(key)}")
        for key in ("expr", "class_", "path", "params"):
            if key not in wanted and getattr(self, key):
                raise ValueError(f"{_alias(key)}: not a key of mode {self.mode!r}")
        if self.expr is not None:
            try:
                parsed(self.expr)
            except ExpressionError as e:
                at = f"column {e.column}: " if e.column is not None else ""
                raise ValueError(f"expr: {at}{e.problem}") from None
        if self.class_ is not None and not _dotted(self.class_):
            raise ValueError(f"class: expected 'package.module:Class', got {self.class_!r}")
        if self.path is not None and not self.path.strip():
            raise ValueError("path: the model's metadata file, not an empty path")
        if not self.weight >= 0:  # NaN too
            raise ValueError(f"weight: must be >= 0, got {self.weight!r}")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"direction: must be -1, 0 or 1, got {self.direction!r}")
        if self.words is not None and not all(w.strip() for w in self.words):
            raise ValueError("words: [negative, positive], two words that are not empty")
        if self.label is not None and (not self.label.strip() or set("{}") & set(self.label)):
            raise ValueError("label: not empty, and without braces")
        try:
            json.dumps(self.params)
        except (TypeError, ValueError):
            raise ValueError("params: numbers, strings, booleans, lists and tables") from None

    @property
    def lookback(self) -> int | None:
        """An expression's lookback (None for a plug-in or a model: known once built)."""
        return None if self.expr is None else parsed(self.expr).lookback

    def definition(self) -> dict[str, Any]:
        """What defines the values: the mode and its keys (an expression as its
        canonical text, so spacing and redundant parentheses leave it alone)."""
        if self.mode == "expr":
            assert self.expr is not None
            return {"mode": "expr", "expr": str(parsed(self.expr))}
        if self.mode == "plugin":
            return {"mode": "plugin", "class": self.class_, "params": self.params}
        return {"mode": "model", "path": self.path}


def _dotted(target: str) -> bool:
    module, sep, attr = target.partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".")) and attr.isidentifier()

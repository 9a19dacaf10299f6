"""Model-scored custom factors (ANALYTICS.md section 9, mode ``ml``): a saved
scikit-learn estimator plus a metadata file naming its feature expressions.

The metadata file is JSON, format ``factorcast.custom_model/1``::

    {
      "format": "factorcast.custom_model/1",
      "estimator": "alpha.joblib",
      "features": [
        {"name": "mom5", "expression": "ts_mean(returns, 5)"},
        {"name": "vol20", "expression": "ts_std(returns, 20)"}
      ],
      "description": "optional free text"
    }

* ``estimator``: a file saved with :func:`joblib.dump`, relative to the metadata
  file's folder (or absolute).  It must have ``predict``; if it records
  ``n_features_in_`` that must be the number of features, and if it was fitted on
  a data frame (``feature_names_in_``) those names must be the features' names,
  in order (it is then given a frame with those columns).
* ``features``: at least one, in the estimator's column order; names are unique
  identifiers; expressions follow the grammar of mode ``expression``.
* No other keys.  A later incompatible layout gets a new version number.

Loading an estimator runs the unpickling code of the file: load only model files
you trust, as with any pickle.  The loaded factor's ``fingerprint`` is a SHA-256
of both files: the ``model`` tag of the signals changes when either does.  Errors
are :class:`CustomModelError`, one line naming the factor and the file.
scikit-learn (and with it joblib) is needed only here, imported when a model is
loaded or saved.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from factorcast.factors.expressions import (
    CustomFactorError,
    Estimator,
    ModelFactor,
    feature_expression,
)

__all__ = ["FORMAT", "CustomModelError", "load_custom_model", "save_custom_model"]

FORMAT: Final = "factorcast.custom_model/1"


class CustomModelError(CustomFactorError):
    """A model factor whose files cannot be used; one line naming factor and file."""


class _Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    expression: str

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not value.isidentifier():
            raise ValueError(f"feature name must be an identifier, got {value!r}")
        return value


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["factorcast.custom_model/1"]
    estimator: str
    features: list[_Feature]
    description: str = ""

    @field_validator("features")
    @classmethod
    def _features(cls, value: list[_Feature]) -> list[_Feature]:
        if not value:
            raise ValueError("at least one feature is needed")
        names = [f.name for f in value]
        if len(set(names)) != len(names):
            raise ValueError(f"feature names repeat: {', '.join(names)}")
        return value


class _NamedColumns:
    """An estimator fitted on a data frame, given frames with its column names."""

    def __init__(self, estimator: Any, names: Sequence[str]) -> None:
        self.estimator = estimator
        self.names = list(names)

    def predict(self, X: NDArray[np.float64]) -> Any:
        return self.estimator.predict(pd.DataFrame(X, columns=self.names))


def _fail(factor: str, path: Path, problem: str) -> CustomModelError:
    return CustomModelError(f"factor {factor!r}: model file {str(path)!r}: {problem}")


def _joblib() -> Any:
    import joblib  # scikit-learn's own persistence (a dependency of factorcast)

    return joblib


def load_custom_model(factor: str, metadata_path: Path) -> ModelFactor:
    """The :class:`ModelFactor` described by ``metadata_path``."""
    try:
        text = metadata_path.read_bytes()
        raw = json.loads(text.decode("utf-8"))
    except OSError as e:
        raise _fail(factor, metadata_path, f"cannot read: {e.strerror or e}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(factor, metadata_path, f"not JSON: {e}") from None
    try:
        meta = _Metadata.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        problem = first["msg"]
        if where == "format":
            problem = f"format must be {FORMAT!r}, got {raw.get('format')!r}"
        raise _fail(factor, metadata_path, f"{where}: {problem}") from None
    features = [feature_expression(factor, f.name, f.expression) for f in meta.features]
    estimator_path = metadata_path.parent / meta.estimator
    try:
        digest = hashlib.sha256(text + b"\0" + estimator_path.read_bytes()).hexdigest()[:16]
        estimator = _joblib().load(estimator_path)
    except OSError as e:
        raise _fail(factor, estimator_path, f"cannot read: {e.strerror or e}") from None
    except Exception as e:  # unpickling runs arbitrary code; any failure is the file's
        raise _fail(factor, estimator_path, f"cannot load: {type(e).__name__}: {e}") from None
    checked = _checked(factor, estimator_path, estimator, meta)
    return ModelFactor(factor, checked, features, fingerprint=digest)


def _checked(factor: str, path: Path, estimator: Any, meta: _Metadata) -> Estimator:
    if not callable(getattr(estimator, "predict", None)):
        raise _fail(factor, path, f"{type(estimator).__name__} has no predict method")
    names = [f.name for f in meta.features]
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is not None and n_in != len(names):
        raise _fail(
            factor, path, f"the estimator takes {n_in} features, the metadata names {len(names)}"
        )
    fitted_names = getattr(estimator, "feature_names_in_", None)
    if fitted_names is None:
        checked: Estimator = estimator
        return checked
    if list(fitted_names) != names:
        raise _fail(
            factor,
            path,
            f"the estimator was fitted on columns {', '.join(map(str, fitted_names))},"
            f" the metadata names {', '.join(names)}",
        )
    return _NamedColumns(estimator, names)


def save_custom_model(
    metadata_path: Path,
    estimator: Any,
    features: Sequence[tuple[str, str]],
    description: str = "",
) -> Path:
    """Write ``estimator`` beside ``metadata_path`` (same stem, ``.joblib``) and the
    metadata naming ``features`` (``(name, expression)`` pairs, in the estimator's
    column order).  The expressions are checked first.  Returns the estimator file."""
    for name, text in features:
        feature_expression(metadata_path.stem, name, text)
    meta = _Metadata(
        format=FORMAT,
        estimator=metadata_path.with_suffix(".joblib").name,
        features=[_Feature(name=n, expression=t) for n, t in features],
        description=description,
    )
    estimator_path = metadata_path.parent / meta.estimator
    _joblib().dump(estimator, estimator_path)
    metadata_path.write_text(json.dumps(meta.model_dump(), indent=2) + "\n", encoding="utf-8")
    return estimator_path

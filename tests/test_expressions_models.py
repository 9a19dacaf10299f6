"""Mode ``ml``: a fitted scikit-learn estimator scored on feature expressions
(factors/expressions/ml.py), and its files (adapters/files/custom_models.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from numpy.typing import NDArray
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from factorcast.adapters.files.custom_models import (
    FORMAT,
    CustomModelError,
    load_custom_model,
    save_custom_model,
)
from factorcast.factors.expressions import (
    CustomFactorError,
    ExpressionError,
    ModelFactor,
    bars_of_panel,
    feature_expression,
)
from tests.expr_oracle import Oracle, Tree
from tests.test_expressions_properties import random_panel

FEATURES: list[tuple[str, str, Tree]] = [
    ("mom", "ts_mean(returns, 3)", ("ts_mean", ("returns",), 3)),
    ("vol", "ts_std(returns, 4)", ("ts_std", ("returns",), 4)),
    ("size", "log(ts_mean(volume, 2))", ("log", ("ts_mean", ("volume",), 2))),
]


def _oracle_features(seed: int) -> tuple[NDArray[np.float64], Any, NDArray[np.bool_]]:
    """``(T, n, k)`` features from the pandas oracle, the panel and ``present``."""
    fields, present = random_panel(seed)
    oracle = Oracle(fields, present)
    X = np.stack([oracle(tree) for _, _, tree in FEATURES], axis=2)
    return X, fields, present


def _fit(X: NDArray[np.float64], seed: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    rows = np.isfinite(X).all(axis=2)
    target = np.random.default_rng(seed).normal(size=rows.sum())
    return X[rows], target


def _run(factor: ModelFactor, fields: Any, present: NDArray[np.bool_]) -> NDArray[np.float64]:
    return np.array([factor.update(b) for b in bars_of_panel(fields, present)])


def test_model_factor_predicts_the_finite_rows() -> None:
    X, fields, present = _oracle_features(21)
    model = LinearRegression().fit(*_fit(X, 21))
    features = [feature_expression("ml_alpha", name, text) for name, text, _ in FEATURES]
    factor = ModelFactor("ml_alpha", model, features)
    assert factor.lookback == max(f.lookback for f in features) == 1 + 3
    actual = _run(factor, fields, present)
    rows = np.isfinite(X).all(axis=2) & present
    expected = np.where(rows, X @ model.coef_ + model.intercept_, np.nan)
    assert rows.sum() > 50
    np.testing.assert_array_equal(np.isnan(actual), ~rows)
    np.testing.assert_allclose(actual[rows], expected[rows], rtol=1e-9, atol=1e-12)


class _Spy:
    """Records what predict is given; predicts the row sums, but inf for the first row."""

    def __init__(self) -> None:
        self.seen: list[NDArray[np.float64]] = []

    def predict(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
        self.seen.append(X.copy())
        out = X.sum(axis=1)
        out[0] = np.inf
        return out


def test_predict_sees_only_rows_with_every_feature() -> None:
    """One predict call per bar that has rows: exactly the symbols in the
    cross-section with all features finite, in symbol order; a non-finite
    prediction is NaN."""
    fields, present = random_panel(4)
    feature = ("ts_mean", ("close",), 3)
    expected_x = Oracle(fields, present)(feature)
    spy = _Spy()
    factor = ModelFactor("spy", spy, [feature_expression("spy", "c", "ts_mean(close, 3)")])
    values = _run(factor, fields, present)
    rows = np.isfinite(expected_x) & present
    bars_with_rows = [t for t in range(rows.shape[0]) if rows[t].any()]
    assert len(spy.seen) == len(bars_with_rows) > 10
    for X, t in zip(spy.seen, bars_with_rows, strict=True):
        np.testing.assert_allclose(X[:, 0], expected_x[t, rows[t]], rtol=1e-12)
        first = np.flatnonzero(rows[t])[0]
        assert np.isnan(values[t, first])  # the inf prediction
        np.testing.assert_allclose(values[t, rows[t]][1:], X[1:, 0], rtol=0)
    assert not np.isfinite(values[~rows]).any()


def test_a_model_giving_the_wrong_number_of_predictions() -> None:
    class Short:
        def predict(self, X: NDArray[np.float64]) -> NDArray[np.float64]:
            return np.zeros(X.shape[0] - 1)

    fields, present = random_panel(4)
    factor = ModelFactor("short", Short(), [feature_expression("short", "c", "close")])
    with pytest.raises(CustomFactorError, match=r"^factor 'short': the model gave"):
        _run(factor, fields, present)


# -- the files -------------------------------------------------------------------------


def test_save_and_load_a_frame_fitted_pipeline(tmp_path: Path) -> None:
    """Fitted on a data frame (feature names recorded): loaded, it is given frames
    with those names, and scores exactly as the estimator does on the oracle's
    features (no feature-name warning: pytest turns warnings into errors)."""
    X, fields, present = _oracle_features(8)
    rows_X, target = _fit(X, 8)
    names = [name for name, _, _ in FEATURES]
    model = make_pipeline(StandardScaler(), LinearRegression())
    model.fit(pd.DataFrame(rows_X, columns=names), target)
    meta = tmp_path / "alpha.json"
    saved = save_custom_model(meta, model, [(n, t) for n, t, _ in FEATURES], "test model")
    assert saved == tmp_path / "alpha.joblib"
    assert json.loads(meta.read_text())["format"] == FORMAT == "factorcast.custom_model/1"

    factor = load_custom_model("ml_alpha", meta)
    actual = _run(factor, fields, present)
    rows = np.isfinite(X).all(axis=2) & present
    expected = model.predict(pd.DataFrame(X[rows], columns=names))
    np.testing.assert_array_equal(np.isnan(actual), ~rows)
    np.testing.assert_allclose(actual[rows], expected, rtol=1e-9, atol=1e-12)


def _write(tmp_path: Path, meta: dict[str, Any], estimator: Any = None) -> Path:
    if estimator is not None:
        joblib.dump(estimator, tmp_path / "model.joblib")
    path = tmp_path / "model.json"
    path.write_text(json.dumps(meta))
    return path


def _fitted(k: int, names: list[str] | None = None) -> LinearRegression:
    rng = np.random.default_rng(k)
    X = rng.normal(size=(20, k))
    return LinearRegression().fit(pd.DataFrame(X, columns=names) if names else X, X.sum(axis=1))


GOOD = {
    "format": FORMAT,
    "estimator": "model.joblib",
    "features": [{"name": "mom", "expression": "ts_mean(returns, 3)"}],
}

# metadata changes, estimator, words of the error
BAD_FILES: list[tuple[dict[str, Any], Any, str]] = [
    (
        {"format": "factorcast.custom_model/2"},
        _fitted(1),
        "format must be 'factorcast.custom_model/1'",
    ),
    ({"extra": 1}, _fitted(1), "extra: Extra inputs are not permitted"),
    ({"features": []}, _fitted(1), "at least one feature"),
    (
        {"features": [{"name": "a", "expression": "close"}, {"name": "a", "expression": "open"}]},
        _fitted(2),
        "feature names repeat",
    ),
    ({"features": [{"name": "a b", "expression": "close"}]}, _fitted(1), "identifier"),
    ({"features": [{"name": "a"}]}, _fitted(1), "features.0.expression: Field required"),
    ({"estimator": "absent.joblib"}, _fitted(1), "cannot read"),
    ({}, {"not": "an estimator"}, "dict has no predict method"),
    ({}, _fitted(2), "the estimator takes 2 features, the metadata names 1"),
    ({}, _fitted(1, ["momentum"]), "fitted on columns momentum, the metadata names mom"),
]


@pytest.mark.parametrize(("change", "estimator", "words"), BAD_FILES, ids=[b[2] for b in BAD_FILES])
def test_bad_model_files_are_one_line(
    tmp_path: Path, change: dict[str, Any], estimator: Any, words: str
) -> None:
    path = _write(tmp_path, GOOD | change, estimator)
    with pytest.raises(CustomModelError) as caught:
        load_custom_model("ml_alpha", path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("factor 'ml_alpha': model file ")
    assert words in message


def test_unreadable_metadata(tmp_path: Path) -> None:
    with pytest.raises(CustomModelError, match=r"model\.json'.*cannot read"):
        load_custom_model("ml_alpha", tmp_path / "model.json")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(CustomModelError, match="not JSON"):
        load_custom_model("ml_alpha", tmp_path / "model.json")
    (tmp_path / "model.joblib").write_text("not a pickle")
    path = _write(tmp_path, GOOD)
    with pytest.raises(CustomModelError, match=r"model\.joblib'.*cannot load"):
        load_custom_model("ml_alpha", path)


def test_a_bad_feature_expression_names_factor_feature_and_column(tmp_path: Path) -> None:
    meta = GOOD | {"features": [{"name": "mom", "expression": "ts_mean(returns, 0)"}]}
    path = _write(tmp_path, meta, _fitted(1))
    with pytest.raises(ExpressionError, match=r"^factor 'ml_alpha\[mom\]', column 18: "):
        load_custom_model("ml_alpha", path)

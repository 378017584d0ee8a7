"""Native predictors on real fitted models: outputs, classes, feature names, pyfunc outputs."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from sibyl.errors import PredictionError
from sibyl.runtime import BoosterPredictor, SklearnPredictor, Task
from sibyl.runtime._native import objective_task
from sibyl.runtime._pyfunc import pyfunc_rows
from tests.unit.runtime.conftest import FEATURES, Zoo


def test_classifier_returns_labels_probabilities_and_plain_classes(zoo: Zoo) -> None:
    model = zoo.model("hgb")
    pred = SklearnPredictor(model, columns=FEATURES, threads=1).predict(zoo.fresh.to_numpy())
    np.testing.assert_array_equal(pred.predictions, model.predict(zoo.fresh))
    np.testing.assert_allclose(pred.probabilities, model.predict_proba(zoo.fresh))
    assert pred.classes == (0, 1, 2)
    assert type(pred.classes[0]) is int


def test_string_labels_keep_the_classes_dtype(zoo: Zoo) -> None:
    model = zoo.model("logreg")
    predictor = SklearnPredictor(model, columns=FEATURES)
    pred = predictor.predict(zoo.fresh.to_numpy())
    assert predictor.task is Task.CLASSIFIER
    assert pred.classes == ("no", "yes")
    np.testing.assert_array_equal(pred.predictions, model.predict(zoo.fresh))
    assert pred.predictions.dtype == model.classes_.dtype


@pytest.mark.parametrize("name", ["hgb", "lgbm", "xgb", "forest"])
def test_models_fitted_with_names_get_a_frame_and_do_not_warn(zoo: Zoo, name: str) -> None:
    predictor = SklearnPredictor(zoo.model(name), columns=FEATURES)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        predictor.predict(zoo.fresh.to_numpy()[:3])


def test_columns_in_another_order_are_permuted_to_the_fitted_order(zoo: Zoo) -> None:
    model = zoo.model("hgb")
    reversed_columns = FEATURES[::-1]
    predictor = SklearnPredictor(model, columns=reversed_columns)
    pred = predictor.predict(zoo.fresh[reversed_columns].to_numpy())
    np.testing.assert_allclose(pred.probabilities, model.predict_proba(zoo.fresh))


def test_regressor_returns_values_only(zoo: Zoo) -> None:
    model = zoo.model("hgb_reg")
    predictor = SklearnPredictor(model, columns=FEATURES, threads=1)
    pred = predictor.predict(zoo.fresh.to_numpy())
    assert predictor.task is Task.REGRESSOR
    assert pred.probabilities is None
    assert pred.classes is None
    np.testing.assert_allclose(pred.predictions, model.predict(zoo.fresh))


def test_custom_classifier_labels_come_from_its_own_predict(zoo: Zoo) -> None:
    model = zoo.model("custom")  # predict thresholds at 0.8, not argmax of predict_proba
    pred = SklearnPredictor(model, columns=FEATURES).predict(zoo.fresh.to_numpy())
    np.testing.assert_array_equal(pred.predictions, model.predict(zoo.fresh))
    assert (pred.predictions != pred.probabilities.argmax(axis=1)).any()


def test_xgboost_booster_is_a_binary_classifier(zoo: Zoo) -> None:
    booster = zoo.model("xgb_booster")
    predictor = BoosterPredictor(booster, threads=1)
    pred = predictor.predict(zoo.fresh.to_numpy())
    p1 = booster.inplace_predict(zoo.fresh.to_numpy())
    assert predictor.task is Task.CLASSIFIER
    assert pred.classes == (0, 1)
    np.testing.assert_allclose(pred.probabilities[:, 1], p1)
    np.testing.assert_array_equal(pred.predictions, (p1 > 0.5).astype(int))


def test_lightgbm_booster_is_a_regressor(zoo: Zoo) -> None:
    booster = zoo.model("lgb_booster")
    predictor = BoosterPredictor(booster, threads=1)
    pred = predictor.predict(zoo.fresh.to_numpy())
    assert predictor.task is Task.REGRESSOR
    assert pred.probabilities is None
    np.testing.assert_allclose(pred.predictions, booster.predict(zoo.fresh.to_numpy()))


@pytest.mark.parametrize(("objective", "is_xgboost", "task"), [
    ("binary:logistic", True, Task.CLASSIFIER), ("multi:softprob", True, Task.CLASSIFIER),
    ("reg:squarederror", True, Task.REGRESSOR), ("count:poisson", True, Task.REGRESSOR),
    ("rank:pairwise", True, Task.OTHER), ("binary:logitraw", True, Task.OTHER),
    ("multiclass", False, Task.CLASSIFIER), ("huber", False, Task.REGRESSOR),
    ("lambdarank", False, Task.OTHER), ("", False, Task.OTHER),
])
def test_objective_decides_the_task(objective: str, is_xgboost: bool, task: Task) -> None:
    assert objective_task(objective, is_xgboost=is_xgboost) is task


@pytest.mark.parametrize(("out", "expected"), [
    (np.array([1.0, 2.0]), [1.0, 2.0]),
    (np.array([[1.0], [2.0]]), [1.0, 2.0]),
    (pd.Series(["a", "b"]), ["a", "b"]),
    (pd.DataFrame({"y": [3, 4]}), [3, 4]),
    (pd.DataFrame({"y": [3, 4], "z": ["a", "b"]}), [{"y": 3, "z": "a"}, {"y": 4, "z": "b"}]),
    ([5, 6], [5, 6]),
    ([[1, 2], [3]], [[1, 2], [3]]),
    ({"y": [7, 8]}, [7, 8]),
])
def test_pyfunc_outputs_become_one_row_each(out: object, expected: list[object]) -> None:
    rows = pyfunc_rows(out, 2)
    assert len(rows) == 2
    assert list(rows) == expected


@pytest.mark.parametrize("out", [np.float64(1.0), [1, 2, 3], pd.DataFrame({"y": [1]})])
def test_pyfunc_output_of_the_wrong_length_is_a_prediction_error(out: object) -> None:
    with pytest.raises(PredictionError, match="one output per row"):
        pyfunc_rows(out, 2)

"""Native predictors: the model's own library runs it (scikit-learn, xgboost, lightgbm).

Every class here implements :class:`~sibyl.runtime.types.Predictor` and adds ``engine``, ``task``
and ``classes`` attributes, which the loader and the ONNX compiler read. They follow the
predictor contract: one call at a time, one output row per input row, exceptions propagate.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from sibyl.runtime.types import Batch, Engine, Prediction, Task

Array = np.ndarray[Any, Any]

# Final estimators whose ``predict`` is ``classes_[argmax(predict_proba)]``: for them one
# ``predict_proba`` call gives both outputs, halving the cost of a call. Anything else (SVC with
# Platt scaling, tuned-threshold classifiers, custom estimators) is asked for both.
_ARGMAX_CLASSIFIERS = frozenset(
    {
        "LogisticRegression",
        "HistGradientBoostingClassifier",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "GradientBoostingClassifier",
        "DecisionTreeClassifier",
        "ExtraTreeClassifier",
        "KNeighborsClassifier",
        "GaussianNB",
        "MultinomialNB",
        "BernoulliNB",
        "ComplementNB",
        "MLPClassifier",
        "CalibratedClassifierCV",
        "XGBClassifier",
        "LGBMClassifier",
    }
)


class SklearnPredictor:
    """Runs a scikit-learn estimator, or an xgboost / lightgbm model with the sklearn API.

    Classifiers return labels in ``predictions``, ``predict_proba`` in ``probabilities`` (when
    the estimator has it) and ``classes_`` in ``classes``; regressors and other estimators return
    ``predict`` only. An ndarray batch is handed over as the estimator was fitted: as a DataFrame
    with ``columns`` when it was fitted with those feature names (so sklearn does not warn), as
    the bare array otherwise. ``threads`` sets ``n_jobs`` of xgboost / lightgbm models (their
    own pools); OpenMP/BLAS pools are pinned per calling thread by the caller (the batcher's
    worker thread does it once, which costs nothing per call).
    """

    def __init__(
        self,
        model: Any,
        *,
        columns: Sequence[str] = (),
        threads: int | None = None,
        engine: Engine = Engine.SKLEARN,
    ) -> None:
        self.model = model
        self.engine = engine
        self.task = sklearn_task(model)
        is_clf = self.task is Task.CLASSIFIER and hasattr(model, "classes_")
        self._classes: Array | None = np.asarray(model.classes_) if is_clf else None
        self.classes = None if self._classes is None else _plain_tuple(self._classes)
        self._proba = is_clf and hasattr(model, "predict_proba")
        self._argmax = self._proba and type(final_estimator(model)).__name__ in _ARGMAX_CLASSIFIERS
        self._to_input = _input_adapter(model, columns)
        _pin_library_threads(model, threads)

    def predict(self, batch: Batch) -> Prediction:
        """Predict every row; see the class docstring for the outputs."""
        x = self._to_input(batch)
        if not self._proba:
            return Prediction(np.asarray(self.model.predict(x)), None, self.classes)
        probs = np.asarray(self.model.predict_proba(x))
        if self._argmax and self._classes is not None:
            labels = self._classes[probs.argmax(axis=1)]
        else:
            labels = np.asarray(self.model.predict(x))
        return Prediction(labels, probs, self.classes)


class BoosterPredictor:
    """Runs a raw ``xgboost.Booster`` or ``lightgbm.Booster`` (mlflow.xgboost / mlflow.lightgbm).

    The training objective decides the task: ``binary:logistic`` / ``binary``, ``multi:softprob``
    / ``multiclass`` … are classifiers over classes ``0 … C-1`` (labels are the most probable
    class, ``probabilities`` is ``(n, C)``); ``reg:*`` / ``regression`` … are regressors; anything
    else (ranking, raw margins) is :attr:`Task.OTHER` with the booster's raw output.
    """

    def __init__(self, booster: Any, *, threads: int | None = None) -> None:
        self.booster = booster
        self.is_xgboost = type(booster).__module__.startswith("xgboost")
        self.engine = Engine.XGBOOST if self.is_xgboost else Engine.LIGHTGBM
        objective, n_classes = booster_objective(booster)
        self.objective = objective
        self.task = objective_task(objective, is_xgboost=self.is_xgboost)
        self.classes: tuple[Any, ...] | None = None
        if self.task is Task.CLASSIFIER:
            self.classes = tuple(range(max(n_classes, 2)))
        self._threads = threads
        if self.is_xgboost and threads is not None:
            booster.set_param({"nthread": threads})

    def predict(self, batch: Batch) -> Prediction:
        """Predict every row; see the class docstring for the outputs."""
        raw = np.asarray(self._raw(batch))
        if self.task is not Task.CLASSIFIER:
            return Prediction(raw)
        if raw.ndim == 1 and self.objective in ("multi:softmax", "binary:hinge"):
            return Prediction(raw.astype(np.int64), None, self.classes)
        probs = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        return Prediction(probs.argmax(axis=1), probs, self.classes)

    def _raw(self, batch: Batch) -> Any:
        if self.is_xgboost:
            return self.booster.inplace_predict(batch)
        if self._threads is None:
            return self.booster.predict(batch)
        return self.booster.predict(batch, num_threads=self._threads)


# -- helpers shared with the loader and the ONNX compiler -------------------------------------
def sklearn_task(model: Any) -> Task:
    """Classifier / regressor / other, as scikit-learn's estimator tags say."""
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(model):
        return Task.CLASSIFIER
    if is_regressor(model):
        return Task.REGRESSOR
    return Task.OTHER


def final_estimator(model: Any) -> Any:
    """The estimator that makes the prediction (last step of nested pipelines)."""
    while hasattr(model, "steps") and model.steps:
        model = model.steps[-1][1]
    return model


def booster_objective(booster: Any) -> tuple[str, int]:
    """``(objective, number of classes)`` of a raw xgboost or lightgbm booster."""
    if type(booster).__module__.startswith("xgboost"):
        learner = json.loads(booster.save_config())["learner"]
        return (
            str(learner["objective"]["name"]),
            int(learner["learner_model_param"].get("num_class", 0)),
        )
    params = getattr(booster, "params", None) or {}
    objective = str(params.get("objective", "")).split(" ")[0]
    return objective, int(booster.num_model_per_iteration())


_XGB_CLASSIFIERS = ("binary:logistic", "binary:hinge", "multi:softprob", "multi:softmax")
_XGB_REGRESSORS = ("reg:", "count:", "survival:")
_LGB_CLASSIFIERS = frozenset(
    {"binary", "multiclass", "softmax", "multiclassova", "multiclass_ova", "ova", "ovr"}
)
_LGB_REGRESSORS = frozenset(
    {
        "regression",
        "regression_l2",
        "l2",
        "mean_squared_error",
        "mse",
        "l2_root",
        "rmse",
        "root_mean_squared_error",
        "regression_l1",
        "l1",
        "mean_absolute_error",
        "mae",
        "huber",
        "fair",
        "poisson",
        "quantile",
        "mape",
        "mean_absolute_percentage_error",
        "gamma",
        "tweedie",
        "cross_entropy",
        "xentropy",
        "cross_entropy_lambda",
        "xentlambda",
    }
)


def objective_task(objective: str, *, is_xgboost: bool) -> Task:
    """The task a booster's training objective implies (:attr:`Task.OTHER` when unknown)."""
    if is_xgboost:
        if objective in _XGB_CLASSIFIERS:
            return Task.CLASSIFIER
        return Task.REGRESSOR if objective.startswith(_XGB_REGRESSORS) else Task.OTHER
    if objective in _LGB_CLASSIFIERS:
        return Task.CLASSIFIER
    return Task.REGRESSOR if objective in _LGB_REGRESSORS else Task.OTHER


def _plain_tuple(values: Array) -> tuple[Any, ...]:
    return tuple(v.item() if isinstance(v, np.generic) else v for v in values)


def _input_adapter(model: Any, columns: Sequence[str]) -> Callable[[Batch], Any]:
    """How an ndarray batch is handed to ``model`` (identity unless it knows feature names)."""
    fitted = getattr(model, "feature_names_in_", None)
    names = [str(n) for n in fitted] if fitted is not None else []
    if not names or sorted(names) != sorted(columns):
        return _identity
    import pandas as pd

    index = pd.Index(names)  # built once; a DataFrame over a view costs ≈ 15 µs a call
    order = None if names == list(columns) else [list(columns).index(n) for n in names]

    def to_frame(batch: Batch) -> Any:
        if not isinstance(batch, np.ndarray):
            return batch
        return pd.DataFrame(batch if order is None else batch[:, order], columns=index, copy=False)

    return to_frame


def _identity(batch: Batch) -> Batch:
    return batch


def _pin_library_threads(model: Any, threads: int | None) -> None:
    """xgboost / lightgbm size their own thread pools from ``n_jobs``, whatever OpenMP says."""
    final = final_estimator(model)
    if threads is not None and type(final).__module__.split(".")[0] in ("xgboost", "lightgbm"):
        final.set_params(n_jobs=threads)

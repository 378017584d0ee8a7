"""Held-out evaluation: the metrics of a fitted model, which way each is better, and the cost
of serving it (p99 latency of a row batch, pickled size).

Classifiers: ``accuracy``, ``f1`` (binary: of the positive class — the larger label; multi-class:
macro), ``roc_auc`` (binary, or one-vs-rest macro) and ``log_loss`` when the model has
``predict_proba``. Regressors: ``mae``, ``rmse``, ``r2``. :func:`evaluate` returns them all;
:func:`score` one. Every function is pure but for timing, and thread-safe.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sibyl.errors import InvalidInputError
from sibyl.training._data import Task

if TYPE_CHECKING:
    import pandas as pd

CLASSIFIER_METRICS = ("accuracy", "f1", "roc_auc", "log_loss")
REGRESSOR_METRICS = ("mae", "rmse", "r2")
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse", "latency_p99_ms", "size_bytes"})


def default_metric(task: Task) -> str:
    """``roc_auc`` for classifiers, ``rmse`` for regressors."""
    return "roc_auc" if task is Task.CLASSIFICATION else "rmse"


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better (``log_loss``, ``mae``, ``rmse``… are not)."""
    return metric not in LOWER_IS_BETTER


def check_metric(metric: str, task: Task, field: str = "metric") -> str:
    """``metric`` if it is one of ``task``'s metrics, else :class:`InvalidInputError`."""
    known = CLASSIFIER_METRICS if task is Task.CLASSIFICATION else REGRESSOR_METRICS
    if metric not in known:
        raise InvalidInputError(
            f"Metric '{metric}' does not apply to {task.value}; use one of {', '.join(known)}",
            field=field,
        )
    return metric


def evaluate(model: Any, x: pd.DataFrame, y: pd.Series[Any], task: Task) -> dict[str, float]:
    """Every metric of ``task`` for ``model`` on (``x``, ``y``); ``n_test`` rows too."""
    if task is Task.REGRESSION:
        out = _regression(np.asarray(model.predict(x), dtype=np.float64), np.asarray(y))
    else:
        out = _classification(model, x, y)
    out["n_test"] = float(len(x))
    return out


def score(model: Any, x: pd.DataFrame, y: pd.Series[Any], task: Task, metric: str) -> float:
    """One metric (see :func:`evaluate`); NaN when it cannot be computed (e.g. ROC AUC on a
    holdout with one class, or a model without probabilities)."""
    if task is Task.REGRESSION:
        return _regression(np.asarray(model.predict(x), dtype=np.float64), np.asarray(y))[metric]
    if metric in ("accuracy", "f1"):
        return _label_metrics(np.asarray(model.predict(x)), np.asarray(y), _classes(model, y))[
            metric
        ]
    return _classification(model, x, y).get(metric, float("nan"))


def _regression(predicted: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> dict[str, float]:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    return {
        "mae": float(mean_absolute_error(y, predicted)),
        "rmse": float(np.sqrt(mean_squared_error(y, predicted))),
        "r2": float(r2_score(y, predicted)) if len(y) > 1 else float("nan"),
    }


def _classes(model: Any, y: pd.Series[Any]) -> list[Any]:
    classes = getattr(model, "classes_", None)
    return list(classes) if classes is not None else sorted(np.unique(np.asarray(y)).tolist())


def _label_metrics(
    predicted: np.ndarray[Any, Any], y: np.ndarray[Any, Any], classes: list[Any]
) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    if len(classes) == 2:
        f1 = f1_score(y, predicted, pos_label=classes[1], average="binary", zero_division=0)
    else:
        f1 = f1_score(y, predicted, average="macro", labels=classes, zero_division=0)
    return {"accuracy": float(accuracy_score(y, predicted)), "f1": float(f1)}


def _classification(model: Any, x: pd.DataFrame, y: pd.Series[Any]) -> dict[str, float]:
    truth = np.asarray(y)
    classes = _classes(model, y)
    out = _label_metrics(np.asarray(model.predict(x)), truth, classes)
    if not callable(getattr(model, "predict_proba", None)):
        return out
    proba = np.asarray(model.predict_proba(x), dtype=np.float64)
    out.update(_proba_metrics(truth, proba, classes))
    return out


def _proba_metrics(
    truth: np.ndarray[Any, Any], proba: np.ndarray[Any, Any], classes: list[Any]
) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    out = {"log_loss": float(log_loss(truth, np.clip(proba, 1e-15, 1.0), labels=classes))}
    present = set(np.unique(truth).tolist())
    if len(present) < 2:
        out["roc_auc"] = float("nan")
    elif len(classes) == 2:
        out["roc_auc"] = float(roc_auc_score(truth == classes[1], proba[:, 1]))
    elif present == set(classes):
        out["roc_auc"] = float(roc_auc_score(truth, proba, multi_class="ovr", labels=classes))
    else:
        out["roc_auc"] = float("nan")
    return out


def latency_p99_ms(
    predict: Callable[[Any], Any],
    x: pd.DataFrame,
    *,
    batch_rows: int = 32,
    repeats: int = 30,
    max_seconds: float | None = None,
) -> float:
    """p99 of the wall time (ms) of ``predict`` on a batch of ``batch_rows`` rows of ``x``,
    over ``repeats`` calls after one warm-up call (fewer — at least 3 — once ``max_seconds``
    have passed)."""
    batch = x.head(max(1, batch_rows))
    predict(batch)
    times: list[float] = []
    until = None if max_seconds is None else time.perf_counter() + max_seconds
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        predict(batch)
        times.append((time.perf_counter() - started) * 1000.0)
        if until is not None and len(times) >= 3 and time.perf_counter() > until:
            break
    return float(np.percentile(times, 99))


def size_bytes(model: Any) -> int:
    """Bytes of the pickled model (what the registry stores, give or take the wrapper)."""
    import cloudpickle

    try:
        return len(cloudpickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # some native boosters refuse cloudpickle but pickle fine
        return len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))


def score_outputs(
    task: Task,
    metric: str,
    y: Any,
    values: np.ndarray[Any, Any],
    classes: list[Any] | None = None,
) -> float:
    """``metric`` of raw outputs: class probabilities ``(n, k)`` (columns in ``classes``
    order) for a classifier, predicted numbers ``(n,)`` for a regressor — for callers that
    combine outputs themselves (tree pruning averages per-tree probabilities)."""
    truth = np.asarray(y)
    if task is Task.REGRESSION:
        return _regression(np.asarray(values, dtype=np.float64), truth)[metric]
    assert classes is not None
    proba = np.asarray(values, dtype=np.float64)
    predicted = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    if metric in ("accuracy", "f1"):
        labels = predicted.astype(truth.dtype) if truth.dtype != object else predicted
        return _label_metrics(labels, truth, classes)[metric]
    return _proba_metrics(truth, proba, classes).get(metric, float("nan"))

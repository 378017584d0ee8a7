"""Quality metrics of labelled predictions, in numpy (checked against ``sklearn.metrics``).

Classifiers — labels compare by :func:`class_key` (the string form of a class: ``1``, ``1.0``
and ``"1"`` are the same class, ``True`` and ``"true"`` too):

* ``accuracy``: share of rows whose predicted class is the label;
* ``precision`` / ``recall`` / ``f1``: binary (two classes) of the *positive class* — the second
  class (``classes[1]``, the column of ``predict_proba`` sklearn calls positive) — ``None``
  when undefined (no predicted / no actual positives); multi-class: macro averages over the
  classes seen in labels or predictions, a class's undefined precision or recall counting 0
  (``sklearn``'s ``average="macro", zero_division=0``);
* ``auc``: ROC AUC from the logged probabilities — binary: of the positive class' probability;
  multi-class: one-vs-rest per class present in the labels (and not in all of them),
  macro-averaged; ``None`` without probabilities or when only one class is labelled;
* ``log_loss``: mean −log p(label), probabilities renormalised per row and clipped to
  [ε, 1 − ε] (ε = float64 machine epsilon); a label outside ``classes`` has p = 0 → −log ε.

Regressors: ``mae`` (mean absolute error) and ``rmse`` (root mean squared error).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

Metrics = dict[str, float | None]
CLASSIFIER_KEYS = ("accuracy", "precision", "recall", "f1", "auc", "log_loss")
REGRESSOR_KEYS = ("mae", "rmse")
_EPS = float(np.finfo(np.float64).eps)


def class_key(value: Any) -> str | None:
    """The canonical string of a class label (``None`` for non-scalars and NaN): booleans as
    ``true``/``false``, integral numbers without a fraction, numeric strings as their number."""
    if value is None:
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, str):
        return _string_key(value)
    return None


def _string_key(text: str) -> str:
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isnan(number) or math.isinf(number):
        return text
    return class_key(number) or text


def classification_metrics(
    truth: Sequence[str],
    predicted: Sequence[str],
    classes: Sequence[str] | None = None,
    probabilities: np.ndarray[Any, Any] | None = None,
    probability_truth: Sequence[str] | None = None,
) -> Metrics:
    """The classifier metrics (module docstring) of ``predicted`` against ``truth`` (class keys,
    same length). ``classes`` (keys, in the model's order) decide binary vs multi-class and the
    positive class; without them, the sorted distinct keys do. ``probabilities`` ``(m, k)``
    over ``classes`` with their labels ``probability_truth`` (m may be smaller than ``truth``:
    rows without logged probabilities) give ``auc`` and ``log_loss``."""
    out: Metrics = dict.fromkeys(CLASSIFIER_KEYS)
    y = np.asarray(truth, dtype=object)
    p = np.asarray(predicted, dtype=object)
    if len(y) == 0:
        return out
    order = list(classes) if classes else sorted(set(y.tolist()) | set(p.tolist()))
    out["accuracy"] = float(np.mean(y == p))
    if len(order) == 2:
        out.update(_binary(y, p, order[1]))
    else:
        out.update(_macro(y, p))
    if probabilities is not None and probability_truth is not None and classes:
        out.update(_from_probabilities(np.asarray(probability_truth, dtype=object),
                                       probabilities, list(classes)))  # fmt: skip
    return out


def _binary(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any], positive: str) -> Metrics:
    actual, guessed = y == positive, p == positive
    tp = float(np.sum(actual & guessed))
    fp = float(np.sum(~actual & guessed))
    fn = float(np.sum(actual & ~guessed))
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def _macro(y: np.ndarray[Any, Any], p: np.ndarray[Any, Any]) -> Metrics:
    precision, recall, f1 = [], [], []
    for label in sorted(set(y.tolist()) | set(p.tolist())):
        actual, guessed = y == label, p == label
        tp = float(np.sum(actual & guessed))
        fp = float(np.sum(~actual & guessed))
        fn = float(np.sum(actual & ~guessed))
        precision.append(_ratio(tp, tp + fp) or 0.0)
        recall.append(_ratio(tp, tp + fn) or 0.0)
        f1.append(_ratio(2 * tp, 2 * tp + fp + fn) or 0.0)
    return {
        "precision": float(np.mean(precision)),
        "recall": float(np.mean(recall)),
        "f1": float(np.mean(f1)),
    }


def _from_probabilities(
    y: np.ndarray[Any, Any], probabilities: np.ndarray[Any, Any], classes: list[str]
) -> Metrics:
    prob = np.asarray(probabilities, dtype=np.float64)
    if len(y) == 0 or prob.ndim != 2 or prob.shape != (len(y), len(classes)):
        return {}
    return {"auc": _auc(y, prob, classes), "log_loss": log_loss(y, prob, classes)}


def _auc(y: np.ndarray[Any, Any], prob: np.ndarray[Any, Any], classes: list[str]) -> float | None:
    if len(classes) == 2:
        return roc_auc(y == classes[1], prob[:, 1])
    scores = [roc_auc(y == c, prob[:, j]) for j, c in enumerate(classes)]
    defined = [s for s in scores if s is not None]
    return float(np.mean(defined)) if defined else None


def roc_auc(actual: np.ndarray[Any, Any], scores: np.ndarray[Any, Any]) -> float | None:
    """ROC AUC of boolean ``actual`` by ``scores`` (Mann–Whitney U with mid-ranks for ties);
    ``None`` unless both classes are present."""
    positives = int(np.sum(actual))
    negatives = len(actual) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = _midranks(np.asarray(scores, dtype=np.float64))
    u = float(np.sum(ranks[actual.astype(bool)])) - positives * (positives + 1) / 2
    return u / (positives * negatives)


def _midranks(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """1-based ranks, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    _, inverse, counts = np.unique(values[order], return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    average = ends - (counts - 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = average[inverse]
    return ranks


def log_loss(y: np.ndarray[Any, Any], prob: np.ndarray[Any, Any], classes: list[str]) -> float:
    """Mean negative log-likelihood of labels ``y`` (see the module docstring)."""
    total = prob.sum(axis=1, keepdims=True)
    normal = np.divide(prob, total, out=np.zeros_like(prob), where=total > 0)
    index = {c: j for j, c in enumerate(classes)}
    column = np.array([index.get(label, -1) for label in y.tolist()])
    p_true = np.where(column >= 0, normal[np.arange(len(y)), np.maximum(column, 0)], 0.0)
    return float(-np.mean(np.log(np.clip(p_true, _EPS, 1 - _EPS))))


def regression_metrics(truth: Sequence[float], predicted: Sequence[float]) -> Metrics:
    """``mae`` and ``rmse`` of ``predicted`` against ``truth`` (``None`` without rows)."""
    t = np.asarray(truth, dtype=np.float64)
    p = np.asarray(predicted, dtype=np.float64)
    if len(t) == 0:
        return dict.fromkeys(REGRESSOR_KEYS)
    error = p - t
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2)))}


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None

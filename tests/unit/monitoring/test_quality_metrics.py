"""Live-quality maths against ``sklearn.metrics`` on synthetic joined rows (feedback ⟷ log)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm

from sibyl.monitoring.quality import (
    build_reports,
    class_key,
    classification_metrics,
    explode,
    hourly_metrics,
    regression_metrics,
    roc_auc,
)
from sibyl.store import GroundTruth, LabelledPredictions

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def joined(
    predictions: list[list[Any]],
    truths: list[list[Any]],
    probabilities: list[np.ndarray[Any, Any]] | None = None,
    classes: list[Any] | None = None,
    *,
    numeric: bool = False,
) -> LabelledPredictions:
    """One logged request per entry of ``predictions``, every row labelled by one feedback."""
    out: list[GroundTruth] = []
    outputs: dict[str, dict[str, Any] | None] = {}
    fid = 0
    for i, (preds, labels) in enumerate(zip(predictions, truths, strict=True)):
        pid = f"p{i}"
        logged: dict[str, Any] = {"predictions": preds}
        if probabilities is not None:
            logged["probabilities"] = probabilities[i].tolist()
            logged["classes"] = classes
        outputs[pid] = logged
        for row, truth in enumerate(labels):
            fid += 1
            label, value = (None, float(truth)) if numeric else (str(truth), None)
            out.append(GroundTruth(fid, pid, T0, "1", len(preds), row, label, value))
    rows = sum(len(p) for p in predictions)
    return LabelledPredictions(out, outputs, {"1": rows})


def report(data: LabelledPredictions, task: str | None = None) -> dict[str, Any]:
    tasks = {"1": task} if task else None
    r = build_reports(data, "m", 3600.0, T0, T0 + timedelta(hours=1), tasks)["1"]
    return {**r.metrics, "labelled_rows": r.labelled_rows, "coverage": r.coverage, "task": r.task}


def batches(values: np.ndarray[Any, Any], size: int) -> list[Any]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def test_binary_classifier_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    n = 500
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.35 * y + rng.uniform(0, 0.65, n), 0.01, 0.99)
    proba = np.column_stack([1 - p1, p1])
    pred = (p1 >= 0.5).astype(int)
    data = joined([b.tolist() for b in batches(pred, 7)], [b.tolist() for b in batches(y, 7)],
                  batches(proba, 7), [0, 1])  # fmt: skip
    got = report(data)
    assert got["task"] == "classifier" and got["labelled_rows"] == n and got["coverage"] == 1.0
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert got["auc"] == pytest.approx(skm.roc_auc_score(y, p1))
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba))
    assert got["mae"] is None and got["rmse"] is None


def test_binary_positive_class_is_the_second_logged_class() -> None:
    y = np.array(["stay", "churn", "churn", "stay", "churn", "stay"])
    pred = np.array(["stay", "churn", "stay", "stay", "churn", "churn"])
    classes = ["stay", "churn"]  # the model's order, not alphabetical: "churn" is positive
    p_churn = np.array([0.2, 0.9, 0.4, 0.1, 0.8, 0.6])
    proba = np.column_stack([1 - p_churn, p_churn])
    data = joined([pred.tolist()], [y.tolist()], [proba], classes)
    got = report(data)
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label="churn"))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="churn"))
    assert got["auc"] == pytest.approx(skm.roc_auc_score(y == "churn", p_churn))
    # sklearn reads probability columns in sorted label order: churn, stay
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba[:, ::-1]))


def test_multiclass_macro_and_one_vs_rest_auc_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    n, k = 600, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = proba.argmax(axis=1)
    pred[:40] = 3  # some classes over-predicted
    classes = [0, 1, 2, 3]
    data = joined([b.tolist() for b in batches(pred, 10)], [b.tolist() for b in batches(y, 10)],
                  batches(proba, 10), classes)  # fmt: skip
    got = report(data)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score),
                     ("f1", skm.f1_score)):  # fmt: skip
        assert got[name] == pytest.approx(fn(y, pred, average="macro", zero_division=0)), name
    expected_auc = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    assert got["auc"] == pytest.approx(expected_auc)
    assert got["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=classes))


def test_regressor_matches_sklearn() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(10, 3, 400)
    pred = y + rng.normal(0, 1.2, 400)
    data = joined([b.tolist() for b in batches(pred, 9)], [b.tolist() for b in batches(y, 9)],
                  numeric=True)  # fmt: skip
    got = report(data)
    assert got["task"] == "regressor" and got["labelled_rows"] == 400
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)))
    assert got["accuracy"] is None and got["auc"] is None


def test_auc_with_ties_and_undefined_cases() -> None:
    actual = np.array([True, False, True, False, True, True])
    scores = np.array([0.5, 0.5, 0.9, 0.1, 0.5, 0.2])
    assert roc_auc(actual, scores) == pytest.approx(skm.roc_auc_score(actual, scores))
    assert roc_auc(np.array([True, True]), np.array([0.1, 0.2])) is None
    single = classification_metrics(["1", "1"], ["1", "0"], ["0", "1"])
    assert single["accuracy"] == 0.5 and single["precision"] == 1.0 and single["recall"] == 0.5
    nothing_predicted = classification_metrics(["0", "0"], ["0", "0"], ["0", "1"])
    assert nothing_predicted["precision"] is None and nothing_predicted["f1"] is None
    assert classification_metrics([], [], None)["accuracy"] is None
    assert regression_metrics([], []) == {"mae": None, "rmse": None}


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, "1"), (1.0, "1"), ("1.0", 1), (True, "true"), ("True", True), (np.int64(2), "2.0")],
)
def test_class_keys_compare_string_forms(a: Any, b: Any) -> None:
    assert class_key(a) == class_key(b)


def test_class_keys_keep_distinct_classes_apart() -> None:
    assert class_key("cat") != class_key("Cat") and class_key(1.5) != class_key(1)
    assert class_key([1]) is None and class_key(float("nan")) is None


def test_whole_request_labels_rows_and_the_latest_feedback_wins() -> None:
    outputs: dict[str, dict[str, Any] | None] = {"p": {"predictions": ["a", "b", "a"]}}
    truths = [
        GroundTruth(1, "p", T0, "1", 3, None, "a", None),  # every row is "a"
        GroundTruth(2, "p", T0, "1", 3, 1, "b", None),  # then row 1 corrected to "b"
        GroundTruth(3, "p", T0, "1", 3, 7, "a", None),  # a row the request does not have
    ]
    rows = explode(LabelledPredictions(truths, outputs, {"1": 3}))["1"].rows
    assert sorted((r.predicted, r.label) for r in rows) == [("a", "a"), ("a", "a"), ("b", "b")]
    got = report(LabelledPredictions(truths, outputs, {"1": 6}))
    assert got["accuracy"] == 1.0 and got["labelled_rows"] == 3 and got["coverage"] == 0.5


def test_a_numeric_value_labels_a_classifier_and_success_values_do_not_count() -> None:
    outputs: dict[str, dict[str, Any] | None] = {
        "p": {"predictions": [1], "probabilities": [[0.3, 0.7]], "classes": [0, 1]},
        "q": {"predictions": [0], "probabilities": [[0.6, 0.4]], "classes": [0, 1]},
    }
    truths = [
        GroundTruth(1, "p", T0, "1", 1, None, None, 1.0),  # value 1 → class "1"
        GroundTruth(2, "q", T0, "1", 1, None, None, None),  # a success outcome (value dropped)
    ]
    got = report(LabelledPredictions(truths, outputs, {"1": 2}))
    assert got["labelled_rows"] == 1 and got["accuracy"] == 1.0


def test_hourly_metrics_group_by_prediction_hour() -> None:
    outputs: dict[str, dict[str, Any] | None] = {
        "a": {"predictions": [1, 1]},
        "b": {"predictions": [0]},
    }
    truths = [
        GroundTruth(1, "a", T0 + timedelta(minutes=5), "1", 2, None, "1", None),
        GroundTruth(2, "b", T0 + timedelta(hours=1, minutes=5), "1", 1, None, "1", None),
    ]
    hours = hourly_metrics(LabelledPredictions(truths, outputs, {}), "1", "classifier")
    h0 = int(T0.timestamp()) // 3600
    assert hours[h0][0]["accuracy"] == 1.0 and hours[h0][1] == 2
    assert hours[h0 + 1][0]["accuracy"] == 0.0 and hours[h0 + 1][1] == 1

"""Joined feedback ⟷ prediction-log rows exploded into one labelled row per predicted row.

A feedback row with ``row = None`` labels every row of its request, one with ``row = i`` the
i-th. When several feedback rows label the same predicted row, the latest (highest feedback id)
wins — a corrected label replaces the first one. Rows the logged outputs do not have (a row
index past them, outputs not logged) are skipped.

For classifiers the truth is the feedback's ``label``, else its numeric ``value`` read as a
class (``value: 1`` for class ``1``); for regressors it is the ``value``. A version is a
classifier when its logged outputs name ``classes`` or its feedback carries labels only (unless
the caller knows the task).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sibyl.monitoring.quality._metrics import (
    Metrics,
    class_key,
    classification_metrics,
    regression_metrics,
)
from sibyl.store import GroundTruth, LabelledPredictions

CLASSIFIER = "classifier"
REGRESSOR = "regressor"


@dataclass(slots=True)
class LabelledRow:
    """One predicted row with its truth."""

    ts: float
    """Prediction time, epoch seconds."""
    predicted: Any
    label: str | None
    value: float | None
    probabilities: list[float] | None = None
    classes: tuple[str, ...] | None = None


@dataclass(slots=True)
class VersionRows:
    """Every labelled row of one version (in no particular order)."""

    version: str
    rows: list[LabelledRow] = field(default_factory=list)
    has_classes: bool = False

    def task(self, hint: str | None = None) -> str:
        """``classifier`` or ``regressor`` (``hint`` wins when given)."""
        if hint in (CLASSIFIER, REGRESSOR):
            return hint
        if self.has_classes:
            return CLASSIFIER
        values = any(r.value is not None for r in self.rows)
        labels = any(r.label is not None for r in self.rows)
        return CLASSIFIER if labels and not values else REGRESSOR


def explode(data: LabelledPredictions) -> dict[str, VersionRows]:
    """Version → its labelled rows (rules in the module docstring)."""
    latest: dict[tuple[str, int], GroundTruth] = {}
    for truth in sorted(data.truths, key=lambda t: t.feedback_id):
        outputs = data.outputs.get(truth.prediction_id) or {}
        count = len(outputs.get("predictions") or ())
        rows = range(count) if truth.row is None else [truth.row]
        for row in rows:
            if row < count:
                latest[(truth.prediction_id, row)] = truth
    out: dict[str, VersionRows] = {}
    for (pid, row), truth in latest.items():
        rows_of = out.setdefault(truth.version, VersionRows(truth.version))
        rows_of.rows.append(_row(truth, data.outputs.get(pid) or {}, row))
        rows_of.has_classes = rows_of.has_classes or bool(
            (data.outputs.get(pid) or {}).get("classes")
        )
    return out


def _row(truth: GroundTruth, outputs: Mapping[str, Any], row: int) -> LabelledRow:
    probabilities = outputs.get("probabilities")
    classes = outputs.get("classes")
    probs = None
    if isinstance(probabilities, list) and row < len(probabilities):
        probs = probabilities[row] if isinstance(probabilities[row], list) else None
    keys = tuple(class_key(c) or str(c) for c in classes) if isinstance(classes, list) else None
    return LabelledRow(
        truth.ts.timestamp(),
        outputs["predictions"][row],
        truth.label,
        truth.value,
        probs,
        keys,
    )


def version_metrics(rows: Iterable[LabelledRow], task: str) -> tuple[Metrics, int]:
    """The metrics of ``task`` over ``rows`` and how many rows had a usable truth."""
    if task == CLASSIFIER:
        return _classifier(list(rows))
    return _regressor(list(rows))


def _classifier(rows: list[LabelledRow]) -> tuple[Metrics, int]:
    truth: list[str] = []
    predicted: list[str] = []
    probs: list[list[float]] = []
    prob_truth: list[str] = []
    classes = next((r.classes for r in rows if r.classes), None)
    for r in rows:
        label = r.label if r.label is not None else class_key(r.value)
        y, p = class_key(label), class_key(r.predicted)
        if y is None or p is None:
            continue
        truth.append(y)
        predicted.append(p)
        if classes and r.classes == classes and _fits(r.probabilities, len(classes)):
            assert r.probabilities is not None
            probs.append([float(x) for x in r.probabilities])
            prob_truth.append(y)
    matrix = np.asarray(probs, dtype=np.float64) if probs else None
    metrics = classification_metrics(truth, predicted, classes, matrix, prob_truth or None)
    return metrics, len(truth)


def _fits(probabilities: list[float] | None, width: int) -> bool:
    return (
        probabilities is not None
        and len(probabilities) == width
        and all(isinstance(x, int | float) and math.isfinite(x) for x in probabilities)
    )


def _regressor(rows: list[LabelledRow]) -> tuple[Metrics, int]:
    truth: list[float] = []
    predicted: list[float] = []
    for r in rows:
        p = (
            r.predicted[0]
            if isinstance(r.predicted, list) and len(r.predicted) == 1
            else r.predicted
        )
        if r.value is None or isinstance(p, bool) or not isinstance(p, int | float):
            continue
        if math.isfinite(p) and math.isfinite(r.value):
            truth.append(r.value)
            predicted.append(float(p))
    return regression_metrics(truth, predicted), len(truth)

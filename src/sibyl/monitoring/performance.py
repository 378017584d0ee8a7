r"""Label-free performance estimate of classifiers (confidence-based, CBPE-style).

Until labels arrive, a classifier's quality is estimated from its predicted probabilities
alone, *assuming they are calibrated* (P(y = k | p̂) = p̂_k): each row then contributes its
probabilities to an expected confusion matrix (NannyML's CBPE, Kivimäki et al. 2023)::

    binary, threshold t, p = P(y = classes[1]), ŷ = [p ≥ t]
      E[TP] = Σ p·ŷ   E[FP] = Σ (1 − p)·ŷ   E[FN] = Σ p·(1 − ŷ)   E[TN] = Σ (1 − p)·(1 − ŷ)
      → accuracy, precision, recall, F1, specificity as ratios of these sums
      ROC AUC: every row is p of a positive and 1 − p of a negative at score p; AUC is the
      chance a positive outranks a negative (ties ½), from a 200-bin score histogram
    multi-class, ŷ = argmax: accuracy = mean max p; per class k one-vs-rest as above
      (E[TP_k] = Σ_{ŷ=k} p_k, …), macro-averaged precision, recall, F1, ROC AUC

Every sum is running, so a window costs O(classes) per row plus a histogram update (constant
memory, ``PerformanceEstimator`` below, thread-safe). ``accuracy_se`` is the standard error of
the realised accuracy *if* the model is calibrated (``sqrt(Σ c(1 − c)) / n``, ``c`` the chance
a row is right). The estimate is wrong when calibration is: under concept drift (P(y | x)
changes) or for a model that was never calibrated. :func:`compare_with_realised` sets it beside
the realised quality once labels arrive and says whether the gap is within tolerance.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sibyl.errors import InvalidInputError
from sibyl.monitoring.drift._config import WindowSpec
from sibyl.monitoring.drift._window import BucketRing

HISTOGRAM_BINS = 200
CAVEAT = (
    "Estimated from predicted probabilities alone; valid only if the model is calibrated "
    "on current traffic (concept drift breaks it). Compare with realised quality when "
    "labels arrive."
)
_BINARY_HEAD = 6  # n, TP, FP, FN, TN, Σ c(1 − c)
_MULTI_HEAD = 3  # n, Σ max p, Σ c(1 − c)


@dataclass(frozen=True)
class PerformanceEstimate:
    """Expected quality of a window. ``metrics``: accuracy, precision, recall, f1, roc_auc
    (binary: of classes[1] at ``threshold``, plus specificity; multi-class: macro averages);
    a metric is ``None`` when undefined (e.g. no predicted positives)."""

    task: str
    rows: int
    metrics: dict[str, float | None]
    accuracy_se: float | None
    classes: tuple[Any, ...]
    threshold: float | None
    enough_data: bool = True
    start: float | None = None
    end: float | None = None
    caveat: str = CAVEAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "rows": self.rows,
            "metrics": dict(self.metrics),
            "accuracy_se": self.accuracy_se,
            "classes": list(self.classes),
            "threshold": self.threshold,
            "enough_data": self.enough_data,
            "start": self.start,
            "end": self.end,
            "caveat": self.caveat,
        }


@dataclass(frozen=True)
class MetricComparison:
    metric: str
    estimated: float | None
    realised: float | None
    difference: float | None
    """``estimated − realised`` (positive: the estimate is optimistic)."""
    within_tolerance: bool | None


@dataclass(frozen=True)
class PerformanceComparison:
    """Estimate beside realised quality.

    ``consistent`` is False when the accuracy gap exceeds 3 standard errors (``accuracy_z``;
    the error a calibrated model shows on this many labelled rows), or — without a standard
    error — when a metric differs by more than ``tolerance``: the model's probabilities are
    not calibrated on this traffic any more. ``within_tolerance`` per metric is the plain
    ``|difference| ≤ tolerance`` (precision and recall rest on fewer rows than accuracy, so
    they wander further by chance).
    """

    metrics: tuple[MetricComparison, ...]
    tolerance: float
    labelled_rows: int
    accuracy_z: float | None
    consistent: bool
    caveat: str = field(default=CAVEAT)

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": {
                m.metric: {
                    "estimated": m.estimated,
                    "realised": m.realised,
                    "difference": m.difference,
                    "within_tolerance": m.within_tolerance,
                }
                for m in self.metrics
            },
            "tolerance": self.tolerance,
            "labelled_rows": self.labelled_rows,
            "accuracy_z": self.accuracy_z,
            "consistent": self.consistent,
            "caveat": self.caveat,
        }


class _Sketch:
    """Layout of the running sums of one classifier (binary or multi-class)."""

    def __init__(self, classes: Sequence[Any], threshold: float) -> None:
        if len(classes) < 2:
            raise InvalidInputError("a classifier needs at least 2 classes", field="classes")
        if not 0.0 < threshold < 1.0:
            raise InvalidInputError(
                f"threshold must be in (0, 1), got {threshold}", field="threshold"
            )
        self.classes = tuple(classes)
        self.k = len(self.classes)
        self.binary = self.k == 2
        self.threshold = threshold
        head = _BINARY_HEAD if self.binary else _MULTI_HEAD + 3 * self.k
        hists = 1 if self.binary else self.k
        self.hist_at = head
        self.width = head + 2 * HISTOGRAM_BINS * hists

    def probabilities(self, values: Any) -> np.ndarray:
        """``(n, k)`` probabilities; a 1-D array is P(classes[1]) of a binary model."""
        p = np.asarray(values, dtype=np.float64)
        if p.ndim == 1 and self.binary:
            p = np.column_stack([1.0 - p, p])
        if p.ndim != 2 or p.shape[1] != self.k:
            raise InvalidInputError(
                f"probabilities must be (rows, {self.k}) for classes {list(self.classes)}, "
                f"got shape {p.shape}",
                field="probabilities",
            )
        return p

    def scores(self, values: Any) -> np.ndarray:
        """What :meth:`encode` takes: P(classes[1]) for a binary model (1-D), else ``(n, k)``;
        rows with a NaN are dropped, values clipped to [0, 1]."""
        p = np.asarray(values, dtype=np.float64)
        if not (p.ndim == 1 and self.binary):
            p = self.probabilities(p)
            p = p[:, 1] if self.binary else p
        bad = np.isnan(p) if p.ndim == 1 else np.isnan(p).any(axis=1)
        return np.clip(p[~bad] if bad.any() else p, 0.0, 1.0)

    def encode(self, p: np.ndarray) -> np.ndarray:
        return self._binary(p) if self.binary else self._multi(p)

    def _binary(self, p: np.ndarray) -> np.ndarray:
        yhat = (p >= self.threshold).astype(np.float64)
        n, positives, predicted = len(p), p.sum(), yhat.sum()
        tp = float(p @ yhat)
        fp, fn = predicted - tp, positives - tp
        correct = p * yhat + (1.0 - p) * (1.0 - yhat)
        head = [n, tp, fp, fn, n - tp - fp - fn, float(correct @ (1.0 - correct))]
        return np.concatenate([head, _histogram(p)])

    def _multi(self, p: np.ndarray) -> np.ndarray:
        yhat = np.argmax(p, axis=1)
        onehot = np.zeros_like(p)
        onehot[np.arange(len(p)), yhat] = 1.0
        best = p[np.arange(len(p)), yhat]
        head = [len(p), best.sum(), (best * (1.0 - best)).sum()]
        tp, fp, fn = (onehot * p).sum(0), (onehot * (1.0 - p)).sum(0), ((1 - onehot) * p).sum(0)
        hists = [_histogram(p[:, j]) for j in range(self.k)]
        return np.concatenate([head, tp, fp, fn, *hists])

    def metrics(self, v: np.ndarray) -> tuple[dict[str, float | None], float | None]:
        n = v[0]
        if n == 0:
            return {}, None
        if self.binary:
            tp, fp, fn, tn, var = v[1:_BINARY_HEAD]
            out = _confusion(tp, fp, fn)
            out["accuracy"] = float((tp + tn) / n)
            out["specificity"] = _ratio(tn, tn + fp)
            out["roc_auc"] = _auc(v[self.hist_at :])
        else:
            var = v[2]
            tp, fp, fn = v[_MULTI_HEAD : self.hist_at].reshape(3, self.k)
            per_class = [_confusion(tp[j], fp[j], fn[j]) for j in range(self.k)]
            out = {"accuracy": float(v[1] / n)}
            for name in ("precision", "recall", "f1"):
                out[name] = _mean([c[name] for c in per_class])
            hists = v[self.hist_at :].reshape(self.k, 2 * HISTOGRAM_BINS)
            out["roc_auc"] = _mean([_auc(h) for h in hists])
        return out, math.sqrt(max(float(var), 0.0)) / float(n)


def estimate_performance(
    probabilities: Any, *, classes: Sequence[Any] | None = None, threshold: float = 0.5
) -> PerformanceEstimate:
    """The CBPE estimate of one batch of predicted probabilities (``(n, k)``, or 1-D
    P(positive) for a binary model; ``classes`` default ``0 … k-1``)."""
    sketch = _Sketch(_classes(probabilities, classes), threshold)
    p = sketch.scores(probabilities)
    return _estimate(sketch, sketch.encode(p), len(p), 1, None, None)


def realised_performance(
    y_true: Any, probabilities: Any, *, classes: Sequence[Any] | None = None, threshold: float = 0.5
) -> dict[str, float | None]:
    """The same metrics from true labels (same decision rule as the estimate)."""
    from sklearn import metrics as skm

    sketch = _Sketch(_classes(probabilities, classes), threshold)
    p = sketch.probabilities(probabilities)
    if not np.isfinite(p).all():
        raise InvalidInputError("probabilities hold NaN or infinite values", field="probabilities")
    y = np.asarray(y_true)
    if len(y) != len(p):
        raise InvalidInputError(f"{len(y)} labels for {len(p)} predictions", field="y_true")
    if sketch.binary:
        truth = y == sketch.classes[1]
        pred = p[:, 1] >= threshold
        out = _confusion(
            float(np.sum(truth & pred)), float(np.sum(~truth & pred)), float(np.sum(truth & ~pred))
        )
        out["accuracy"] = float(np.mean(truth == pred))
        out["specificity"] = _ratio(float(np.sum(~truth & ~pred)), float(np.sum(~truth)))
        auc = skm.roc_auc_score(truth, p[:, 1]) if 0 < truth.sum() < len(truth) else None
        out["roc_auc"] = None if auc is None else float(auc)
        return out
    labels = np.asarray(list(sketch.classes))
    pred = labels[np.argmax(p, axis=1)]
    out = {"accuracy": float(np.mean(pred == y))}
    prec, rec, f1, _ = skm.precision_recall_fscore_support(
        y, pred, labels=list(sketch.classes), average="macro", zero_division=0
    )
    out.update(precision=float(prec), recall=float(rec), f1=float(f1))
    present = np.isin(labels, y)
    out["roc_auc"] = _mean(
        [
            float(skm.roc_auc_score(y == c, p[:, j]))
            for j, c in enumerate(sketch.classes)
            if present[j] and (y == c).sum() < len(y)
        ]
    )
    return out


def compare_with_realised(
    estimate: PerformanceEstimate,
    realised: Mapping[str, float | None],
    *,
    labelled_rows: int | None = None,
    tolerance: float = 0.05,
) -> PerformanceComparison:
    """Set ``estimate`` beside ``realised`` metrics (e.g. from :func:`realised_performance`
    or the feedback join) measured on ``labelled_rows`` rows (default: the estimate's)."""
    rows = estimate.rows if labelled_rows is None else labelled_rows
    items = []
    for name, est in estimate.metrics.items():
        real = realised.get(name)
        diff = None if est is None or real is None else est - real
        items.append(
            MetricComparison(
                name, est, real, diff, None if diff is None else abs(diff) <= tolerance
            )
        )
    z = None
    acc = next((m for m in items if m.metric == "accuracy"), None)
    if acc and acc.difference is not None and estimate.accuracy_se and rows:
        se = estimate.accuracy_se * math.sqrt(estimate.rows / rows)
        z = acc.difference / se if se > 0 else None
    if z is not None:
        consistent = abs(z) <= 3.0
    else:
        consistent = all(m.within_tolerance is not False for m in items)
    return PerformanceComparison(tuple(items), tolerance, rows, z, consistent)


class PerformanceEstimator:
    """CBPE over a sliding window (``window``; estimates need ``min_rows`` rows).

    :meth:`observe` costs O(classes) per row and is safe from any thread: probabilities are
    summarised outside the lock, which guards one vector addition.
    """

    def __init__(
        self,
        classes: Sequence[Any] | int = 2,
        *,
        threshold: float = 0.5,
        window: WindowSpec | None = None,
        min_rows: int = 500,
        clock: Callable[[], float] = time.time,
    ) -> None:
        names = tuple(range(classes)) if isinstance(classes, int) else tuple(classes)
        self._sketch = _Sketch(names, threshold)
        self._ring = BucketRing(self._sketch.width, window or WindowSpec())
        self.min_rows = min_rows
        self._clock = clock
        self._lock = threading.Lock()

    def observe(self, probabilities: Any, *, now: float | None = None) -> int:
        p = self._sketch.scores(probabilities)
        step = self._ring.capacity or len(p)
        parts = [
            (len(p[s : s + step]), self._sketch.encode(p[s : s + step]))
            for s in range(0, len(p), max(step, 1))
        ]
        at = self._clock() if now is None else now
        with self._lock:
            for rows, vector in parts:
                self._ring.add(vector, rows, at)
        return len(p)

    def estimate(self, *, now: float | None = None) -> PerformanceEstimate:
        at = self._clock() if now is None else now
        with self._lock:
            total = self._ring.total(at)
        return _estimate(
            self._sketch, total.vector, total.rows, self.min_rows, total.start, total.end
        )

    @property
    def state_nbytes(self) -> int:
        return self._ring.nbytes


def _estimate(
    sketch: _Sketch,
    vector: np.ndarray,
    rows: int,
    min_rows: int,
    start: float | None,
    end: float | None,
) -> PerformanceEstimate:
    metrics, se = sketch.metrics(vector)
    return PerformanceEstimate(
        task="binary" if sketch.binary else "multiclass",
        rows=rows,
        metrics=metrics,
        accuracy_se=se,
        classes=sketch.classes,
        threshold=sketch.threshold if sketch.binary else None,
        enough_data=rows >= min_rows,
        start=start,
        end=end,
    )


def _classes(probabilities: Any, classes: Sequence[Any] | None) -> tuple[Any, ...]:
    if classes is not None:
        return tuple(classes)
    shape = np.shape(probabilities)
    return tuple(range(2 if len(shape) == 1 else shape[1]))


def _histogram(p: np.ndarray) -> np.ndarray:
    """Per score bin: rows, then Σ p (expected positives)."""
    index = np.minimum((p * HISTOGRAM_BINS).astype(np.intp), HISTOGRAM_BINS - 1)
    return np.concatenate(
        [
            np.bincount(index, minlength=HISTOGRAM_BINS),
            np.bincount(index, weights=p, minlength=HISTOGRAM_BINS),
        ]
    )


def _auc(hist: np.ndarray) -> float | None:
    counts, pos = hist[:HISTOGRAM_BINS], hist[HISTOGRAM_BINS:]
    neg = counts - pos
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return None
    above = total_pos - np.cumsum(pos)  # expected positives in higher bins
    return float(np.sum(neg * (above + 0.5 * pos)) / (total_pos * total_neg))


def _confusion(tp: float, fp: float, fn: float) -> dict[str, float | None]:
    return {
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, tp + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b > 0 else None


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None

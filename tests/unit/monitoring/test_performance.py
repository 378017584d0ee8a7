"""CBPE: on calibrated synthetic data the estimate tracks realised quality; it does not when the
model is over-confident, and the comparison says so."""

from __future__ import annotations

import numpy as np
import pytest

from sibyl.errors import InvalidInputError
from sibyl.monitoring.drift import WindowSpec
from sibyl.monitoring.performance import (
    PerformanceEstimator,
    compare_with_realised,
    estimate_performance,
    realised_performance,
)

WINDOWS, ROWS = 40, 2000
# largest |estimate − realised| allowed in any 2,000-row window: accuracy ≈ 3.3 standard errors;
# precision/recall/F1 rest on the predicted/actual positives only (≈ 600 rows here)
TOLERANCE = {"accuracy": 0.035, "roc_auc": 0.035, "specificity": 0.035}
OTHER_TOLERANCE = 0.07


def _binary(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Calibrated by construction: y ~ Bernoulli(p)."""
    p = rng.beta(2.0, 3.0, n)
    return p, (rng.random(n) < p).astype(int)


def _multiclass(rng: np.random.Generator, n: int, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    p = rng.dirichlet(np.full(k, 0.6), n)
    y = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1)
    return p, np.minimum(y, k - 1)


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_estimate_tracks_realised_quality_on_calibrated_data(kind: str) -> None:
    rng = np.random.default_rng(7)
    gaps: dict[str, list[float]] = {}
    zs, consistent = [], 0
    for _ in range(WINDOWS):
        p, y = _binary(rng, ROWS) if kind == "binary" else _multiclass(rng, ROWS)
        comparison = compare_with_realised(estimate_performance(p), realised_performance(y, p))
        consistent += comparison.consistent
        for m in comparison.metrics:
            gaps.setdefault(m.metric, []).append(m.difference)  # type: ignore[arg-type]
        zs.append(comparison.accuracy_z)
    expected = {"accuracy", "precision", "recall", "f1", "roc_auc"}
    assert expected <= set(gaps)
    worst = {metric: max(map(abs, values)) for metric, values in gaps.items()}
    print(
        f"\n{kind}: worst |estimate − realised| over {WINDOWS} windows of {ROWS}: "
        + ", ".join(f"{k} {v:.3f}" for k, v in sorted(worst.items()))
    )
    assert all(v <= TOLERANCE.get(k, OTHER_TOLERANCE) for k, v in worst.items()), worst
    assert all(abs(np.mean(v)) <= 0.008 for v in gaps.values())  # no bias
    assert np.std(zs) == pytest.approx(1.0, abs=0.35)  # accuracy_se is the right yardstick
    assert consistent >= 0.95 * WINDOWS  # |z| > 3 by chance in 0.3 % of windows


def test_overconfident_model_is_caught_by_the_comparison() -> None:
    rng = np.random.default_rng(8)
    p, y = _binary(rng, ROWS)
    sharp = p**3 / (p**3 + (1 - p) ** 3)  # same ranking, probabilities pushed to 0 and 1
    comparison = compare_with_realised(estimate_performance(sharp), realised_performance(y, sharp))
    accuracy = next(m for m in comparison.metrics if m.metric == "accuracy")
    assert not comparison.consistent
    assert accuracy.difference > 0.1 and not accuracy.within_tolerance  # type: ignore[operator]
    assert comparison.accuracy_z > 3  # type: ignore[operator]


def test_binary_estimate_by_hand() -> None:
    p = np.array([0.9, 0.8, 0.3, 0.1])
    est = estimate_performance(p)
    tp, fp, fn, tn = 1.7, 0.3, 0.4, 1.6
    assert est.metrics["accuracy"] == pytest.approx((tp + tn) / 4)
    assert est.metrics["precision"] == pytest.approx(tp / (tp + fp))
    assert est.metrics["recall"] == pytest.approx(tp / (tp + fn))
    assert est.metrics["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert est.metrics["specificity"] == pytest.approx(tn / (tn + fp))
    # positives' mass at each score outranks negatives' mass at lower scores (ties: half)
    pos, neg = p, 1 - p
    pairs = sum(
        neg[i] * pos[j] * (1.0 if p[j] > p[i] else 0.5 if i == j else 0.0)
        for i in range(4)
        for j in range(4)
    )
    assert est.metrics["roc_auc"] == pytest.approx(pairs / (pos.sum() * neg.sum()), abs=1e-3)
    assert est.task == "binary" and est.threshold == 0.5 and "calibrated" in est.caveat


def test_threshold_and_class_names() -> None:
    p = np.array([[0.2, 0.8], [0.6, 0.4], [0.35, 0.65]])
    est = estimate_performance(p, classes=["stay", "churn"], threshold=0.7)
    assert est.classes == ("stay", "churn")
    assert est.metrics["precision"] == pytest.approx(0.8)  # only the 0.8 row is predicted churn
    real = realised_performance(
        ["churn", "stay", "stay"], p, classes=["stay", "churn"], threshold=0.7
    )
    assert real["accuracy"] == 1.0 and real["precision"] == 1.0


def test_windowed_estimator_slides_and_is_json() -> None:
    rng = np.random.default_rng(9)
    estimator = PerformanceEstimator(2, window=WindowSpec(rows=1000, buckets=10), min_rows=500)
    assert estimator.estimate().enough_data is False
    confident = np.where(rng.random(3000) < 0.5, 0.02, 0.98)
    estimator.observe(confident)
    assert estimator.estimate().metrics["accuracy"] == pytest.approx(0.98, abs=1e-9)
    unsure = rng.uniform(0.4, 0.6, 1000)
    for start in range(0, 1000, 50):
        estimator.observe(unsure[start : start + 50])
    estimate = estimator.estimate()
    assert estimate.rows == 1000 and estimate.enough_data
    assert estimate.metrics["accuracy"] == pytest.approx(np.maximum(unsure, 1 - unsure).mean())
    assert set(estimate.to_dict()) >= {"task", "rows", "metrics", "accuracy_se", "caveat"}


def test_multiclass_estimator_matches_the_batch_function() -> None:
    rng = np.random.default_rng(10)
    p, _ = _multiclass(rng, 900, k=3)
    estimator = PerformanceEstimator(["a", "b", "c"], window=WindowSpec(rows=10_000))
    for start in range(0, 900, 32):
        estimator.observe(p[start : start + 32])
    windowed = estimator.estimate().metrics
    whole = estimate_performance(p, classes=["a", "b", "c"]).metrics
    assert windowed == pytest.approx(whole, rel=1e-9)


def test_bad_probabilities_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="probabilities"):
        estimate_performance(np.ones((3, 3)), classes=["a", "b"])
    with pytest.raises(InvalidInputError, match="threshold"):
        estimate_performance(np.ones(3), threshold=1.0)
    with pytest.raises(InvalidInputError, match="labels"):
        realised_performance([0, 1], np.ones(3))

"""What drift readings become: Prometheus series with bounded cardinality, the summary numbers
dashboards and alert rules read, and the label-free estimate beside realised quality.

:class:`DriftGauges` owns ``ml_drift_score{model,feature,method}`` (one version's columns per
model: a new reading replaces the model's series, so a swap to a version with other columns
leaves no stale series), ``ml_model_estimated_accuracy{model,version}`` and
``ml_drift_observe_failures_total{model,version}``; :meth:`DriftGauges.release` drops a
version's series when it is unloaded. Thread-safe.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge

from sibyl.monitoring.drift import DriftReport, DriftStatus
from sibyl.monitoring.performance import PerformanceEstimate, compare_with_realised

Key = tuple[str, str]
_ALIASES = {"auc": "roc_auc"}
"""Live-quality metric names → CBPE's."""


class DriftGauges:
    """The drift series of one metrics registry (module docstring)."""

    def __init__(self, prometheus: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, tuple[Key, set[tuple[str, str]]]] = {}
        self.drift_score = Gauge(
            "ml_drift_score",
            "Drift score of each column of a model's watched version per method (PSI, KS, "
            "Wasserstein, JS, KL, chi2, mean z; outputs as 'output:<column>').",
            ["model", "feature", "method"],
            registry=prometheus,
        )
        self.estimated_accuracy = Gauge(
            "ml_model_estimated_accuracy",
            "Label-free (CBPE) accuracy estimate of a classifier version over its window.",
            ["model", "version"],
            registry=prometheus,
        )
        self.observe_failures = Counter(
            "ml_drift_observe_failures",
            "Batches the drift monitor could not read (the predictions were served).",
            ["model", "version"],
            registry=prometheus,
        )

    def publish(self, model: str, source: Key | None, report: DriftReport | None) -> None:
        """The model's ``ml_drift_score`` series become ``report``'s (of version ``source``)."""
        samples = {(f, m): s for f, m, s in report.score_samples()} if report else {}
        with self._lock:
            old = self._series.pop(model, None)
            for feature, method in (old[1] if old else set()) - samples.keys():
                with contextlib.suppress(KeyError):
                    self.drift_score.remove(model, feature, method)
            for (feature, method), score in samples.items():
                self.drift_score.labels(model, feature, method).set(score)
            if source is not None and samples:
                self._series[model] = (source, set(samples))

    def estimate(self, model: str, version: str, estimate: PerformanceEstimate | None) -> None:
        """Set the version's estimated accuracy once its window is full enough."""
        accuracy = estimated_accuracy(estimate)
        if accuracy is not None:
            self.estimated_accuracy.labels(model, version).set(accuracy)

    def failed(self, model: str, version: str) -> None:
        """A batch of the version could not be observed."""
        self.observe_failures.labels(model, version).inc()

    def release(self, model: str, version: str) -> None:
        """The version was unloaded: drop its series (the model's drift scores when they were
        this version's)."""
        with self._lock:
            source = self._series.get(model)
            if source is not None and source[0] == (model, version):
                self._series.pop(model)
                for feature, method in source[1]:
                    with contextlib.suppress(KeyError):
                        self.drift_score.remove(model, feature, method)
        with contextlib.suppress(KeyError):
            self.estimated_accuracy.remove(model, version)
        with contextlib.suppress(KeyError):
            self.observe_failures.remove(model, version)


def max_score(report: DriftReport) -> float | None:
    """The largest drift score of a judged report's columns (``None`` before it is judged)."""
    if report.status is DriftStatus.INSUFFICIENT_DATA:
        return None
    scores = [c.drift_score for c in (*report.features, *report.predictions)
              if c.drift_score is not None]  # fmt: skip
    return max(scores) if scores else None


def estimated_accuracy(estimate: PerformanceEstimate | None) -> float | None:
    """CBPE accuracy once the estimate rests on enough rows."""
    if estimate is None or not estimate.enough_data:
        return None
    return estimate.metrics.get("accuracy")


def comparison(
    estimate: PerformanceEstimate | None, realised: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The estimate beside realised quality (``None`` unless both have a metric in common);
    the live-quality ``auc`` is CBPE's ``roc_auc``, ``labelled_rows`` the rows it rests on."""
    if estimate is None or not realised:
        return None
    numbers = {_ALIASES.get(k, k): float(v) for k, v in realised.items()
               if isinstance(v, int | float) and not isinstance(v, bool)}  # fmt: skip
    if not numbers.keys() & {k for k, v in estimate.metrics.items() if v is not None}:
        return None
    labelled = numbers.get("labelled_rows")
    rows = int(labelled) if labelled else None
    return compare_with_realised(estimate, numbers, labelled_rows=rows).to_dict()


__all__ = ["DriftGauges", "comparison", "estimated_accuracy", "max_score"]

"""What watches one served version: its drift monitor and accuracy estimator, fed per batch.

:class:`ObservingPredictor` wraps the predictor a version's batcher calls (CONVENTIONS §4) and
hands every model batch with its prediction to the version's :class:`VersionWatch`, in the
batcher's worker thread. Watching never fails a prediction: any error (an unreadable batch,
outputs that do not fit the profile, a bug) is counted, reported to ``on_failure`` and
swallowed. Rows answered from the prediction cache never reach the model, so they are not
observed.

Cost: folding a batch into the windows costs a fixed ≈ 100 µs of numpy calls whatever its
size (docs/drift.md, "cost"), so small batches are buffered — a list append — and folded
together once ``fold_rows`` rows are waiting, or when a reader asks (:meth:`VersionWatch.flush`
before every report). A batch that fails to fold with its group is folded alone, so only it
counts as a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from sibyl.monitoring.drift import DriftMonitor
from sibyl.monitoring.performance import PerformanceEstimator
from sibyl.runtime.schema import InputSchema
from sibyl.runtime.types import Batch, Prediction, Predictor

FailureHook = Callable[["VersionWatch", BaseException], None]
"""``hook(watch, error)``: an observation failed (called in the folding thread; must not raise)."""
FOLD_ROWS = 64
"""Rows buffered before they are folded into the windows (one fixed cost per fold)."""


class VersionWatch:
    """Drift monitor (``None`` without a reference profile) and CBPE estimator (``None`` unless
    the version is a classifier with class probabilities) of one served version.

    :meth:`observe` is called from the version's batcher worker; :meth:`flush` and
    :meth:`replace_monitor` from any thread. A short lock guards the buffer and counters.
    """

    def __init__(
        self,
        name: str,
        version: str,
        *,
        monitor: DriftMonitor | None = None,
        estimator: PerformanceEstimator | None = None,
        classes: tuple[Any, ...] | None = None,
        columns: tuple[str, ...] = (),
        every: int = 1,
        fold_rows: int = FOLD_ROWS,
        on_failure: FailureHook | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.monitor = monitor
        self.estimator = estimator
        self.classes = classes
        self.columns = columns
        """The served schema's column names (the order of numeric batch arrays)."""
        self.every = max(1, every)
        self.fold_rows = max(1, fold_rows)
        self.batches = 0
        """Model batches the version answered (written by the worker only)."""
        self.observed_batches = 0
        self.observed_rows = 0
        self.failures = 0
        self.last_error: str | None = None
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._pending: list[tuple[Batch, Prediction]] = []
        self._pending_rows = 0

    @property
    def active(self) -> bool:
        """Whether anything is watched (a monitor or an estimator)."""
        return self.monitor is not None or self.estimator is not None

    def observe(self, batch: Batch, prediction: Prediction) -> None:
        """Take one answered batch (every ``every``-th); never raises."""
        self.batches += 1
        if self.batches % self.every or not self.active:
            return
        with self._lock:
            self._pending.append((batch, prediction))
            self._pending_rows += len(prediction)
            if self._pending_rows < self.fold_rows:
                return
            pending = self._take()
        self._fold(pending)

    def flush(self) -> None:
        """Fold whatever is buffered (before a report)."""
        with self._lock:
            pending = self._take()
        if pending:
            self._fold(pending)

    def replace_monitor(self, monitor: DriftMonitor | None) -> None:
        """Watch against a new profile from now on (its window starts empty; rows buffered for
        the old profile are dropped)."""
        with self._lock:
            self._take()
            self.monitor = monitor

    def describe(self) -> dict[str, Any]:
        """Counters for the drift report's ``observed`` section."""
        with self._lock:
            return {
                "batches": self.batches,
                "observed_batches": self.observed_batches,
                "observed_rows": self.observed_rows,
                "buffered_rows": self._pending_rows,
                "observe_every": self.every,
                "failures": self.failures,
                "last_error": self.last_error,
            }

    def _take(self) -> list[tuple[Batch, Prediction]]:
        pending, self._pending, self._pending_rows = self._pending, [], 0
        return pending

    def _fold(self, pending: list[tuple[Batch, Prediction]]) -> None:
        if len(pending) > 1:
            try:
                joined = (InputSchema.concat([b for b, _ in pending]),
                          _concat([p for _, p in pending]))  # fmt: skip
            except Exception:  # batches that do not join (a schema change): one by one
                joined = None
            if joined is not None and self._fold_one(*joined, count=len(pending), quiet=True):
                return
        for batch, prediction in pending:
            self._fold_one(batch, prediction, count=1, quiet=False)

    def _fold_one(self, batch: Batch, prediction: Prediction, *, count: int, quiet: bool) -> bool:
        monitor, estimator = self.monitor, self.estimator
        try:
            if monitor is not None:
                monitor.observe(batch, prediction)
            if estimator is not None and self._estimable(prediction):
                estimator.observe(prediction.probabilities)
        except Exception as exc:  # a failed observation never fails the prediction
            if quiet:  # the group failed: each batch is tried alone
                return False
            with self._lock:
                self.failures += 1
                self.last_error = repr(exc)
            if self._on_failure is not None:
                self._on_failure(self, exc)
            return False
        with self._lock:
            self.observed_batches += count
            self.observed_rows += len(prediction)
        return True

    def _estimable(self, prediction: Prediction) -> bool:
        if prediction.probabilities is None:
            return False
        return prediction.classes is None or tuple(prediction.classes) == self.classes


def _concat(predictions: list[Prediction]) -> Prediction:
    """Predictions of consecutive batches as one (the parts drift reads)."""
    probabilities = [p.probabilities for p in predictions]
    joined: np.ndarray[Any, Any] | None = None
    if all(p is not None for p in probabilities):
        joined = np.concatenate(probabilities, axis=0)  # type: ignore[arg-type]
    return Prediction(
        np.concatenate([p.predictions for p in predictions], axis=0), joined,
        predictions[0].classes,
    )  # fmt: skip


class ObservingPredictor:
    """A :class:`Predictor` that predicts with ``predictor`` and shows the batch and its
    prediction to ``watch`` (in the calling worker thread) before returning the prediction
    unchanged."""

    def __init__(self, predictor: Predictor, watch: VersionWatch) -> None:
        self.predictor = predictor
        self.watch = watch

    def predict(self, batch: Batch) -> Prediction:
        prediction = self.predictor.predict(batch)
        self.watch.observe(batch, prediction)
        return prediction


__all__ = ["FOLD_ROWS", "FailureHook", "ObservingPredictor", "VersionWatch"]

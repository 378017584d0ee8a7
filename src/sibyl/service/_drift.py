"""``DriftService``: drift and the label-free accuracy estimate of every served version.

A :class:`~sibyl.service._hooks.ServingHook` of the model manager:

* ``prepare`` (loader thread, at load time) reads the version's reference profile from the
  registry (:func:`sibyl.registry.load_profile`) and builds its
  :class:`~sibyl.monitoring.drift.DriftMonitor`; a version without a profile gets no monitor
  (one log line, ``drift_not_watched``). Profile columns the served model does not take are
  left out (logged).
* ``wrap`` puts an :class:`ObservingPredictor` between the version's batcher and its model:
  every ``observe_every``-th model batch is folded into the windows in the batcher's worker
  thread (per batch, not per request; rows answered by the prediction cache are not seen).
  Classifiers with probabilities also get a CBPE
  :class:`~sibyl.monitoring.performance.PerformanceEstimator`, profile or not.
* ``release`` drops the version's windows, cached reports and metric series.

Every ``report_interval_s`` :meth:`refresh` (a worker thread) computes each version's report
and sets ``ml_drift_score{model,feature,method}`` — for one version per model: the one
answering its unpinned traffic when it is watched, else the most recently loaded watched one —
and ``ml_model_estimated_accuracy{model,version}``. Series exist only for served versions.
Readers (:meth:`report`, :meth:`drift_score_max`) use those cached reports; :meth:`drift_report`
computes a fresh one. Thread-safe; nothing here touches the event loop except start/stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from sibyl.errors import NotFoundError, SibylError
from sibyl.monitoring import Metrics
from sibyl.monitoring.drift import (
    DriftConfig,
    DriftMonitor,
    DriftReport,
    ReferenceProfile,
    WindowSpec,
)
from sibyl.monitoring.performance import (
    PerformanceEstimate,
    PerformanceEstimator,
)
from sibyl.registry import load_profile
from sibyl.runtime.loader import LoadedModel
from sibyl.runtime.types import Predictor, Task
from sibyl.service._drift_readings import (
    DriftGauges,
    comparison,
    estimated_accuracy,
    max_score,
)
from sibyl.service._drift_watch import ObservingPredictor, VersionWatch
from sibyl.service._manager import ModelManager
from sibyl.settings import DriftSettings, Settings

log = structlog.get_logger(__name__)
Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _Reading:
    """One version's last computed report and estimate."""

    drift: DriftReport | None
    estimate: PerformanceEstimate | None
    at: float


class DriftService:
    """Drift monitors and accuracy estimators of the served versions (module docstring)."""

    def __init__(
        self,
        settings: DriftSettings,
        registry: Any,
        prometheus: CollectorRegistry,
        *,
        serving_version: Callable[[str], str | None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._registry = registry
        self._serving = serving_version or (lambda _model: None)
        self._clock = clock
        rows = settings.window_rows
        self.config = DriftConfig(
            window=WindowSpec(rows=rows), min_rows=min(settings.min_rows, rows * 9 // 10)
        )
        self._lock = threading.Lock()
        self._watches: dict[Key, VersionWatch] = {}
        self._prepared: dict[Key, DriftMonitor | None] = {}
        self._loaded_order: dict[Key, int] = {}
        self._order = itertools.count()
        self._readings: dict[Key, _Reading] = {}
        self._task: asyncio.Task[None] | None = None
        self.gauges = DriftGauges(prometheus)

    # ---- serving hook ----------------------------------------------------------------------

    def prepare(self, loaded: LoadedModel) -> None:
        """Loader thread: read the version's profile and build its monitor."""
        profile = self._load_profile(loaded.name, loaded.version)
        monitor = None
        if profile is not None:
            monitor = self._monitor(loaded.name, loaded.version, profile, loaded.schema.names)
        with self._lock:
            self._prepared[(loaded.name, loaded.version)] = monitor

    def wrap(self, loaded: LoadedModel, predictor: Predictor) -> Predictor:
        """Event loop: the observing predictor of a version being served."""
        key = (loaded.name, loaded.version)
        with self._lock:
            monitor = self._prepared.pop(key, None)
        watch = VersionWatch(
            loaded.name,
            loaded.version,
            monitor=monitor,
            estimator=self._estimator(loaded),
            classes=tuple(loaded.classes) if loaded.classes else None,
            columns=tuple(loaded.schema.names),
            every=self.settings.observe_every,
            on_failure=self._failed,
        )
        with self._lock:
            self._watches[key] = watch
            self._loaded_order[key] = next(self._order)
        return ObservingPredictor(predictor, watch)

    def release(self, name: str, version: str) -> None:
        """Event loop: forget a version that left the pool, and its metric series."""
        key = (name, version)
        with self._lock:
            self._watches.pop(key, None)
            self._prepared.pop(key, None)
            self._loaded_order.pop(key, None)
            self._readings.pop(key, None)
            self.gauges.release(name, version)

    # ---- profiles --------------------------------------------------------------------------

    def set_profile(self, name: str, version: str, profile: ReferenceProfile) -> bool:
        """Watch a served version against ``profile`` from now on (its window starts empty);
        ``False`` when the version is not served here (it is read at its next load)."""
        with self._lock:
            watch = self._watches.get((name, version))
        if watch is None:
            return False
        watch.replace_monitor(self._monitor(name, version, profile, watch.columns))
        with self._lock:
            self._readings.pop((name, version), None)
        return True

    def watched(self, name: str, version: str) -> bool:
        """Whether a served version has a drift monitor."""
        with self._lock:
            watch = self._watches.get((name, version))
        return watch is not None and watch.monitor is not None

    # ---- reading ---------------------------------------------------------------------------

    def report(self, model: str) -> dict[str, Any]:
        """Drift status of a model for dashboards: ``{"status": ok | drift | insufficient_data |
        unknown, "drifted_features", "max_score", "version", "rows"}`` from the last computed
        report of its watched version (``unknown``: no served version has a profile)."""
        key, reading = self._reading(model)
        report = reading.drift if reading is not None else None
        if key is None or report is None:
            return {"status": "unknown", "drifted_features": [], "max_score": None,
                    "version": key[1] if key else None, "rows": 0}  # fmt: skip
        return {
            "status": report.status.value,
            "drifted_features": [*report.drifted_features,
                                 *(f"output:{c}" for c in report.drifted_predictions)],
            "max_score": max_score(report),
            "version": key[1],
            "rows": report.rows,
        }  # fmt: skip

    def drift_score_max(self, model: str) -> float | None:
        """The largest drift score of the model's watched version (``None``: not judged)."""
        _, reading = self._reading(model)
        return None if reading is None or reading.drift is None else max_score(reading.drift)

    def estimated_accuracy_of(self, model: str) -> float | None:
        """CBPE accuracy of the model's watched version once its window is full enough."""
        _, reading = self._reading(model)
        return estimated_accuracy(reading.estimate if reading is not None else None)

    def drift_report(
        self, model: str, version: str | None = None, realised: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """A fresh drift report of ``version`` (default: the model's watched version) with the
        label-free estimate, set beside ``realised`` quality (from labelled feedback) when
        given; NotFoundError when nothing of it is watched here."""
        key = (model, version) if version is not None else self._primary(model)
        with self._lock:
            watch = self._watches.get(key) if key is not None else None
        if watch is None or not watch.active:
            raise _not_watched(model, version, served=watch is not None)
        reading = self._compute(watch)
        with self._lock:
            if (watch.name, watch.version) in self._watches:
                self._readings[(watch.name, watch.version)] = reading
        body: dict[str, Any] = {"model": model, "version": watch.version}
        if reading.drift is not None:
            body |= reading.drift.to_dict()
        else:
            body |= {
                "status": "unknown",
                "reason": "no reference profile; upload one with "
                f"`sibyl monitoring profile {model} {watch.version} --data reference.csv`",
            }
        body["estimated_performance"] = reading.estimate.to_dict() if reading.estimate else None
        body["realised_performance"] = dict(realised) if realised is not None else None
        body["comparison"] = comparison(reading.estimate, realised)
        body["observed"] = watch.describe()
        return body

    # ---- periodic refresh ------------------------------------------------------------------

    def refresh(self) -> None:
        """Compute every watched version's report and update the gauges (any thread)."""
        with self._lock:
            watches = [w for w in self._watches.values() if w.active]
        readings = {(w.name, w.version): self._compute(w) for w in watches}
        with self._lock:  # gauges are set under the lock: a version released meanwhile is gone
            for key, reading in readings.items():
                if key in self._watches:
                    self._readings[key] = reading
            for (name, version), reading in self._readings.items():
                self.gauges.estimate(name, version, reading.estimate)
            for model in {name for name, _ in self._watches}:
                source = self._primary_locked(model)
                found = self._readings.get(source) if source is not None else None
                self.gauges.publish(model, source, found.drift if found is not None else None)

    async def start(self) -> None:
        """Refresh every ``report_interval_s`` until :meth:`stop` (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="sibyl-drift-refresh")

    async def stop(self) -> None:
        """Stop refreshing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.report_interval_s)
            try:
                await asyncio.to_thread(self.refresh)
            except Exception:  # the loop outlives any one refresh
                log.exception("drift_refresh_failed")

    # ---- internals -------------------------------------------------------------------------

    def _load_profile(self, name: str, version: str) -> ReferenceProfile | None:
        try:
            return load_profile(self._registry, name, version)
        except NotFoundError:
            reason = "no reference profile; upload one with `sibyl monitoring profile`"
            log.info("drift_not_watched", model=name, version=version, reason=reason)
        except SibylError as exc:
            log.warning("drift_not_watched", model=name, version=version, reason=exc.message)
        return None

    def _monitor(
        self, name: str, version: str, profile: ReferenceProfile, names: tuple[str, ...]
    ) -> DriftMonitor | None:
        if names:
            kept = tuple(c for c in profile.features if c.name in names)
            ignored = [c.name for c in profile.features if c.name not in names]
            if ignored:
                log.info("drift_profile_columns_ignored", model=name, version=version,
                         columns=ignored, reason="the served model does not take them")  # fmt: skip
            profile = dataclasses.replace(profile, features=kept)
        if not profile.features and not profile.outputs:
            log.info("drift_not_watched", model=name, version=version,
                     reason="no profile column matches the model's inputs")  # fmt: skip
            return None
        return DriftMonitor(profile, self.config, columns=names or None, clock=self._clock)

    def _estimator(self, loaded: LoadedModel) -> PerformanceEstimator | None:
        classes = loaded.classes
        if loaded.task is not Task.CLASSIFIER or not classes or len(classes) < 2:
            return None
        return PerformanceEstimator(
            tuple(classes), window=self.config.window, min_rows=self.config.min_rows,
            clock=self._clock,
        )  # fmt: skip

    def _compute(self, watch: VersionWatch) -> _Reading:
        watch.flush()  # rows still buffered for the next fold count too
        monitor, estimator = watch.monitor, watch.estimator
        return _Reading(
            monitor.report() if monitor is not None else None,
            estimator.estimate() if estimator is not None else None,
            self._clock(),
        )

    def _primary(self, model: str) -> Key | None:
        with self._lock:
            return self._primary_locked(model)

    def _primary_locked(self, model: str) -> Key | None:
        """The version whose drift stands for the model (holding ``_lock``)."""
        keys = [k for k in self._watches if k[0] == model]
        with_monitor = [k for k in keys if self._watches[k].monitor is not None]
        serving = self._serving(model)
        if serving is not None and (model, serving) in with_monitor:
            return (model, serving)
        candidates = with_monitor or keys
        return max(candidates, key=lambda k: self._loaded_order.get(k, -1)) if candidates else None

    def _reading(self, model: str) -> tuple[Key | None, _Reading | None]:
        key = self._primary(model)
        if key is None:
            return None, None
        with self._lock:
            reading = self._readings.get(key)
            watch = self._watches.get(key)
        if reading is None and watch is not None and watch.active:
            reading = self._compute(watch)  # before the first refresh
        return key, reading

    def _failed(self, watch: VersionWatch, exc: BaseException) -> None:
        self.gauges.failed(watch.name, watch.version)
        if watch.failures == 1:  # once per version: the same batch shape fails every time
            log.warning("drift_observe_failed", model=watch.name, version=watch.version,
                        error=repr(exc), note="predictions are served; later failures are "
                        "counted in ml_drift_observe_failures_total only")  # fmt: skip


def _not_watched(model: str, version: str | None, *, served: bool) -> NotFoundError:
    what = f"version {version} of model '{model}'" if version else f"model '{model}'"
    if version is not None and not served:
        return NotFoundError(
            f"{what} is not loaded on this server; load it (POST /v1/models/{model}/load) or "
            "ask for the version it serves"
        )
    return NotFoundError(
        f"No drift is watched for {what}: no served version has a reference profile; upload "
        f"one with `sibyl monitoring profile {model} <version> --data reference.csv` "
        f"(PUT /v1/monitoring/models/{model}/versions/<version>/profile)"
    )


def wire_drift(
    settings: Settings, registry: Any, manager: ModelManager, metrics: Metrics
) -> DriftService | None:
    """The drift service as a serving hook of ``manager`` (``None`` when ``drift.enabled`` is
    off: nothing on the serving path)."""
    if not settings.drift.enabled:
        return None

    def serving(model: str) -> str | None:
        served = manager.production(model)
        return served.version if served is not None else None

    drift = DriftService(settings.drift, registry, metrics.registry, serving_version=serving)
    manager.add_serving_hook(drift)
    return drift


__all__ = ["DriftService", "wire_drift"]

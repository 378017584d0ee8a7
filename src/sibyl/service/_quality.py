"""QualityService: live quality of every served model version from delayed ground truth.

Every ``quality.interval_s`` it (1) attributes feedback received in the last hour whose
prediction has been logged since the feedback arrived (:meth:`Store.attribute_feedback`), then
(2) for each served model and
each window of ``quality.windows`` reads the ground truth of the predictions made in that
window — by *prediction* time, so a label arriving days later updates the window its
prediction fell in — computes every version's report (:mod:`sibyl.monitoring.quality`) and
exports the gauges ``ml_model_accuracy{model,version,window}``, ``ml_model_precision``,
``ml_model_recall``, ``ml_model_f1``, ``ml_model_auc``, ``ml_model_log_loss``, ``ml_model_mae``,
``ml_model_rmse``, ``ml_model_labelled_rows`` and ``ml_model_label_coverage``. A metric that
is undefined (no labels yet, a regressor's accuracy) has no series; series of versions that
left every window are removed.

Thread safety: :meth:`current` is called from other threads (the alert engine's evaluation
thread) and may block on the store; everything else runs on the event loop, store work in
worker threads. Reports are cached per (model, window) for ``interval_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Gauge

from sibyl.errors import NotFoundError, SibylError
from sibyl.monitoring.alerts import format_duration, parse_duration
from sibyl.monitoring.quality import (
    CURRENT_KEYS,
    QualityReport,
    build_reports,
    empty_report,
)
from sibyl.service._manager import ModelManager
from sibyl.settings import QualitySettings
from sibyl.store import Store

log = structlog.get_logger("sibyl.quality")

GAUGES = {
    "accuracy": "Share of labelled rows predicted right (classifiers).",
    "precision": "Precision (binary: of the second class; multi-class: macro).",
    "recall": "Recall (binary: of the second class; multi-class: macro).",
    "f1": "F1 score (binary: of the second class; multi-class: macro).",
    "auc": "ROC AUC from logged probabilities (multi-class: one-vs-rest macro).",
    "log_loss": "Log loss of the logged probabilities.",
    "mae": "Mean absolute error (regressors).",
    "rmse": "Root mean squared error (regressors).",
    "labelled_rows": "Predicted rows with ground truth.",
    "label_coverage": "Share of predicted rows with ground truth.",
}
"""Metric → help of its gauge ``ml_model_<metric>{model,version,window}``."""
ATTRIBUTE_HORIZON_S = 3600.0
"""Each refresh stores the attribution of feedback received this recently (older feedback whose
prediction is logged even later is still joined at query time, at a higher cost)."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Gauges:
    """The quality gauges, and the label sets set by the last refresh."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        labels = ["model", "version", "window"]
        self.gauges = {
            name: Gauge(f"ml_model_{name}", text + " Over a window of prediction time.",
                        labels, registry=registry)
            for name, text in GAUGES.items()
        }  # fmt: skip
        self._set: set[tuple[str, tuple[str, str, str]]] = set()

    def update(self, reports: Mapping[tuple[str, str], QualityReport]) -> None:
        """Set every gauge from ``reports`` (``(window label, any key)`` → one version's report)
        and remove the series this update did not set."""
        fresh: set[tuple[str, tuple[str, str, str]]] = set()
        for (window, _), report in reports.items():
            labels = (report.model, report.version, window)
            values: dict[str, float | None] = {**report.metrics}
            values["labelled_rows"] = float(report.labelled_rows)
            values["label_coverage"] = report.coverage
            for name, gauge in self.gauges.items():
                value = values.get(name)
                if value is not None:
                    gauge.labels(*labels).set(value)
                    fresh.add((name, labels))
        for name, labels in self._set - fresh:
            with contextlib.suppress(KeyError):
                self.gauges[name].remove(*labels)
        self._set = fresh


class QualityService:
    """Realised quality per model version over sliding windows of prediction time."""

    def __init__(
        self,
        store: Store,
        manager: ModelManager,
        settings: QualitySettings | None = None,
        *,
        registry: CollectorRegistry | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.manager = manager
        self.settings = settings or QualitySettings()
        self.windows = [
            (w, parse_duration(w, field="quality.windows")) for w in self.settings.windows
        ]
        """``(label, seconds)`` of every configured window."""
        self.clock = clock
        """Now, aware UTC (tests pass a fake one)."""
        self._gauges = _Gauges(registry)
        self._cache: dict[tuple[str, float], tuple[float, dict[str, QualityReport]]] = {}
        self._lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None

    # ---- life cycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the periodic refresh (when ``quality.enabled``)."""
        if self.settings.enabled:
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._loop(self._stopping), name="sibyl-quality")

    async def stop(self) -> None:
        """Stop refreshing (a refresh under way finishes first: it uses the store)."""
        if self._task is not None and self._stopping is not None:
            self._stopping.set()
            await self._task
            self._task = None

    async def _loop(self, stopping: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.interval_s)
                return
            try:
                await self.refresh()
            except SibylError as exc:  # the store is down: keep the last gauges
                log.warning("quality_refresh_failed", error=exc.message)
            except Exception:  # a bug must not end the refresher silently
                log.exception("quality_refresh_failed")

    async def refresh(self) -> None:
        """Attribute pending feedback, recompute every served model's windows, set the gauges."""
        models = self.manager.model_names()
        tasks = {m: self.known_tasks(m) for m in models}
        await asyncio.to_thread(self._refresh, models, tasks)

    def _refresh(self, models: list[str], tasks: dict[str, dict[str, str]]) -> None:
        now = self.clock()
        since = now - timedelta(seconds=ATTRIBUTE_HORIZON_S)
        attributed = self.store.attribute_feedback(since=since)
        if attributed:
            log.debug("feedback_attributed", rows=attributed)
        flat: dict[tuple[str, str], QualityReport] = {}
        for model in models:
            for label, seconds in self.windows:
                reports = self.compute(model, seconds, now=now, tasks=tasks[model])
                for version, report in reports.items():
                    flat[(label, f"{model}\0{version}")] = report
        self._gauges.update(flat)

    # ---- reports -------------------------------------------------------------------------

    def compute(
        self,
        model: str,
        window_s: float,
        *,
        version: str | None = None,
        now: datetime | None = None,
        tasks: Mapping[str, str] | None = None,
    ) -> dict[str, QualityReport]:
        """Version → report over predictions made in ``[now - window_s, now)`` (blocking; one
        store read). Cached for :meth:`current` when computed for every version."""
        until = now or self.clock()
        since = until - timedelta(seconds=window_s)
        data = self.store.labelled_predictions(
            model, since=since, until=until, version=version, limit=self.settings.max_rows
        )
        reports = build_reports(data, model, window_s, since, until, tasks)
        if version is None:
            with self._lock:
                self._cache[(model, window_s)] = (time.monotonic(), reports)
        return reports

    def current(self, model: str, window_s: float) -> dict[str, float | None]:
        """Quality of ``model``'s current production version over the last ``window_s``
        seconds: accuracy, f1, auc, log_loss, mae, rmse (``None`` when undefined) and
        labelled_rows. Safe from any thread; may block on the store (a report younger than
        ``interval_s`` is reused)."""
        version = self.production_version(model)
        if version is None:
            return {**dict.fromkeys(CURRENT_KEYS), "labelled_rows": 0.0}
        with self._lock:
            cached = self._cache.get((model, window_s))
        if cached is not None and time.monotonic() - cached[0] < self.settings.interval_s:
            reports = cached[1]
        else:
            reports = self.compute(model, window_s)
        report = reports.get(version)
        if report is None:
            return {**dict.fromkeys(CURRENT_KEYS), "labelled_rows": 0.0}
        return report.current()

    async def report(
        self, model: str, window_s: float, version: str | None = None
    ) -> dict[str, Any]:
        """JSON for ``GET /v1/monitoring/models/{model}/quality``: every version's report over
        the window (or only ``version``'s). ``NotFoundError`` for an unknown model."""
        self.check_model(model)
        tasks = self.known_tasks(model)
        now = self.clock()
        reports = await asyncio.to_thread(
            self.compute, model, window_s, version=version, now=now, tasks=tasks
        )
        if version is not None and version not in reports:
            since = now - timedelta(seconds=window_s)
            reports = {version: empty_report(model, version, window_s, since, now, "unknown")}
        return {
            "model": model,
            "window": format_duration(window_s),
            "window_s": window_s,
            "production_version": self.production_version(model),
            "versions": [r.to_dict() for r in reports.values()],
        }

    # ---- models --------------------------------------------------------------------------

    def check_model(self, model: str) -> None:
        """``NotFoundError`` unless ``model`` is registered."""
        if not self.manager.known(model):
            raise NotFoundError(
                f"Model '{model}' is not registered in the registry this server watches; "
                "list the models with GET /v1/models"
            )

    def production_version(self, model: str) -> str | None:
        """The version answering unpinned requests (else the registry's production alias)."""
        served = self.manager.production(model)
        if served is not None:
            return served.version
        aliases = self.manager.status(model).get("aliases") or {}
        found = aliases.get("production")
        return None if found is None else str(found)

    def known_tasks(self, model: str) -> dict[str, str]:
        """Version → task (classifier / regressor) of the loaded versions of ``model``."""
        out = {}
        for served in self.manager.pool.versions(model):
            task = served.loaded.task.value
            if task in ("classifier", "regressor"):
                out[served.version] = task
        return out

"""``AlertService``: the alert engine wired to a running sibyl.

* **Metrics the rules read** (``labels={"model": …}``, the rule's window in seconds):

  ==================  =====================================================================
  ``success_rate``    :class:`RequestWindows` — the share of the model's requests that
                      succeeded over the window (caller errors excluded), this process
  ``latency_p95_ms``  :class:`RequestWindows` — p95 server latency over the window
  ``drift_score_max`` the largest drift score of the model's watched version
                      (:meth:`DriftService.drift_score_max`): the drift monitor's own window
                      (``drift.window_rows``), not the rule's
  ``accuracy_drop``   the reference accuracy of the version answering the model's unpinned
                      traffic (its MLflow run metric ``accuracy``, else ``val_accuracy``,
                      ``test_accuracy``) minus the live accuracy from labelled feedback over
                      the window (``container.quality.current(model, window_s)["accuracy"]``);
                      ``None`` when either is missing
  ==================  =====================================================================

* **Default rules** for every model once a version of it answers unpinned traffic
  (``alerts.default_rules``), installed in a worker thread; existing rules of those names are
  left alone (disable a default instead of deleting it: it would come back at the next start).
* **Prometheus**: ``ml_alert_notifications_total{channel,outcome}``,
  ``ml_alert_evaluation_failures_total{rule}`` and ``ml_alerts{state,severity}`` (pending and
  firing alerts, read from the engine at scrape time).
* Rules are kept in sibyl's store (shared by replicas); the engine evaluates only where
  ``alerts.enabled`` — elsewhere :meth:`active_alerts` reads the states the evaluating replica
  persisted.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily, Metric

from sibyl.monitoring import Metrics
from sibyl.monitoring.alerts import (
    ACCURACY_DROP,
    DRIFT_SCORE_MAX,
    LATENCY_P95_MS,
    SUCCESS_RATE,
    Alert,
    AlertSettings,
    AlertState,
    AlertStateStore,
    DeliveryOutcome,
    MetricFunctions,
    RuleRepository,
    Severity,
    build_alert_engine,
    get_rule_repository,
)
from sibyl.service._drift import DriftService
from sibyl.service._manager import ModelManager
from sibyl.service._request_windows import RequestWindows
from sibyl.service._served import ServedVersion
from sibyl.settings import Settings

log = structlog.get_logger(__name__)
REFERENCE_METRICS = ("accuracy", "val_accuracy", "test_accuracy")
"""Run metrics read as a version's reference accuracy, first found wins."""


class AlertService:
    """Alert rules evaluated over this server's metrics (see the module docstring)."""

    def __init__(
        self,
        settings: AlertSettings,
        repository: RuleRepository,
        metrics: Metrics,
        registry: Any,
        *,
        drift: DriftService | None = None,
        serving_version: Callable[[str], str | None] = lambda _model: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.repository = repository
        self.requests = RequestWindows(metrics)
        self._drift = drift
        self.quality: Any = None
        """The live-quality service (``container.quality``: ``current(model, window_s)``), bound
        by ``Container.start``; ``None``: ``accuracy_drop`` has no data."""
        self._registry, self._serving = registry, serving_version
        self._references: dict[tuple[str, str], float | None] = {}
        self._lock = threading.Lock()
        self._models: set[str] = set()
        self._installed: set[str] = set()
        self._started = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self.source = MetricFunctions({
            SUCCESS_RATE: lambda labels, w: self.requests.success_rate(labels.get("model"), w),
            LATENCY_P95_MS: lambda labels, w: self.requests.latency_ms(labels.get("model"), w),
            DRIFT_SCORE_MAX: self._drift_score,
            ACCURACY_DROP: self._accuracy_drop,
        })  # fmt: skip
        prom = metrics.registry
        self.notifications = Counter(
            "ml_alert_notifications",
            "Alert notifications per channel by outcome (sent, retried, failed, dropped).",
            ["channel", "outcome"],
            registry=prom,
        )
        self.evaluation_failures = Counter(
            "ml_alert_evaluation_failures",
            "Alert rule evaluations whose metric source raised (the rule had no data).",
            ["rule"],
            registry=prom,
        )
        self.engine = build_alert_engine(
            settings, repository, self.source, on_delivery=self._delivered,
            on_evaluation=self._evaluated, clock=clock,
        )  # fmt: skip
        prom.register(_AlertsCollector(self))

    # ---- life cycle ------------------------------------------------------------------------

    def on_production(self, new: ServedVersion, old: ServedVersion | None) -> bool:
        """Manager listener: a model has a serving version → its default rules."""
        if self.settings.default_rules and new.name not in self._models:
            self._models.add(new.name)
            if self._started:
                self._spawn(asyncio.to_thread(self.install_defaults, [new.name]))
        return False

    def install_defaults(self, models: Iterable[str]) -> None:
        """Add the default rules of ``models`` that do not exist yet (blocking)."""
        for model in models:
            if model in self._installed:
                continue
            try:
                added = self.engine.install_default_rules(model)
            except Exception:  # the store is down: retried at the next start
                log.exception("alert_default_rules_failed", model=model)
                continue
            self._installed.add(model)
            if added:
                log.info("alert_default_rules", model=model, rules=[r.name for r in added])

    async def start(self) -> None:
        """Install pending default rules; evaluate when ``alerts.enabled``."""
        self._started = True
        if self.settings.default_rules:
            await asyncio.to_thread(self.install_defaults, sorted(self._models))
        if self.settings.enabled:
            await self.engine.start()

    async def stop(self) -> None:
        """Stop evaluating; deliver what is queued (bounded)."""
        for task in list(self._tasks):
            task.cancel()
        await self.engine.stop()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- reading ---------------------------------------------------------------------------

    def active_alerts(
        self, *, model: str | None = None, states: Iterable[AlertState] | None = None
    ) -> list[Alert]:
        """Pending and firing alerts (or ``states``): the engine's when it evaluates here,
        else the states the evaluating replica stored (blocking then)."""
        if self.settings.enabled:
            return self.engine.active_alerts(model=model, states=states)
        wanted = set(states or (AlertState.PENDING, AlertState.FIRING))
        stored = self.repository.load_alerts() if isinstance(
            self.repository, AlertStateStore) else []  # fmt: skip
        return [a for a in stored if a.state in wanted
                and (model is None or a.labels.get("model") == model)]  # fmt: skip

    # ---- metric sources --------------------------------------------------------------------

    def _drift_score(self, labels: Mapping[str, str], window_s: float) -> float | None:
        model = labels.get("model")
        if self._drift is None or model is None:
            return None
        return self._drift.drift_score_max(model)

    def _accuracy_drop(self, labels: Mapping[str, str], window_s: float) -> float | None:
        model = labels.get("model")
        version = self._serving(model) if model is not None else None
        if model is None or version is None:
            return None
        reference = self.reference_accuracy(model, version)
        live = self._live_accuracy(model, window_s)
        return None if reference is None or live is None else reference - live

    def reference_accuracy(self, model: str, version: str) -> float | None:
        """The version's accuracy at registration (:data:`REFERENCE_METRICS`), cached."""
        key = (model, version)
        with self._lock:
            if key in self._references:
                return self._references[key]
        value = None
        try:
            info = self._registry.get_version(model, version)
            if info.run_id:
                logged = self._registry.client.get_run(info.run_id).data.metrics
                value = next((float(logged[m]) for m in REFERENCE_METRICS if m in logged), None)
        except Exception:  # registry down: no reference this time, asked again next time
            log.warning("alert_reference_accuracy_unavailable", model=model, version=version)
            return None
        with self._lock:
            self._references[key] = value
        return value

    def _live_accuracy(self, model: str, window_s: float) -> float | None:
        current = getattr(self.quality, "current", None)
        if current is None:
            return None
        window = current(model, window_s)
        value = window.get("accuracy") if isinstance(window, Mapping) else getattr(
            window, "accuracy", None)  # fmt: skip
        return None if value is None else float(value)

    # ---- hooks -----------------------------------------------------------------------------

    def _delivered(self, channel: str, outcome: DeliveryOutcome) -> None:
        self.notifications.labels(channel, str(outcome)).inc()

    def _evaluated(self, rule: str, ok: bool) -> None:
        if not ok:
            self.evaluation_failures.labels(rule).inc()


class _AlertsCollector:
    """``ml_alerts{state,severity}``: pending and firing alerts now, zeros included."""

    def __init__(self, service: AlertService) -> None:
        self._service = service

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("ml_alerts", "Active alerts by state and severity.",
                                labels=["state", "severity"])  # fmt: skip

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("ml_alerts", "Active alerts by state and severity.",
                                   labels=["state", "severity"])  # fmt: skip
        counts = {(s, v): 0 for s in (AlertState.PENDING, AlertState.FIRING) for v in Severity}
        if self._service.settings.enabled:  # a non-evaluating replica reports nothing
            for alert in self._service.engine.active_alerts():
                key = (alert.state, alert.severity)
                counts[key] = counts.get(key, 0) + 1
        for (state, severity), n in counts.items():
            family.add_metric([state.value, severity.value], n)
        yield family


def wire_alerts(
    settings: Settings,
    store: object,
    registry: Any,
    manager: ModelManager,
    metrics: Metrics,
    drift: DriftService | None,
) -> AlertService:
    """The alert service over the store's rule tables (in memory for a store without a SQL
    engine), given every model the manager serves."""
    repository = get_rule_repository(getattr(store, "engine", None))
    alerts = AlertService(
        settings.alerts, repository, metrics, registry, drift=drift,
        serving_version=lambda model: _serving(manager, model),
    )  # fmt: skip
    manager.on_production(alerts.on_production)
    return alerts


def _serving(manager: ModelManager, model: str) -> str | None:
    served = manager.production(model)
    return served.version if served is not None else None


__all__ = ["REFERENCE_METRICS", "AlertService", "wire_alerts"]

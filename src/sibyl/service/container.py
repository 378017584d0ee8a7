"""The one composition root: builds registry, metrics, model manager and service from settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from sibyl.cache import PredictionCache, get_cache
from sibyl.jobs import JobSystem
from sibyl.monitoring import Metrics
from sibyl.monitoring.predlog import PredictionLog, wire_prediction_log
from sibyl.registry import ModelRegistry
from sibyl.service._alerts import AlertService, wire_alerts
from sibyl.service._bandits import BanditBook, wire_bandits
from sibyl.service._canary import CanaryController, wire_canary
from sibyl.service._drift import DriftService, wire_drift
from sibyl.service._ensemble_book import EnsembleBook, wire_ensembles
from sibyl.service._experiments import ExperimentService
from sibyl.service._fallbacks import Fallbacks
from sibyl.service._gate import ShadowGate
from sibyl.service._jobmodels import start_job_workers
from sibyl.service._manager import ModelManager
from sibyl.service._outcomes import OutcomeWriter
from sibyl.service._predict import PredictionService
from sibyl.service._quality import QualityService
from sibyl.service._shadow import ShadowService, wire_shadows
from sibyl.settings import Settings
from sibyl.store import get_store


@dataclass(slots=True)
class Container:
    """Everything a running sibyl needs, wired once."""

    settings: Settings
    registry: ModelRegistry
    metrics: Metrics
    manager: ModelManager
    service: PredictionService
    experiments: ExperimentService
    cache: PredictionCache | None = None
    """The prediction cache (``None`` when ``cache.enabled`` is off)."""
    bandits: BanditBook | None = None
    ensembles: EnsembleBook | None = None
    canary: CanaryController | None = None
    shadows: ShadowService | None = None
    gate: ShadowGate | None = None
    """The shadow promotion gate (``None`` when no model is in ``promotion_gates``)."""
    prediction_log: PredictionLog | None = None
    """Every prediction request, written to the store (``None`` when
    ``prediction_log.enabled`` is off)."""
    drift: DriftService | None = None
    """Drift and label-free accuracy of served versions (``None`` when ``drift.enabled`` is
    off)."""
    alerts: AlertService | None = None
    """Alert rules and their engine (evaluating only when ``alerts.enabled``)."""
    quality: QualityService | None = None
    """Live quality from feedback joined to the prediction log (gauges refreshed only when
    ``quality.enabled``)."""
    jobs: JobSystem | None = None
    """Background jobs: submission and the in-process workers (``jobs.workers``)."""

    async def start(self) -> None:
        """Preload models, migrate the store and load the running experiments, start watching."""
        # the store's migration (~0.1 s on a new SQLite file, ~3 ms at head) runs in a thread
        # while models preload; nothing is served before both are done
        await asyncio.gather(self.experiments.start(), self.manager.start())
        if self.prediction_log is not None:
            self.prediction_log.start()  # after the migration: its first write finds the table
        if self.shadows is not None:
            self.shadows.start()
        if self.canary is not None:
            await self.canary.start()
        if self.drift is not None:
            await self.drift.start()
        if self.quality is not None:
            await self.quality.start()
        if self.alerts is not None:
            self.alerts.quality = getattr(self, "quality", None)  # None until QUALITY is wired
            await self.alerts.start()
        if self.jobs is not None:  # after the migration and the preload
            await start_job_workers(self.jobs, self.manager, self.registry, self.settings)

    async def stop(self) -> None:
        """Drain and unload every model, stop watching."""
        if self.jobs is not None:  # first: running batch jobs hold served versions
            await asyncio.to_thread(self.jobs.stop)
        if self.alerts is not None:
            await self.alerts.stop()
        if self.drift is not None:
            await self.drift.stop()
        if self.canary is not None:
            await self.canary.stop()
        if self.quality is not None:
            await self.quality.stop()  # before the store closes
        for book in (self.bandits, self.ensembles):
            if book is not None:
                await book.close()
        if self.shadows is not None:
            await self.shadows.stop()  # mirrors in flight hold versions the manager drains
        await self.manager.stop()
        if self.prediction_log is not None:  # no request left to log; the store is still open
            await asyncio.to_thread(self.prediction_log.close)
        await self.experiments.stop()
        if self.cache is not None:
            self.cache.close()


def build_container(settings: Settings) -> Container:
    """Wire the serving stack from ``settings`` (no I/O until ``start``)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = ModelRegistry(
        settings.tracking_uri(),
        registry_uri=settings.registry.registry_uri,
        artifact_location=settings.artifact_root(),
    )
    metrics = Metrics()
    cache = build_cache(settings, metrics)
    manager = ModelManager(registry, settings, metrics, cache)
    store = get_store(settings.store.url, data_dir=settings.data_dir)
    writer = OutcomeWriter(
        store,
        flush_interval_s=settings.store.flush_interval_s,
        flush_rows=settings.store.flush_rows,
        registry=metrics.registry,
    )
    experiments = ExperimentService(
        store, writer, refresh_interval_s=settings.store.refresh_interval_s
    )
    fallbacks = Fallbacks(manager, metrics, settings)  # raises on a malformed chain
    service = PredictionService(manager, metrics, settings, experiments, fallbacks)
    prediction_log = wire_prediction_log(settings, store, manager, metrics.registry)
    service.prediction_log = prediction_log
    bandits = wire_bandits(experiments, service)
    drift = wire_drift(settings, registry, manager, metrics)
    alerts = wire_alerts(settings, store, registry, manager, metrics, drift)
    ensembles = wire_ensembles(experiments, service, manager, metrics.registry)
    shadows, gate = wire_shadows(
        settings, experiments, service, manager, registry, metrics.registry
    )
    return Container(
        settings, registry, metrics, manager, service, experiments, cache,
        bandits=bandits, ensembles=ensembles, shadows=shadows, gate=gate,
        prediction_log=prediction_log,
        canary=wire_canary(settings, experiments, registry, manager, metrics.registry),
        drift=drift, alerts=alerts,
        quality=QualityService(store, manager, settings.quality, registry=metrics.registry),
        jobs=JobSystem(settings, store, registry),
    )  # fmt: skip


def build_cache(settings: Settings, metrics: Metrics) -> PredictionCache | None:
    """The prediction cache ``settings.cache`` describes, counted in ``metrics``."""
    s = settings.cache
    if not s.enabled:
        return None
    url = s.url or f"memory://?max_entries={s.max_entries}"
    if "ttl_s=" not in urlsplit(url).query:  # a ttl_s in the URL wins
        url += ("&" if "?" in url else "?") + f"ttl_s={s.ttl_s}"
    return get_cache(url, on_result=metrics.on_cache_result)

"""The one composition root: builds registry, metrics, model manager and service from settings."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlsplit

from sibyl.cache import PredictionCache, get_cache
from sibyl.monitoring import Metrics
from sibyl.registry import ModelRegistry
from sibyl.service._bandits import BanditBook, wire_bandits
from sibyl.service._canary import CanaryController, wire_canary
from sibyl.service._ensemble_book import EnsembleBook, wire_ensembles
from sibyl.service._experiments import ExperimentService
from sibyl.service._fallbacks import Fallbacks
from sibyl.service._gate import ShadowGate
from sibyl.service._manager import ModelManager
from sibyl.service._outcomes import OutcomeWriter
from sibyl.service._predict import PredictionService
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

    async def start(self) -> None:
        """Preload models, migrate the store and load the running experiments, start watching."""
        # the store's migration (~0.1 s on a new SQLite file, ~3 ms at head) runs in a thread
        # while models preload; nothing is served before both are done
        await asyncio.gather(self.experiments.start(), self.manager.start())
        if self.shadows is not None:
            self.shadows.start()
        if self.canary is not None:
            await self.canary.start()

    async def stop(self) -> None:
        """Drain and unload every model, stop watching."""
        if self.canary is not None:
            await self.canary.stop()
        for book in (self.bandits, self.ensembles):
            if book is not None:
                await book.close()
        if self.shadows is not None:
            await self.shadows.stop()  # mirrors in flight hold versions the manager drains
        await self.manager.stop()
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
    bandits = wire_bandits(experiments, service)
    ensembles = wire_ensembles(experiments, service, manager, metrics.registry)
    shadows, gate = wire_shadows(
        settings, experiments, service, manager, registry, metrics.registry
    )
    return Container(
        settings, registry, metrics, manager, service, experiments, cache,
        bandits=bandits, ensembles=ensembles, shadows=shadows, gate=gate,
        canary=wire_canary(settings, experiments, registry, manager, metrics.registry),
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

"""The one composition root: builds registry, metrics, model manager and service from settings."""

from __future__ import annotations

from dataclasses import dataclass

from sibyl.monitoring import Metrics
from sibyl.registry import ModelRegistry
from sibyl.service._manager import ModelManager
from sibyl.service._predict import PredictionService
from sibyl.settings import Settings


@dataclass(slots=True)
class Container:
    """Everything a running sibyl needs, wired once."""

    settings: Settings
    registry: ModelRegistry
    metrics: Metrics
    manager: ModelManager
    service: PredictionService

    async def start(self) -> None:
        """Preload models and start watching the registry."""
        await self.manager.start()

    async def stop(self) -> None:
        """Drain and unload every model, stop watching."""
        await self.manager.stop()


def build_container(settings: Settings) -> Container:
    """Wire the serving stack from ``settings`` (no I/O until ``start``)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registry = ModelRegistry(
        settings.tracking_uri(),
        registry_uri=settings.registry.registry_uri,
        artifact_location=settings.artifact_root(),
    )
    metrics = Metrics()
    manager = ModelManager(registry, settings, metrics)
    service = PredictionService(manager, metrics, settings)
    return Container(settings, registry, metrics, manager, service)

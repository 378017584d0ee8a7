"""The registry side of a canary: who holds production, preparing and promoting a version."""

from __future__ import annotations

import asyncio
from typing import Protocol

from sibyl.registry import AliasChange, ModelRegistry, Stage
from sibyl.service._manager import ModelManager


class Promoter(Protocol):
    """The registry side of a canary (:class:`RegistryPromoter` on a real registry)."""

    async def production_version(self, model: str) -> str:
        """The version the production alias points at; ``NotFoundError`` when there is none."""
        ...

    async def prepare(self, model: str, version: str) -> None:
        """Check that ``version`` exists and load and warm it before traffic reaches it
        (``NotFoundError``, ``ModelLoadError``)."""
        ...

    async def promote(self, model: str, version: str) -> None:
        """Move the production alias to ``version`` and serve it here; idempotent."""
        ...


class RegistryPromoter:
    """:class:`Promoter` over the MLflow registry façade and this replica's model manager."""

    def __init__(self, registry: ModelRegistry, manager: ModelManager) -> None:
        self._registry = registry
        self._manager = manager

    async def production_version(self, model: str) -> str:
        info = await asyncio.to_thread(self._registry.resolve, model, Stage.PRODUCTION.value)
        return info.version

    async def prepare(self, model: str, version: str) -> None:
        await self._manager.load(model, version)

    async def promote(self, model: str, version: str) -> None:
        result = await asyncio.to_thread(self._registry.promote, model, version)
        change = AliasChange(model, Stage.PRODUCTION.value, result.previous, version)
        await self._manager.apply_change(change)  # serve it here now; the watcher tells others

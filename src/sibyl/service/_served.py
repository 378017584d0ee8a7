"""A loaded, warm version with its batcher: the unit the model pool holds."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from sibyl.batching import AdaptiveBatcher
from sibyl.errors import OverloadedError
from sibyl.monitoring import VersionMetrics
from sibyl.routing import CircuitBreaker
from sibyl.runtime.loader import LoadedModel
from sibyl.service._cached import CachedBatcher
from sibyl.service._resilience import describe_circuit


@dataclass(eq=False, slots=True)
class ServedVersion:
    """One version ready to answer: model, batcher, metrics and usage accounting.

    ``inflight`` counts requests holding this version (between lookup and answer); a version is
    closed only after it is out of every map *and* ``inflight`` is back to zero.
    """

    loaded: LoadedModel
    batcher: AdaptiveBatcher | CachedBatcher
    metrics: VersionMetrics
    max_concurrency: int = 64
    inflight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    breaker: CircuitBreaker | None = None
    """This version's circuit breaker (``None``: breakers are off for the model)."""

    @property
    def name(self) -> str:
        """Registered model name."""
        return self.loaded.name

    @property
    def version(self) -> str:
        """Registry version number."""
        return self.loaded.version

    def admit(self) -> None:
        """Raise ``OverloadedError`` when ``max_concurrency`` requests are already admitted."""
        if self.inflight >= self.max_concurrency:
            raise OverloadedError(
                f"model '{self.name}' version {self.version} has {self.inflight} requests in "
                "flight (batching.max_concurrency); retry later",
                retry_after=1,
            )

    def acquire(self) -> None:
        """A request starts using this version (after :meth:`admit`)."""
        self.inflight += 1
        self.last_used = time.monotonic()
        self.idle.clear()

    def release(self) -> None:
        """A request is done with this version."""
        self.inflight -= 1
        if self.inflight == 0:
            self.idle.set()

    async def close(self) -> None:
        """Wait for in-flight requests (drain), then stop the batcher."""
        if self.inflight:
            await self.idle.wait()
        await self.batcher.close()

    def describe(self) -> dict[str, Any]:
        """Status for ``GET /v1/models/{name}``."""
        m = self.loaded
        return {
            "version": m.version,
            "flavor": m.flavor,
            "task": m.task.value,
            "engine": m.engine.engine.value,
            "engine_reason": m.engine.reason,
            "max_abs_diff": m.engine.max_abs_diff,
            "memory_bytes": m.memory_bytes,
            "load_seconds": round(m.load_seconds, 3),
            "inflight": self.inflight,
            "inputs": m.schema.describe(),
            "batching": self.batcher.debug_state(),
            "circuit": describe_circuit(self.breaker),
        }

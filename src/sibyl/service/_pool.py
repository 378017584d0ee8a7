"""ModelPool: every loaded version of a process, LRU-evicted by count and measured memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from sibyl.monitoring import Metrics
from sibyl.service._served import ServedVersion
from sibyl.settings import RuntimeSettings

log = structlog.get_logger(__name__)
Key = tuple[str, str]


class ModelPool:
    """Holds served versions by ``(name, version)``.

    Eviction keeps ``len(pool) ≤ max_models`` and the sum of measured memory ≤ the budget,
    dropping the least recently used versions first, production versions last, and never the
    version just added. Eviction drains the victim before closing it. Event-loop only.
    """

    def __init__(
        self,
        settings: RuntimeSettings,
        metrics: Metrics,
        on_remove: Callable[[ServedVersion], None] | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._on_remove = on_remove
        self._items: dict[Key, ServedVersion] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def get(self, name: str, version: str) -> ServedVersion | None:
        """The served version, or ``None`` when it is not loaded."""
        return self._items.get((name, version))

    def versions(self, name: str | None = None) -> list[ServedVersion]:
        """Loaded versions (of one model when ``name`` is given)."""
        return [sv for sv in self._items.values() if name is None or sv.name == name]

    def add(self, sv: ServedVersion, protected: set[Key], pinned: set[Key] | None = None) -> None:
        """Add a freshly loaded version, then evict others if over a limit.

        ``protected`` versions (production) go last; ``pinned`` ones (required preloads, whose
        eviction would make the server unready) never go.
        """
        self._items[(sv.name, sv.version)] = sv
        self._update_gauges()
        self._evict(keep=(sv.name, sv.version), protected=protected, pinned=pinned or set())

    def remove(self, name: str, version: str) -> ServedVersion | None:
        """Take a version out of the pool and close it in the background (after draining)."""
        sv = self._items.pop((name, version), None)
        if sv is not None:
            if self._on_remove is not None:
                self._on_remove(sv)
            task = asyncio.get_running_loop().create_task(self._close(sv))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            self._update_gauges()
        return sv

    async def close_all(self) -> None:
        """Drain and close everything (shutdown)."""
        for key in list(self._items):
            self.remove(*key)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def wait_closed(self) -> None:
        """Wait for background closes (tests, shutdown)."""
        if self._closing:
            await asyncio.gather(*list(self._closing), return_exceptions=True)

    def memory_bytes(self) -> int:
        """Measured memory of every loaded version."""
        return sum(sv.loaded.memory_bytes for sv in self._items.values())

    def _evict(self, keep: Key, protected: set[Key], pinned: set[Key]) -> None:
        budget = self._settings.memory_budget_mb * 1024 * 1024
        while len(self._items) > self._settings.max_models or (
            self.memory_bytes() > budget and len(self._items) > 1
        ):
            victims = sorted(
                (k for k in self._items if k != keep and k not in pinned),
                key=lambda k: (k in protected, self._items[k].last_used),
            )
            if not victims:
                log.warning(
                    "model_pool_over_limit",
                    loaded=len(self._items),
                    memory_bytes=self.memory_bytes(),
                    reason="every other version is "
                    "a required preload; raise runtime.max_models / memory_budget_mb",
                )
                return
            log.info(
                "model_evicted",
                model=victims[0][0],
                version=victims[0][1],
                loaded=len(self._items),
                memory_bytes=self.memory_bytes(),
            )
            self.remove(*victims[0])

    async def _close(self, sv: ServedVersion) -> None:
        await sv.close()
        self._metrics.forget_version(sv.name, sv.version)
        log.info("model_unloaded", model=sv.name, version=sv.version)

    def _update_gauges(self) -> None:
        self._metrics.active.set(len(self._items))
        for sv in self._items.values():
            self._metrics.memory.labels(sv.name, sv.version).set(sv.loaded.memory_bytes)

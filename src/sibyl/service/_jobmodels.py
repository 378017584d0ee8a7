"""ServingModels: the job system's :class:`~sibyl.jobs.ModelSource` inside ``sibyl serve``.

Jobs run in worker threads; the server's models live on the event loop. A version is loaded
through the server's :class:`ModelManager` (the same loaded predictor, memory and metrics as
online serving), and its rows go through the version's :class:`AdaptiveBatcher` in the LOW
priority lane, ``max_batch_size`` rows per request, a few requests in flight: the batcher
takes HIGH and NORMAL (online) requests first, so an online request waits at most for one
low-priority model call. The prediction cache is bypassed (batch rows would evict the online
working set). A full LOW lane (429) is waited out, never failed.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from sibyl.batching import Priority
from sibyl.errors import OverloadedError
from sibyl.jobs import ScoringModel, concat_predictions
from sibyl.runtime.schema import InputSchema
from sibyl.service._cached import CachedBatcher

if TYPE_CHECKING:
    from sibyl.jobs import JobSystem
    from sibyl.registry import ModelRegistry
    from sibyl.runtime.types import Batch, Prediction
    from sibyl.service._manager import ModelManager
    from sibyl.service._served import ServedVersion
    from sibyl.settings import Settings

T = TypeVar("T")
IN_FLIGHT = 2
"""Low-priority requests a job keeps queued per version (enough to keep the model busy)."""
MAX_WAIT_S = 0.2


class ServingModels:
    """:class:`~sibyl.jobs.ModelSource` over the server's model manager (thread-safe)."""

    def __init__(
        self,
        manager: ModelManager,
        registry: ModelRegistry,
        settings: Settings,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.manager = manager
        self.registry = registry
        self.settings = settings
        self.loop = loop

    def resolve(self, model: str, ref: str | None) -> str:
        return self.registry.resolve(model, ref).version

    def open(self, model: str, version: str) -> ScoringModel:
        sv = self._run(self.manager.get(model, version))
        rows = self.settings.batching_for(model).max_batch_size
        return _ServedScoring(self, sv, rows)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the server's loop."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


class _ServedScoring:
    """One served version, predicted through its batcher's LOW lane."""

    def __init__(self, source: ServingModels, sv: ServedVersion, rows_per_call: int) -> None:
        self._source = source
        self.name, self.version = sv.name, sv.version
        self.schema: InputSchema = sv.loaded.schema
        self.task, self.classes = sv.loaded.task, sv.loaded.classes
        self._rows = max(rows_per_call, 1)

    def predict(self, batch: Batch) -> Prediction:
        n = InputSchema.n_rows(batch)
        slices = [_rows(batch, i, i + self._rows) for i in range(0, n, self._rows)]
        pending: list[concurrent.futures.Future[Prediction]] = []
        parts: list[Prediction] = []
        for part in slices:
            pending.append(self._source.submit(self._low(part)))
            if len(pending) >= IN_FLIGHT:
                parts.append(pending.pop(0).result())
        parts.extend(f.result() for f in pending)
        return concat_predictions(parts)

    async def _low(self, batch: Batch) -> Prediction:
        wait = 0.005
        while True:
            sv = self._source.manager.lookup(self.name, self.version)
            if sv is None:  # evicted or swapped out meanwhile: load it again
                sv = await self._source.manager.get(self.name, self.version)
            batcher = sv.batcher.batcher if isinstance(sv.batcher, CachedBatcher) else sv.batcher
            sv.acquire()
            try:
                return await batcher.predict(batch, priority=Priority.LOW)
            except OverloadedError:
                await asyncio.sleep(wait)  # the lane is full, or the version is shutting down
                wait = min(wait * 2, MAX_WAIT_S)
            finally:
                sv.release()


def _rows(batch: Batch, start: int, stop: int) -> Batch:
    if isinstance(batch, np.ndarray):
        return batch[start:stop]
    return batch.iloc[start:stop]


async def start_job_workers(
    jobs: JobSystem, manager: ModelManager, registry: ModelRegistry, settings: Settings
) -> None:
    """Start ``jobs.workers`` in-process job threads scoring with the served models."""
    models = ServingModels(manager, registry, settings, asyncio.get_running_loop())
    await asyncio.to_thread(jobs.start_workers, models)

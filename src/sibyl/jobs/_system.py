"""JobSystem: the job queue, service and (optionally) workers of one process, from settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sibyl.jobs._housekeeping import Housekeeper
from sibyl.jobs._kinds import load_kinds
from sibyl.jobs._queue import JobQueue
from sibyl.jobs._runner import JobRunner
from sibyl.jobs._service import JobService
from sibyl.jobs._workers import WorkerPool

if TYPE_CHECKING:
    from sibyl.jobs._models import ModelSource
    from sibyl.registry import ModelRegistry
    from sibyl.settings import Settings
    from sibyl.store import Store


class JobSystem:
    """What a process needs for jobs: ``service`` to submit and inspect, and — after
    :meth:`start_workers` — worker threads running what the queue hands out.

    No I/O happens until the first submission or :meth:`start_workers`.
    """

    def __init__(
        self, settings: Settings, store: Store, registry: ModelRegistry | None = None
    ) -> None:
        load_kinds(settings.jobs.modules)
        self.settings = settings
        self.store = store
        self.queue = JobQueue(settings.jobs.url, settings.data_dir, settings.jobs.name)
        self.service = JobService(settings, store, self.queue, registry)
        self.pool: WorkerPool | None = None
        self.runner: JobRunner | None = None

    def start_workers(
        self, models: ModelSource, threads: int | None = None, *, nice_threads: bool = True
    ) -> WorkerPool | None:
        """Start ``threads`` (default ``jobs.workers``; 0: none) worker threads in this process,
        scoring with ``models``; returns the pool (``None`` when no thread was asked for)."""
        n = self.settings.jobs.workers if threads is None else threads
        if n <= 0:
            return None
        housekeeper = Housekeeper(self.store, self.queue, self.settings.jobs)
        self.runner = JobRunner(self.settings, self.store, self.queue, models, housekeeper)
        self.queue.bind(self.runner)
        self.pool = WorkerPool(self.queue, housekeeper, self.settings, n, nice_threads=nice_threads)
        self.pool.start()
        return self.pool

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the workers (running jobs go back to the queue) and close the queue."""
        if self.pool is not None:
            self.pool.stop(timeout)
            self.pool = None
        self.queue.close()

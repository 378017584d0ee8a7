"""What a running job sees (:class:`JobContext`, :class:`ChunkContext`) and what a kind's
submit-time check sees (:class:`SubmitContext`).

Cancellation is cooperative: a job calls :meth:`JobContext.check_cancelled` (or reads
:attr:`JobContext.cancelled`) between steps; both only read an in-memory flag that the worker's
lease heartbeat sets (every ``jobs.heartbeat_s``), so checking often is free.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sibyl.store import JobPriority, JobRecord, LeaseClaim

if TYPE_CHECKING:
    from sibyl.jobs._models import ModelSource
    from sibyl.registry import ModelRegistry
    from sibyl.settings import Settings
    from sibyl.store import Store


class JobCancelled(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by :meth:`JobContext.check_cancelled` when the job was cancelled (or its claim
    was taken away); the worker records the job as cancelled."""


class JobInterrupted(Exception):  # noqa: N818
    """Raised by :meth:`JobContext.check_cancelled` when the worker is shutting down; the job
    goes back to the queue without using up an attempt."""


@dataclass(eq=False)
class ActiveClaim:
    """One claim a worker holds (a job or a chunk), renewed by the lease heartbeat."""

    job_id: str
    worker: str
    idx: int | None = None
    progress: float | None = None
    message: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    """Set when the job must stop: cancel asked, claim lost, job no longer running."""
    interrupt: threading.Event = field(default_factory=threading.Event)
    """Set when the worker shuts down."""

    def lease(self) -> LeaseClaim:
        """The claim as the store renews it."""
        return LeaseClaim(self.job_id, self.worker, self.idx, self.progress, self.message)


class JobContext:
    """The job a worker runs, and the process's resources (thread-confined: one per attempt).

    ``settings`` are the process's settings; ``models`` loads the same predictors online
    serving uses (in ``sibyl serve``: the served versions, scored in their low-priority lane);
    ``store`` is sibyl's store.
    """

    def __init__(
        self,
        job: JobRecord,
        claim: ActiveClaim,
        settings: Settings,
        models: ModelSource,
        store: Store,
    ) -> None:
        self.job = job
        self.settings = settings
        self.models = models
        self.store = store
        self._claim = claim

    @property
    def job_id(self) -> str:
        """The job's id."""
        return self.job.id

    @property
    def attempt(self) -> int:
        """1 for the first attempt, 2 for the first retry, …"""
        return self.job.attempts

    @property
    def priority(self) -> JobPriority:
        """The job's queue priority."""
        return self.job.priority

    @property
    def worker(self) -> str:
        """The claim's worker id (host/pid/thread/claim)."""
        return self._claim.worker

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Report progress (0 to 1) and a short message; stored with the next heartbeat."""
        self._claim.progress = min(max(float(fraction), 0.0), 1.0)
        self._claim.message = message

    @property
    def cancelled(self) -> bool:
        """Whether the job should stop now (cancelled, or the worker is shutting down)."""
        return self._claim.stop.is_set() or self._claim.interrupt.is_set()

    def check_cancelled(self) -> None:
        """Raise :class:`JobInterrupted` / :class:`JobCancelled` when the job should stop."""
        if self._claim.interrupt.is_set():
            raise JobInterrupted(f"worker {self.worker} is shutting down")
        if self._claim.stop.is_set():
            raise JobCancelled(f"job {self.job_id} was cancelled")

    def sleep(self, seconds: float) -> None:
        """Wait up to ``seconds``, waking early (and raising) when the job should stop."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._claim.stop.wait(min(left, 0.05))
            self.check_cancelled()
        self.check_cancelled()


class ChunkContext(JobContext):
    """A :class:`JobContext` for one chunk of a fanned-out job (``idx``: its index)."""

    def __init__(self, idx: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idx = idx


@dataclass
class SubmitContext:
    """What a kind's ``validate`` sees at submit time: the settings and the model registry
    (built on first use: importing MLflow takes seconds)."""

    settings: Settings
    _registry: ModelRegistry | None = None

    @property
    def registry(self) -> ModelRegistry:
        """The MLflow registry the settings name."""
        if self._registry is None:
            from sibyl.registry import ModelRegistry

            s = self.settings
            self._registry = ModelRegistry(
                s.tracking_uri(),
                registry_uri=s.registry.registry_uri,
                artifact_location=s.artifact_root(),
            )
        return self._registry

"""The per-process housekeeping thread of job workers.

* **Heartbeat** (every ``jobs.heartbeat_s``): renews the lease of every claim this process
  holds, stores job progress, and stops (``claim.stop``) the claims whose job was cancelled or
  taken away — which is how cooperative cancellation reaches a running job.
* **Reaper** (every ``jobs.lease_s / 2``): asks the store for work lost with a dead worker
  (expired leases, overdue messages, fanned-out jobs never finished) and queues it again.
  Every process running workers reaps; the store's compare-and-set makes them agree.

A store or queue outage is logged and retried at the next tick; it never stops the thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import structlog

from sibyl.jobs._context import ActiveClaim
from sibyl.store import JobPriority, Reaped

if TYPE_CHECKING:
    from sibyl.jobs._queue import JobQueue
    from sibyl.settings import JobsSettings
    from sibyl.store import Store

log = structlog.get_logger(__name__)


class Housekeeper:
    """Heartbeat and reaper of one process (start once, stop once)."""

    def __init__(
        self, store: Store, queue: JobQueue, settings: JobsSettings, *, reap: bool = True
    ) -> None:
        self.store = store
        self.queue = queue
        self.settings = settings
        self._reap = reap
        self._claims: set[ActiveClaim] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_reap = 0.0

    @contextlib.contextmanager
    def holding(self, claim: ActiveClaim) -> Iterator[ActiveClaim]:
        """Renew ``claim``'s lease while the block runs."""
        with self._lock:
            self._claims.add(claim)
        try:
            yield claim
        finally:
            with self._lock:
                self._claims.discard(claim)

    def claims(self) -> list[ActiveClaim]:
        """The claims held now."""
        with self._lock:
            return list(self._claims)

    def interrupt_all(self) -> None:
        """Ask every running job of this process to stop and go back to the queue."""
        for claim in self.claims():
            claim.interrupt.set()

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(
            target=self._loop, name="sibyl-jobs-housekeeper", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (claims still held are left to expire or finish)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            self.tick()

    def tick(self) -> None:
        """One heartbeat (and a reap when one is due)."""
        try:
            self.heartbeat()
            if self._reap and time.monotonic() >= self._next_reap:
                self._next_reap = time.monotonic() + max(self.settings.lease_s / 2, 0.2)
                self.requeue(self.store.reap_jobs(
                    stale_s=self.settings.stale_s, finish_after_s=self.settings.lease_s
                ))  # fmt: skip
        except Exception as exc:
            log.warning("jobs_housekeeping_failed", error=repr(exc))

    def heartbeat(self) -> None:
        """Renew every held claim; stop the ones the store says must stop."""
        claims = self.claims()
        if not claims:
            return
        stop = self.store.renew_leases([c.lease() for c in claims], self.settings.lease_s)
        for claim in claims:
            if claim.job_id in stop:
                claim.stop.set()

    def requeue(self, reaped: Reaped) -> None:
        """Queue again what the reaper recovered."""
        for job in reaped.jobs:
            self.queue.enqueue_job(job.id, job.priority)
        priorities: dict[str, JobPriority] = {}
        for chunk in reaped.chunks:
            if chunk.job_id not in priorities:
                priorities[chunk.job_id] = self.store.get_job(chunk.job_id).priority
            self.queue.enqueue_chunk(chunk.job_id, chunk.idx, priorities[chunk.job_id])
        for job in reaped.finishing:
            self.queue.enqueue_finish(job.id, job.priority)
        if reaped.jobs or reaped.chunks or reaped.failed or reaped.finishing:
            log.info(
                "jobs_recovered",
                jobs=[j.id for j in reaped.jobs],
                chunks=[f"{c.job_id}:{c.idx}" for c in reaped.chunks],
                failed=reaped.failed,
                finishing=[j.id for j in reaped.finishing],
            )

"""The job part of the store contract (:class:`JobStore`) and its SQL implementation
(:class:`SQLJobStore`, a mixin of :class:`~sibyl.store.SQLStore`). Rules of states, claims and
leases: :mod:`sibyl.store._jobs`."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa

from sibyl.store import _jobchunks, _jobs
from sibyl.store._jobs import (
    ChunkRecord,
    JobRecord,
    JobState,
    LeaseClaim,
    NewJob,
    Reaped,
)


class JobStore(Protocol):
    """Durable job records (see :mod:`sibyl.store._jobs` for the life of a job).

    Same thread-safety and failure rules as :class:`~sibyl.store.Store`: every call is one
    transaction; ``NotFoundError`` for an unknown job, ``ConflictError`` for cancelling a
    finished one, ``InvalidInputError`` naming a bad field. Methods taking a ``worker`` are
    compare-and-set on that claim and return ``False`` / ``None`` when it was lost.
    """

    def create_job(self, job: NewJob) -> JobRecord:
        """Store ``job`` as ``queued`` (``enqueued_at`` now)."""
        ...

    def get_job(self, job_id: str) -> JobRecord:
        """The job; ``NotFoundError`` when there is none."""
        ...

    def list_jobs(
        self, *, state: JobState | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs matching every given filter, newest first, at most ``limit`` (≤ 10,000)."""
        ...

    def claim_job(self, job_id: str, worker: str, lease_s: float) -> JobRecord | None:
        """``queued → running`` for ``worker`` with a lease of ``lease_s`` seconds and one more
        attempt; ``None`` when the job is not queued (cancelled, taken, finished)."""
        ...

    def renew_leases(self, claims: Sequence[LeaseClaim], lease_s: float) -> set[str]:
        """Extend each claim's lease to now + ``lease_s`` (storing job progress); returns the ids
        of jobs whose claims must stop (lost, not running, or asked to cancel)."""
        ...

    def finish_job(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        *,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        """End ``worker``'s claim in the terminal ``state`` with its result or error."""
        ...

    def release_job(
        self, job_id: str, worker: str, error: str | None, *, refund: bool = False
    ) -> bool:
        """``running → queued`` again (a retry follows), keeping ``error`` for display;
        ``refund``: the attempt does not count (its worker shut down)."""
        ...

    def cancel_job(self, job_id: str) -> JobRecord:
        """Cancel a queued job (it never runs) or a fanned-out one (its chunks stop) at once;
        ask a running one to stop (``cancel_requested``; cancelled at its worker's next
        check). ``ConflictError`` when the job already finished."""
        ...

    def fan_out(
        self,
        job_id: str,
        worker: str,
        specs: Sequence[Mapping[str, Any]],
        plan: Mapping[str, Any],
    ) -> bool:
        """Split ``worker``'s running job into one pending chunk per spec, sharing ``plan``."""
        ...

    def claim_chunk(
        self, job_id: str, idx: int, worker: str, lease_s: float
    ) -> tuple[JobRecord, ChunkRecord] | None:
        """``pending → running`` for ``worker``; ``None`` when the chunk is not pending or its
        job is not running or is asked to cancel."""
        ...

    def finish_chunk(
        self, job_id: str, idx: int, worker: str, result: Mapping[str, Any]
    ) -> int | None:
        """``running → done``; returns how many chunks of the job are not done yet (exactly
        one caller sees 0), ``None`` when the claim was lost."""
        ...

    def release_chunk(
        self, job_id: str, idx: int, worker: str, error: str, *, final: bool, refund: bool = False
    ) -> bool:
        """``running → pending`` (retry; ``refund``: the attempt does not count) or, ``final``,
        ``→ failed`` together with the job."""
        ...

    def list_chunks(self, job_id: str) -> list[ChunkRecord]:
        """The job's chunks by index (``[]`` when it never fanned out)."""
        ...

    def complete_fan_out(self, job_id: str, result: Mapping[str, Any]) -> bool:
        """``running → succeeded`` for a fanned-out job whose chunks are all done."""
        ...

    def fail_fan_out(self, job_id: str, error: str) -> bool:
        """``running → failed`` for a fanned-out job (its finish step failed)."""
        ...

    def reap_jobs(self, *, stale_s: float, finish_after_s: float) -> Reaped:
        """Recover work lost with a worker (see :func:`sibyl.store._jobchunks.reap`)."""
        ...

    def delete_jobs(self, *, older_than: datetime) -> int:
        """Retention: delete jobs that finished before ``older_than``; returns how many."""
        ...


class SQLJobStore:
    """:class:`JobStore` on SQLAlchemy (mixed into ``SQLStore``, which provides the
    connection helpers and the clock)."""

    _now: Callable[[], datetime]
    _read: Callable[..., AbstractContextManager[sa.Connection]]
    _write: Callable[[], AbstractContextManager[sa.Connection]]

    def create_job(self, job: NewJob) -> JobRecord:
        with self._write() as conn:
            return _jobs.insert(conn, job, self._now())

    def get_job(self, job_id: str) -> JobRecord:
        with self._read() as conn:
            return _jobs.get(conn, job_id)

    def list_jobs(
        self, *, state: JobState | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        with self._read() as conn:
            return _jobs.listing(conn, state, kind, limit)

    def claim_job(self, job_id: str, worker: str, lease_s: float) -> JobRecord | None:
        with self._write() as conn:
            return _jobs.claim(conn, job_id, worker, self._now(), lease_s)

    def renew_leases(self, claims: Sequence[LeaseClaim], lease_s: float) -> set[str]:
        if not claims:
            return set()
        with self._write() as conn:
            return _jobs.renew(conn, claims, self._now(), lease_s)

    def finish_job(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        *,
        result: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> bool:
        with self._write() as conn:
            return _jobs.finish(conn, job_id, worker, state, self._now(), result, error)

    def release_job(
        self, job_id: str, worker: str, error: str | None, *, refund: bool = False
    ) -> bool:
        with self._write() as conn:
            return _jobs.release(conn, job_id, worker, self._now(), error, refund=refund)

    def cancel_job(self, job_id: str) -> JobRecord:
        with self._write() as conn:
            return _jobs.cancel(conn, job_id, self._now())

    def fan_out(
        self,
        job_id: str,
        worker: str,
        specs: Sequence[Mapping[str, Any]],
        plan: Mapping[str, Any],
    ) -> bool:
        with self._write() as conn:
            return _jobchunks.fan_out(conn, job_id, worker, specs, plan, self._now())

    def claim_chunk(
        self, job_id: str, idx: int, worker: str, lease_s: float
    ) -> tuple[JobRecord, ChunkRecord] | None:
        with self._write() as conn:
            return _jobchunks.claim_chunk(conn, job_id, idx, worker, self._now(), lease_s)

    def finish_chunk(
        self, job_id: str, idx: int, worker: str, result: Mapping[str, Any]
    ) -> int | None:
        with self._write() as conn:
            return _jobchunks.finish_chunk(conn, job_id, idx, worker, result, self._now())

    def release_chunk(
        self, job_id: str, idx: int, worker: str, error: str, *, final: bool, refund: bool = False
    ) -> bool:
        with self._write() as conn:
            return _jobchunks.release_chunk(
                conn, job_id, idx, worker, error, self._now(), final=final, refund=refund
            )

    def list_chunks(self, job_id: str) -> list[ChunkRecord]:
        with self._read() as conn:
            return _jobchunks.chunks(conn, job_id)

    def complete_fan_out(self, job_id: str, result: Mapping[str, Any]) -> bool:
        with self._write() as conn:
            return _jobchunks.complete_fan_out(conn, job_id, result, self._now())

    def fail_fan_out(self, job_id: str, error: str) -> bool:
        with self._write() as conn:
            return _jobchunks.fail_fan_out(conn, job_id, error, self._now())

    def reap_jobs(self, *, stale_s: float, finish_after_s: float) -> Reaped:
        with self._write() as conn:
            return _jobchunks.reap(conn, self._now(), stale_s, finish_after_s)

    def delete_jobs(self, *, older_than: datetime) -> int:
        with self._write() as conn:
            return _jobs.delete_finished(conn, older_than)

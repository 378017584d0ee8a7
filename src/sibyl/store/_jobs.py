"""Job records: the ``jobs`` and ``job_chunks`` tables behind :mod:`sibyl.jobs`.

The queue (huey) carries only ids; everything a job is — kind, params, state, priority,
progress, attempts, error, result — lives in these rows, so every process sharing the store can
list, watch and cancel jobs, and a queue message lost with a killed worker is recovered from
them (:func:`reap`).

**States.** ``queued → running → succeeded | failed | cancelled``; ``running → queued`` again
when an attempt failed and another is allowed, or its worker stopped renewing its lease. A job
*fans out* when its first step splits it into chunks (:func:`fan_out`): ``job_chunks`` rows go
``pending → running → done | failed``, each claimed, leased and retried on its own; the job
succeeds when the last chunk is done and its finish step stored a result
(:func:`complete_fan_out`).

**Claims and leases.** A claim (of a job or a chunk) names its ``worker`` — unique per claim —
and holds a lease (``lease_until``) that the worker renews (:func:`renew`). Every write of a
claim's outcome is a compare-and-set on ``(state, worker)``: a claim the reaper took away can
write nothing, so a chunk is counted done at most once however many workers ran it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sibyl.errors import ConflictError, InvalidInputError, NotFoundError
from sibyl.store._jobtypes import (
    MAX_LIMIT,
    ChunkRecord,
    ChunkState,
    JobPriority,
    JobRecord,
    JobState,
    LeaseClaim,
    NewJob,
    Reaped,
    to_job,
)
from sibyl.store._schema import job_chunks, jobs

__all__ = [
    "ChunkRecord",
    "ChunkState",
    "JobPriority",
    "JobRecord",
    "JobState",
    "LeaseClaim",
    "NewJob",
    "Reaped",
]


# ---- jobs -----------------------------------------------------------------------------------


def insert(conn: sa.Connection, job: NewJob, now: datetime) -> JobRecord:
    """Store ``job`` as ``queued``."""
    job.validate()
    job_id = job.id or uuid.uuid4().hex
    row = {
        "id": job_id,
        "kind": job.kind,
        "state": JobState.QUEUED.value,
        "priority": JobPriority(job.priority).value,
        "params": dict(job.params),
        "progress": 0.0,
        "message": None,
        "attempts": 0,
        "max_attempts": job.max_attempts,
        "retry_delay_s": float(job.retry_delay_s),
        "error": None,
        "result": None,
        "plan": None,
        "chunks_total": None,
        "chunks_done": 0,
        "cancel_requested": False,
        "worker": None,
        "lease_until": None,
        "enqueued_at": now,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
    }
    conn.execute(jobs.insert().values(row))
    return get(conn, job_id)


def get(conn: sa.Connection, job_id: str, *, lock: bool = False) -> JobRecord:
    """The job ``job_id``; ``NotFoundError`` saying how to find jobs."""
    query = sa.select(jobs).where(jobs.c.id == job_id)
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        raise NotFoundError(f"No job '{job_id}'; list jobs with `sibyl jobs list` or GET /v1/jobs")
    return to_job(row)


def listing(
    conn: sa.Connection, state: JobState | None, kind: str | None, limit: int
) -> list[JobRecord]:
    """Jobs matching the filters, newest first."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError(f"'limit' must be 1 to {MAX_LIMIT}, got {limit}", field="limit")
    query = sa.select(jobs).order_by(jobs.c.created_at.desc(), jobs.c.id).limit(limit)
    if state is not None:
        query = query.where(jobs.c.state == JobState(state).value)
    if kind is not None:
        query = query.where(jobs.c.kind == kind)
    return [to_job(r) for r in conn.execute(query)]


def claim(
    conn: sa.Connection, job_id: str, worker: str, now: datetime, lease_s: float
) -> JobRecord | None:
    """``queued → running`` for ``worker`` (one more attempt); ``None`` when the job is not
    queued (cancelled, taken by another worker, finished)."""
    done = conn.execute(
        jobs.update()
        .where(jobs.c.id == job_id, jobs.c.state == JobState.QUEUED.value)
        .values(
            state=JobState.RUNNING.value,
            worker=worker,
            attempts=jobs.c.attempts + 1,
            lease_until=now + timedelta(seconds=lease_s),
            started_at=sa.func.coalesce(jobs.c.started_at, now),
            updated_at=now,
        )
    )
    return get(conn, job_id) if done.rowcount == 1 else None


def held(job_id: str, worker: str) -> Any:
    return sa.and_(
        jobs.c.id == job_id, jobs.c.state == JobState.RUNNING.value, jobs.c.worker == worker
    )


def finish(
    conn: sa.Connection,
    job_id: str,
    worker: str,
    state: JobState,
    now: datetime,
    result: Mapping[str, Any] | None,
    error: str | None,
) -> bool:
    """End ``worker``'s claim in a terminal ``state``; False when the claim was lost."""
    if not JobState(state).terminal:
        raise InvalidInputError(f"'state' must be terminal, got {state}", field="state")
    values: dict[str, Any] = {
        "state": JobState(state).value,
        "error": error,
        "result": None if result is None else dict(result),
        "worker": None,
        "lease_until": None,
        "finished_at": now,
        "updated_at": now,
    }
    if state is JobState.SUCCEEDED:
        values["progress"] = 1.0
    return conn.execute(jobs.update().where(held(job_id, worker)).values(values)).rowcount == 1


def release(
    conn: sa.Connection,
    job_id: str,
    worker: str,
    now: datetime,
    error: str | None,
    *,
    refund: bool = False,
) -> bool:
    """``running → queued`` (another attempt follows; ``refund``: the attempt does not count,
    e.g. its worker shut down); False when the claim was lost."""
    done = conn.execute(
        jobs.update()
        .where(held(job_id, worker))
        .values(
            attempts=jobs.c.attempts - (1 if refund else 0),
            state=JobState.QUEUED.value,
            error=error,
            worker=None,
            lease_until=None,
            enqueued_at=now,
            updated_at=now,
        )
    )
    return done.rowcount == 1


def cancel(conn: sa.Connection, job_id: str, now: datetime) -> JobRecord:
    """Cancel: a queued or fanned-out job is cancelled at once; a running one is asked to stop
    (``cancel_requested``; its worker cancels it at its next check). ``ConflictError`` for a
    finished job."""
    job = get(conn, job_id, lock=True)
    if job.state.terminal:
        raise ConflictError(
            f"Job '{job_id}' already {job.state.value}; only queued or running jobs can be "
            "cancelled"
        )
    at_once = job.state is JobState.QUEUED or job.fanned_out
    values: dict[str, Any] = {"cancel_requested": True, "updated_at": now}
    if at_once:
        values.update(
            state=JobState.CANCELLED.value, finished_at=now, worker=None, lease_until=None
        )
    conn.execute(jobs.update().where(jobs.c.id == job_id).values(values))
    return get(conn, job_id)


def renew(
    conn: sa.Connection, claims: Sequence[LeaseClaim], now: datetime, lease_s: float
) -> set[str]:
    """Extend every claim's lease (and store job progress); returns the ids of the jobs whose
    claims must stop: lost, no longer running, or asked to cancel."""
    until = now + timedelta(seconds=lease_s)
    stop: set[str] = set()
    for c in claims:
        if c.idx is None:
            values: dict[str, Any] = {"lease_until": until, "updated_at": now}
            if c.progress is not None:
                values["progress"] = min(max(c.progress, 0.0), 1.0)
                values["message"] = c.message
            query = jobs.update().where(held(c.job_id, c.worker)).values(values)
        else:
            query = (
                job_chunks.update()
                .where(
                    job_chunks.c.job_id == c.job_id,
                    job_chunks.c.idx == c.idx,
                    job_chunks.c.state == ChunkState.RUNNING.value,
                    job_chunks.c.worker == c.worker,
                )
                .values(lease_until=until, updated_at=now)
            )
        if conn.execute(query).rowcount != 1:
            stop.add(c.job_id)
    ids = sorted({c.job_id for c in claims} - stop)
    if ids:
        halted = sa.select(jobs.c.id).where(
            jobs.c.id.in_(ids),
            sa.or_(jobs.c.cancel_requested, jobs.c.state != JobState.RUNNING.value),
        )
        stop.update(r[0] for r in conn.execute(halted))
    return stop


def delete_finished(conn: sa.Connection, older_than: datetime) -> int:
    """Delete finished jobs (and their chunks) that ended before ``older_than``."""
    terminal = [s.value for s in JobState if s.terminal]
    query = jobs.delete().where(jobs.c.state.in_(terminal), jobs.c.finished_at < older_than)
    conn.execute(
        job_chunks.delete().where(
            job_chunks.c.job_id.in_(
                sa.select(jobs.c.id).where(
                    jobs.c.state.in_(terminal), jobs.c.finished_at < older_than
                )
            )
        )
    )
    return int(conn.execute(query).rowcount)

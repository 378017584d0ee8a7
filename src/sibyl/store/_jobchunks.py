"""Fanned-out jobs and recovery: the chunks of a job (claimed, leased, retried one by one) and
the reaper that puts work lost with a dead worker back on the queue (rules:
:mod:`sibyl.store._jobs`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from sibyl.errors import InvalidInputError
from sibyl.store._jobs import get, held, release
from sibyl.store._jobtypes import (
    ChunkRecord,
    ChunkState,
    JobRecord,
    JobState,
    Reaped,
    to_chunk,
    to_job,
)
from sibyl.store._schema import job_chunks, jobs


def fan_out(
    conn: sa.Connection,
    job_id: str,
    worker: str,
    specs: Sequence[Mapping[str, Any]],
    plan: Mapping[str, Any],
    now: datetime,
) -> bool:
    """Split ``worker``'s running job into ``specs`` (one pending chunk each) sharing ``plan``;
    the job stays running without a claim. False (nothing written) when the claim was lost."""
    if not specs:
        raise InvalidInputError("a fan-out needs at least one chunk", field="chunks")
    done = conn.execute(
        jobs.update()
        .where(held(job_id, worker))
        .values(
            plan=dict(plan),
            chunks_total=len(specs),
            chunks_done=0,
            worker=None,
            lease_until=None,
            updated_at=now,
        )
    )
    if done.rowcount != 1:
        return False
    conn.execute(job_chunks.delete().where(job_chunks.c.job_id == job_id))
    rows = [_new_chunk(job_id, i, spec, now) for i, spec in enumerate(specs)]
    conn.execute(job_chunks.insert(), rows)
    return True


def _new_chunk(job_id: str, idx: int, spec: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "idx": idx,
        "spec": dict(spec),
        "state": ChunkState.PENDING.value,
        "attempts": 0,
        "worker": None,
        "lease_until": None,
        "enqueued_at": now,
        "result": None,
        "error": None,
        "updated_at": now,
    }


def _chunk_where(job_id: str, idx: int, *, state: ChunkState, worker: str | None = None) -> Any:
    cond = [job_chunks.c.job_id == job_id, job_chunks.c.idx == idx]
    cond.append(job_chunks.c.state == state.value)
    if worker is not None:
        cond.append(job_chunks.c.worker == worker)
    return sa.and_(*cond)


def claim_chunk(
    conn: sa.Connection, job_id: str, idx: int, worker: str, now: datetime, lease_s: float
) -> tuple[JobRecord, ChunkRecord] | None:
    """``pending → running`` for ``worker``; ``None`` when the chunk is not pending or its job
    is not running (cancelled, failed) or asked to cancel."""
    job = get(conn, job_id)
    if job.state is not JobState.RUNNING or job.cancel_requested or not job.fanned_out:
        return None
    done = conn.execute(
        job_chunks.update()
        .where(_chunk_where(job_id, idx, state=ChunkState.PENDING))
        .values(
            state=ChunkState.RUNNING.value,
            worker=worker,
            attempts=job_chunks.c.attempts + 1,
            lease_until=now + timedelta(seconds=lease_s),
            updated_at=now,
        )
    )
    if done.rowcount != 1:
        return None
    query = sa.select(job_chunks).where(_chunk_where(job_id, idx, state=ChunkState.RUNNING))
    return job, to_chunk(conn.execute(query).one())


def finish_chunk(
    conn: sa.Connection,
    job_id: str,
    idx: int,
    worker: str,
    result: Mapping[str, Any],
    now: datetime,
) -> int | None:
    """``running → done`` for ``worker``'s claim and count it on the job (whose row is locked,
    so concurrent completions serialise); returns how many chunks are not done yet, ``None``
    when the claim was lost (nothing written)."""
    job = get(conn, job_id, lock=True)
    done = conn.execute(
        job_chunks.update()
        .where(_chunk_where(job_id, idx, state=ChunkState.RUNNING, worker=worker))
        .values(
            state=ChunkState.DONE.value,
            result=dict(result),
            worker=None,
            lease_until=None,
            error=None,
            updated_at=now,
        )
    )
    if done.rowcount != 1:
        return None
    total = job.chunks_total or 0
    finished = job.chunks_done + 1
    progress = finished / total if total else 1.0
    conn.execute(
        jobs.update()
        .where(jobs.c.id == job_id)
        .values(
            chunks_done=finished,
            progress=min(progress, 0.999) if job.state is JobState.RUNNING else job.progress,
            message=f"{finished}/{total} chunks done",
            updated_at=now,
        )
    )
    return total - finished


def release_chunk(
    conn: sa.Connection,
    job_id: str,
    idx: int,
    worker: str,
    error: str,
    now: datetime,
    *,
    final: bool,
    refund: bool = False,
) -> bool:
    """``running → pending`` for another attempt (``refund``: this one does not count), or
    (``final``) ``→ failed``, which fails the job too. False when the claim was lost."""
    state = ChunkState.FAILED if final else ChunkState.PENDING
    done = conn.execute(
        job_chunks.update()
        .where(_chunk_where(job_id, idx, state=ChunkState.RUNNING, worker=worker))
        .values(
            attempts=job_chunks.c.attempts - (1 if refund else 0),
            state=state.value,
            error=error,
            worker=None,
            lease_until=None,
            enqueued_at=now,
            updated_at=now,
        )
    )
    if done.rowcount != 1:
        return False
    if final:
        _fail_running(conn, job_id, f"chunk {idx} failed: {error}", now)
    return True


def _fail_running(conn: sa.Connection, job_id: str, error: str, now: datetime) -> bool:
    done = conn.execute(
        jobs.update()
        .where(jobs.c.id == job_id, jobs.c.state == JobState.RUNNING.value)
        .values(
            state=JobState.FAILED.value,
            error=error,
            worker=None,
            lease_until=None,
            finished_at=now,
            updated_at=now,
        )
    )
    return done.rowcount == 1


def chunks(conn: sa.Connection, job_id: str) -> list[ChunkRecord]:
    """Every chunk of the job, by index."""
    query = sa.select(job_chunks).where(job_chunks.c.job_id == job_id).order_by(job_chunks.c.idx)
    return [to_chunk(r) for r in conn.execute(query)]


def complete_fan_out(
    conn: sa.Connection, job_id: str, result: Mapping[str, Any], now: datetime
) -> bool:
    """``running → succeeded`` for a fanned-out job whose chunks are all done; False when it is
    not running any more or chunks are missing."""
    done = conn.execute(
        jobs.update()
        .where(
            jobs.c.id == job_id,
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.chunks_total.is_not(None),
            jobs.c.chunks_done >= jobs.c.chunks_total,
        )
        .values(
            state=JobState.SUCCEEDED.value,
            result=dict(result),
            progress=1.0,
            message="every chunk done",
            finished_at=now,
            updated_at=now,
        )
    )
    return done.rowcount == 1


def fail_fan_out(conn: sa.Connection, job_id: str, error: str, now: datetime) -> bool:
    """``running → failed`` for a fanned-out job whose finish step failed."""
    return _fail_running(conn, job_id, error, now)


# ---- recovery -------------------------------------------------------------------------------


def reap(conn: sa.Connection, now: datetime, stale_s: float, finish_after_s: float) -> Reaped:
    """Recover work whose worker is gone: running jobs and chunks whose lease expired go back to
    the queue (a job whose attempts ran out fails); queued jobs and pending chunks whose
    message is older than ``stale_s`` are handed out again (their message may have died with a
    worker between dequeue and claim; a duplicate message is harmless, claims are
    compare-and-set); fanned-out jobs with every chunk done but unfinished for
    ``finish_after_s`` are returned to be finished."""
    out = Reaped()
    for job in _select_jobs(conn, jobs.c.state == JobState.RUNNING.value, jobs.c.lease_until < now):
        _reap_job(conn, job, now, out)
    stale = now - timedelta(seconds=stale_s)
    for job in _select_jobs(
        conn, jobs.c.state == JobState.QUEUED.value, jobs.c.enqueued_at < stale
    ):
        if _touch_job(conn, job, now):
            out.jobs.append(job)
    _reap_chunks(conn, now, stale, out)
    late = now - timedelta(seconds=finish_after_s)
    out.finishing.extend(
        _select_jobs(
            conn,
            jobs.c.state == JobState.RUNNING.value,
            jobs.c.chunks_total.is_not(None),
            jobs.c.chunks_done >= jobs.c.chunks_total,
            jobs.c.updated_at < late,
        )
    )
    return out


def _select_jobs(conn: sa.Connection, *where: Any) -> list[JobRecord]:
    return [to_job(r) for r in conn.execute(sa.select(jobs).where(*where).limit(1000))]


def _reap_job(conn: sa.Connection, job: JobRecord, now: datetime, out: Reaped) -> None:
    assert job.worker is not None
    lost = f"worker {job.worker} stopped renewing its lease on attempt {job.attempts}"
    if job.attempts >= job.max_attempts:
        where = held(job.id, job.worker)
        values = {
            "state": JobState.FAILED.value,
            "error": f"{lost}; no attempt left (max_attempts={job.max_attempts})",
            "worker": None,
            "lease_until": None,
            "finished_at": now,
            "updated_at": now,
        }
        if conn.execute(jobs.update().where(where).values(values)).rowcount == 1:
            out.failed.append(job.id)
        return
    if release(conn, job.id, job.worker, now, f"{lost}; re-queued"):
        out.jobs.append(job)


def _touch_job(conn: sa.Connection, job: JobRecord, now: datetime) -> bool:
    done = conn.execute(
        jobs.update()
        .where(
            jobs.c.id == job.id,
            jobs.c.state == JobState.QUEUED.value,
            jobs.c.enqueued_at == job.enqueued_at,
        )
        .values(enqueued_at=now)
    )
    return done.rowcount == 1


def _reap_chunks(conn: sa.Connection, now: datetime, stale: datetime, out: Reaped) -> None:
    running = sa.select(jobs.c.id).where(jobs.c.state == JobState.RUNNING.value)
    expired = sa.and_(
        job_chunks.c.state == ChunkState.RUNNING.value, job_chunks.c.lease_until < now
    )
    overdue = sa.and_(
        job_chunks.c.state == ChunkState.PENDING.value, job_chunks.c.enqueued_at < stale
    )
    query = (
        sa.select(job_chunks, jobs.c.max_attempts)
        .join(jobs)
        .where(job_chunks.c.job_id.in_(running), sa.or_(expired, overdue))
    )
    for row in conn.execute(query.limit(5000)).all():
        chunk = to_chunk(row)
        if chunk.state is ChunkState.PENDING:
            where = sa.and_(
                _chunk_where(chunk.job_id, chunk.idx, state=ChunkState.PENDING),
                job_chunks.c.enqueued_at == chunk.enqueued_at,
            )
            if conn.execute(job_chunks.update().where(where).values(enqueued_at=now)).rowcount:
                out.chunks.append(chunk)
            continue
        assert chunk.worker is not None
        lost = f"worker {chunk.worker} stopped renewing its lease on attempt {chunk.attempts}"
        final = chunk.attempts >= row._mapping["max_attempts"]
        if release_chunk(conn, chunk.job_id, chunk.idx, chunk.worker, lost, now, final=final):
            (out.failed.append(chunk.job_id) if final else out.chunks.append(chunk))

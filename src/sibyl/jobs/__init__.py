"""Durable background jobs — batch scoring, training, tuning — on huey, with their records in
sibyl's store.

::

    system = JobSystem(settings, store)          # queue from jobs.url, records in the store
    job = system.service.submit(JobRequest("batch_score", {"model": "churn",
                                 "input": "s3://b/in.parquet", "output": "s3://b/out/"},
                                 priority="low"))
    system.service.get(job.id).state             # queued → running → succeeded
    system.start_workers(LocalModels(settings))  # what `sibyl worker` does

**Life of a job** (records: :mod:`sibyl.store._jobs`): ``queued → running → succeeded | failed |
cancelled``. A job has a priority (high, normal, low: the queue hands out higher first),
progress (fraction + message), attempts with exponential backoff between them, an error and a
JSON result. Cancelling a queued job means it never runs; a running one stops at its next
:meth:`JobContext.check_cancelled`. A job may *fan out* into chunks that all workers run in
parallel (batch scoring does).

**Durability.** The queue (SQLite file, Redis or PostgreSQL) keeps queued messages across
restarts; every claim of a job or chunk holds a lease its worker renews, and a lease that
expires (worker killed) puts the work back on the queue. Claims and outcomes are
compare-and-set in the store, so a job or chunk is never counted twice.

**Kinds** are plain functions registered with :func:`register_job_kind` (see
:mod:`sibyl.jobs._kinds` for the contract); ``batch_score`` is built in
(:mod:`sibyl.jobs.batch`).

**Where jobs run.** ``sibyl serve`` runs ``jobs.workers`` threads (niced; batch scoring in the
LOW lane of the serving batchers, so online requests always go first); ``sibyl worker``
processes on any machine sharing the queue and the store run more.
"""

from __future__ import annotations

from sibyl.jobs._context import (
    ChunkContext,
    JobCancelled,
    JobContext,
    JobInterrupted,
    SubmitContext,
)
from sibyl.jobs._kinds import (
    FanOut,
    JobKind,
    get_job_kind,
    job_kinds,
    load_kinds,
    register_job_kind,
)
from sibyl.jobs._models import LocalModels, ModelSource, ScoringModel, concat_predictions
from sibyl.jobs._queue import JobQueue
from sibyl.jobs._service import JobRequest, JobService, job_json
from sibyl.jobs._system import JobSystem
from sibyl.store import ChunkRecord, ChunkState, JobPriority, JobRecord, JobState

__all__ = [
    "ChunkContext",
    "ChunkRecord",
    "ChunkState",
    "FanOut",
    "JobCancelled",
    "JobContext",
    "JobInterrupted",
    "JobKind",
    "JobPriority",
    "JobQueue",
    "JobRecord",
    "JobRequest",
    "JobService",
    "JobState",
    "JobSystem",
    "LocalModels",
    "ModelSource",
    "ScoringModel",
    "SubmitContext",
    "concat_predictions",
    "get_job_kind",
    "job_json",
    "job_kinds",
    "load_kinds",
    "register_job_kind",
]

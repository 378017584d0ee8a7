"""Running what the queue hands out: one attempt of a job, of a chunk, or a finish step.

Every step starts with a compare-and-set claim in the store (a message for a job that is
cancelled, taken or finished does nothing) and ends with a compare-and-set outcome on that
claim. Failures: ``InvalidInputError`` / ``NotFoundError`` / ``ConflictError`` /
``MissingExtraError`` fail the job at once; anything else is retried (a new delayed message)
until ``max_attempts`` attempts were made, waiting ``retry_delay_s × 2^(attempt-1)``.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from sibyl.errors import (
    ConflictError,
    InvalidInputError,
    MissingExtraError,
    NotFoundError,
    SibylError,
)
from sibyl.jobs._context import ActiveClaim, ChunkContext, JobCancelled, JobContext, JobInterrupted
from sibyl.jobs._housekeeping import Housekeeper
from sibyl.jobs._kinds import FanOut, JobKind, get_job_kind
from sibyl.jobs._queue import JobQueue, TaskHandler
from sibyl.store import JobRecord, JobState

if TYPE_CHECKING:
    from sibyl.jobs._models import ModelSource
    from sibyl.settings import Settings
    from sibyl.store import Store

log = structlog.get_logger(__name__)
PERMANENT = (InvalidInputError, NotFoundError, ConflictError, MissingExtraError)
"""Failures another attempt cannot fix."""
MAX_BACKOFF_S = 3600.0


def describe_error(exc: BaseException) -> str:
    """A one-line description of a failure for the job record."""
    if isinstance(exc, SibylError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"[:2000]


def backoff(delay_s: float, attempt: int) -> float:
    """Wait before the attempt after ``attempt`` (exponential, capped at one hour)."""
    return float(min(delay_s * 2 ** max(attempt - 1, 0), MAX_BACKOFF_S))


def jsonable(value: Mapping[str, Any] | None) -> dict[str, Any]:
    """``value`` as plain JSON (numpy scalars and arrays, datetimes and paths become JSON)."""
    if value is None:
        return {}
    raw = orjson.dumps(dict(value), default=str, option=orjson.OPT_SERIALIZE_NUMPY)
    out: dict[str, Any] = orjson.loads(raw)
    return out


class JobRunner(TaskHandler):
    """Executes queue tasks in this process (thread-safe: one call per worker thread)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: JobQueue,
        models: ModelSource,
        housekeeper: Housekeeper,
    ) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.models = models
        self.housekeeper = housekeeper
        self._lease_s = settings.jobs.lease_s
        self._host = socket.gethostname()

    def worker_id(self) -> str:
        """A unique id for one claim: host/pid/thread/random."""
        thread = threading.current_thread().name
        return f"{self._host}/{os.getpid()}/{thread}/{uuid.uuid4().hex[:8]}"[:200]

    # ---- jobs ------------------------------------------------------------------------------

    def run_job(self, job_id: str) -> None:
        worker = self.worker_id()
        job = self.store.claim_job(job_id, worker, self._lease_s)
        if job is None:
            log.info("job_message_skipped", job=job_id, reason="not queued")
            return
        log.info("job_started", job=job.id, kind=job.kind, attempt=job.attempts, worker=worker)
        claim = ActiveClaim(job.id, worker)
        with self.housekeeper.holding(claim):
            self._attempt(job, claim)

    def _attempt(self, job: JobRecord, claim: ActiveClaim) -> None:
        worker = claim.worker
        try:
            kind = get_job_kind(job.kind)
            params = kind.parse(job.params)
            ctx = JobContext(job, claim, self.settings, self.models, self.store)
            out = kind.run(ctx, params)
            if isinstance(out, FanOut):
                self._fan_out(job, worker, out)
                return
            result = jsonable(out)
        except JobCancelled:
            self.store.finish_job(job.id, worker, JobState.CANCELLED, error="cancelled on request")
            log.info("job_cancelled", job=job.id)
            return
        except JobInterrupted:
            if self.store.release_job(job.id, worker, "worker shut down", refund=True):
                self.queue.enqueue_job(job.id, job.priority)
            return
        except Exception as exc:
            self._failed(job, worker, exc)
            return
        self.store.finish_job(job.id, worker, JobState.SUCCEEDED, result=result)
        log.info("job_succeeded", job=job.id, kind=job.kind)

    def _failed(self, job: JobRecord, worker: str, exc: Exception) -> None:
        error = describe_error(exc)
        if isinstance(exc, PERMANENT) or job.attempts >= job.max_attempts:
            self.store.finish_job(job.id, worker, JobState.FAILED, error=error)
            log.warning("job_failed", job=job.id, kind=job.kind, error=error)
            return
        delay = backoff(job.retry_delay_s, job.attempts)
        note = (
            f"attempt {job.attempts} of {job.max_attempts} failed ({error}); retry in {delay:g} s"
        )
        if self.store.release_job(job.id, worker, note):
            self.queue.enqueue_job(job.id, job.priority, delay)
        log.warning("job_retrying", job=job.id, kind=job.kind, error=error, delay_s=delay)

    def _fan_out(self, job: JobRecord, worker: str, out: FanOut) -> None:
        specs = [jsonable(spec) for spec in out.chunks]
        if not self.store.fan_out(job.id, worker, specs, jsonable(out.plan)):
            return  # the claim was lost (cancelled or reaped) meanwhile
        for idx in range(len(specs)):
            self.queue.enqueue_chunk(job.id, idx, job.priority)
        log.info("job_fanned_out", job=job.id, kind=job.kind, chunks=len(specs))

    # ---- chunks ----------------------------------------------------------------------------

    def run_chunk(self, job_id: str, idx: int) -> None:
        worker = self.worker_id()
        got = self.store.claim_chunk(job_id, idx, worker, self._lease_s)
        if got is None:
            log.info("chunk_message_skipped", job=job_id, chunk=idx)
            return
        job, chunk = got
        claim = ActiveClaim(job_id, worker, idx)
        with self.housekeeper.holding(claim):
            try:
                kind = self._chunked(job)
                ctx = ChunkContext(idx, job, claim, self.settings, self.models, self.store)
                assert kind.chunk is not None
                result = kind.chunk(ctx, kind.parse(job.params), job.plan or {}, chunk.spec)
            except (JobCancelled, JobInterrupted) as exc:
                interrupted = isinstance(exc, JobInterrupted)
                if (
                    self.store.release_chunk(
                        job_id, idx, worker, str(exc), final=False, refund=interrupted
                    )
                    and interrupted
                ):
                    self.queue.enqueue_chunk(job_id, idx, job.priority)
                return
            except Exception as exc:
                self._chunk_failed(job, idx, chunk.attempts, worker, exc)
                return
            remaining = self.store.finish_chunk(job_id, idx, worker, jsonable(result))
        if remaining == 0:
            self.finish(job_id)

    def _chunked(self, job: JobRecord) -> JobKind:
        kind = get_job_kind(job.kind)
        if kind.chunk is None:
            raise InvalidInputError(f"job kind '{job.kind}' has no chunk step", field="kind")
        return kind

    def _chunk_failed(
        self, job: JobRecord, idx: int, attempts: int, worker: str, exc: Exception
    ) -> None:
        error = describe_error(exc)
        final = isinstance(exc, PERMANENT) or attempts >= job.max_attempts
        if not self.store.release_chunk(job.id, idx, worker, error, final=final):
            return
        if final:
            log.warning("job_failed", job=job.id, chunk=idx, error=error)
            return
        delay = backoff(job.retry_delay_s, attempts)
        self.queue.enqueue_chunk(job.id, idx, job.priority, delay)
        log.warning("chunk_retrying", job=job.id, chunk=idx, error=error, delay_s=delay)

    def finish(self, job_id: str) -> None:
        job = self.store.get_job(job_id)
        total = job.chunks_total
        if job.state is not JobState.RUNNING or total is None or job.chunks_done < total:
            return
        claim = ActiveClaim(job_id, self.worker_id())
        try:
            kind = self._chunked(job)
            results = [c.result or {} for c in self.store.list_chunks(job_id)]
            ctx = JobContext(job, claim, self.settings, self.models, self.store)
            out = (
                kind.finish(ctx, kind.parse(job.params), job.plan or {}, results)
                if kind.finish is not None
                else {"chunks": len(results)}
            )
        except Exception as exc:
            self.store.fail_fan_out(job_id, f"finish step failed: {describe_error(exc)}")
            log.warning("job_failed", job=job_id, step="finish", error=describe_error(exc))
            return
        if self.store.complete_fan_out(job_id, jsonable(out)):
            log.info("job_succeeded", job=job_id, kind=job.kind, chunks=total)

"""JobService: submit, list, inspect, cancel jobs and read their results — what the HTTP API
and the CLI call. Blocking (store and queue I/O): call it from a thread in async code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sibyl.errors import ConflictError, InvalidInputError
from sibyl.jobs._context import SubmitContext
from sibyl.jobs._kinds import get_job_kind, job_kinds
from sibyl.store import ChunkRecord, JobPriority, JobRecord, JobState, NewJob

if TYPE_CHECKING:
    from collections.abc import Mapping

    from sibyl.jobs._queue import JobQueue
    from sibyl.registry import ModelRegistry
    from sibyl.settings import Settings
    from sibyl.store import Store


@dataclass(frozen=True, slots=True)
class JobRequest:
    """A submission: kind, parameters (validated by the kind), priority and retry policy
    (``None``: ``jobs.max_attempts`` / ``jobs.retry_delay_s``)."""

    kind: str
    params: Mapping[str, Any]
    priority: JobPriority | str = JobPriority.NORMAL
    max_attempts: int | None = None
    retry_delay_s: float | None = None


class JobService:
    """Jobs on one store and queue (thread-safe)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        queue: JobQueue,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self._submit_ctx = SubmitContext(settings, registry)

    def submit(self, req: JobRequest, *, field_prefix: str = "params") -> JobRecord:
        """Validate (kind, parameters, the kind's own checks), store as queued, enqueue.

        ``InvalidInputError`` names the bad field (``kind``, ``priority``,
        ``<field_prefix>.<name>``); ``BackendUnavailableError`` when the store or the queue is
        down (a job that could not be queued is marked failed).
        """
        kind = get_job_kind(req.kind)
        priority = JobPriority.parse(req.priority)
        params = kind.parse(req.params, prefix=field_prefix)
        if kind.validate is not None:
            try:
                kind.validate(params, self._submit_ctx)
            except InvalidInputError as exc:
                raise _prefixed(exc, field_prefix) from None
        jobs = self.settings.jobs
        job = self.store.create_job(
            NewJob(
                kind.name,
                params.model_dump(mode="json"),
                priority,
                jobs.max_attempts if req.max_attempts is None else req.max_attempts,
                jobs.retry_delay_s if req.retry_delay_s is None else req.retry_delay_s,
            )
        )
        try:
            self.queue.enqueue_job(job.id, job.priority)
        except Exception:
            self.store.cancel_job(job.id)  # never queued: do not leave it waiting
            raise
        return job

    def get(self, job_id: str) -> JobRecord:
        """The job (``NotFoundError`` when unknown)."""
        return self.store.get_job(job_id)

    def list_jobs(
        self, *, state: JobState | str | None = None, kind: str | None = None, limit: int = 100
    ) -> list[JobRecord]:
        """Jobs, newest first (``InvalidInputError`` for an unknown state)."""
        return self.store.list_jobs(state=_state(state), kind=kind, limit=limit)

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel (queued: at once, never runs; running: at its next check); ``ConflictError``
        when it already finished."""
        return self.store.cancel_job(job_id)

    def chunks(self, job_id: str) -> list[ChunkRecord]:
        """The chunks of a fanned-out job."""
        self.store.get_job(job_id)
        return self.store.list_chunks(job_id)

    def results(self, job_id: str) -> dict[str, Any]:
        """The result of a succeeded job; ``ConflictError`` saying what state it is in."""
        job = self.store.get_job(job_id)
        if job.state is JobState.SUCCEEDED:
            return job.result or {}
        if job.state.terminal:
            why = f": {job.error}" if job.error else ""
            raise ConflictError(f"Job '{job_id}' {job.state.value}{why}; it has no results")
        raise ConflictError(
            f"Job '{job_id}' is {job.state.value} ({job.progress:.0%}); its results are ready "
            f"when it succeeds — poll GET /v1/jobs/{job_id} or `sibyl jobs watch {job_id}`"
        )

    @staticmethod
    def kinds() -> list[dict[str, Any]]:
        """Registered kinds with their parameter schemas."""
        return [k.describe() for k in job_kinds()]


def job_json(job: JobRecord) -> dict[str, Any]:
    """A job as JSON (datetimes ISO 8601): what the API returns and the CLI prints."""
    chunks = None
    if job.chunks_total is not None:
        chunks = {"total": job.chunks_total, "done": job.chunks_done}
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state.value,
        "priority": job.priority.value,
        "progress": round(job.progress, 4),
        "message": job.message,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "error": job.error,
        "result": job.result,
        "params": job.params,
        "chunks": chunks,
        "cancel_requested": job.cancel_requested,
        "worker": job.worker,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "updated_at": job.updated_at.isoformat(),
    }


def _state(value: JobState | str | None) -> JobState | None:
    if value is None or isinstance(value, JobState):
        return value
    try:
        return JobState(value)
    except ValueError:
        names = ", ".join(s.value for s in JobState)
        raise InvalidInputError(
            f"'state' must be one of {names}, got {value!r}", field="state"
        ) from None


def _prefixed(exc: InvalidInputError, prefix: str) -> InvalidInputError:
    if not prefix or not exc.field or exc.field.startswith(prefix + "."):
        return exc
    field = f"{prefix}.{exc.field}"
    message = exc.message.replace(f"'{exc.field}'", f"'{field}'", 1)
    return InvalidInputError(message, field=field)

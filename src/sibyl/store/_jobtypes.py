"""Records of the job tables (see :mod:`sibyl.store._jobs` for the rules): states,
priorities, submissions, stored jobs and chunks, lease claims and what the reaper recovered."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sibyl.errors import InvalidInputError
from sibyl.store._schema import job_chunks, jobs

MAX_LIMIT = 10_000
"""Most jobs one listing returns."""


class JobState(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the job will never change state again."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class JobPriority(StrEnum):
    """Queue priority: high jobs are taken before normal ones, normal before low."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @classmethod
    def parse(cls, value: object, field: str = "priority") -> JobPriority:
        """``value`` as a priority; ``InvalidInputError`` naming the accepted values."""
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            raise InvalidInputError(
                f"'{field}' must be high, normal or low, got {value!r}", field=field
            ) from None


class ChunkState(StrEnum):
    """Where one chunk of a fanned-out job is."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to store (``id`` ``None``: a new uuid4 hex)."""

    kind: str
    params: Mapping[str, Any]
    priority: JobPriority = JobPriority.NORMAL
    max_attempts: int = 3
    retry_delay_s: float = 5.0
    id: str | None = None

    def validate(self) -> None:
        """``InvalidInputError`` naming the bad field."""
        if not self.kind or len(self.kind) > 100:
            raise InvalidInputError("'kind' must be 1 to 100 characters", field="kind")
        if not 1 <= self.max_attempts <= 100:
            raise InvalidInputError(
                f"'max_attempts' must be 1 to 100, got {self.max_attempts}", field="max_attempts"
            )
        if not 0 <= self.retry_delay_s <= 86_400:
            raise InvalidInputError(
                f"'retry_delay_s' must be 0 to 86400 seconds, got {self.retry_delay_s}",
                field="retry_delay_s",
            )
        if self.id is not None and not (0 < len(self.id) <= 32 and self.id.isalnum()):
            raise InvalidInputError("'id' must be 1 to 32 letters or digits", field="id")


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One stored job (datetimes aware UTC)."""

    id: str
    kind: str
    state: JobState
    priority: JobPriority
    params: dict[str, Any]
    progress: float
    message: str | None
    attempts: int
    max_attempts: int
    retry_delay_s: float
    error: str | None
    result: dict[str, Any] | None
    plan: dict[str, Any] | None
    chunks_total: int | None
    chunks_done: int
    cancel_requested: bool
    worker: str | None
    lease_until: datetime | None
    enqueued_at: datetime
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def fanned_out(self) -> bool:
        """Whether the job was split into chunks."""
        return self.chunks_total is not None


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """One chunk of a fanned-out job."""

    job_id: str
    idx: int
    spec: dict[str, Any]
    state: ChunkState
    attempts: int
    worker: str | None
    lease_until: datetime | None
    enqueued_at: datetime
    result: dict[str, Any] | None
    error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class LeaseClaim:
    """A claim to renew: a job (``idx`` ``None``) or one of its chunks, held by ``worker``;
    a job claim may carry its latest progress."""

    job_id: str
    worker: str
    idx: int | None = None
    progress: float | None = None
    message: str | None = None


@dataclass(frozen=True, slots=True)
class Reaped:
    """What :func:`reap` recovered; the caller puts each item on the queue again."""

    jobs: list[JobRecord] = field(default_factory=list)
    """Jobs back in ``queued`` (their worker was lost, or their message is overdue)."""
    chunks: list[ChunkRecord] = field(default_factory=list)
    """Chunks back in ``pending`` (same reasons)."""
    finishing: list[JobRecord] = field(default_factory=list)
    """Fanned-out jobs whose chunks are all done but whose finish step never completed."""
    failed: list[str] = field(default_factory=list)
    """Jobs failed because a lost worker used their last attempt."""


def to_job(row: Any) -> JobRecord:
    m = row._mapping
    return JobRecord(
        **{k: m[k] for k in _JOB_FIELDS},
        state=JobState(m["state"]),
        priority=JobPriority(m["priority"]),
        cancel_requested=bool(m["cancel_requested"]),
    )


_JOB_FIELDS = tuple(
    c.name for c in jobs.columns if c.name not in ("state", "priority", "cancel_requested")
)


def to_chunk(row: Any) -> ChunkRecord:
    m = row._mapping
    return ChunkRecord(
        **{k: m[k] for k in (c.name for c in job_chunks.columns) if k != "state"},
        state=ChunkState(m["state"]),
    )

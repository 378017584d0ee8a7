"""The job queue: huey, with sibyl's three tasks, picked by one URL (``jobs.url``).

* ``None`` → ``SqliteHuey`` at ``<data_dir>/jobs.db`` (embedded: every process on the machine);
* ``sqlite:///<path>`` → ``SqliteHuey`` at that file;
* ``redis://…`` / ``rediss://…`` / ``unix://…`` → ``PriorityRedisHuey`` (``sibyl[redis]``);
* ``postgresql://…`` → ``PostgresHuey`` (``sibyl[postgres]``, LISTEN/NOTIFY wake-ups).

Messages carry only ids (``job(id)``, ``chunk(id, idx)``, ``finish(id)``) and a priority; the
job itself is in the store. The queue is durable in every backend (a queued job survives a
restart); what a killed worker had taken off the queue is recovered from the store's leases
(see :mod:`sibyl.store._jobs`). Huey supplies priorities, delayed messages (retry backoff) and
the consumer threads. The connection opens on first use.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import BackendUnavailableError, InvalidInputError, MissingExtraError
from sibyl.store import JobPriority

if TYPE_CHECKING:
    from huey import Huey

SUPPORTED = "sqlite:///<path>, redis://…, rediss://…, unix://… or postgresql://…"
HUEY_PRIORITY = {JobPriority.HIGH: 30, JobPriority.NORMAL: 20, JobPriority.LOW: 10}
"""Huey priorities (higher is taken first)."""


class TaskHandler:
    """What the queue's tasks call in a process that runs jobs (see ``JobRunner``)."""

    def run_job(self, job_id: str) -> None:
        """Run one attempt of the job."""

    def run_chunk(self, job_id: str, idx: int) -> None:
        """Run one attempt of a chunk."""

    def finish(self, job_id: str) -> None:
        """Run the finish step of a fanned-out job."""


class JobQueue:
    """huey with the ``sibyl.job``, ``sibyl.chunk`` and ``sibyl.finish`` tasks registered.

    Thread-safe. ``bind(handler)`` makes this process able to run what it dequeues; a process
    that only submits never binds. Enqueue failures raise ``BackendUnavailableError``.
    """

    def __init__(self, url: str | None, data_dir: Path, name: str = "sibyl") -> None:
        self.url = url
        self.data_dir = data_dir
        self.name = name
        self._huey: Huey | None = None
        self._tasks: dict[str, Any] = {}
        self._handler: TaskHandler | None = None
        self._lock = threading.Lock()
        self._backend_check(url)

    def __repr__(self) -> str:
        return f"JobQueue({self.describe()!r})"

    def describe(self) -> str:
        """Where the queue lives (no password)."""
        if self.url is None:
            return f"sqlite:///{self.data_dir / 'jobs.db'} ({self.name})"
        return f"{self.url.split('@')[-1] if '@' in self.url else self.url} ({self.name})"

    @property
    def huey(self) -> Huey:
        """The huey instance (created on first use)."""
        with self._lock:
            if self._huey is None:
                self._huey = self._create()
                self._register(self._huey)
            return self._huey

    def bind(self, handler: TaskHandler) -> None:
        """Run dequeued tasks with ``handler`` in this process."""
        self._handler = handler

    def enqueue_job(self, job_id: str, priority: JobPriority, delay: float = 0.0) -> None:
        """Queue one attempt of the job (after ``delay`` seconds)."""
        self._send("job", (job_id,), priority, delay)

    def enqueue_chunk(
        self, job_id: str, idx: int, priority: JobPriority, delay: float = 0.0
    ) -> None:
        """Queue one attempt of a chunk."""
        self._send("chunk", (job_id, idx), priority, delay)

    def enqueue_finish(self, job_id: str, priority: JobPriority) -> None:
        """Queue the finish step of a fanned-out job."""
        self._send("finish", (job_id,), priority, 0.0)

    def pending(self) -> int:
        """Messages waiting (not counting delayed ones)."""
        return int(self.huey.pending_count())

    def close(self) -> None:
        """Close the connection (it reopens on next use)."""
        with self._lock:
            if self._huey is not None:
                self._huey.storage.close()

    # ---- internals -----------------------------------------------------------------------

    def _send(self, task: str, args: tuple[Any, ...], priority: JobPriority, delay: float) -> None:
        wrapper = self._tasks_of()[task]
        prio = HUEY_PRIORITY[JobPriority(priority)]
        try:
            if delay > 0:
                wrapper.schedule(args=args, delay=delay, priority=prio)
            else:
                self.huey.enqueue(wrapper.s(*args, priority=prio))
        except Exception as exc:
            raise BackendUnavailableError(
                f"The job queue {self.describe()} cannot be reached ({exc!r}); check jobs.url "
                "and that the queue's server is running"
            ) from exc

    def _tasks_of(self) -> dict[str, Any]:
        self.huey  # noqa: B018 - creates and registers on first use
        return self._tasks

    def _handle(self) -> TaskHandler:
        if self._handler is None:
            raise RuntimeError("this process runs no job workers (JobQueue.bind was not called)")
        return self._handler

    def _register(self, huey: Huey) -> None:
        def job(job_id: str) -> None:
            self._handle().run_job(job_id)

        def chunk(job_id: str, idx: int) -> None:
            self._handle().run_chunk(job_id, idx)

        def finish(job_id: str) -> None:
            self._handle().finish(job_id)

        for name, fn in (("job", job), ("chunk", chunk), ("finish", finish)):
            fn.__module__ = "sibyl.jobs"
            self._tasks[name] = huey.task(name=f"sibyl_{name}")(fn)

    def _create(self) -> Huey:
        url = self.url
        if url is None or url.startswith("sqlite:"):
            return self._sqlite(url)
        if url.split(":", 1)[0] in ("redis", "rediss", "unix"):
            return self._redis(url)
        return self._postgres(url)

    def _sqlite(self, url: str | None) -> Huey:
        from huey import SqliteHuey

        if url is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path = str(self.data_dir / "jobs.db")
        else:
            path = url.split("sqlite:///", 1)[-1]
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return SqliteHuey(self.name, filename=path, results=False, timeout=30)

    def _redis(self, url: str) -> Huey:
        try:
            import redis  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("redis", "redis") from exc
        from huey import PriorityRedisHuey

        return PriorityRedisHuey(self.name, url=url, results=False)

    def _postgres(self, url: str) -> Huey:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise MissingExtraError("psycopg", "postgres") from exc
        from huey import PostgresHuey

        dsn = url.replace("postgresql+psycopg://", "postgresql://", 1)
        return PostgresHuey(self.name, dsn=dsn, results=False, table_prefix="sibyl_jobq")

    @staticmethod
    def _backend_check(url: str | None) -> None:
        if url is None:
            return
        scheme = url.split(":", 1)[0]
        ok = ("sqlite", "redis", "rediss", "unix", "postgresql", "postgres", "postgresql+psycopg")
        if scheme not in ok:
            raise InvalidInputError(
                f"Job queue URL scheme '{scheme}' is not supported; use {SUPPORTED} "
                "(or leave jobs.url unset for the embedded SQLite queue)",
                field="jobs.url",
            )

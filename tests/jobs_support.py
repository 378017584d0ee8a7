"""Job system test support: a job system on a temp directory, waiting for a job, and real
``sibyl worker`` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sibyl.jobs import JobRecord, JobSystem, load_kinds
from sibyl.settings import Settings
from sibyl.store import get_store
from tests.helpers import ROOT

T = TypeVar("T")
FAST = {"heartbeat_s": 0.2, "poll_s": 0.1, "lease_s": 3.0, "retry_delay_s": 0.1, "nice": 0}
"""Job settings for tests: quick heartbeats, polls and lease expiry."""


def wait_until(fn: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Poll ``fn`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or fn}")
        time.sleep(0.05)


def settings_for(data_dir: Path, extra: Mapping[str, Any] | None = None, **jobs: Any) -> Settings:
    return Settings(data_dir=data_dir, jobs={**FAST, **jobs}, **(extra or {}))


def job_system(data_dir: Path, extra: Mapping[str, Any] | None = None, **jobs: Any) -> JobSystem:
    """A job system (store and queue under ``data_dir``) with the toy kinds registered;
    ``extra``: other settings sections."""
    load_kinds(["tests.jobs_toys"])
    settings = settings_for(data_dir, extra, **jobs)
    store = get_store(settings.store.url, data_dir=data_dir)
    store.migrate()
    return JobSystem(settings, store)


def finished(system: JobSystem, job_id: str, timeout: float = 30.0) -> JobRecord:
    """Wait for the job to end; returns its record."""
    return wait_until(
        lambda: (j := system.service.get(job_id)) and (j if j.state.terminal else None),
        timeout,
        f"job {job_id} to finish",
    )


def redis_name() -> str:
    """A queue name no other test uses (its Redis keys are its own)."""
    return f"test-{uuid.uuid4().hex[:10]}"


def worker_env(data_dir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment of a ``sibyl worker`` subprocess on ``data_dir`` with the toy kinds."""
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "SIBYL_DATA_DIR": str(data_dir),
        "SIBYL_JOBS__MODULES": '["tests.jobs_toys"]',
        "SIBYL_JOBS__HEARTBEAT_S": "0.2",
        "SIBYL_JOBS__POLL_S": "0.1",
        "SIBYL_JOBS__LEASE_S": "3",
        "SIBYL_JOBS__NICE": "0",
        "SIBYL_LOGGING__JSON_LOGS": "false",
        **(env or {}),
    }


@contextmanager
def workers(
    data_dir: Path, n: int = 2, env: Mapping[str, str] | None = None, threads: int = 1
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``n`` ``sibyl worker`` processes; killed (if still alive) at the end."""
    procs = []
    full = worker_env(data_dir, env)
    for i in range(n):
        log = (data_dir / f"worker-{i}-{uuid.uuid4().hex[:6]}.log").open("wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "sibyl.cli", "worker", "--threads", str(threads)],
            env=full, stdout=log, stderr=subprocess.STDOUT, cwd=data_dir,
        ))
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()


def workers_ready(data_dir: Path, n: int, timeout: float = 60.0) -> None:
    """Wait until ``n`` worker processes logged that their threads started."""
    wait_until(
        lambda: worker_logs(data_dir).count("job_workers_started") >= n,
        timeout,
        f"{n} workers to start",
    )


def worker_logs(data_dir: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(data_dir.glob("worker-*.log")))


def jobs_registry(base: Path) -> str:
    """The tracking URI of the job tests' registry under ``base`` (made once per session by
    ``python -m tests.jobs_registry``, in a subprocess)."""
    where = base / "jobs-registry"
    done = where / "uri"
    if not done.exists():
        where.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(
            [sys.executable, "-m", "tests.jobs_registry", str(where)], cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
            check=True, timeout=300,
        )
        done.write_text(out.stdout.strip().splitlines()[-1])
    return done.read_text()

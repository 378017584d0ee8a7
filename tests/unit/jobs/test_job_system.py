"""The job system in one process on its real embedded backends (SQLite queue and store) and on
the real Redis: success and progress, retries with backoff, permanent failures, cancellation
(queued and running), priorities, a queued job surviving a restart, lost workers, bad input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sibyl.errors import ConflictError, InvalidInputError, NotFoundError
from sibyl.jobs import JobRequest, JobState, JobSystem, LocalModels
from tests.contract.registry_support import fresh_database, postgres_or_skip
from tests.jobs_support import finished, job_system, redis_name, wait_until


@pytest.fixture
def system(tmp_path: Path) -> Iterator[JobSystem]:
    s = job_system(tmp_path)
    yield s
    s.stop()


def _start(system: JobSystem, threads: int = 1) -> None:
    system.start_workers(LocalModels(system.settings), threads)


def test_a_job_runs_and_reports_its_result(system: JobSystem) -> None:
    _start(system)
    job = system.service.submit(JobRequest("sleepy", {"label": "a", "seconds": 0.05}))
    done = finished(system, job.id)
    assert done.state is JobState.SUCCEEDED and done.result is not None
    assert done.result["label"] == "a" and done.progress == 1.0 and done.attempts == 1
    assert system.service.results(job.id)["label"] == "a"


def test_fan_out_runs_every_chunk_once(system: JobSystem, tmp_path: Path) -> None:
    _start(system, threads=2)
    trace = tmp_path / "trace"
    job = system.service.submit(JobRequest("fan", {"chunks": 6, "trace": str(trace)}))
    done = finished(system, job.id)
    assert done.state is JobState.SUCCEEDED and done.result is not None
    assert done.result["total"] == sum(i * 10 for i in range(6))
    assert sorted(int(line.split()[0]) for line in trace.read_text().splitlines()) == list(
        range(6)
    )
    assert done.chunks_total == done.chunks_done == 6


def test_failures_are_retried_with_backoff(system: JobSystem, tmp_path: Path) -> None:
    _start(system)
    counter = tmp_path / "count"
    job = system.service.submit(
        JobRequest("flaky", {"fail_times": 2, "counter": str(counter)}, max_attempts=3)
    )
    done = finished(system, job.id)
    assert done.state is JobState.SUCCEEDED and done.attempts == 3
    assert done.result == {"attempt": 3, "calls": 3}
    out_of_attempts = system.service.submit(
        JobRequest("flaky", {"fail_times": 5, "counter": str(tmp_path / "c2")}, max_attempts=2)
    )
    failed = finished(system, out_of_attempts.id)
    assert failed.state is JobState.FAILED and failed.attempts == 2
    assert "flaky failure 2" in (failed.error or "")
    with pytest.raises(ConflictError, match="failed"):
        system.service.results(failed.id)


def test_bad_input_fails_at_once(system: JobSystem) -> None:
    _start(system)
    job = system.service.submit(JobRequest("bad", {}, max_attempts=5))
    done = finished(system, job.id)
    assert done.state is JobState.FAILED and done.attempts == 1
    assert "no such file" in (done.error or "")


def test_submission_errors_name_the_field(system: JobSystem) -> None:
    cases = [
        (JobRequest("no-such-kind", {}), "kind"),
        (JobRequest("sleepy", {"seconds": "soon"}), "params.seconds"),
        (JobRequest("sleepy", {}, priority="urgent"), "priority"),
        (JobRequest("sleepy", {}, max_attempts=0), "max_attempts"),
    ]
    for req, field in cases:
        with pytest.raises(InvalidInputError) as err:
            system.service.submit(req)
        assert err.value.field == field, req
    with pytest.raises(NotFoundError):
        system.service.get("0" * 32)
    with pytest.raises(InvalidInputError) as err:
        system.service.list_jobs(state="sleeping")
    assert err.value.field == "state"


def test_a_cancelled_queued_job_never_runs(system: JobSystem, tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    doomed = system.service.submit(JobRequest("sleepy", {"label": "doomed", "trace": str(trace)}))
    assert system.service.cancel(doomed.id).state is JobState.CANCELLED
    _start(system)
    after = system.service.submit(JobRequest("sleepy", {"label": "after", "trace": str(trace)}))
    assert finished(system, after.id).state is JobState.SUCCEEDED
    assert trace.read_text().split() == ["after"]
    assert system.service.get(doomed.id).state is JobState.CANCELLED
    with pytest.raises(ConflictError, match="already cancelled"):
        system.service.cancel(doomed.id)


def test_a_running_job_stops_when_cancelled(system: JobSystem) -> None:
    _start(system)
    job = system.service.submit(JobRequest("sleepy", {"seconds": 60}))
    wait_until(lambda: system.service.get(job.id).state is JobState.RUNNING, what="running")
    assert system.service.cancel(job.id).cancel_requested
    done = finished(system, job.id, timeout=10)
    assert done.state is JobState.CANCELLED and done.error == "cancelled on request"


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The queue settings of a backend: the embedded SQLite file, the real Redis (a queue name
    of its own) or the real PostgreSQL (a fresh database)."""
    if request.param == "redis":
        yield {"url": "redis://127.0.0.1:6379/0", "name": redis_name()}
    elif request.param == "postgres":
        postgres_or_skip()
        with fresh_database("sibyl_jobq", "postgresql") as url:
            yield {"url": url}
    else:
        yield {}


@pytest.mark.parametrize("queue", [
    "sqlite",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("postgres", marks=pytest.mark.postgres),
], indirect=True)  # fmt: skip
def test_higher_priority_runs_first(tmp_path: Path, queue: dict[str, str]) -> None:
    system = job_system(tmp_path, **queue)
    trace = tmp_path / "trace"
    try:
        ids = [
            system.service.submit(
                JobRequest("sleepy", {"label": f"low{i}", "trace": str(trace)}, priority="low")
            ).id
            for i in range(3)
        ]
        ids.append(
            system.service.submit(
                JobRequest("sleepy", {"label": "normal", "trace": str(trace)})
            ).id
        )
        ids.append(
            system.service.submit(
                JobRequest("sleepy", {"label": "high", "trace": str(trace)}, priority="high")
            ).id
        )
        _start(system, threads=1)
        for jid in ids:
            finished(system, jid)
        assert trace.read_text().split() == ["high", "normal", "low0", "low1", "low2"]
    finally:
        system.stop()


def test_a_queued_job_survives_a_restart(tmp_path: Path) -> None:
    before = job_system(tmp_path)  # workers off: the job only gets queued
    job = before.service.submit(JobRequest("sleepy", {"label": "kept"}))
    before.stop()
    after = job_system(tmp_path)
    try:
        assert after.service.get(job.id).state is JobState.QUEUED
        _start(after)
        assert finished(after, job.id).state is JobState.SUCCEEDED
    finally:
        after.stop()


def test_stopping_the_workers_puts_running_jobs_back(tmp_path: Path) -> None:
    first = job_system(tmp_path)
    _start(first)
    job = first.service.submit(JobRequest("sleepy", {"label": "long", "seconds": 60}))
    wait_until(lambda: first.service.get(job.id).state is JobState.RUNNING, what="running")
    first.stop()
    back = first.service.get(job.id)
    assert back.state is JobState.QUEUED and back.attempts == 0  # the attempt was refunded
    second = job_system(tmp_path)
    try:
        _start(second)
        wait_until(lambda: second.service.get(job.id).state is JobState.RUNNING, what="rerun")
        second.service.cancel(job.id)
        assert finished(second, job.id).state is JobState.CANCELLED
    finally:
        second.stop()


def test_a_job_whose_worker_vanished_is_run_again(system: JobSystem) -> None:
    job = system.service.submit(JobRequest("sleepy", {"label": "orphan"}))
    # a worker took it and died without a word: its lease (1 s) is all that is left
    assert system.store.claim_job(job.id, "dead-host/1/Worker-1/x", 1.0) is not None
    _start(system)
    done = finished(system, job.id, timeout=20)
    assert done.state is JobState.SUCCEEDED and done.attempts == 2
    assert done.worker is None

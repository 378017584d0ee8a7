"""Real ``sibyl worker`` processes sharing the store and the queue — the embedded SQLite queue
and the real Redis: they split a job's chunks, and a worker killed with SIGKILL in the middle
of a batch job loses no row and duplicates none."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from sibyl.jobs import ChunkState, JobRequest, JobState, JobSystem
from tests.jobs_support import (
    finished,
    job_system,
    jobs_registry,
    redis_name,
    wait_until,
    worker_logs,
    workers,
    workers_ready,
)

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]


def _queue(backend: str) -> dict[str, str]:
    if backend == "redis":
        return {"url": "redis://127.0.0.1:6379/0", "name": redis_name()}
    return {}


def _env(queue: dict[str, str], uri: str | None = None) -> dict[str, str]:
    env = {f"SIBYL_JOBS__{k.upper()}": v for k, v in queue.items()}
    if uri:
        env["MLFLOW_TRACKING_URI"] = uri
    return env


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_share_the_chunks(tmp_path: Path, backend: str) -> None:
    queue = _queue(backend)
    system = job_system(tmp_path, **queue)
    try:
        with workers(tmp_path, 2, _env(queue)):
            workers_ready(tmp_path, 2)  # else the first one up could take every chunk
            job = system.service.submit(JobRequest("fan", {"chunks": 8, "seconds": 0.4}))
            done = finished(system, job.id, timeout=60)
            assert done.state is JobState.SUCCEEDED, worker_logs(tmp_path)
            assert done.result is not None and done.result["total"] == sum(range(8)) * 10
            assert len(done.result["pids"]) == 2  # both processes took chunks
    finally:
        system.stop()


def _victim_chunk(system: JobSystem, job_id: str, pids: set[int]) -> tuple[int, int] | None:
    """(chunk index, pid) of a chunk being scored right now by one of ``pids``."""
    for chunk in system.store.list_chunks(job_id):
        if chunk.state is ChunkState.RUNNING and chunk.worker:
            pid = int(chunk.worker.split("/")[1])
            if pid in pids:
                return chunk.idx, pid
    return None


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_worker_killed_mid_batch_job_loses_and_duplicates_no_row(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, backend: str
) -> None:
    uri = jobs_registry(tmp_path_factory.getbasetemp())
    queue = _queue(backend)
    data = tmp_path / "in.csv"
    n = 400
    data.write_text("a,b,id\n" + "".join(f"{i},{2 * i},r{i}\n" for i in range(n)))
    out = tmp_path / "out"
    system = job_system(tmp_path, {"registry": {"tracking_uri": uri}}, **queue)
    env = {**_env(queue, uri), "SIBYL_JOBS__READ_ROWS": "20"}
    try:
        with workers(tmp_path, 2, env) as procs:
            job = system.service.submit(JobRequest("batch_score", {
                "model": "slowecho", "input": str(data), "output": str(out),
                "passthrough": ["id"], "chunk_rows": 50}))  # fmt: skip
            pids = {p.pid for p in procs}
            idx, pid = wait_until(
                lambda: _victim_chunk(system, job.id, pids), 90, "a chunk being scored"
            )
            os.kill(pid, signal.SIGKILL)
            done = finished(system, job.id, timeout=120)
            assert done.state is JobState.SUCCEEDED, (done.error, worker_logs(tmp_path))
    finally:
        system.stop()
    got = ds.dataset(str(out), format="parquet").to_table().to_pandas()
    assert sorted(got["row_index"]) == list(range(n))  # every row exactly once
    ordered = got.sort_values("row_index")
    assert ordered["id"].tolist() == [f"r{i}" for i in range(n)]
    assert ordered["prediction"].tolist() == [3.0 * i for i in range(n)]
    chunks = system.store.list_chunks(job.id)
    assert chunks[idx].attempts == 2  # the killed worker's chunk ran again elsewhere
    assert {c.state for c in chunks} == {ChunkState.DONE}
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json"] + [
        f"part-{i:05d}.parquet" for i in range(8)
    ]

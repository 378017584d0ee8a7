"""Batch scoring benchmark: rows/s with 1 and 2 ``sibyl worker`` processes, and online latency
while a batch job runs inside ``sibyl serve`` vs idle.

    python bench/jobs.py [--rows 1000000] [--duration 10] [--connections 4] [--keep]

* **Throughput.** The benchmark model (``model.py``: HGB, 20 features) scores a Parquet input
  of ``--rows`` rows (random features, 100k-row groups, plus an ``id`` passthrough column) into
  Parquet parts, ``--chunks`` chunks, by 1 then 2 ``sibyl worker`` processes on the embedded
  SQLite queue and store. A small warm-up job first makes every worker load the model (MLflow
  import, download, ONNX compile and verification), so rows/s is the job's own: rows divided by
  the time from its first claim to its last chunk.
* **Online latency while batch scoring.** ``sibyl serve`` (core 0, one in-process job thread —
  the default) answers wrk's 1-row ``/invocations`` requests (core 1, closed loop,
  ``--connections``) for ``--duration`` s idle, then again while a batch job of the same input
  runs in the server (LOW lane of the serving batcher, niced thread). Reports p50/p99 and req/s
  of both runs, their ratio (goal: p99 rises ≤ 20 %), and the job's rows/s under that load.

Writes ``bench/results/jobs-<date>.json`` and prints a Markdown table. Needs wrk and taskset
(see bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

import loadgen
import model
import servers

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def write_input(path: Path, rows: int, seed: int = 0) -> None:
    """``rows`` rows of the model's 20 features (standard normal) and an id, 100k at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    step = 100_000
    writer = None
    for start in range(0, rows, step):
        n = min(step, rows - start)
        cols = {f: rng.standard_normal(n) for f in model.FEATURES}
        cols["id"] = np.arange(start, start + n)
        table = pa.table(cols)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def _env(tracking_uri: str, data_dir: Path) -> dict[str, str]:
    return {**os.environ, **servers.THREAD_ENV, "MLFLOW_TRACKING_URI": tracking_uri,
            "SIBYL_DATA_DIR": str(data_dir), "SIBYL_JOBS__POLL_S": "0.1",
            "SIBYL_JOBS__HEARTBEAT_S": "0.5", "SIBYL_LOGGING__LEVEL": "WARNING"}  # fmt: skip


def _job_system(tracking_uri: str, data_dir: Path) -> Any:
    from sibyl.jobs import JobSystem
    from sibyl.settings import Settings
    from sibyl.store import get_store

    settings = Settings(data_dir=data_dir, registry={"tracking_uri": tracking_uri})
    store = get_store(None, data_dir=data_dir)
    store.migrate()
    return JobSystem(settings, store)


def _wait(system: Any, job_id: str, timeout: float = 3600) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = system.service.get(job_id)
        if job.state.terminal:
            if job.state.value != "succeeded":
                raise RuntimeError(f"job {job_id} {job.state.value}: {job.error}")
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job.state.value}")
        time.sleep(0.2)


def _submit(system: Any, source: Path, out: Path, chunk_rows: int) -> str:
    from sibyl.jobs import JobRequest

    params = {"model": model.MODEL_NAME, "input": str(source), "output": str(out),
              "passthrough": ["id"], "chunk_rows": chunk_rows}  # fmt: skip
    return str(system.service.submit(JobRequest("batch_score", params)).id)


def throughput(tracking_uri: str, work: Path, source: Path, rows: int, workers: int,
               chunks: int) -> dict[str, Any]:  # fmt: skip
    """rows/s of one batch job run by ``workers`` worker processes."""
    data_dir = work / f"workers-{workers}"
    system = _job_system(tracking_uri, data_dir)
    env = {**_env(tracking_uri, data_dir), "SIBYL_JOBS__NICE": "0"}  # a machine for batch work
    logs = [(data_dir / f"worker-{i}.log").open("wb") for i in range(workers)]
    procs = [subprocess.Popen([str(servers.VENV_BIN / "sibyl"), "worker"], env=env, stdout=log,
                              stderr=subprocess.STDOUT) for log in logs]  # fmt: skip
    try:
        warm = work / f"warm-{workers}.parquet"
        write_input(warm, 4 * 500, seed=1)
        _wait(system, _submit(system, warm, data_dir / "warm-out", 500))
        job = _wait(system, _submit(system, source, data_dir / "out", max(rows // chunks, 1)))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
        system.stop()
    seconds = (job.finished_at - job.started_at).total_seconds()
    chunks_done = [c.result for c in system.store.list_chunks(job.id) if c.result]
    pids = {r["worker"].split("/")[1] for r in chunks_done}
    chunk_s = sum(r["seconds"] for r in chunks_done) / max(len(chunks_done), 1)
    return {"workers": workers, "rows": rows, "chunks": job.chunks_total, "seconds": seconds,
            "rows_per_s": rows / seconds, "processes_used": len(pids),
            "mean_chunk_s": chunk_s}  # fmt: skip


def _http(method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"content-type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        out: dict[str, Any] = json.loads(resp.read())
        return out


def _latency(run: loadgen.WrkRun) -> dict[str, float]:
    return {"p50_ms": run.percentile_ms("50"), "p99_ms": run.percentile_ms("99"),
            "req_per_s": run.ok / run.duration_s, "non_2xx": run.non_2xx}  # fmt: skip


def online(tracking_uri: str, work: Path, source: Path, rows: int, chunks: int, duration: int,
           connections: int) -> dict[str, Any]:  # fmt: skip
    """Online latency idle vs while a batch job runs in the server."""
    data_dir = work / "serve"
    spec = servers.sibyl_spec(tracking_uri, work / "serve-home", model.MODEL_NAME)
    spec.env.update(SIBYL_DATA_DIR=str(data_dir), SIBYL_JOBS__POLL_S="0.1",
                    SIBYL_JOBS__CHUNK_ROWS=str(max(rows // chunks, 1)))  # fmt: skip
    server = servers.start(spec, work)
    try:
        ready = servers.wait_all_ready([server], 300)[0]
        if isinstance(ready, Exception):
            raise ready
        url = f"{server.base_url}/invocations"
        load = loadgen.Load(rows=1, connections=connections, duration_s=duration)
        loadgen.run(url, loadgen.Load(rows=1, connections=connections, duration_s=2))  # warm-up
        servers.wait_idle([server])
        idle = loadgen.run(url, load)
        job = _http("POST", f"{server.base_url}/v1/batch/submit", {
            "model": model.MODEL_NAME, "input": str(source), "output": str(work / "serve-out"),
            "passthrough": ["id"], "priority": "low"})  # fmt: skip
        while (state := _http("GET", f"{server.base_url}/v1/jobs/{job['id']}"))["chunks"] is None:
            time.sleep(0.1)  # planning: wait until chunks are being scored
        busy = loadgen.run(url, load)
        during = _http("GET", f"{server.base_url}/v1/jobs/{job['id']}")
        while not (state := _http("GET", f"{server.base_url}/v1/jobs/{job['id']}"))["finished_at"]:
            time.sleep(0.5)
    finally:
        servers.stop(server)
    started = datetime.fromisoformat(state["started_at"])
    seconds = (datetime.fromisoformat(state["finished_at"]) - started).total_seconds()
    return {
        "idle": _latency(idle),
        "during_batch": _latency(busy),
        "batch_still_running_after": during["state"] == "running",
        "batch_progress_after": during["progress"],
        "p99_ratio": busy.percentile_ms("99") / idle.percentile_ms("99"),
        "batch_state": state["state"],
        "batch_rows_per_s_in_server": rows / seconds,
        "batch_seconds_in_server": seconds,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunks", type=int, default=8, help="chunks of the batch job")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    loadgen.check_tools()
    work = Path(tempfile.mkdtemp(prefix="sibyl-bench-jobs-"))
    print(f"work directory: {work}", file=sys.stderr)
    started = time.monotonic()
    try:
        reg = model.build(work / "registry")
        source = work / "input.parquet"
        write_input(source, args.rows)
        result: dict[str, Any] = {"rows": args.rows, "chunks": args.chunks, "throughput": []}
        for n in (int(w) for w in args.workers.split(",")):
            result["throughput"].append(
                throughput(reg.tracking_uri, work, source, args.rows, n, args.chunks)
            )
            print(json.dumps(result["throughput"][-1]), file=sys.stderr)
        if not args.skip_online:
            result["online"] = online(reg.tracking_uri, work, source, args.rows, args.chunks,
                                      args.duration, args.connections)  # fmt: skip
        result["wall_s"] = time.monotonic() - started
        result["date"] = datetime.now().isoformat(timespec="seconds")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    out = Path(__file__).with_name("results") / f"jobs-{datetime.now():%Y-%m-%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2))
    print(markdown(result))
    return 0


def markdown(result: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    lines = [f"Batch scoring, {result['rows']:,} rows, {result['chunks']} chunks:", "",
             "| workers | seconds | rows/s |", "|---|---|---|"]  # fmt: skip
    for t in result["throughput"]:
        lines.append(f"| {t['workers']} | {t['seconds']:.1f} | {t['rows_per_s']:,.0f} |")
    online_ = result.get("online")
    if online_:
        idle, busy = online_["idle"], online_["during_batch"]
        lines += ["", "Online /invocations (1 row) while a batch job runs in `sibyl serve`:", "",
                  "| | p50 ms | p99 ms | req/s |", "|---|---|---|---|",
                  _row("idle", idle), _row("batch running", busy), "",
                  f"p99 ratio {online_['p99_ratio']:.2f}; batch in the server: "
                  f"{online_['batch_rows_per_s_in_server']:,.0f} rows/s"]  # fmt: skip
    return "\n".join(lines)


def _row(name: str, m: dict[str, float]) -> str:
    return f"| {name} | {m['p50_ms']:.2f} | {m['p99_ms']:.2f} | {m['req_per_s']:,.0f} |"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

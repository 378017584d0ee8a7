"""What the prediction log costs: on the request path, in its writer, and in server throughput.

    .venv/bin/python bench/predlog.py                 # in-process: path cost, writer, spool
    .venv/bin/python bench/predlog.py --serve         # + servers: off / log / drift / log+drift

In-process (one thread):

* **path** — ``PredictionLog.answered`` (what ``PredictionService.predict`` calls once per
  request: a context-variable read, ``time.time``, a tuple, a ``deque.append``) next to a call of
  an empty function with the same arguments; the difference is the log's cost per request
  (medians of 300 rounds of 1,000 calls).
* **writer** — entries rendered (ids, timestamps, inputs table, redaction) and written to the
  store, rows per second: SQLite (a file) and the PostgreSQL on 127.0.0.1:5432 when it answers,
  with inputs ``none`` / ``sample`` (10 %) / ``all`` for 1-row requests of 20 features.
* **spool** — rows per second appended (fsync per 1,000-row batch) and replayed into SQLite.

``--serve`` starts four ``sibyl serve`` over the serving benchmark's model (``bench-hgb``), each
with its own data directory, pinned to core 0, wrk on core 1 (as ``bench/traffic.py``): ``off``
(log and drift off), ``log`` (the prediction log with its defaults), ``drift`` (drift on, a
reference profile uploaded for version 1), ``log+drift``. Interleaved repetitions; medians and
ratios against ``off`` from the same run.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from sibyl.monitoring.predlog import PredictionLog, Spool
from sibyl.monitoring.predlog._codec import CODEC
from sibyl.runtime.schema import ColumnSpec, InputSchema
from sibyl.runtime.types import Prediction, Task
from sibyl.service import Inputs, PredictRequest, PredictResult
from sibyl.settings import PredictionLogSettings
from sibyl.store import SQLStore

FEATURES = [f"f{i}" for i in range(20)]
SCHEMA = InputSchema([ColumnSpec(f, "float") for f in FEATURES])
PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def sample_request(i: int) -> tuple[PredictRequest, PredictResult]:
    row = {f: float(i % 97) / 7 + j for j, f in enumerate(FEATURES)}
    req = PredictRequest("bench-hgb", Inputs("records", [row]), request_id=f"r{i}")
    pred = Prediction(np.array([i % 2]), np.array([[0.3, 0.7]]), (0, 1))
    res = PredictResult("bench-hgb", "1", "onnxruntime", f"r{i}", pred, Task.CLASSIFIER, SCHEMA)
    return req, res


def path_cost(calls: int = 1000, rounds: int = 300) -> dict[str, float]:
    """µs per request: ``answered`` minus an empty call with the same arguments. The buffer is
    emptied every ``calls`` calls, as the writer thread does (a buffer that only grows would
    measure the garbage collector scanning it)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLStore(f"sqlite:///{tmp}/s.db")
        plog = PredictionLog(store, PredictionLogSettings(max_pending=10**9), Path(tmp) / "sp")
        req, res = sample_request(1)
        pending = plog.writer.pending

        def empty(req: Any, res: Any, started: float) -> None:
            return None

        def timed(fn: Any) -> float:
            samples = []
            started = time.perf_counter()
            for _ in range(rounds):
                t = time.perf_counter_ns()
                for _ in range(calls):
                    fn(req, res, started)
                samples.append((time.perf_counter_ns() - t) / calls / 1000)
                pending.clear()
            return statistics.median(samples)

        log_us, base_us = timed(plog.answered), timed(empty)
        store.close()
    return {"answered_us": log_us, "empty_call_us": base_us, "net_us": log_us - base_us}


def writer_rate(url: str, inputs: str, n: int = 20_000) -> tuple[float, float]:
    """Rows per second rendered and written (batches of 1,000), and this process's CPU µs per
    row doing it (the database server's own work on PostgreSQL is not in it)."""
    store = SQLStore(url)
    store.migrate()
    settings = PredictionLogSettings(inputs=inputs, flush_rows=1000, max_pending=10**9)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        plog = PredictionLog(store, settings, Path(tmp) / "spool")
        plog.spool.open()
        pairs = [sample_request(i) for i in range(n)]
        started = time.perf_counter()
        for req, res in pairs:
            plog.answered(req, res, started)
        t, cpu = time.perf_counter(), time.process_time()
        plog.flush()
        elapsed, cpu = time.perf_counter() - t, time.process_time() - cpu
        assert plog.writer.tally["written"] == n, plog.writer.tally
        plog.close()
    store.delete_prediction_log(keep_rows=0, model="bench-hgb")
    store.close()
    return n / elapsed, cpu / n * 1e6


def spool_rates(n: int = 20_000) -> dict[str, float]:
    """Rows per second into the spool (fsync per 1,000) and out of it into SQLite."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLStore(f"sqlite:///{tmp}/s.db")
        store.migrate()
        plog = PredictionLog(store, PredictionLogSettings(inputs="all"), Path(tmp) / "sp")
        renderer = plog.writer._render
        records = renderer([(time.time(), 0.001, *sample_request(i), None, 0, None, None)
                            for i in range(n)])  # fmt: skip
        spool = Spool(Path(tmp) / "spool", max_bytes=1 << 32)
        spool.open()
        t = time.perf_counter()
        for start in range(0, n, 1000):
            spool.append([CODEC.encode(r) for r in records[start : start + 1000]])
        append = n / (time.perf_counter() - t)
        t = time.perf_counter()
        while (segment := spool.oldest()) is not None:
            batch = [CODEC.decode(line) for line in spool.read(segment).lines]
            for start in range(0, len(batch), 1000):
                store.write_prediction_log(batch[start : start + 1000])
            spool.remove(segment)
        replay = n / (time.perf_counter() - t)
        store.close()
    return {"append_rows_s": append, "replay_rows_s": replay}


def pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=2).close()
        return True
    except Exception:
        return False


def micro() -> None:
    cost = path_cost()
    print("\n## Path cost (one request)\n")
    print("| call | µs |\n|---|---|")
    print(f"| `PredictionLog.answered` | {cost['answered_us']:.3f} |")
    print(f"| empty call, same arguments | {cost['empty_call_us']:.3f} |")
    print(f"| **the log's cost** | **{cost['net_us']:.3f}** |")
    print("\n## Writer (render + write, 1-row requests, 20 features)\n")
    print("| store | inputs none | inputs sample 10 % | inputs all |\n|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        targets = [("SQLite (file)", f"sqlite:///{tmp}/w.db")]
        pg = _fresh_pg_db() if pg_available() else None
        if pg:
            targets.append(("PostgreSQL", pg))
        try:
            for name, url in targets:
                rates = [writer_rate(url, mode) for mode in ("none", "sample", "all")]
                cells = [f"{r:,.0f} rows/s, {cpu:.0f} µs CPU/row" for r, cpu in rates]
                print(f"| {name} | " + " | ".join(cells) + " |")
        finally:
            if pg:
                _drop_pg_db(pg)
    spool = spool_rates()
    print("\n## Spool (inputs all)\n")
    print(f"| append (fsync per 1,000) | {spool['append_rows_s']:,.0f} rows/s |")
    print(f"| replay into SQLite | {spool['replay_rows_s']:,.0f} rows/s |\n|---|---|")


def _fresh_pg_db() -> str:
    import psycopg

    name = f"sibyl_bench_{int(time.time())}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop_pg_db(url: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")


# ---- servers ---------------------------------------------------------------------------------

CONFIGS: dict[str, dict[str, str]] = {
    "off": {"SIBYL_PREDICTION_LOG__ENABLED": "false", "SIBYL_DRIFT__ENABLED": "false"},
    "log": {"SIBYL_DRIFT__ENABLED": "false"},
    "drift": {"SIBYL_PREDICTION_LOG__ENABLED": "false"},
    "log+drift": {},
}
LOADS = ((1, 16), (32, 16))


def serve(duration: int, repeat: int) -> None:
    import loadgen
    import model
    import servers

    print(f"wrk {loadgen.check_tools()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="sibyl-predlog-bench-"))
    registered = model.build(workdir)
    fleet = {}
    for name, extra in CONFIGS.items():
        base = servers.sibyl_spec(registered.tracking_uri, workdir / name, model.MODEL_NAME)
        env = base.env | extra | {"SIBYL_REGISTRY__WATCH_INTERVAL_S": "0",
                                  "SIBYL_CACHE__ENABLED": "false"}  # fmt: skip
        spec = servers.ServerSpec(name, base.argv, base.ready_path, env, base.metrics_path, name)
        fleet[name] = servers.start(spec, workdir)
    try:
        for outcome in servers.wait_all_ready(list(fleet.values()), 180):
            if isinstance(outcome, BaseException):
                raise outcome
        _upload_profile(fleet["drift"].base_url)
        _upload_profile(fleet["log+drift"].base_url)
        for server in fleet.values():
            loadgen.run(server.base_url + "/invocations", loadgen.Load(1, 16, 2))
        servers.wait_idle(list(fleet.values()))
        cells = []
        names = list(CONFIGS)
        for repetition in range(repeat):
            order = names[repetition % len(names) :] + names[: repetition % len(names)]
            for rows, connections in LOADS:
                load = loadgen.Load(rows, connections, duration)
                for name in order:
                    run = loadgen.run(fleet[name].base_url + "/invocations", load)
                    cell = {"server": name, "rows": rows, "req_s": run.ok / run.duration_s}
                    cell |= {"p99_ms": run.percentile_ms("99"), "non_2xx": run.non_2xx}
                    cells.append(cell)
                    servers.wait_idle(list(fleet.values()))
                    print(f"  {name:9} rows={rows:<2} {cells[-1]['req_s']:9,.0f} req/s", flush=True)
    finally:
        for server in fleet.values():
            servers.stop(server)
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\n## Throughput ({repeat} × {duration} s, 16 connections, cache off)\n")
    print(
        "| server | rows | req/s (median) | vs off | p99 ms | non-2xx |\n|---|---|---|---|---|---|"
    )
    for rows, _ in LOADS:

        def med(name: str, key: str, rows: int = rows) -> float:
            return statistics.median(c[key] for c in cells if c["server"] == name
                                     and c["rows"] == rows)  # fmt: skip

        ref = med("off", "req_s")
        for name in CONFIGS:
            rps = med(name, "req_s")
            print(f"| {name} | {rows} | {rps:,.0f} | {rps / ref:.2f}× "
                  f"| {med(name, 'p99_ms'):.2f} | {int(med(name, 'non_2xx'))} |")  # fmt: skip


def _upload_profile(base_url: str) -> None:
    """A reference profile for version 1 from the training data (drift watches it)."""
    import urllib.request

    import model

    x, _ = model.training_data()
    body = x.head(5000).to_csv(index=False).encode()
    request = urllib.request.Request(
        f"{base_url}/v1/monitoring/models/{model.MODEL_NAME}/versions/1/profile", body,
        {"Content-Type": "text/csv"}, method="PUT",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help="also measure servers (wrk)")
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    micro()
    if args.serve:
        serve(args.duration, args.repeat)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

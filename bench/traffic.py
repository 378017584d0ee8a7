"""What routing, the prediction cache and experiment accounting cost on the hot path.

Four ``sibyl serve`` processes over one registry (the serving benchmark's model, ``bench-hgb``,
registered twice: version 1 production, version 2 the A/B treatment), each with its own data
directory, all pinned to core 0 and measured one at a time with wrk on core 1:

* ``plain``    — cache off, no experiment (the reference);
* ``cache``    — the prediction cache on (the default), no experiment;
* ``ab``       — cache off, a running 50/50 A/B experiment on ``bench-hgb``;
* ``cache+ab`` — both: what a default server with an experiment running does.

The prediction log, drift, live quality, alerts and job workers are off in all four (their cost is
measured by ``bench/predlog.py`` and ``bench/drift_serving.py``).

Every request carries ``X-Routing-Key: user-<i>`` (10,000 users at 1 row, 500 at 32 rows), so
the experiment assigns users stickily and the buffered writer records an assignment and an
outcome for each request. Rows never repeat (``distinct``: the cache only costs) unless
``--repeat-rows`` (rows come back every pool-size requests: the cache can hit). Cells are
interleaved and repeated; medians and ratios against ``plain`` come from the same run.

    .venv/bin/python bench/traffic.py [--duration 5] [--repeat 3] [--repeat-rows] [--json F]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import loadgen
import model
import servers

CONFIGS: dict[str, dict[str, str]] = {
    "plain": {"SIBYL_CACHE__ENABLED": "false"},
    "cache": {},
    "ab": {"SIBYL_CACHE__ENABLED": "false"},
    "cache+ab": {},
}
WITH_EXPERIMENT = ("ab", "cache+ab")
QUIET = {  # off in every server: not what this benchmark measures
    "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0",
    "SIBYL_PREDICTION_LOG__ENABLED": "false",
    "SIBYL_DRIFT__ENABLED": "false",
    "SIBYL_QUALITY__ENABLED": "false",
    "SIBYL_ALERTS__ENABLED": "false",
    "SIBYL_JOBS__WORKERS": "0",
}
LOADS = ((1, 16), (32, 16))


def register_two_versions(workdir: Path) -> model.RegisteredModel:
    """``bench-hgb`` v1 (production) and v2, the same fitted model logged twice."""
    import mlflow

    fitted, x_df = model.train()
    registered = model.register(fitted, x_df, workdir)
    with mlflow.start_run(experiment_id=mlflow.get_experiment_by_name("bench").experiment_id):
        mlflow.sklearn.log_model(
            fitted,
            name="model",
            serialization_format="cloudpickle",
            signature=mlflow.models.infer_signature(x_df, fitted.predict(x_df.head(100))),  # type: ignore[attr-defined]
            input_example=x_df.head(5),
            registered_model_name=model.MODEL_NAME,
        )
    return registered


def spec(name: str, registered: model.RegisteredModel, workdir: Path) -> servers.ServerSpec:
    base = servers.sibyl_spec(registered.tracking_uri, workdir / name, model.MODEL_NAME)
    env = base.env | QUIET | CONFIGS[name]
    return servers.ServerSpec(name, base.argv, base.ready_path, env, base.metrics_path, name)


def post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def start_experiment(server: servers.RunningServer) -> None:
    """A running 50/50 A/B test: control = v1, treatment = v2."""
    base = server.base_url
    post(
        f"{base}/v1/experiments",
        {
            "name": "bench-ab",
            "model": model.MODEL_NAME,
            "variants": [
                {"name": "control", "version": "1", "weight": 1, "control": True},
                {"name": "treatment", "version": "2", "weight": 1},
            ],
            "success_metrics": ["error_rate <= 0.01 weight 1"],
        },
    )
    post(f"{base}/v1/experiments/bench-ab/start", {})


def results_n(server: servers.RunningServer) -> int:
    """Prediction outcomes the experiment recorded (proof the accounting ran)."""
    with urllib.request.urlopen(f"{server.base_url}/v1/experiments/bench-ab/results") as r:
        data = json.loads(r.read())
    return int(sum(v.get("n", 0) for v in data.get("variants", [])))


def measure(server: servers.RunningServer, load: loadgen.Load) -> dict[str, Any]:
    run = loadgen.run(server.base_url + "/invocations", load)
    req_s = run.ok / run.duration_s
    return {
        "server": server.spec.name,
        "rows": load.rows,
        "connections": load.connections,
        "req_per_s": req_s,
        "rows_per_s": req_s * load.rows,
        "p50_ms": run.percentile_ms("50"),
        "p99_ms": run.percentile_ms("99"),
        "non_2xx": run.non_2xx,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--repeat-rows", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the raw cells here")
    args = parser.parse_args(argv)
    print(f"wrk {loadgen.check_tools()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="sibyl-traffic-bench-"))
    registered = register_two_versions(workdir)
    fleet = {name: servers.start(spec(name, registered, workdir), workdir) for name in CONFIGS}
    try:
        outcomes = servers.wait_all_ready(list(fleet.values()), 180)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        for name in WITH_EXPERIMENT:
            start_experiment(fleet[name])
        for server in fleet.values():  # warm: both versions loaded, JIT-free paths hot
            loadgen.run(server.base_url + "/invocations", loadgen.Load(1, 16, 2, keys=True))
        servers.wait_idle(list(fleet.values()))
        cells: list[dict[str, Any]] = []
        names = list(CONFIGS)
        for repetition in range(args.repeat):
            order = names[repetition % len(names) :] + names[: repetition % len(names)]
            for rows, connections in LOADS:
                load = loadgen.Load(
                    rows, connections, args.duration, keys=True, repeat_rows=args.repeat_rows
                )
                for name in order:
                    cell = measure(fleet[name], load) | {"repetition": repetition}
                    servers.wait_idle(list(fleet.values()))
                    cells.append(cell)
                    print(
                        f"  {name:9} rows={rows:<2} {cell['req_per_s']:9,.0f} req/s "
                        f"p99 {cell['p99_ms']:6.2f} ms non-2xx {cell['non_2xx']}",
                        flush=True,
                    )
        time.sleep(2.5)  # the outcome writer flushes every second
        recorded = {name: results_n(fleet[name]) for name in WITH_EXPERIMENT}
    finally:
        for server in fleet.values():
            servers.stop(server)
    print_table(cells, recorded, args)
    if args.json:
        args.json.write_text(json.dumps({"cells": cells, "recorded": recorded}, indent=1))
    return 0


def print_table(
    cells: list[dict[str, Any]], recorded: dict[str, int], args: argparse.Namespace
) -> None:
    mode = "repeating" if args.repeat_rows else "distinct"
    print(f"\n{args.repeat} repetitions × {args.duration} s, 16 connections, {mode} rows\n")
    print("| server | rows | req/s (median) | vs plain | p50 ms | p99 ms | non-2xx |")
    print("|---|---|---|---|---|---|---|")
    for rows, _ in LOADS:
        def median(name: str, key: str, rows: int = rows) -> float:
            return statistics.median(
                c[key] for c in cells if c["server"] == name and c["rows"] == rows
            )

        ref = median("plain", "req_per_s")
        for name in CONFIGS:
            rps = median(name, "req_per_s")
            print(
                f"| {name} | {rows} | {rps:,.0f} | {rps / ref:.2f}× | {median(name, 'p50_ms'):.2f}"
                f" | {median(name, 'p99_ms'):.2f} | {int(median(name, 'non_2xx'))} |"
            )
    print(f"\noutcomes recorded by the experiments: {recorded}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Serving-core benchmark: sibyl vs `mlflow models serve` vs a raw ASGI ceiling, in one run.

    python bench/serving.py [--duration 10] [--quick] [--servers sibyl,mlflow,raw]

Each server in turn is pinned to core 0 and driven by wrk pinned to core 1 (closed loop) with
MLflow /invocations requests whose rows are all distinct: 1 and 32 rows per request at 1, 16 and 64
connections, then (sibyl) an overload run at >= 4x its saturating concurrency. Writes
bench/results/serving-<date>.json, prints markdown and rewrites the "Serving core" section of
bench/RESULTS.md (not with --quick). Method and definitions: bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cpustat
import loadgen
import model
import prom
import report
import servers
from results import CellResult, Noise, OverloadResult, cell_result, saturating_connections

BENCH_DIR = Path(__file__).resolve().parent
ROWS = (1, 32)
CONNECTIONS = (1, 16, 64)
ALL_SERVERS = ("sibyl", "mlflow", "raw")
HISTOGRAM = "ml_prediction_duration_seconds"
SETTLE_S = 0.5
SERVER_CORE = int(servers.SERVER_CORE)


@dataclass(frozen=True)
class Options:
    duration_s: int
    warmup_s: int
    quick: bool
    servers: list[str]
    overload: list[str]
    overload_connections: int
    ready_timeout_s: float
    keep: bool
    write_results_md: bool


@dataclass
class ServerOutcome:
    info: dict[str, Any]
    cells: list[CellResult]
    overload: OverloadResult | None


def server_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(ALL_SERVERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown server(s) {unknown}; choose from {ALL_SERVERS}")
    return names


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per cell (10)")
    parser.add_argument("--quick", action="store_true", help="3 s cells; RESULTS.md untouched")
    parser.add_argument("--servers", type=server_list, default=list(ALL_SERVERS))
    parser.add_argument(
        "--overload",
        type=server_list,
        default=["sibyl"],
        help="servers that get the overload run (default: sibyl)",
    )
    parser.add_argument(
        "--overload-connections",
        type=int,
        default=256,
        help="at least this many; >= 4x the saturating concurrency",
    )
    parser.add_argument("--ready-timeout", type=float, default=180.0)
    parser.add_argument("--keep", action="store_true", help="keep the temporary registry/logs")
    parser.add_argument("--no-results-md", action="store_true", help="leave RESULTS.md alone")
    args = parser.parse_args(argv)
    return Options(
        duration_s=3 if args.quick else args.duration,
        warmup_s=2,
        quick=args.quick,
        servers=args.servers,
        overload=[name for name in args.overload if name in args.servers],
        overload_connections=args.overload_connections,
        ready_timeout_s=args.ready_timeout,
        keep=args.keep,
        write_results_md=not (args.quick or args.no_results_md),
    )


def specs(registered: model.RegisteredModel, workdir: Path) -> dict[str, servers.ServerSpec]:
    return {
        "sibyl": servers.sibyl_spec(registered.tracking_uri, workdir, model.MODEL_NAME),
        "mlflow": servers.mlflow_spec(registered.tracking_uri, registered.model_uri),
        "raw": servers.raw_spec(),
    }


def invocations_url(server: servers.RunningServer) -> str:
    return server.base_url + "/invocations"


def warm_up(server: servers.RunningServer, seconds: int) -> None:
    """Half the time with 1-row, half with 32-row requests, 16 connections; results dropped."""
    for rows in ROWS:
        loadgen.run(invocations_url(server), loadgen.Load(rows, 16, max(1, seconds // len(ROWS))))


def measure(server: servers.RunningServer, load: loadgen.Load) -> CellResult:
    cpu_before, core_before = servers.cpu_seconds(server), cpustat.snapshot(SERVER_CORE)
    run = loadgen.run(invocations_url(server), load)
    cpu_used, core_after = servers.cpu_seconds(server) - cpu_before, cpustat.snapshot(SERVER_CORE)
    noise = Noise(
        cpustat.foreign_share(core_before, core_after, cpu_used),
        cpustat.steal_share(core_before, core_after),
    )
    time.sleep(SETTLE_S)
    cell = cell_result(server.spec.name, run, cpu_used, noise)
    print(
        f"  {cell.server:6} rows={cell.rows:<2} c={cell.connections:<3}"
        f" {cell.req_per_s:9,.0f} req/s p50 {cell.p50_ms:7.2f} ms"
        f" p99 {cell.p99_ms:7.2f} ms non-2xx {cell.non_2xx}"
        f" (core 0 foreign {cell.core0_foreign_share:.0%})",
        flush=True,
    )
    return cell


def matrix(server: servers.RunningServer, duration_s: int) -> list[CellResult]:
    return [
        measure(server, loadgen.Load(rows, connections, duration_s))
        for rows in ROWS
        for connections in CONNECTIONS
    ]


def overload_run(
    server: servers.RunningServer, cells: list[CellResult], options: Options
) -> OverloadResult:
    """1-row requests at max(--overload-connections, 4x saturating concurrency)."""
    saturating = saturating_connections(cells, server.spec.name)
    connections = max(options.overload_connections, 4 * (saturating or 0))
    metrics_url = server.base_url + (server.spec.metrics_path or "/metrics")
    before = prom.scrape(metrics_url, HISTOGRAM) if server.spec.metrics_path else None
    run = loadgen.run(invocations_url(server), loadgen.Load(1, connections, options.duration_s))
    after = prom.scrape(metrics_url, HISTOGRAM) if server.spec.metrics_path else None
    hist = prom.delta(before, after)
    return overload_result(server.spec.name, run, saturating, hist)


def overload_result(
    name: str, run: loadgen.WrkRun, saturating: int | None, hist: prom.Buckets | None
) -> OverloadResult:
    answers = run.ok + run.non_2xx
    shed = run.statuses.get(429, 0)
    server_p99 = prom.quantile(hist, 0.99) if hist else None
    return OverloadResult(
        server=name,
        connections=run.load.connections,
        saturating_connections=saturating,
        duration_s=round(run.duration_s, 3),
        answers=answers,
        ok_per_s=run.ok / run.duration_s,
        shed_429=shed,
        shed_share=shed / answers if answers else 0.0,
        other_non_2xx=run.non_2xx - shed,
        socket_errors=run.socket_errors,
        p50_all_ms=run.percentile_ms("50"),
        p99_all_ms=run.percentile_ms("99"),
        admitted_p99_bound_ms=run.admitted_p99_bound_ms,
        server_p99_ms=None if server_p99 is None else server_p99 * 1000.0,
        server_p99_open_ended=bool(hist) and prom.open_ended(hist or {}, 0.99),
        server_observations=int(prom.count(hist)) if hist else None,
    )


def bench_server(spec: servers.ServerSpec, options: Options, logdir: Path) -> ServerOutcome:
    """Start, await, warm, measure and stop one server."""
    print(f"== {spec.name}: starting", flush=True)
    server = servers.start(spec, logdir)
    try:
        ready_s = servers.wait_ready(server, options.ready_timeout_s)
        info = {"note": spec.note, "ready_s": ready_s, "affinity": servers.affinities(server)}
        info["command"] = "taskset -c 0 " + " ".join(spec.argv)
        print(f"   ready in {ready_s:.1f} s, affinity {info['affinity']}", flush=True)
        warm_up(server, options.warmup_s)
        cells = matrix(server, options.duration_s)
        overload = None
        if spec.name in options.overload:
            overload = overload_run(server, cells, options)
            print(f"   overload: {report.overload_row(overload)}", flush=True)
        return ServerOutcome(info, cells, overload)
    finally:
        servers.stop(server)


@dataclass
class Measured:
    """Everything one run measured, server by server."""

    infos: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    cells: list[CellResult] = field(default_factory=list)
    overloads: list[OverloadResult] = field(default_factory=list)

    def add(self, name: str, outcome: ServerOutcome) -> None:
        self.infos[name] = outcome.info
        self.cells += outcome.cells
        self.overloads += [outcome.overload] if outcome.overload else []


def run_all(options: Options, workdir: Path) -> Measured:
    print(f"training and registering the model in {workdir} ...", flush=True)
    all_specs = specs(model.build(workdir / "registry"), workdir)
    measured = Measured()
    for name in options.servers:
        try:
            measured.add(name, bench_server(all_specs[name], options, workdir))
        except (RuntimeError, TimeoutError, OSError) as error:
            print(f"!! {name} could not be measured: {error}", file=sys.stderr, flush=True)
            measured.failures[name] = str(error).splitlines()[0]
    return measured


def write_json(run: dict[str, Any], stamp: str) -> Path:
    path = BENCH_DIR / "results" / f"serving-{stamp}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(run, indent=2, ensure_ascii=False) + "\n")
    return path


def preflight() -> str:
    """wrk's version, or exit saying what is missing."""
    try:
        version = loadgen.check_tools()
    except loadgen.WrkMissingError as error:
        raise SystemExit(f"error: {error}") from error
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("error: needs 2 cores (server on core 0, wrk on core 1)")
    return version


def run_header() -> tuple[datetime, dict[str, Any]]:
    wrk_version = preflight()
    started = datetime.now().astimezone()
    return started, {
        "started": started.isoformat(timespec="seconds"),
        "command": report.command_line(),
        "git": report.git_revision(),
        "machine": report.machine(),
        "versions": report.versions(wrk_version),
    }


def complete(run: dict[str, Any], options: Options, measured: Measured) -> None:
    run["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    run["config"] = asdict(options) | {"rows": ROWS, "connections": CONNECTIONS}
    run["config"]["servers"] = list(measured.infos)
    run["servers"] = measured.infos
    run["failures"] = measured.failures
    run["cells"] = [asdict(c) for c in measured.cells]
    run["overload"] = [asdict(o) for o in measured.overloads]
    run["ratios"] = [asdict(r) for r in report.ratios(measured.cells, measured.overloads)]


def publish(run: dict[str, Any], options: Options, measured: Measured, started: datetime) -> None:
    """Write the JSON, print the markdown, rewrite RESULTS.md's section (not with --quick)."""
    suffix = "-quick" if options.quick else ""
    json_path = write_json(run, started.strftime("%Y-%m-%dT%H%M%S") + suffix)
    body = report.summary(run, measured.cells, measured.overloads)
    print("\n" + body + f"\nraw data: {json_path}")
    if options.write_results_md:
        section = report.section(run, body, json_path.name)
        report.write_results_md(BENCH_DIR / "RESULTS.md", section)
        print(f"rewrote the Serving core section of {BENCH_DIR / 'RESULTS.md'}")


def main(argv: list[str]) -> int:
    options = parse_args(argv)
    started, run = run_header()
    workdir = Path(tempfile.mkdtemp(prefix="sibyl-bench-"))
    try:
        measured = run_all(options, workdir)
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if not measured.infos:
        print("no server could be measured: nothing written", file=sys.stderr)
        return 1
    complete(run, options, measured)
    publish(run, options, measured, started)
    return 0 if not measured.failures else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Serving-core benchmark: sibyl vs `mlflow models serve` vs a raw ASGI ceiling, side by side.

    python bench/serving.py [--duration 5] [--repeat 3] [--quick] [--servers sibyl,mlflow,raw]

All servers run at once, each pinned to core 0 (idle unless driven), and wrk pinned to core 1
drives them one at a time (closed loop) with MLflow /invocations requests whose rows are all
distinct. For each cell (1 and 32 rows per request at 1, 16 and 64 connections) the servers run
back to back, in an order that rotates with each of the --repeat repetitions, so every ratio
compares runs adjacent in time; then sibyl and raw get an overload run at >= 4x their saturating
concurrency, repeated the same way. Reports medians over repetitions and per-repetition ratios
(median, min-max). Writes bench/results/serving-<date>.json, prints markdown and rewrites the
"Serving core" section of bench/RESULTS.md (not with --quick). Method: bench/README.md.
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
from results import (
    CellResult,
    Noise,
    OverloadResult,
    Slot,
    cell_result,
    saturating_connections,
    summarize_cells,
    summarize_overload,
)

BENCH_DIR = Path(__file__).resolve().parent
ROWS = (1, 32)
CONNECTIONS = (1, 16, 64)
ALL_SERVERS = ("sibyl", "mlflow", "raw")
HISTOGRAM = "ml_prediction_duration_seconds"
SERVER_CORE = int(servers.SERVER_CORE)
CLIENT_CORE = int(loadgen.CLIENT_CORE)
DEFAULT_DURATION_S, DEFAULT_REPEAT = 5, 3
QUICK_DURATION_S, QUICK_REPEAT = 2, 2
RUN_OVERHEAD_S = 1.0  # wrk start-up (request pool) and waiting for the servers to fall idle


@dataclass(frozen=True)
class Options:
    duration_s: int
    repeat: int
    warmup_s: int
    quick: bool
    servers: list[str]
    overload: list[str]
    overload_connections: int
    ready_timeout_s: float
    keep: bool
    write_results_md: bool

    def estimate_s(self) -> float:
        """Rough wall time of the measurements (training and start-up add ~1 min)."""
        runs = self.repeat * (len(ROWS) * len(CONNECTIONS) * len(self.servers) + len(self.overload))
        return runs * (self.duration_s + RUN_OVERHEAD_S) + self.warmup_s * len(self.servers)


def server_list(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(ALL_SERVERS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown server(s) {unknown}; choose from {ALL_SERVERS}")
    return names


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration",
        type=positive,
        default=None,
        help=f"seconds per run ({DEFAULT_DURATION_S}; {QUICK_DURATION_S} with --quick)",
    )
    parser.add_argument(
        "--repeat",
        type=positive,
        default=None,
        help=f"repetitions of every run ({DEFAULT_REPEAT}; {QUICK_REPEAT} with --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: short runs, fewer repetitions; RESULTS.md untouched",
    )
    parser.add_argument("--servers", type=server_list, default=list(ALL_SERVERS))
    parser.add_argument(
        "--overload",
        type=server_list,
        default=["sibyl", "raw"],
        help="servers that get the overload run (default: sibyl,raw)",
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
    duration = args.duration or (QUICK_DURATION_S if args.quick else DEFAULT_DURATION_S)
    repeat = args.repeat or (QUICK_REPEAT if args.quick else DEFAULT_REPEAT)
    return Options(
        duration_s=duration,
        repeat=repeat,
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


def rotation(names: list[str], repetition: int) -> list[str]:
    """``names`` rotated by ``repetition``: each server leads once every len(names) repetitions."""
    if not names:
        return []
    k = repetition % len(names)
    return names[k:] + names[:k]


@dataclass
class Fleet:
    """The servers started for this run; a server that fails leaves the fleet (and is stopped)."""

    running: dict[str, servers.RunningServer] = field(default_factory=dict)
    infos: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def fail(self, name: str, error: BaseException) -> None:
        print(f"!! {name} could not be measured: {error}", file=sys.stderr, flush=True)
        self.failures[name] = str(error).splitlines()[0] if str(error) else type(error).__name__
        server = self.running.pop(name, None)
        if server is not None:
            servers.stop(server)

    def live(self, names: list[str]) -> list[str]:
        return [name for name in names if name in self.running]

    def wait_idle(self) -> float:
        return servers.wait_idle(list(self.running.values()))

    def stop_all(self) -> None:
        for server in self.running.values():
            servers.stop(server)
        self.running.clear()


def start_fleet(all_specs: dict[str, servers.ServerSpec], options: Options, logdir: Path) -> Fleet:
    """Start every selected server at once, wait until each is ready, warm each up."""
    fleet = Fleet()
    for name in options.servers:
        print(f"== {name}: starting", flush=True)
        try:
            fleet.running[name] = servers.start(all_specs[name], logdir)
        except OSError as error:
            fleet.fail(name, error)
    names = list(fleet.running)
    outcomes = servers.wait_all_ready([fleet.running[n] for n in names], options.ready_timeout_s)
    for name, outcome in zip(names, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            fleet.fail(name, outcome)
            continue
        fleet.infos[name] = server_info(fleet.running[name], outcome, logdir)
        print(f"   {name} ready in {outcome:.1f} s, affinity {fleet.infos[name]['affinity']}")
    for name in list(fleet.running):
        try:
            warm_up(fleet.running[name], options.warmup_s)
        except (RuntimeError, subprocess.SubprocessError) as error:
            fleet.fail(name, error)
    fleet.wait_idle()
    return fleet


def server_info(server: servers.RunningServer, ready_s: float, logdir: Path) -> dict[str, Any]:
    spec = server.spec
    info: dict[str, Any] = {
        "note": spec.note,
        "ready_s": ready_s,
        "affinity": servers.affinities(server),
        "command": "taskset -c 0 " + " ".join(spec.argv),
        "env": {k: v for k, v in spec.env.items() if k.startswith(("SIBYL_", "MLFLOW_"))},
    }
    if spec.name == "sibyl":
        info["settings"] = servers.effective_settings(spec, logdir)
    return info


def warm_up(server: servers.RunningServer, seconds: int) -> None:
    """Half the time with 1-row, half with 32-row requests, 16 connections; results dropped."""
    for rows in ROWS:
        loadgen.run(invocations_url(server), loadgen.Load(rows, 16, max(1, seconds // len(ROWS))))


def measure(
    fleet: Fleet, name: str, load: loadgen.Load, repetition: int, position: int
) -> CellResult:
    server = fleet.running[name]
    cpu_before, core_before = servers.cpu_seconds(server), cpustat.snapshot(SERVER_CORE)
    run = loadgen.run(invocations_url(server), load)
    cpu_used, core_after = servers.cpu_seconds(server) - cpu_before, cpustat.snapshot(SERVER_CORE)
    noise = Noise(
        cpustat.foreign_share(core_before, core_after, cpu_used),
        cpustat.steal_share(core_before, core_after),
    )
    drain_s = fleet.wait_idle()
    cell = cell_result(name, run, cpu_used, noise, Slot(repetition, position, drain_s))
    print(
        f"  {cell.server:6} rows={cell.rows:<2} c={cell.connections:<3}"
        f" {cell.req_per_s:9,.0f} req/s p50 {cell.p50_ms:7.2f} ms"
        f" p99 {cell.p99_ms:7.2f} ms non-2xx {cell.non_2xx}"
        f" (core 0 foreign {cell.core0_foreign_share:.0%}, drained {drain_s:.1f} s)",
        flush=True,
    )
    return cell


def check_alive(fleet: Fleet, name: str) -> bool:
    server = fleet.running.get(name)
    if server is None:
        return False
    if server.process.poll() is not None:
        fleet.fail(name, RuntimeError(f"exited:\n{servers.log_tail(server)}"))
        return False
    return True


def matrix(fleet: Fleet, options: Options, orders: list[list[str]]) -> list[CellResult]:
    """Every repetition sweeps the cells; in each cell the servers run back to back."""
    cells: list[CellResult] = []
    for repetition in range(options.repeat):
        order = rotation(fleet.live(options.servers), repetition)
        orders.append(order)
        print(f"-- repetition {repetition + 1}/{options.repeat}: order {', '.join(order)}")
        for rows in ROWS:
            for connections in CONNECTIONS:
                load = loadgen.Load(rows, connections, options.duration_s)
                for position, name in enumerate(order):
                    if not check_alive(fleet, name):
                        continue
                    try:
                        cells.append(measure(fleet, name, load, repetition, position))
                    except (RuntimeError, subprocess.SubprocessError) as error:
                        fleet.fail(name, error)
    return cells


def overload_runs(
    fleet: Fleet, cells: list[CellResult], options: Options, orders: list[list[str]]
) -> list[OverloadResult]:
    """1-row requests at max(--overload-connections, 4x saturating concurrency), repeated and
    interleaved like the matrix."""
    summaries = summarize_cells(cells, options.servers)
    plan: dict[str, tuple[int, int | None]] = {}
    for name in options.overload:
        saturating = saturating_connections(summaries, name)
        plan[name] = (max(options.overload_connections, 4 * (saturating or 0)), saturating)
    results: list[OverloadResult] = []
    for repetition in range(options.repeat):
        order = rotation(fleet.live(options.overload), repetition)
        orders.append(order)
        print(f"-- overload {repetition + 1}/{options.repeat}: order {', '.join(order)}")
        for position, name in enumerate(order):
            if not check_alive(fleet, name):
                continue
            connections, saturating = plan[name]
            try:
                result = overload_run(
                    fleet, name, connections, saturating, options, Slot(repetition, position, 0.0)
                )
            except (RuntimeError, subprocess.SubprocessError) as error:
                fleet.fail(name, error)
                continue
            results.append(result)
            print(f"  overload: {report.overload_run_row(result)}", flush=True)
    return results


def overload_run(
    fleet: Fleet,
    name: str,
    connections: int,
    saturating: int | None,
    options: Options,
    slot: Slot,
) -> OverloadResult:
    server = fleet.running[name]
    metrics_url = server.base_url + (server.spec.metrics_path or "/metrics")
    before = prom.scrape(metrics_url, HISTOGRAM) if server.spec.metrics_path else None
    run = loadgen.run(invocations_url(server), loadgen.Load(1, connections, options.duration_s))
    after = prom.scrape(metrics_url, HISTOGRAM) if server.spec.metrics_path else None
    drain_s = fleet.wait_idle()
    hist = prom.delta(before, after)
    return overload_result(
        name, run, saturating, hist, Slot(slot.repetition, slot.position, drain_s)
    )


def overload_result(
    name: str,
    run: loadgen.WrkRun,
    saturating: int | None,
    hist: prom.Buckets | None,
    slot: Slot,
) -> OverloadResult:
    answers = run.ok + run.non_2xx
    shed = run.statuses.get(429, 0)
    server_p99 = prom.quantile(hist, 0.99) if hist else None
    return OverloadResult(
        server=name,
        repetition=slot.repetition,
        position=slot.position,
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
        drain_s=round(slot.drain_s, 3),
    )


@dataclass
class Measured:
    """Everything one run measured: every repetition of every run."""

    infos: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    cells: list[CellResult] = field(default_factory=list)
    overloads: list[OverloadResult] = field(default_factory=list)
    orders: list[list[str]] = field(default_factory=list)  # per repetition of the matrix
    overload_orders: list[list[str]] = field(default_factory=list)


def run_all(options: Options, workdir: Path) -> Measured:
    print(f"training and registering the model in {workdir} ...", flush=True)
    all_specs = specs(model.build(workdir / "registry"), workdir)
    fleet = start_fleet(all_specs, options, workdir)
    measured = Measured()
    try:
        if fleet.running:
            measured.cells = matrix(fleet, options, measured.orders)
            measured.overloads = overload_runs(
                fleet, measured.cells, options, measured.overload_orders
            )
    finally:
        fleet.stop_all()
    measured.infos = {name: fleet.infos[name] for name in options.servers if name in fleet.infos}
    measured.failures = fleet.failures
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
        raise SystemExit("error: needs 2 cores (servers on core 0, wrk on core 1)")
    return version


def pin_runner() -> None:
    """The runner itself (its polling, the model training) stays off the servers' core."""
    os.sched_setaffinity(0, {CLIENT_CORE})


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


def complete(run: dict[str, Any], options: Options, measured: Measured, wall_s: float) -> None:
    run["machine"]["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    run["wall_s"] = round(wall_s, 1)
    run["config"] = asdict(options) | {"rows": ROWS, "connections": CONNECTIONS}
    run["config"]["servers"] = list(measured.infos)
    run["config"]["orders"] = measured.orders
    run["config"]["overload_orders"] = measured.overload_orders
    run["servers"] = measured.infos
    run["failures"] = measured.failures
    summaries = summarize_cells(measured.cells, options.servers)
    overloads = summarize_overload(measured.overloads, options.servers)
    run["cells"] = [asdict(c) for c in summaries]
    run["overload"] = [asdict(o) for o in overloads]
    run["ratios"] = [
        asdict(r) for r in report.ratios(measured.cells, summaries, measured.overloads)
    ]
    run["cell_ratios"] = [asdict(r) for r in report.cell_ratios(measured.cells)]
    run["runs"] = [asdict(c) for c in measured.cells]
    run["overload_runs"] = [asdict(o) for o in measured.overloads]


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
    pin_runner()
    print(
        f"{options.repeat} repetitions of {options.duration_s} s runs, servers "
        f"{','.join(options.servers)}: about {options.estimate_s() / 60 + 1:.0f} min",
        flush=True,
    )
    clock = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="sibyl-bench-"))
    try:
        measured = run_all(options, workdir)
    finally:
        if not options.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if not measured.infos or not measured.cells:
        print("no server could be measured: nothing written", file=sys.stderr)
        return 1
    complete(run, options, measured, time.monotonic() - clock)
    publish(run, options, measured, started)
    return 0 if not measured.failures else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

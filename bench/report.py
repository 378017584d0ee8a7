"""Render a run: machine and versions, the markdown tables, the ratios against their targets, and
the "Serving core" section of bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from results import (
    CellResult,
    CellSummary,
    OverloadResult,
    OverloadSummary,
    Ratio,
    find,
    find_summary,
    summarize_cells,
    summarize_overload,
)

SECTION = "## Serving core"
SERVER_ORDER = ("sibyl", "mlflow", "raw")
EN_DASH = "\u2013"  # en dash, between the ends of a range
PACKAGES = ("mlflow", "scikit-learn", "onnxruntime", "uvicorn", "uvloop", "httptools", "sibyl")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gib": round(memory_gib(), 1),
        "kernel": platform.release(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def versions(wrk_version: str) -> dict[str, str]:
    found = {"python": platform.python_version()}
    found |= {name: package_version(name) for name in PACKAGES}
    found["wrk"] = wrk_version
    return found


def git_revision() -> str:
    out = subprocess.run(
        ["git", "-C", str(Path(__file__).parent), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    revision = out.stdout.strip()
    if not revision:
        return "an uncommitted tree"
    dirty = subprocess.run(
        ["git", "-C", str(Path(__file__).parent), "status", "--porcelain", "--", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return f"git {revision}" + (" with uncommitted changes in src/" if dirty else "")


# --- ratios ------------------------------------------------------------------------------------
#
# Every ratio is taken within one repetition, between two runs of the same cell that were
# adjacent in time (the servers run back to back), then reduced to its median and range.

Metric = Callable[[CellResult], float | None]


def req_per_s(cell: CellResult) -> float | None:
    return cell.req_per_s


def rows_per_s(cell: CellResult) -> float | None:
    return cell.rows_per_s


def cpu_per_request(cell: CellResult) -> float | None:
    return cell.server_cpu_us_per_req


def repetitions(runs: list[CellResult]) -> list[int]:
    return sorted({c.repetition for c in runs})


def paired(
    runs: list[CellResult], rows: int, connections: int, num: str, den: str, metric: Metric
) -> dict[int, float]:
    """``metric(num) / metric(den)`` per repetition (only where both were measured)."""
    found: dict[int, float] = {}
    for rep in repetitions(runs):
        top, bottom = (
            find(runs, num, rows, connections, rep),
            find(runs, den, rows, connections, rep),
        )
        if top is None or bottom is None:
            continue
        a, b = metric(top), metric(bottom)
        if a is not None and b:
            found[rep] = a / b
    return found


def spread(
    name: str,
    per_rep: dict[int, float],
    target: str,
    check: Callable[[int, float], bool] | None = None,
    detail: str = "",
) -> Ratio:
    """The median of per-repetition values, their range, and the verdict on the median (plus how
    many repetitions met the target on their own)."""
    values = [per_rep[r] for r in sorted(per_rep)]
    if not values:
        return Ratio(name, None, target, None, detail)
    value = statistics.median(values)
    passed = None
    if check is not None:
        passed = check(-1, value)
        met = sum(check(rep, v) for rep, v in per_rep.items())
        detail = "; ".join(x for x in (f"{met}/{len(values)} repetitions meet it", detail) if x)
    return Ratio(name, value, target, passed, detail, min(values), max(values), values)


def ratios(
    runs: list[CellResult], cells: list[CellSummary], overload: list[OverloadResult]
) -> list[Ratio]:
    """The headline ratios (sibyl against its peers at 16 connections) and overload figures."""
    sibyl_16 = find_summary(cells, "sibyl", 1, 16)
    p99 = sibyl_16.p99_ms if sibyl_16 else None
    p99_by_rep = {
        c.repetition: c.p99_ms
        for c in runs
        if (c.server, c.rows, c.connections) == ("sibyl", 1, 16)
    }

    def raw_check(rep: int, value: float) -> bool:
        latency = p99 if rep < 0 else p99_by_rep.get(rep)
        return value >= 0.60 and latency is not None and latency <= 10.0

    found = [
        spread(
            "sibyl / mlflow req/s, 1-row c=16",
            paired(runs, 1, 16, "sibyl", "mlflow", req_per_s),
            "≥ 25x",
            lambda _, v: v >= 25,
        ),
        spread(
            "sibyl / raw ASGI req/s, 1-row c=16",
            paired(runs, 1, 16, "sibyl", "raw", req_per_s),
            "≥ 0.60 with p99 ≤ 10 ms",
            raw_check,
            "" if p99 is None else f"sibyl median p99 {p99:.2f} ms",
        ),
        spread(
            "sibyl / mlflow rows/s, 32-row c=16",
            paired(runs, 32, 16, "sibyl", "mlflow", rows_per_s),
            "≥ 20x",
            lambda _, v: v >= 20,
        ),
    ]
    found += cpu_ratios(runs)
    return found + overload_ratios([o for o in overload if o.server == "sibyl"])


def cpu_ratios(runs: list[CellResult]) -> list[Ratio]:
    """Server CPU per request, the figure least moved by neighbours (informational)."""
    return [
        spread(
            "mlflow / sibyl server CPU per request, 1-row c=16",
            paired(runs, 1, 16, "mlflow", "sibyl", cpu_per_request),
            "info",
        ),
        spread(
            "mlflow / sibyl server CPU per row, 32-row c=16",
            paired(runs, 32, 16, "mlflow", "sibyl", cpu_per_request),
            "info",
        ),
        spread(
            "raw / sibyl server CPU per request, 1-row c=16",
            paired(runs, 1, 16, "raw", "sibyl", cpu_per_request),
            "info",
        ),
    ]


def overload_ratios(results: list[OverloadResult]) -> list[Ratio]:
    if not results:
        return [
            Ratio("overload: p99 of admitted (2xx), ms", None, "≤ 50 ms", None),
            Ratio("overload: share shed as 429", None, "reported", None),
        ]
    server_p99 = [o.server_p99_ms for o in results if o.server_p99_ms is not None]
    server = "n/a" if not server_p99 else f"{statistics.median(server_p99):.2f} ms"
    detail = f"c={results[0].connections}; wrk upper bound; server histogram p99 {server} (median)"
    return [
        spread(
            "overload: p99 of admitted (2xx), ms",
            {o.repetition: o.admitted_p99_bound_ms for o in results},
            "≤ 50 ms",
            lambda _, v: v <= 50.0,
            detail,
        ),
        spread(
            "overload: share shed as 429",
            {o.repetition: o.shed_share for o in results},
            "reported",
        ),
    ]


def cell_ratios(runs: list[CellResult]) -> list[Ratio]:
    """sibyl / raw and sibyl / mlflow req/s in every cell (same rows: rows/s ratio alike)."""
    found = []
    cells = sorted({(c.rows, c.connections) for c in runs})
    for rows, connections in cells:
        for other in ("raw", "mlflow"):
            per_rep = paired(runs, rows, connections, "sibyl", other, req_per_s)
            if per_rep:
                found.append(
                    spread(f"sibyl / {other} req/s, {rows}-row c={connections}", per_rep, "info")
                )
    return found


# --- markdown ----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def fmt_range(low: float | None, high: float | None, digits: int = 0, unit: str = "") -> str:
    if low is None or high is None:
        return "n/a"
    return f"{fmt(low, digits)}{unit}{EN_DASH}{fmt(high, digits)}{unit}"


def verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def cell_row(c: CellSummary) -> list[str]:
    return [
        c.server,
        str(c.rows),
        str(c.connections),
        fmt(c.req_per_s),
        fmt_range(c.req_per_s_min, c.req_per_s_max),
        fmt(c.rows_per_s),
        fmt(c.p50_ms, 2),
        fmt(c.p99_ms, 2),
        fmt(c.server_cpu_us_per_req),
        str(c.non_2xx),
        str(c.socket_errors),
        f"{c.client_cpu_share:.0%}",
        f"{c.core0_foreign_share:.0%}",
    ]


def cells_table(cells: list[CellSummary], servers_run: list[str]) -> list[str]:
    header = [
        "server",
        "rows/req",
        "conns",
        "req/s",
        "req/s range",
        "rows/s",
        "p50 ms",
        "p99 ms",
        "server CPU µs/req",
        "non-2xx (all reps)",
        "socket errors (all reps)",
        "wrk CPU (max)",
        "core-0 foreign",
    ]
    rows = [cell_row(c) for c in cells]
    rows += [[name, "-", "-", "not yet run", *["-"] * 9] for name in missing(servers_run)]
    return table(header, rows)


def missing(servers_run: list[str]) -> list[str]:
    return [name for name in SERVER_ORDER if name not in servers_run]


def ratio_format(r: Ratio) -> Callable[[float | None], str]:
    if "share" in r.name:
        return lambda v: "n/a" if v is None else f"{v:.1%}"
    if "ms" in r.name:
        return lambda v: fmt(v, 2)
    return lambda v: "n/a" if v is None else f"{v:.2f}x"


def ratio_value(r: Ratio) -> str:
    return "not yet run" if r.value is None else ratio_format(r)(r.value)


def ratio_range(r: Ratio) -> str:
    if r.low is None or r.high is None:
        return "-"
    show = ratio_format(r)
    return f"{show(r.low)}{EN_DASH}{show(r.high)}"


def judged(r: Ratio) -> str:
    return "-" if r.target in ("info", "reported") else verdict(r.passed)


def ratios_table(found: list[Ratio]) -> list[str]:
    rows = [[r.name, ratio_value(r), ratio_range(r), r.target, judged(r), r.detail] for r in found]
    header = ["ratio", "median", "range", "target", "verdict", "detail"]
    return table(header, rows)


def cell_ratios_table(found: list[Ratio]) -> list[str]:
    by_cell: dict[str, dict[str, Ratio]] = {}
    for r in found:
        other, cell = r.name.removeprefix("sibyl / ").split(" req/s, ")
        by_cell.setdefault(cell, {})[other] = r

    def shown(r: Ratio | None) -> str:
        return "n/a" if r is None else f"{ratio_value(r)} ({ratio_range(r)})"

    rows = [[cell, shown(rs.get("raw")), shown(rs.get("mlflow"))] for cell, rs in by_cell.items()]
    return table(["cell", "sibyl / raw req/s", "sibyl / mlflow req/s"], rows)


def overload_table(results: list[OverloadSummary]) -> list[str]:
    header = [
        "server",
        "conns (saturates at)",
        "2xx/s",
        "shed 429 (all reps)",
        "shed share",
        "other non-2xx",
        "socket errors",
        "p50 all ms",
        "p99 all ms",
        "p99 admitted ≤ ms (wrk)",
        "range",
        "p99 admitted ms (server)",
    ]
    return table(header, [overload_row(o) for o in results])


def overload_row(o: OverloadSummary) -> list[str]:
    server_p99 = fmt(o.server_p99_ms, 2)
    if o.server_p99_open_ended:
        server_p99 = f"≥ {server_p99}"
    return [
        o.server,
        f"{o.connections} ({o.saturating_connections or '?'})",
        fmt(o.ok_per_s),
        str(o.shed_429),
        f"{o.shed_share:.1%}",
        str(o.other_non_2xx),
        str(o.socket_errors),
        fmt(o.p50_all_ms, 2),
        fmt(o.p99_all_ms, 2),
        fmt(o.admitted_p99_bound_ms, 2),
        fmt_range(o.admitted_p99_bound_min_ms, o.admitted_p99_bound_max_ms, 2),
        server_p99,
    ]


def overload_run_row(o: OverloadResult) -> str:
    """One repetition's overload run, for the progress log."""
    server_p99 = "n/a" if o.server_p99_ms is None else f"{o.server_p99_ms:.2f} ms"
    return (
        f"{o.server:6} c={o.connections} {o.ok_per_s:,.0f} 2xx/s, shed {o.shed_share:.1%},"
        f" p99 all {o.p99_all_ms:.2f} ms, p99 admitted <= {o.admitted_p99_bound_ms:.2f} ms"
        f" (server {server_p99})"
    )


def summary(run: dict[str, Any], runs: list[CellResult], overload: list[OverloadResult]) -> str:
    """The markdown printed at the end of a run (tables and ratios)."""
    order = run["config"]["servers"]
    cells = summarize_cells(runs, order)
    overloads = summarize_overload(overload, order)
    reps = run["config"]["repeat"]
    medians = f"medians of {reps} repetition" + ("s" if reps != 1 else "")
    lines = [f"### Matrix (closed loop, 2xx counted in rates; {medians})", ""]
    lines += cells_table(cells, order)
    if overloads:
        lines += ["", f"### Overload ({medians})", ""]
        lines += overload_table(overloads)
    lines += ["", "### Ratios and targets (per repetition, then median)", ""]
    lines += ratios_table(ratios(runs, cells, overload))
    per_cell = cell_ratios(runs)
    if per_cell:
        lines += ["", "### Ratios in every cell (median, range over repetitions)", ""]
        lines += cell_ratios_table(per_cell)
    return "\n".join(lines) + "\n"


def versions_line(found: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in found.items())


def servers_lines(run: dict[str, Any]) -> list[str]:
    lines = []
    failures = run.get("failures", {})
    for name, info in run["servers"].items():
        failed = f"; **failed during the run**: {failures[name]}" if name in failures else ""
        lines.append(
            f"- **{name}**: {info['note']}; ready in {info['ready_s']:.1f} s; "
            f"CPU affinity {info['affinity']}{failed}"
        )
    for name in missing(list(run["servers"])):
        why = f"could not be measured: {failures[name]}" if name in failures else "not yet run"
        lines.append(f"- **{name}**: {why}")
    return lines


SETTINGS_SHOWN = {
    "batching": ("max_concurrency", "max_batch_size", "max_wait_ms", "eager", "max_queue_rows"),
    "server": ("workers", "fast_path", "access_log", "gc_freeze", "default_timeout_ms"),
    "runtime": ("onnx", "inference_threads"),
}


def settings_line(run: dict[str, Any]) -> list[str]:
    """sibyl's settings in force (all of them are in the JSON)."""
    info = run["servers"].get("sibyl")
    if not info or "settings" not in info:
        return []
    found = info["settings"]
    groups = [
        f"{group} " + ", ".join(f"{key}={found[group][key]}" for key in keys if key in found[group])
        for group, keys in SETTINGS_SHOWN.items()
        if group in found
    ]
    overrides = found.get("batching_overrides") or {}
    env = ", ".join(f"{k}={v}" for k, v in info.get("env", {}).items() if k.startswith("SIBYL_S"))
    return [
        f"- **sibyl settings** in force (defaults; env {env or 'none'}, a temporary "
        "SIBYL_DATA_DIR): "
        + "; ".join(groups)
        + (f"; batching overrides {overrides}" if overrides else "")
    ]


def method_line(run: dict[str, Any]) -> str:
    config = run["config"]
    orders = " / ".join(",".join(order) for order in config.get("orders", []))
    wall = run.get("wall_s")
    took = f"; measured in {wall / 60:.1f} min" if wall else ""
    return (
        f"- **Method**: all servers up at once on core 0, wrk on core 1; each cell runs the "
        f"servers back to back, {config['duration_s']} s each, {config['repeat']} repetitions "
        f"in rotating order ({orders}); tables show medians over repetitions, ratios are taken "
        f"per repetition (adjacent runs) and shown as median and range (min to max){took}"
    )


def section(run: dict[str, Any], body: str, json_name: str) -> str:
    m = run["machine"]
    return "\n".join(
        [
            SECTION,
            "",
            f"Run {run['started']} on {run['git']} with `{run['command']}` "
            f"(raw data: `results/{json_name}`). Method: see README.md.",
            "",
            f"- **Machine**: {m['nproc']} cores, {m['cpu']}, {m['memory_gib']} GiB, kernel "
            f"{m['kernel']}; load average {m['loadavg_start']} at start, {m['loadavg_end']} "
            "at end (shared, noisy machine: compare ratios within one run, not across runs)",
            f"- **Versions**: {versions_line(run['versions'])}",
            method_line(run),
            *servers_lines(run),
            *settings_line(run),
            "",
            body,
        ]
    )


def replace_section(text: str, new_section: str) -> str:
    """``text`` with its "## Serving core" section (up to the next ``## ``) replaced."""
    start = text.find(SECTION)
    if start < 0:
        return text.rstrip() + "\n\n" + new_section
    end = text.find("\n## ", start + len(SECTION))
    rest = "" if end < 0 else text[end:]
    return text[:start] + new_section.rstrip() + "\n" + rest


def write_results_md(path: Path, new_section: str) -> None:
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    path.write_text(replace_section(text, new_section))


def command_line() -> str:
    return " ".join(["python bench/serving.py", *sys.argv[1:]])

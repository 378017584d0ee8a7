"""Render a run: machine and versions, the markdown tables, the ratios against their targets, and
the "Serving core" section of bench/RESULTS.md."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Callable, Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from results import CellResult, OverloadResult, Ratio, find

SECTION = "## Serving core"
SERVER_ORDER = ("sibyl", "mlflow", "raw")
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


def ratio_of(
    cells: list[CellResult], rows: int, other: str, metric: Callable[[CellResult], float]
) -> float | None:
    mine, theirs = find(cells, "sibyl", rows, 16), find(cells, other, rows, 16)
    if mine is None or theirs is None or metric(theirs) <= 0:
        return None
    return metric(mine) / metric(theirs)


def at_least(value: float | None, target: float) -> bool | None:
    return None if value is None else value >= target


def ratios(cells: list[CellResult], overload: list[OverloadResult]) -> list[Ratio]:
    """The headline ratios (sibyl against its peers at 16 connections) and overload figures."""
    vs_mlflow = ratio_of(cells, 1, "mlflow", lambda c: c.req_per_s)
    vs_raw = ratio_of(cells, 1, "raw", lambda c: c.req_per_s)
    rows_vs_mlflow = ratio_of(cells, 32, "mlflow", lambda c: c.rows_per_s)
    sibyl_16 = find(cells, "sibyl", 1, 16)
    p99 = sibyl_16.p99_ms if sibyl_16 else None
    raw_pass = at_least(vs_raw, 0.60)
    if raw_pass is not None and p99 is not None:
        raw_pass = raw_pass and p99 <= 10.0
    found = [
        Ratio("sibyl / mlflow req/s, 1-row c=16", vs_mlflow, "≥ 25x", at_least(vs_mlflow, 25)),
        Ratio(
            "sibyl / raw ASGI req/s, 1-row c=16",
            vs_raw,
            "≥ 0.60 with p99 ≤ 10 ms",
            raw_pass,
            "" if p99 is None else f"sibyl p99 {p99:.2f} ms",
        ),
        Ratio(
            "sibyl / mlflow rows/s, 32-row c=16",
            rows_vs_mlflow,
            "≥ 20x",
            at_least(rows_vs_mlflow, 20),
        ),
    ]
    found += cpu_ratios(cells)
    return found + overload_ratios(next((o for o in overload if o.server == "sibyl"), None))


def cpu_per_request(cell: CellResult) -> float:
    return cell.server_cpu_us_per_req or 0.0


def cpu_ratios(cells: list[CellResult]) -> list[Ratio]:
    """Server CPU per request, the figure least moved by neighbours (informational)."""

    def inverse(other: str, rows: int) -> float | None:
        value = ratio_of(cells, rows, other, cpu_per_request)
        return 1.0 / value if value else None

    return [
        Ratio(
            "mlflow / sibyl server CPU per request, 1-row c=16", inverse("mlflow", 1), "info", None
        ),
        Ratio(
            "mlflow / sibyl server CPU per row, 32-row c=16", inverse("mlflow", 32), "info", None
        ),
        Ratio("raw / sibyl server CPU per request, 1-row c=16", inverse("raw", 1), "info", None),
    ]


def overload_ratios(result: OverloadResult | None) -> list[Ratio]:
    if result is None:
        return [
            Ratio("overload: p99 of admitted (2xx), ms", None, "≤ 50 ms", None),
            Ratio("overload: share shed as 429", None, "reported", None),
        ]
    p99 = result.admitted_p99_bound_ms
    server = "n/a" if result.server_p99_ms is None else f"{result.server_p99_ms:.2f} ms"
    return [
        Ratio(
            "overload: p99 of admitted (2xx), ms",
            p99,
            "≤ 50 ms",
            p99 <= 50.0,
            f"c={result.connections}; wrk upper bound; server histogram p99 {server}",
        ),
        Ratio("overload: share shed as 429", result.shed_share, "reported", None),
    ]


# --- markdown ----------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "n/a"}[passed]


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def cell_row(c: CellResult) -> list[str]:
    return [
        c.server,
        str(c.rows),
        str(c.connections),
        fmt(c.req_per_s),
        fmt(c.rows_per_s),
        fmt(c.p50_ms, 2),
        fmt(c.p99_ms, 2),
        str(c.non_2xx),
        str(c.socket_errors),
        fmt(c.server_cpu_us_per_req),
        f"{c.client_cpu_share:.0%}",
        f"{c.core0_foreign_share:.0%}",
    ]


def cells_table(cells: list[CellResult], servers_run: list[str]) -> list[str]:
    header = [
        "server",
        "rows/req",
        "conns",
        "req/s",
        "rows/s",
        "p50 ms",
        "p99 ms",
        "non-2xx",
        "socket errors",
        "server CPU µs/req",
        "wrk CPU",
        "core-0 foreign",
    ]
    rows = [cell_row(c) for c in cells]
    rows += [[name, "-", "-", "not yet run", *["-"] * 8] for name in missing(servers_run)]
    return table(header, rows)


def missing(servers_run: list[str]) -> list[str]:
    return [name for name in SERVER_ORDER if name not in servers_run]


def ratio_value(r: Ratio) -> str:
    if r.value is None:
        return "not yet run"
    if "share" in r.name:
        return f"{r.value:.1%}"
    return f"{r.value:.2f}" if "ms" in r.name else f"{r.value:.2f}x"


def judged(r: Ratio) -> str:
    return "-" if r.target in ("info", "reported") else verdict(r.passed)


def ratios_table(found: list[Ratio]) -> list[str]:
    rows = [[r.name, ratio_value(r), r.target, judged(r), r.detail] for r in found]
    return table(["ratio", "measured", "target", "verdict", "detail"], rows)


def overload_table(results: list[OverloadResult]) -> list[str]:
    header = [
        "server",
        "conns (saturates at)",
        "2xx/s",
        "shed 429",
        "other non-2xx",
        "socket errors",
        "p50 all ms",
        "p99 all ms",
        "p99 admitted ≤ ms (wrk)",
        "p99 admitted ms (server)",
    ]
    return table(header, [overload_row(o) for o in results])


def overload_row(o: OverloadResult) -> list[str]:
    server_p99 = fmt(o.server_p99_ms, 2)
    if o.server_p99_open_ended:
        server_p99 = f"≥ {server_p99}"
    return [
        o.server,
        f"{o.connections} ({o.saturating_connections or '?'})",
        fmt(o.ok_per_s),
        f"{o.shed_429} ({o.shed_share:.1%})",
        str(o.other_non_2xx),
        str(o.socket_errors),
        fmt(o.p50_all_ms, 2),
        fmt(o.p99_all_ms, 2),
        fmt(o.admitted_p99_bound_ms, 2),
        server_p99,
    ]


def summary(run: dict[str, Any], cells: list[CellResult], overload: list[OverloadResult]) -> str:
    """The markdown printed at the end of a run (tables and ratios)."""
    lines = ["### Matrix (closed loop, 2xx counted in rates)", ""]
    lines += cells_table(cells, run["config"]["servers"])
    if overload:
        lines += ["", "### Overload", "", *overload_table(overload)]
    lines += ["", "### Ratios and targets", "", *ratios_table(ratios(cells, overload))]
    return "\n".join(lines) + "\n"


def versions_line(found: dict[str, str]) -> str:
    return ", ".join(f"{name} {version}" for name, version in found.items())


def servers_lines(run: dict[str, Any]) -> list[str]:
    lines = []
    for name, info in run["servers"].items():
        lines.append(
            f"- **{name}**: {info['note']}; ready in {info['ready_s']:.1f} s; "
            f"CPU affinity {info['affinity']}"
        )
    failures = run.get("failures", {})
    for name in missing(list(run["servers"])):
        why = f"could not be measured: {failures[name]}" if name in failures else "not yet run"
        lines.append(f"- **{name}**: {why}")
    return lines


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
            *servers_lines(run),
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

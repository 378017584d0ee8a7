"""What a run measured, as plain dataclasses (written to JSON, rendered by report.py)."""

from __future__ import annotations

from dataclasses import dataclass

from loadgen import WrkRun


@dataclass(frozen=True)
class CellResult:
    """One server x rows per request x connections cell. Rates count 2xx answers only;
    latencies are wrk's, over every answer."""

    server: str
    rows: int
    connections: int
    duration_s: float
    ok: int
    req_per_s: float
    rows_per_s: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    non_2xx: int
    socket_errors: int
    statuses: dict[str, int]
    server_cpu_us_per_req: float | None
    client_cpu_share: float
    core0_foreign_share: float
    core0_steal_share: float


@dataclass(frozen=True)
class OverloadResult:
    """1-row requests at far more connections than saturate the server."""

    server: str
    connections: int
    saturating_connections: int | None
    duration_s: float
    answers: int
    ok_per_s: float
    shed_429: int
    shed_share: float
    other_non_2xx: int
    socket_errors: int
    p50_all_ms: float
    p99_all_ms: float
    admitted_p99_bound_ms: float
    server_p99_ms: float | None
    server_p99_open_ended: bool
    server_observations: int | None


@dataclass(frozen=True)
class Ratio:
    """A headline ratio and its target."""

    name: str
    value: float | None
    target: str
    passed: bool | None
    detail: str = ""


@dataclass(frozen=True)
class Noise:
    """What else core 0 did during a run (see cpustat.py)."""

    foreign_share: float
    steal_share: float


def cell_result(server: str, run: WrkRun, server_cpu_s: float, noise: Noise) -> CellResult:
    ok = run.ok
    answers = ok + run.non_2xx
    return CellResult(
        server=server,
        rows=run.load.rows,
        connections=run.load.connections,
        duration_s=round(run.duration_s, 3),
        ok=ok,
        req_per_s=ok / run.duration_s,
        rows_per_s=ok * run.load.rows / run.duration_s,
        p50_ms=run.percentile_ms("50"),
        p90_ms=run.percentile_ms("90"),
        p99_ms=run.percentile_ms("99"),
        p999_ms=run.percentile_ms("99.9"),
        non_2xx=run.non_2xx,
        socket_errors=run.socket_errors,
        statuses={str(k): v for k, v in sorted(run.statuses.items())},
        server_cpu_us_per_req=server_cpu_s * 1e6 / answers if server_cpu_s and answers else None,
        client_cpu_share=run.client_cpu_s / run.duration_s,
        core0_foreign_share=noise.foreign_share,
        core0_steal_share=noise.steal_share,
    )


def find(cells: list[CellResult], server: str, rows: int, connections: int) -> CellResult | None:
    for cell in cells:
        if (cell.server, cell.rows, cell.connections) == (server, rows, connections):
            return cell
    return None


def saturating_connections(cells: list[CellResult], server: str) -> int | None:
    """Fewest connections whose 1-row req/s is within 10 % of the server's best."""
    mine = sorted(
        (c for c in cells if c.server == server and c.rows == 1), key=lambda c: c.connections
    )
    if not mine:
        return None
    best = max(c.req_per_s for c in mine)
    return next(c.connections for c in mine if c.req_per_s >= 0.9 * best)

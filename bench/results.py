"""What a run measured, as plain dataclasses (written to JSON, rendered by report.py).

Every wrk run is one :class:`CellResult` (or :class:`OverloadResult`) tagged with its repetition;
:func:`summarize_cells` and :func:`summarize_overload` reduce the repetitions to medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from loadgen import WrkRun

T = TypeVar("T")


@dataclass(frozen=True)
class CellResult:
    """One server x rows per request x connections run of one repetition. Rates count 2xx
    answers only; latencies are wrk's, over every answer."""

    server: str
    rows: int
    connections: int
    repetition: int  # 0-based
    position: int  # place of the server in this repetition's order (0 = first)
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
    drain_s: float  # time the servers took to fall idle after wrk stopped


@dataclass(frozen=True)
class OverloadResult:
    """1-row requests at far more connections than saturate the server (one repetition)."""

    server: str
    repetition: int
    position: int
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
    drain_s: float


@dataclass(frozen=True)
class CellSummary:
    """One server x rows x connections cell over its repetitions: medians, totals, extremes."""

    server: str
    rows: int
    connections: int
    repetitions: int
    req_per_s: float  # median
    req_per_s_min: float
    req_per_s_max: float
    rows_per_s: float  # median
    p50_ms: float  # median of the repetitions' p50
    p99_ms: float  # median of the repetitions' p99
    server_cpu_us_per_req: float | None  # median
    non_2xx: int  # total
    socket_errors: int  # total
    client_cpu_share: float  # highest
    core0_foreign_share: float  # median


@dataclass(frozen=True)
class OverloadSummary:
    """The overload run of one server over its repetitions."""

    server: str
    connections: int
    saturating_connections: int | None
    repetitions: int
    ok_per_s: float  # median
    shed_429: int  # total
    shed_share: float  # median
    other_non_2xx: int  # total
    socket_errors: int  # total
    p50_all_ms: float  # median
    p99_all_ms: float  # median
    admitted_p99_bound_ms: float  # median
    admitted_p99_bound_min_ms: float
    admitted_p99_bound_max_ms: float
    server_p99_ms: float | None  # median
    server_p99_open_ended: bool  # in any repetition


@dataclass(frozen=True)
class Ratio:
    """A headline figure: the median over repetitions of a per-repetition ratio, its range and
    its target."""

    name: str
    value: float | None  # median over repetitions
    target: str
    passed: bool | None
    detail: str = ""
    low: float | None = None
    high: float | None = None
    values: list[float] = field(default_factory=list)  # one per repetition, in order


@dataclass(frozen=True)
class Noise:
    """What else core 0 did during a run (see cpustat.py)."""

    foreign_share: float
    steal_share: float


@dataclass(frozen=True)
class Slot:
    """Where a run sits in the interleaved sequence, and how long the servers took to settle."""

    repetition: int
    position: int
    drain_s: float


def cell_result(
    server: str, run: WrkRun, server_cpu_s: float, noise: Noise, slot: Slot
) -> CellResult:
    ok = run.ok
    answers = ok + run.non_2xx
    return CellResult(
        server=server,
        rows=run.load.rows,
        connections=run.load.connections,
        repetition=slot.repetition,
        position=slot.position,
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
        drain_s=round(slot.drain_s, 3),
    )


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _median(values: Iterable[float]) -> float:
    return float(statistics.median(list(values)))


def find(
    cells: Sequence[CellResult], server: str, rows: int, connections: int, repetition: int
) -> CellResult | None:
    for cell in cells:
        if (cell.server, cell.rows, cell.connections, cell.repetition) == (
            server,
            rows,
            connections,
            repetition,
        ):
            return cell
    return None


def find_summary(
    cells: Sequence[CellSummary], server: str, rows: int, connections: int
) -> CellSummary | None:
    for cell in cells:
        if (cell.server, cell.rows, cell.connections) == (server, rows, connections):
            return cell
    return None


def _grouped(items: Iterable[T], key: Callable[[T], tuple[object, ...]]) -> dict[object, list[T]]:
    groups: dict[object, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def summarize_cells(cells: Sequence[CellResult], order: Sequence[str]) -> list[CellSummary]:
    """Medians per server x rows x connections, servers in ``order``, then rows, connections."""
    groups = _grouped(cells, lambda c: (c.server, c.rows, c.connections))
    rank = {name: i for i, name in enumerate(order)}
    summaries = [summarize_cell(runs) for runs in groups.values()]
    return sorted(summaries, key=lambda s: (rank.get(s.server, 99), s.rows, s.connections))


def summarize_cell(runs: list[CellResult]) -> CellSummary:
    first = runs[0]
    rates = [c.req_per_s for c in runs]
    return CellSummary(
        server=first.server,
        rows=first.rows,
        connections=first.connections,
        repetitions=len(runs),
        req_per_s=_median(rates),
        req_per_s_min=min(rates),
        req_per_s_max=max(rates),
        rows_per_s=_median(c.rows_per_s for c in runs),
        p50_ms=_median(c.p50_ms for c in runs),
        p99_ms=_median(c.p99_ms for c in runs),
        server_cpu_us_per_req=median(c.server_cpu_us_per_req for c in runs),
        non_2xx=sum(c.non_2xx for c in runs),
        socket_errors=sum(c.socket_errors for c in runs),
        client_cpu_share=max(c.client_cpu_share for c in runs),
        core0_foreign_share=_median(c.core0_foreign_share for c in runs),
    )


def summarize_overload(
    results: Sequence[OverloadResult], order: Sequence[str]
) -> list[OverloadSummary]:
    groups = _grouped(results, lambda o: (o.server,))
    rank = {name: i for i, name in enumerate(order)}
    summaries = [overload_summary(runs) for runs in groups.values()]
    return sorted(summaries, key=lambda s: rank.get(s.server, 99))


def overload_summary(runs: list[OverloadResult]) -> OverloadSummary:
    first = runs[0]
    bounds = [o.admitted_p99_bound_ms for o in runs]
    return OverloadSummary(
        server=first.server,
        connections=first.connections,
        saturating_connections=first.saturating_connections,
        repetitions=len(runs),
        ok_per_s=_median(o.ok_per_s for o in runs),
        shed_429=sum(o.shed_429 for o in runs),
        shed_share=_median(o.shed_share for o in runs),
        other_non_2xx=sum(o.other_non_2xx for o in runs),
        socket_errors=sum(o.socket_errors for o in runs),
        p50_all_ms=_median(o.p50_all_ms for o in runs),
        p99_all_ms=_median(o.p99_all_ms for o in runs),
        admitted_p99_bound_ms=_median(bounds),
        admitted_p99_bound_min_ms=min(bounds),
        admitted_p99_bound_max_ms=max(bounds),
        server_p99_ms=median(o.server_p99_ms for o in runs),
        server_p99_open_ended=any(o.server_p99_open_ended for o in runs),
    )


def saturating_connections(cells: Sequence[CellSummary], server: str) -> int | None:
    """Fewest connections whose median 1-row req/s is within 10 % of the server's best."""
    mine = sorted(
        (c for c in cells if c.server == server and c.rows == 1), key=lambda c: c.connections
    )
    if not mine:
        return None
    best = max(c.req_per_s for c in mine)
    return next(c.connections for c in mine if c.req_per_s >= 0.9 * best)

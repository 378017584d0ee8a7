"""Shadow records: one row per mirrored request of a shadow experiment, and their aggregates.

A shadow experiment mirrors a share of a model's unpinned traffic to candidate versions; each
mirrored request (per candidate) becomes one :class:`ShadowRecord` — compared (rows and agreeing
rows), failed on the candidate (``error``) or not sent at all (``dropped``: too many shadow
requests in flight, candidate not loaded yet). :func:`shadow_aggregates` folds them per
candidate variant and version: counts and sums in SQL, latency percentiles in Python (linear
interpolation, identical on every backend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa

from sibyl.errors import InvalidInputError
from sibyl.store._aggregates import percentile
from sibyl.store._schema import shadow_results


class ShadowStatus(StrEnum):
    """What happened to one mirrored request."""

    COMPARED = "compared"
    """The candidate answered; its rows were compared with the primary's."""
    ERROR = "error"
    """The candidate failed (raised, timed out, refused the input)."""
    DROPPED = "dropped"
    """Not sent: the shadow's concurrency bound was reached or the candidate was not loaded."""


@dataclass(frozen=True, slots=True)
class ShadowRecord:
    """One mirrored request, as a shadow experiment accounts for it (``ts`` defaults to now).

    ``model``/``primary_version`` answered the caller; ``candidate_model``/``candidate_version``
    were asked in the background (``candidate_version`` is ``None`` when a dropped request never
    resolved it). ``rows``/``agreeing_rows`` count rows compared (0 unless ``COMPARED``);
    ``shadow_latency_ms`` is ``None`` for dropped requests.
    """

    experiment_id: int
    variant: str
    request_id: str
    model: str
    primary_version: str
    candidate_model: str
    candidate_version: str | None
    status: ShadowStatus
    rows: int
    agreeing_rows: int
    primary_latency_ms: float
    shadow_latency_ms: float | None = None
    ts: datetime | None = None

    def validate(self) -> None:
        """Raise :class:`InvalidInputError` for impossible counts or latencies."""
        if not 0 <= self.agreeing_rows <= self.rows:
            raise InvalidInputError(
                f"Shadow record of request '{self.request_id}': agreeing_rows "
                f"{self.agreeing_rows} must be between 0 and rows {self.rows}",
                field="agreeing_rows",
            )
        for name in ("primary_latency_ms", "shadow_latency_ms"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(
                    f"Shadow record of request '{self.request_id}': {name} must be a finite "
                    f"number ≥ 0, got {value}",
                    field=name,
                )


@dataclass(frozen=True, slots=True)
class LatencyPair:
    """p50 / p95 (ms) of the primary, of the candidate, and of their per-request difference
    (candidate − primary), over compared requests; ``None`` without any."""

    primary_p50: float | None = None
    primary_p95: float | None = None
    candidate_p50: float | None = None
    candidate_p95: float | None = None
    difference_p50: float | None = None
    difference_p95: float | None = None


@dataclass(frozen=True, slots=True)
class ShadowAggregate:
    """Everything a shadow report and the promotion gate need about one candidate version.

    ``mirrored`` = ``compared`` + ``errors`` (requests that reached the candidate); ``dropped``
    were never sent. Row sums are over compared requests: ``rows``, ``agreeing_rows``, and for
    the clustered (per-request) variance of the agreement rate ``rows_sq`` = Σ rowsᵢ²,
    ``agreeing_sq`` = Σ agreeingᵢ², ``cross`` = Σ rowsᵢ·agreeingᵢ. ``unanimous`` counts compared
    requests whose rows all agreed.
    """

    variant: str
    candidate_model: str
    candidate_version: str | None
    compared: int = 0
    errors: int = 0
    dropped: int = 0
    rows: int = 0
    agreeing_rows: int = 0
    unanimous: int = 0
    rows_sq: float = 0.0
    agreeing_sq: float = 0.0
    cross: float = 0.0
    latency: LatencyPair = LatencyPair()
    first_at: datetime | None = None
    last_at: datetime | None = None

    @property
    def mirrored(self) -> int:
        """Requests that reached the candidate (compared or failed)."""
        return self.compared + self.errors


def shadow_row(item: ShadowRecord, now: datetime) -> dict[str, Any]:
    """The ``shadow_results`` row of ``item`` (timestamped now unless it says when)."""
    return {
        "experiment_id": item.experiment_id,
        "variant": item.variant,
        "request_id": item.request_id,
        "model": item.model,
        "primary_version": item.primary_version,
        "candidate_model": item.candidate_model,
        "candidate_version": item.candidate_version,
        "status": ShadowStatus(item.status).value,
        "n_rows": int(item.rows),
        "agreeing_rows": int(item.agreeing_rows),
        "primary_latency_ms": float(item.primary_latency_ms),
        "shadow_latency_ms": (
            None if item.shadow_latency_ms is None else float(item.shadow_latency_ms)
        ),
        "ts": item.ts or now,
    }


_Key = tuple[str, str, str | None]


def shadow_aggregates(
    conn: sa.Connection, experiment_id: int, since: datetime | None
) -> list[ShadowAggregate]:
    """One :class:`ShadowAggregate` per (variant, candidate model, candidate version) of the
    experiment, sorted by variant then version (``None`` last)."""
    counts = _counts(conn, experiment_id, since)
    latencies = _latencies(conn, experiment_id, since)
    out = [_aggregate(key, values, latencies.get(key, [])) for key, values in counts.items()]
    return sorted(out, key=lambda a: (a.variant, a.candidate_version is None, _order(a)))


def _order(a: ShadowAggregate) -> tuple[int, str]:
    version = a.candidate_version or ""
    return (int(version), "") if version.isdigit() else (0, version)


def _where(experiment_id: int, since: datetime | None) -> sa.ColumnElement[bool]:
    s = shadow_results.c
    clause = s.experiment_id == experiment_id
    return clause if since is None else sa.and_(clause, s.ts >= since)


def _counts(
    conn: sa.Connection, experiment_id: int, since: datetime | None
) -> dict[_Key, dict[str, Any]]:
    s = shadow_results.c
    compared = s.status == ShadowStatus.COMPARED.value

    def when(condition: sa.ColumnElement[bool], value: Any) -> Any:
        return sa.func.coalesce(sa.func.sum(sa.case((condition, value), else_=0)), 0)

    query = (
        sa.select(
            s.variant,
            s.candidate_model,
            s.candidate_version,
            when(compared, 1).label("compared"),
            when(s.status == ShadowStatus.ERROR.value, 1).label("errors"),
            when(s.status == ShadowStatus.DROPPED.value, 1).label("dropped"),
            when(compared, s.n_rows).label("rows"),
            when(compared, s.agreeing_rows).label("agreeing_rows"),
            when(sa.and_(compared, s.agreeing_rows == s.n_rows), 1).label("unanimous"),
            when(compared, s.n_rows * s.n_rows).label("rows_sq"),
            when(compared, s.agreeing_rows * s.agreeing_rows).label("agreeing_sq"),
            when(compared, s.n_rows * s.agreeing_rows).label("cross"),
            sa.func.min(s.ts).label("first_at"),
            sa.func.max(s.ts).label("last_at"),
        )
        .where(_where(experiment_id, since))
        .group_by(s.variant, s.candidate_model, s.candidate_version)
    )
    out: dict[_Key, dict[str, Any]] = {}
    for row in conn.execute(query).mappings():
        out[(row["variant"], row["candidate_model"], row["candidate_version"])] = dict(row)
    return out


def _latencies(
    conn: sa.Connection, experiment_id: int, since: datetime | None
) -> dict[_Key, list[tuple[float, float]]]:
    """(primary ms, candidate ms) of every compared request, per key."""
    s = shadow_results.c
    query = sa.select(
        s.variant, s.candidate_model, s.candidate_version, s.primary_latency_ms, s.shadow_latency_ms
    ).where(_where(experiment_id, since), s.status == ShadowStatus.COMPARED.value)
    out: dict[_Key, list[tuple[float, float]]] = {}
    for variant, cmodel, cversion, primary, shadow in conn.execute(query):
        if shadow is not None:
            out.setdefault((variant, cmodel, cversion), []).append((float(primary), float(shadow)))
    return out


def _aggregate(
    key: _Key, values: dict[str, Any], pairs: list[tuple[float, float]]
) -> ShadowAggregate:
    return ShadowAggregate(
        variant=key[0],
        candidate_model=key[1],
        candidate_version=key[2],
        compared=int(values["compared"]),
        errors=int(values["errors"]),
        dropped=int(values["dropped"]),
        rows=int(values["rows"]),
        agreeing_rows=int(values["agreeing_rows"]),
        unanimous=int(values["unanimous"]),
        rows_sq=float(values["rows_sq"]),
        agreeing_sq=float(values["agreeing_sq"]),
        cross=float(values["cross"]),
        latency=latency_pair(pairs),
        first_at=values["first_at"],
        last_at=values["last_at"],
    )


def latency_pair(pairs: list[tuple[float, float]]) -> LatencyPair:
    """Percentiles of the primary's, the candidate's and the paired difference's latencies."""
    if not pairs:
        return LatencyPair()
    primary = sorted(p for p, _ in pairs)
    candidate = sorted(c for _, c in pairs)
    diff = sorted(c - p for p, c in pairs)
    return LatencyPair(
        percentile(primary, 50),
        percentile(primary, 95),
        percentile(candidate, 50),
        percentile(candidate, 95),
        percentile(diff, 50),
        percentile(diff, 95),
    )

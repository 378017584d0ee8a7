"""Per-variant aggregates of one experiment: predictions, assignments and attributed feedback.

Counts and sums are computed in SQL; latency percentiles in Python over the variant's latencies
(linear interpolation, identical on every backend). Without percentiles, the latency count,
mean and variance come from SQL sums (no per-record read).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

import sqlalchemy as sa

from sibyl.store._schema import assignments, feedback, predictions
from sibyl.store._types import Experiment, VariantAggregate


@dataclass(slots=True)
class _Folded:
    """Mutable accumulator of one variant's feedback."""

    n: int = 0
    value_n: int = 0
    value_sum: float = 0.0
    value_sumsq: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)

    def add(self, value: float | None, label: str | None) -> None:
        self.n += 1
        if value is not None:
            self.value_n += 1
            self.value_sum += value
            self.value_sumsq += value * value
        if label is not None:
            self.labels[label] += 1


def percentile(sorted_values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100) of ascending ``sorted_values`` with linear interpolation
    (``numpy.percentile``'s default); the list must not be empty."""
    rank = (len(sorted_values) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def sample_variance(values: list[float]) -> float:
    """Unbiased sample variance (``ddof = 1``, two-pass for accuracy); 0 for one value."""
    if len(values) < 2:
        return 0.0
    mean = math.fsum(values) / len(values)
    return math.fsum((x - mean) ** 2 for x in values) / (len(values) - 1)


def variant_aggregates(
    conn: sa.Connection, experiment: Experiment, since: datetime | None, *, percentiles: bool = True
) -> list[VariantAggregate]:
    """One :class:`VariantAggregate` per variant of ``experiment`` (its variant order)."""
    assigned = _assigned(conn, experiment.id, since)
    folded = _feedback(conn, experiment, since)
    if not percentiles:
        moments = _moments(conn, experiment.id, since)
        return [
            _from_moments(v.name, v.is_control, v.weight, assigned, moments, folded)
            for v in experiment.variants
        ]
    latencies = _latencies(conn, experiment.id, since)
    return [
        _aggregate(v.name, v.is_control, v.weight, assigned, latencies, folded)
        for v in experiment.variants
    ]


def _moments(
    conn: sa.Connection, experiment_id: int, since: datetime | None
) -> dict[str, tuple[int, int, float, float]]:
    """variant → (records, error records, mean latency, Σ (latency − mean)²), two aggregate
    queries in the database (the centred sum keeps the variance of large, tight latencies)."""
    p = predictions
    where = [p.c.experiment_id == experiment_id]
    if since is not None:
        where.append(p.c.ts >= since)
    means = (
        sa.select(
            p.c.variant.label("variant"),
            sa.func.count().label("n"),
            sa.func.sum(sa.case((p.c.error, 1), else_=0)).label("errors"),
            sa.func.avg(p.c.latency_ms).label("mean"),
        )
        .where(*where)
        .group_by(p.c.variant)
        .subquery()
    )
    deviation = p.c.latency_ms - means.c.mean
    query = (
        sa.select(
            means.c.variant,
            means.c.n,
            means.c.errors,
            means.c.mean,
            sa.func.sum(deviation * deviation),
        )
        .join_from(p, means, means.c.variant == p.c.variant)
        .where(*where)
        .group_by(means.c.variant, means.c.n, means.c.errors, means.c.mean)
    )
    return {
        str(v): (int(n), int(e or 0), float(m or 0.0), float(ss or 0.0))
        for v, n, e, m, ss in conn.execute(query)
    }


def _from_moments(
    name: str,
    is_control: bool,
    weight: float,
    assigned: dict[str, int],
    moments: dict[str, tuple[int, int, float, float]],
    folded: dict[str, _Folded],
) -> VariantAggregate:
    n, errors, mean_ms, centred_sq = moments.get(name, (0, 0, 0.0, 0.0))
    mean = mean_ms if n else None
    var = centred_sq / (n - 1) if n > 1 else None
    fb = folded.get(name, _Folded())
    return VariantAggregate(
        variant=name,
        is_control=is_control,
        weight=weight,
        assigned=assigned.get(name, 0),
        n=n,
        errors=errors,
        latency_mean_ms=mean,
        latency_var_ms2=var if n > 1 else (0.0 if n == 1 else None),
        feedback_n=fb.n,
        value_n=fb.value_n,
        value_sum=fb.value_sum,
        value_sumsq=fb.value_sumsq,
        labels=dict(fb.labels),
    )


def _aggregate(
    name: str,
    is_control: bool,
    weight: float,
    assigned: dict[str, int],
    latencies: dict[str, tuple[list[float], int]],
    folded: dict[str, _Folded],
) -> VariantAggregate:
    values, errors = latencies.get(name, ([], 0))
    values.sort()
    fb = folded.get(name, _Folded())
    return VariantAggregate(
        variant=name,
        is_control=is_control,
        weight=weight,
        assigned=assigned.get(name, 0),
        n=len(values),
        errors=errors,
        latency_mean_ms=math.fsum(values) / len(values) if values else None,
        latency_p50_ms=percentile(values, 50) if values else None,
        latency_p95_ms=percentile(values, 95) if values else None,
        latency_p99_ms=percentile(values, 99) if values else None,
        latency_var_ms2=sample_variance(values) if values else None,
        feedback_n=fb.n,
        value_n=fb.value_n,
        value_sum=fb.value_sum,
        value_sumsq=fb.value_sumsq,
        labels=dict(fb.labels),
    )


def _assigned(conn: sa.Connection, experiment_id: int, since: datetime | None) -> dict[str, int]:
    query = (
        sa.select(assignments.c.variant, sa.func.count())
        .where(assignments.c.experiment_id == experiment_id)
        .group_by(assignments.c.variant)
    )
    if since is not None:
        query = query.where(assignments.c.first_seen >= since)
    return {variant: int(count) for variant, count in conn.execute(query)}


def _latencies(
    conn: sa.Connection, experiment_id: int, since: datetime | None
) -> dict[str, tuple[list[float], int]]:
    """variant → (latencies of every record, number of error records)."""
    query = sa.select(predictions.c.variant, predictions.c.latency_ms, predictions.c.error).where(
        predictions.c.experiment_id == experiment_id
    )
    if since is not None:
        query = query.where(predictions.c.ts >= since)
    out: dict[str, tuple[list[float], int]] = {}
    for variant, latency, error in conn.execute(query):
        values, errors = out.get(variant, ([], 0))
        values.append(float(latency))
        out[variant] = (values, errors + int(bool(error)))
    return out


def _feedback(
    conn: sa.Connection, experiment: Experiment, since: datetime | None
) -> dict[str, _Folded]:
    folded: defaultdict[str, _Folded] = defaultdict(_Folded)
    for variant, value, label in _attributed_rows(conn, experiment, since):
        folded[variant].add(None if value is None else float(value), label)
    return dict(folded)


def _attributed_rows(
    conn: sa.Connection, experiment: Experiment, since: datetime | None
) -> Iterable[tuple[str, float | None, str | None]]:
    """(variant, value, label) of every feedback row attributed to ``experiment``: explicitly,
    else through the prediction record of its request id, else (no prediction record for its
    request id) through the assignment of its routing key, for feedback on the same model."""
    eid = experiment.id
    f, p, a = feedback, predictions, assignments
    explicit = sa.select(f.c.variant, f.c.value, f.c.label).where(f.c.experiment_id == eid)
    served = (
        sa.select(p.c.request_id, p.c.variant).where(p.c.experiment_id == eid).distinct().subquery()
    )
    by_request = (
        sa.select(served.c.variant, f.c.value, f.c.label)
        .join_from(f, served, served.c.request_id == f.c.request_id)
        .where(f.c.experiment_id.is_(None))
    )
    unserved = sa.or_(
        f.c.request_id.is_(None),
        ~sa.exists().where(p.c.request_id == f.c.request_id),
    )
    by_key = (
        sa.select(a.c.variant, f.c.value, f.c.label)
        .join_from(f, a, sa.and_(a.c.routing_key == f.c.routing_key, a.c.experiment_id == eid))
        .where(f.c.experiment_id.is_(None), f.c.model == experiment.model, unserved)
    )
    parts = [explicit, by_request, by_key]
    if since is not None:
        parts = [q.where(f.c.received_at >= since) for q in parts]
    rows = conn.execute(sa.union_all(*parts)).tuples()
    return cast("Iterable[tuple[str, float | None, str | None]]", rows)

"""Request statistics of the prediction log: the SQL behind the dashboard.

Statuses: ``ok`` is a success; ``invalid`` and ``not_found`` are the client's mistakes and count
neither way (not in the success rate, not in latencies); every other status (``error``,
``timeout``, ``overloaded``, ``circuit_open`` …) is a server-side failure.

**Percentiles.** On PostgreSQL the 95th latency percentile is computed in the database with
``percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms)`` (exact). Elsewhere (SQLite) it is
computed in Python (linear interpolation, as ``numpy.percentile``) over a bounded sample: the
first ``sample`` rows in ``id`` order — ids are random (uuid4), so that is a uniform sample —
and exact when the window holds no more rows than that. :class:`RequestStats` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import sqlalchemy as sa

from sibyl.store._schema import prediction_log

pl = prediction_log
OK = "ok"
CLIENT_ERRORS = ("invalid", "not_found")
DEFAULT_SAMPLE = 10_000
"""Latencies read to compute a percentile in Python (per window, or per hour)."""
HOUR_S = 3600


@dataclass(frozen=True, slots=True)
class RequestStats:
    """Requests of one model (optionally one version) in a time range.

    ``by_status`` counts every logged request; ``served`` = requests minus client errors;
    ``success_rate`` = ok / served (``None`` without served requests); latencies (ms) are over
    the served requests. ``p95_method``: ``percentile_cont`` (in the database, exact),
    ``exact`` (in Python over every row) or ``sample`` (in Python over ``p95_rows`` rows).
    """

    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    """Rows answered successfully."""
    latency_mean_ms: float | None = None
    latency_p95_ms: float | None = None
    p95_method: str = "exact"
    p95_rows: int = 0

    @property
    def served(self) -> int:
        """Requests that were not the client's mistake."""
        return self.requests - sum(self.by_status.get(s, 0) for s in CLIENT_ERRORS)

    @property
    def errors(self) -> int:
        """Server-side failures."""
        return self.served - self.by_status.get(OK, 0)

    @property
    def success_rate(self) -> float | None:
        return self.by_status.get(OK, 0) / self.served if self.served else None


@dataclass(frozen=True, slots=True)
class HourStats:
    """One clock hour (UTC) of a model's requests: counts as in :class:`RequestStats`."""

    start: datetime
    requests: int
    errors: int
    latency_p95_ms: float | None


def _window(
    model: str, since: datetime, until: datetime, version: str | None
) -> list[sa.ColumnElement[bool]]:
    where = [pl.c.model == model, pl.c.ts >= since, pl.c.ts < until]
    if version is not None:
        where.append(pl.c.version == version)
    return where


def _served() -> sa.ColumnElement[bool]:
    return pl.c.status.not_in(CLIENT_ERRORS)


def request_stats(
    conn: sa.Connection,
    model: str,
    since: datetime,
    until: datetime,
    version: str | None = None,
    sample: int = DEFAULT_SAMPLE,
) -> RequestStats:
    """Counts, rows, mean and p95 latency of ``model``'s requests with ``since <= ts < until``."""
    where = _window(model, since, until, version)
    counts = sa.select(pl.c.status, sa.func.count(), sa.func.sum(pl.c.n_rows)).where(*where)
    by_status: dict[str, int] = {}
    rows = 0
    for status, n, n_rows in conn.execute(counts.group_by(pl.c.status)):
        by_status[str(status)] = int(n)
        rows += int(n_rows or 0) if status == OK else 0
    served = [*where, _served()]
    mean = conn.execute(sa.select(sa.func.avg(pl.c.latency_ms)).where(*served)).scalar()
    p95, method, used = _p95(conn, served, sample)
    return RequestStats(
        sum(by_status.values()),
        by_status,
        rows,
        None if mean is None else float(mean),
        p95,
        method,
        used,
    )


def _p95(
    conn: sa.Connection, where: list[sa.ColumnElement[bool]], sample: int
) -> tuple[float | None, str, int]:
    if conn.dialect.name == "postgresql":
        query = sa.select(
            sa.func.percentile_cont(0.95).within_group(pl.c.latency_ms), sa.func.count()
        ).where(*where)
        value, n = conn.execute(query).one()
        return (None if value is None else float(value)), "percentile_cont", int(n)
    query = sa.select(pl.c.latency_ms).where(*where).order_by(pl.c.id).limit(sample + 1)
    values = [float(v) for v in conn.execute(query).scalars()]
    method = "sample" if len(values) > sample else "exact"
    values = values[:sample]
    return _percentile(values, 95), method, len(values)


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _hour(conn: sa.Connection) -> sa.ColumnElement[Any]:
    """The UTC hour of ``ts`` as whole hours since the epoch, on either backend."""
    if conn.dialect.name == "postgresql":
        return sa.func.floor(sa.extract("epoch", pl.c.ts) / HOUR_S)
    return sa.cast(sa.func.strftime("%s", pl.c.ts), sa.Integer) // HOUR_S


def hourly_stats(
    conn: sa.Connection,
    model: str,
    since: datetime,
    until: datetime,
    sample: int = 2_000,
) -> list[HourStats]:
    """One :class:`HourStats` per clock hour between ``since`` and ``until`` (hours without
    requests included, oldest first); p95 as in :func:`request_stats` (``sample`` per hour)."""
    hour_of = _hour(conn)
    hour = hour_of.label("hour")
    where = _window(model, since, until, None)
    failed = sa.case((sa.and_(_served(), pl.c.status != OK), 1), else_=0)
    counts = sa.select(hour, sa.func.count(), sa.func.sum(failed)).where(*where).group_by(hour)
    got = {int(h): (int(n), int(e or 0)) for h, n, e in conn.execute(counts)}
    p95 = _hourly_p95(conn, hour_of, [*where, _served()], sample)
    first, last = int(since.timestamp()) // HOUR_S, int(until.timestamp() - 1e-6) // HOUR_S
    return [
        HourStats(datetime.fromtimestamp(h * HOUR_S, UTC), *got.get(h, (0, 0)), p95.get(h))
        for h in range(first, last + 1)
    ]


def _hourly_p95(
    conn: sa.Connection,
    hour: sa.ColumnElement[Any],
    where: list[sa.ColumnElement[bool]],
    sample: int,
) -> dict[int, float | None]:
    if conn.dialect.name == "postgresql":
        p95 = sa.func.percentile_cont(0.95).within_group(pl.c.latency_ms)
        query = sa.select(hour, p95).where(*where).group_by(hour)  # the expression, repeated
        return {int(h): None if v is None else float(v) for h, v in conn.execute(query)}
    rank = sa.func.row_number().over(partition_by=hour, order_by=pl.c.id).label("rank")
    inner = sa.select(hour.label("hour"), pl.c.latency_ms, rank).where(*where).subquery()
    query = sa.select(inner.c.hour, inner.c.latency_ms).where(inner.c.rank <= sample)
    values: dict[int, list[float]] = {}
    for h, latency in conn.execute(query):
        values.setdefault(int(h), []).append(float(latency))
    return {h: _percentile(v, 95) for h, v in values.items()}

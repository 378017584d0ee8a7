"""The prediction log in the store: one row per prediction request (``prediction_log``).

Records come from :mod:`sibyl.monitoring.predlog`'s writer, which makes their ids (uuid4 hex)
before the first write attempt, so a batch written twice — replayed from the local spool after
an acknowledgement was lost — stores each row once: inserts ignore ids already present.

``inputs`` and ``outputs`` are JSON documents (layout in :class:`PredictionLogRecord`). They are
serialised here with orjson — numpy arrays and scalars are accepted, NaN and ±inf become
``null`` — and bound as text (cast to ``json`` on PostgreSQL), so the same bytes land on every
backend and one odd value never fails a batch. Inserts go through the driver with one tuple per
row (see :func:`_insert`); reads go through the table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import orjson
import sqlalchemy as sa

from sibyl.errors import InvalidInputError
from sibyl.store._schema import prediction_log as table

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
MAX_QUERY_ROWS = 100_000


@dataclass(frozen=True, slots=True)
class PredictionLogRecord:
    """One logged prediction request.

    ``inputs`` is ``{"columns": [...], "rows": [[...], ...]}`` after redaction (redacted values
    are ``null``), or ``None`` when they were not logged (policy ``none``, sampled out).
    ``outputs`` is ``{"predictions": [...one per row...], "probabilities": [[...], ...],
    "classes": [...]}`` (the last two only for classifiers), ``None`` for a failed request or
    when outputs are not logged. ``status`` is ``ok`` (answered, possibly by a fallback named in
    ``fallback``) or the failure: ``invalid``, ``not_found``, ``overloaded``, ``timeout``,
    ``circuit_open``, ``error``; ``error`` holds the failure's message (for a fallback answer,
    why the requested version did not answer). ``cached_rows`` rows were answered without
    calling the model.
    """

    id: str
    request_id: str
    ts: datetime
    model: str
    version: str
    n_rows: int
    latency_ms: float
    status: str
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    experiment_id: int | None = None
    variant: str | None = None
    routing_key: str | None = None
    error: str | None = None
    cached_rows: int = 0
    fallback: str | None = None

    def validate(self) -> None:
        """``InvalidInputError`` for a record no backend may store."""
        if len(self.id) != 32:
            raise InvalidInputError(
                f"prediction_log.id must be 32 hex characters, got {self.id!r}", field="id"
            )
        if self.ts.tzinfo is None:
            raise InvalidInputError("prediction_log.ts must be an aware datetime", field="ts")
        if self.n_rows < 0 or self.cached_rows < 0:
            raise InvalidInputError(
                f"prediction_log row counts must be ≥ 0 (n_rows={self.n_rows}, "
                f"cached_rows={self.cached_rows})",
                field="n_rows",
            )
        if not math.isfinite(self.latency_ms):
            raise InvalidInputError("prediction_log.latency_ms must be finite", field="latency_ms")


def to_json(value: Any) -> str | None:
    """``value`` as JSON text (``None`` stays SQL NULL); unknown objects become strings."""
    if value is None:
        return None
    return orjson.dumps(value, default=json_default, option=JSON_OPTIONS).decode()


def json_default(value: Any) -> Any:
    """orjson's fallback: arrays it cannot take as they are become lists, anything else a string."""
    tolist = getattr(value, "tolist", None)  # numpy arrays of objects / strings, pandas objects
    return tolist() if callable(tolist) else str(value)


_COLUMNS = ("id", "request_id", "ts", "model", "version", "experiment_id", "variant",
            "routing_key", "n_rows", "inputs", "outputs", "latency_ms", "status", "error",
            "cached_rows", "fallback")  # fmt: skip
_LIMITS = [
    (i, name, column_type.length)
    for i, name in enumerate(_COLUMNS)
    if isinstance(column_type := table.c[name].type, sa.String) and column_type.length
]


@cache
def _insert(dialect: str) -> str:
    """``INSERT … ON CONFLICT (id) DO NOTHING`` in the driver's own parameter style, executed
    with one tuple per row (``executemany`` in C for SQLite, one pipeline for psycopg): half the
    CPU of binding through SQLAlchemy's per-row type processing."""
    if dialect == "sqlite":
        marks = ", ".join("?" for _ in _COLUMNS)
    else:
        marks = ", ".join("%s::json" if c in ("inputs", "outputs") else "%s" for c in _COLUMNS)
    return (
        f"INSERT INTO {table.name} ({', '.join(_COLUMNS)}) VALUES ({marks}) "
        "ON CONFLICT (id) DO NOTHING"
    )


def _params(record: PredictionLogRecord, sqlite: bool) -> tuple[Any, ...]:
    """The row's values in ``_COLUMNS`` order. SQLite gets ``ts`` as the text SQLAlchemy stores
    (naive UTC, ``YYYY-MM-DD HH:MM:SS.ffffff``), so queries through the table compare and read
    it as their own."""
    ts = record.ts.astimezone(UTC)
    return (
        record.id,
        record.request_id,
        ts.replace(tzinfo=None).isoformat(" ", "microseconds") if sqlite else ts,
        record.model,
        record.version,
        record.experiment_id,
        record.variant,
        record.routing_key,
        int(record.n_rows),
        to_json(record.inputs),
        to_json(record.outputs),
        float(record.latency_ms),
        record.status,
        record.error,
        int(record.cached_rows),
        record.fallback,
    )


def _check_lengths(rows: list[tuple[Any, ...]]) -> None:
    """``InvalidInputError`` for a string longer than its column (as ``check_fits``)."""
    for row in rows:
        for i, name, limit in _LIMITS:
            value = row[i]
            if isinstance(value, str) and len(value) > limit:
                raise InvalidInputError(
                    f"{table.name}.{name} is {len(value)} characters long; at most {limit} "
                    f"fit (value starts {value[:40]!r})",
                    field=name,
                )


def write(conn: sa.Connection, records: Sequence[PredictionLogRecord]) -> int:
    """Insert ``records``, skipping ids already stored; returns how many were passed."""
    if not records:
        return 0
    for record in records:
        record.validate()
    sqlite = conn.dialect.name == "sqlite"
    try:
        rows = [_params(r, sqlite) for r in records]
    except TypeError as exc:  # orjson: a value it cannot encode even as a string
        raise InvalidInputError(f"A prediction log record is not JSON: {exc}") from None
    _check_lengths(rows)
    conn.exec_driver_sql(_insert(conn.dialect.name), rows)
    return len(rows)


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which rows of one model's log a query or count looks at."""

    model: str
    version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    has_inputs: bool | None = None
    request_id: str | None = None

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions (``since`` inclusive, ``until`` exclusive)."""
        c = table.c
        out: list[sa.ColumnElement[bool]] = [c.model == self.model]
        if self.version is not None:
            out.append(c.version == self.version)
        if self.since is not None:
            out.append(c.ts >= self.since)
        if self.until is not None:
            out.append(c.ts < self.until)
        if self.status is not None:
            out.append(c.status == self.status)
        if self.request_id is not None:
            out.append(c.request_id == self.request_id)
        if self.has_inputs is not None:
            out.append(c.inputs.is_not(None) if self.has_inputs else c.inputs.is_(None))
        return out


def query(
    conn: sa.Connection, where: LogFilter, *, limit: int, with_inputs: bool
) -> list[PredictionLogRecord]:
    """Matching rows, newest first, at most ``limit`` (``inputs`` left out unless asked)."""
    if not 0 <= limit <= MAX_QUERY_ROWS:
        raise InvalidInputError(
            f"limit must be between 0 and {MAX_QUERY_ROWS}, got {limit}", field="limit"
        )
    columns = [c for c in table.columns if with_inputs or c.name != "inputs"]
    stmt = (
        sa.select(*columns)
        .where(*where.where())
        .order_by(table.c.ts.desc(), table.c.id.desc())
        .limit(limit)
    )
    return [_record(row) for row in conn.execute(stmt).mappings()]


def count(conn: sa.Connection, where: LogFilter) -> int:
    """How many rows match."""
    stmt = sa.select(sa.func.count()).select_from(table).where(*where.where())
    return int(conn.execute(stmt).scalar_one())


def _record(row: sa.RowMapping) -> PredictionLogRecord:
    fields = dict(row)
    fields.setdefault("inputs", None)
    return PredictionLogRecord(**fields)


def delete(
    conn: sa.Connection,
    *,
    older_than: datetime | None,
    keep_rows: int | None,
    model: str | None,
) -> int:
    """Delete rows older than ``older_than`` and, per model, all but the newest ``keep_rows``
    (only ``model``'s when given); returns how many rows went."""
    if keep_rows is not None and keep_rows < 0:
        raise InvalidInputError(f"keep_rows must be ≥ 0, got {keep_rows}", field="keep_rows")
    deleted = 0
    if older_than is not None:
        stmt = sa.delete(table).where(table.c.ts < older_than)
        if model is not None:
            stmt = stmt.where(table.c.model == model)
        deleted += conn.execute(stmt).rowcount
    if keep_rows is not None:
        for name in [model] if model is not None else _models(conn):
            deleted += _keep_newest(conn, name, keep_rows)
    return deleted


def _models(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.select(table.c.model).distinct()).scalars())


def _keep_newest(conn: sa.Connection, model: str, keep: int) -> int:
    """Delete ``model``'s rows after its ``keep`` newest (by ``ts``, then ``id``)."""
    c = table.c
    first_gone = conn.execute(
        sa.select(c.ts, c.id)
        .where(c.model == model)
        .order_by(c.ts.desc(), c.id.desc())
        .limit(1)
        .offset(keep)
    ).first()
    if first_gone is None:
        return 0
    ts, pid = first_gone
    older = (c.ts < ts) | ((c.ts == ts) & (c.id <= pid))
    return conn.execute(sa.delete(table).where(c.model == model, older)).rowcount

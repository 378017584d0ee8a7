"""Reading the prediction log in bounded batches, with the feedback that may apply to each batch.

``prediction_log`` is streamed ordered by (model, ts, id) — so every (model, day) partition
arrives contiguously — through SQLAlchemy's ``yield_per`` (a server-side cursor on PostgreSQL);
each batch's feedback is fetched by the batch's ids and request ids over a second connection.
Memory holds one batch of log rows and its feedback, whatever the log's size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa

from sibyl.errors import InvalidInputError
from sibyl.monitoring.export._rows import FeedbackIndex
from sibyl.store._engine import translate_errors
from sibyl.store._schema import feedback, prediction_log

BATCH_ROWS = 2000


@dataclass(frozen=True)
class LogFilter:
    """Which log rows to export: one model (or all), whole UTC days from ``since`` to ``until``
    inclusive (either open)."""

    model: str | None = None
    since: date | None = None
    until: date | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            value = getattr(self, name)
            if isinstance(value, datetime) or (value is not None and not isinstance(value, date)):
                raise InvalidInputError(
                    f"{name} must be a date (whole UTC days are exported, so a re-export "
                    f"replaces complete day partitions), got {value!r}",
                    field=name,
                )
        if self.since and self.until and self.since > self.until:
            raise InvalidInputError(
                f"since ({self.since}) is after until ({self.until}); swap them", field="since"
            )

    def where(self) -> list[sa.ColumnElement[bool]]:
        """The SQL conditions on ``prediction_log``."""
        conditions: list[sa.ColumnElement[bool]] = []
        if self.model is not None:
            conditions.append(prediction_log.c.model == self.model)
        if self.since is not None:
            conditions.append(prediction_log.c.ts >= _midnight(self.since))
        if self.until is not None:
            conditions.append(prediction_log.c.ts < _midnight(self.until + timedelta(days=1)))
        return conditions


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def engine_of(source: Any) -> sa.Engine:
    """The SQLAlchemy engine of a store (``SQLStore.engine``) or the engine itself."""
    if isinstance(source, sa.Engine):
        return source
    engine = getattr(source, "engine", None)
    if isinstance(engine, sa.Engine):
        return engine
    raise InvalidInputError(
        f"{source!r} is not a SQL store: export reads prediction_log through SQLAlchemy; pass a "
        "store from sibyl.store.get_store(url) or an engine",
        field="store",
    )


def count_log_rows(engine: sa.Engine, where: LogFilter) -> int:
    """How many log records ``where`` selects (for progress displays)."""
    query = sa.select(sa.func.count()).select_from(prediction_log).where(*where.where())
    with translate_errors(engine), engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


@dataclass(frozen=True)
class Batch:
    """Consecutive log records, column by column: ``columns[name][i]`` is record ``i``'s value
    (``inputs`` and ``outputs`` as JSON text, decoded by the chunk builder)."""

    columns: Mapping[str, Sequence[Any]]
    size: int


def log_batches(
    engine: sa.Engine, where: LogFilter, batch_rows: int = BATCH_ROWS
) -> Iterator[tuple[Batch, FeedbackIndex]]:
    """Log records in (model, ts, id) order, ``batch_rows`` at a time, each batch with the
    feedback that may apply to it."""
    log = prediction_log.c
    # JSON read as text: orjson decodes it several times faster than the drivers' json
    columns: list[sa.ColumnElement[Any]] = [c for c in log if c.name not in _JSON]
    columns += [sa.cast(log[name], sa.Text).label(name) for name in _JSON]
    query = sa.select(*columns).where(*where.where()).order_by(log.model, log.ts, log.id)
    with translate_errors(engine), engine.connect() as conn, engine.connect() as lookups:
        result = conn.execution_options(yield_per=batch_rows).execute(query)
        keys = list(result.keys())
        for rows in result.partitions():
            batch = Batch(dict(zip(keys, zip(*rows, strict=True), strict=True)), len(rows))
            yield batch, _feedback_for(lookups, batch)


_JSON = ("inputs", "outputs")


def _feedback_for(conn: sa.Connection, batch: Batch) -> FeedbackIndex:
    fb = feedback.c
    ids = sorted(set(batch.columns["id"]))
    request_ids = sorted(set(batch.columns["request_id"]))
    columns = (fb.id, fb.prediction_id, fb.request_id, fb.model, fb.row, fb.label, fb.value)
    by_id = sa.select(*columns, fb.received_at).where(fb.prediction_id.in_(ids))
    by_request = sa.select(*columns, fb.received_at).where(
        fb.prediction_id.is_(None), fb.request_id.in_(request_ids)
    )
    index = FeedbackIndex()
    for query in (by_id, by_request):
        for row in conn.execute(query).mappings():
            index.add(row)
    conn.rollback()  # end the read transaction: SQLite's WAL can checkpoint meanwhile
    return index

"""``SQLStore``: the :class:`~sibyl.store.Store` contract on SQLAlchemy Core, one class for
SQLite and PostgreSQL. Writes on SQLite open with ``BEGIN IMMEDIATE`` (no lock upgrades, so
the busy timeout always applies); reads that must agree run in one snapshot."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from sibyl.errors import ConflictError, InvalidInputError, NotFoundError
from sibyl.store import _logstats, _migrate, _predlog, _quality, _rows
from sibyl.store._aggregates import variant_aggregates
from sibyl.store._contract import ExperimentRef
from sibyl.store._engine import SQLITE_BEGIN, create_engine, display_url, parse_url
from sibyl.store._engine import translate_errors as _translate
from sibyl.store._jobstore import SQLJobStore
from sibyl.store._logstats import HourStats, RequestStats
from sibyl.store._predlog import LogFilter, PredictionLogRecord
from sibyl.store._quality import LabelledPredictions
from sibyl.store._schema import (
    assignments,
    experiments,
    feedback,
    predictions,
    shadow_results,
)
from sibyl.store._schema import variants as variant_table
from sibyl.store._shadow import ShadowAggregate, ShadowRecord, shadow_aggregates, shadow_row
from sibyl.store._types import (
    Assignment,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    Feedback,
    NewFeedback,
    PredictionOutcome,
    Variant,
    VariantAggregate,
    check_transition,
)


def utcnow() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


class SQLStore(SQLJobStore):
    """:class:`~sibyl.store.Store` on a SQLAlchemy URL (see :func:`~sibyl.store.get_store`).

    ``clock`` stamps records that carry no time of their own (tests pass a fake one).
    """

    def __init__(self, url: str, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._engine = create_engine(parse_url(url))
        self._now = clock

    def __repr__(self) -> str:
        return f"SQLStore({self.url!r})"

    @property
    def url(self) -> str:
        return display_url(self._engine)

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for migrations tooling and tests)."""
        return self._engine

    # ---- life cycle ------------------------------------------------------------------------

    def migrate(self) -> None:
        _migrate.migrate(self._engine)

    def schema_revision(self) -> str | None:
        return _migrate.current_revision(self._engine)

    def close(self) -> None:
        self._engine.dispose()

    @contextmanager
    def _read(self, snapshot: bool = False) -> Iterator[sa.Connection]:
        with _translate(self._engine), self._engine.connect() as conn:
            if snapshot and conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        with _translate(self._engine), self._engine.connect() as conn:
            conn.execution_options(**{SQLITE_BEGIN: "BEGIN IMMEDIATE"})
            with conn.begin():
                yield conn

    # ---- experiments -----------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        model: str,
        kind: ExperimentKind,
        variants: Sequence[Variant],
        *,
        salt: str | None = None,
        routing: Mapping[str, Any] | None = None,
        success_metrics: Sequence[Mapping[str, Any]] | None = None,
    ) -> Experiment:
        _check_variants(name, variants)
        now = self._now()
        row = {
            "name": name,
            "model": model,
            "kind": ExperimentKind(kind).value,
            "status": ExperimentStatus.DRAFT.value,
            "salt": salt or secrets.token_hex(8),
            "routing": dict(routing or {}),
            "success_metrics": [dict(m) for m in success_metrics or ()],
            "created_at": now,
            "updated_at": now,
            "started_at": None,
            "stopped_at": None,
        }
        _rows.check_fits(experiments, [row])
        _rows.check_fits(variant_table, [_rows.variant_row(0, v) for v in variants])
        try:
            with self._write() as conn:
                eid = _new_id(conn.execute(experiments.insert().values(row)))
                conn.execute(variant_table.insert(), [_rows.variant_row(eid, v) for v in variants])
        except IntegrityError as error:
            raise ConflictError(
                f"An experiment named '{name}' already exists in {self.url}; "
                "pick another name (or stop and inspect the existing one)"
            ) from error
        stored = [_rows.to_variant(_rows.variant_row(eid, v)) for v in variants]
        return _rows.to_experiment({**row, "id": eid}, stored)

    def get_experiment(self, ref: ExperimentRef) -> Experiment:
        with self._read() as conn:
            return self._load(conn, ref)

    def list_experiments(
        self, *, model: str | None = None, status: ExperimentStatus | None = None
    ) -> list[Experiment]:
        query = sa.select(experiments).order_by(experiments.c.id)
        if model is not None:
            query = query.where(experiments.c.model == model)
        if status is not None:
            query = query.where(experiments.c.status == ExperimentStatus(status).value)
        with self._read(snapshot=True) as conn:
            rows = conn.execute(query).mappings().all()
            by_id = _variants_of(conn, [row["id"] for row in rows])
        return [_rows.to_experiment(row, by_id.get(row["id"], [])) for row in rows]

    def set_status(self, ref: ExperimentRef, status: ExperimentStatus) -> Experiment:
        status = ExperimentStatus(status)
        with self._write() as conn:
            current = self._load(conn, ref, lock=True)
            check_transition(current.name, current.status, status)
            if current.status == status:
                return current
            now = self._now()
            values: dict[str, Any] = {"status": status.value, "updated_at": now}
            if status is ExperimentStatus.RUNNING and current.started_at is None:
                values["started_at"] = now
            if status is ExperimentStatus.STOPPED:
                values["stopped_at"] = now
            conn.execute(experiments.update().where(experiments.c.id == current.id), values)
            return self._load(conn, current.id)

    def set_weights(self, ref: ExperimentRef, weights: Mapping[str, float]) -> Experiment:
        with self._write() as conn:
            current = self._load(conn, ref, lock=True)
            for name, weight in weights.items():
                _update_weight(conn, current, name, weight)
            conn.execute(
                experiments.update().where(experiments.c.id == current.id),
                {"updated_at": self._now()},
            )
            return self._load(conn, current.id)

    def update_routing(
        self,
        ref: ExperimentRef,
        routing: Mapping[str, Any],
        *,
        expected: Mapping[str, Any] | None = None,
        weights: Mapping[str, float] | None = None,
    ) -> Experiment:
        new = _as_json(routing, "routing")
        want = None if expected is None else _as_json(expected, "expected")
        with self._write() as conn:
            current = self._load(conn, ref, lock=True)  # the lock makes the compare-and-set atomic
            if want is not None and current.routing != want:
                raise ConflictError(
                    f"Experiment '{current.name}' changed since it was read (its routing "
                    "differs from the expected one); read it again and retry"
                )
            for name, weight in (weights or {}).items():
                _update_weight(conn, current, name, weight)
            conn.execute(
                experiments.update().where(experiments.c.id == current.id),
                {"routing": new, "updated_at": self._now()},
            )
            return self._load(conn, current.id)

    def _load(self, conn: sa.Connection, ref: ExperimentRef, *, lock: bool = False) -> Experiment:
        """The experiment ``ref`` with its variants; ``NotFoundError`` when absent."""
        column = experiments.c.id if isinstance(ref, int) else experiments.c.name
        query = sa.select(experiments).where(column == ref)
        if lock:
            query = query.with_for_update()  # PostgreSQL; SQLite writers already hold the lock
        row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFoundError(
                f"No experiment {ref!r} in {self.url}; list them with list_experiments()"
            )
        return _rows.to_experiment(row, _variants_of(conn, [row["id"]]).get(row["id"], []))

    # ---- assignments -----------------------------------------------------------------------

    def record_assignment(self, experiment_id: int, routing_key: str, variant: str) -> Assignment:
        row = {
            "experiment_id": experiment_id,
            "routing_key": routing_key,
            "variant": variant,
            "first_seen": self._now(),
        }
        keys = ["experiment_id", "routing_key"]
        _rows.check_fits(assignments, [row])
        try:
            with self._write() as conn:
                conn.execute(
                    _rows.insert_ignoring_duplicates(conn.dialect.name, assignments, keys), row
                )
                stored = conn.execute(_assignment_query(experiment_id, routing_key)).mappings()
                return _rows.to_assignment(stored.one())
        except IntegrityError as error:
            raise NotFoundError(
                f"Experiment {experiment_id} has no variant '{variant}' in {self.url}"
            ) from error

    def record_assignments(self, items: Iterable[tuple[int, str, str]]) -> int:
        now = self._now()
        rows = [
            {"experiment_id": e, "routing_key": k, "variant": v, "first_seen": now}
            for e, k, v in items
        ]
        if not rows:
            return 0
        _rows.check_fits(assignments, rows)
        keys = ["experiment_id", "routing_key"]
        try:
            with self._write() as conn:
                conn.execute(
                    _rows.insert_ignoring_duplicates(conn.dialect.name, assignments, keys), rows
                )
        except IntegrityError as error:
            raise NotFoundError(
                f"An assignment names an experiment or variant that is not in {self.url}"
            ) from error
        return len(rows)

    def get_assignment(self, experiment_id: int, routing_key: str) -> Assignment | None:
        with self._read() as conn:
            row = conn.execute(_assignment_query(experiment_id, routing_key)).mappings().first()
        return None if row is None else _rows.to_assignment(row)

    # ---- feedback and prediction outcomes --------------------------------------------------

    def add_feedback(self, item: NewFeedback) -> Feedback:
        item.validate()
        row = _rows.feedback_row(item, self._now())
        _rows.check_fits(feedback, [row])
        with self._insert_or_not_found("feedback", [item.experiment_id]) as conn:
            (fid,) = _quality.store_feedback(conn, [row], self._now())  # attributed if logged
            stored = conn.execute(sa.select(feedback).where(feedback.c.id == fid)).mappings()
            return _rows.to_feedback(stored.one())

    def add_feedback_many(self, items: Iterable[NewFeedback]) -> int:
        batch = list(items)
        for item in batch:
            item.validate()
        now = self._now()
        rows = [_rows.feedback_row(item, now) for item in batch]
        if not rows:
            return 0
        _rows.check_fits(feedback, rows)
        with self._insert_or_not_found("feedback", [r["experiment_id"] for r in rows]) as conn:
            _quality.store_feedback(conn, rows, now)  # attributed to their logged predictions
        return len(rows)

    def list_feedback(
        self,
        *,
        request_id: str | None = None,
        experiment_id: int | None = None,
        limit: int = 1000,
    ) -> list[Feedback]:
        query = sa.select(feedback).order_by(feedback.c.id).limit(limit)
        if request_id is not None:
            query = query.where(feedback.c.request_id == request_id)
        if experiment_id is not None:
            query = query.where(feedback.c.experiment_id == experiment_id)
        with self._read() as conn:
            return [_rows.to_feedback(row) for row in conn.execute(query).mappings()]

    # ---- ground truth and the prediction log's statistics (_quality.py, _logstats.py) -----

    def labelled_predictions(
        self,
        model: str,
        *,
        since: datetime,
        until: datetime,
        version: str | None = None,
        limit: int = _quality.DEFAULT_LIMIT,
    ) -> LabelledPredictions:
        with self._read(snapshot=True) as conn:
            return _quality.labelled_predictions(conn, model, since, until, version, limit)

    def attribute_feedback(self, *, since: datetime | None = None) -> int:
        with self._write() as conn:
            return _quality.attribute_pending(conn, since, self._now())

    def request_stats(
        self,
        model: str,
        *,
        since: datetime,
        until: datetime,
        version: str | None = None,
        sample: int = _logstats.DEFAULT_SAMPLE,
    ) -> RequestStats:
        with self._read(snapshot=True) as conn:
            return _logstats.request_stats(conn, model, since, until, version, sample)

    def hourly_stats(
        self, model: str, *, since: datetime, until: datetime, sample: int = 2_000
    ) -> list[HourStats]:
        with self._read() as conn:
            return _logstats.hourly_stats(conn, model, since, until, sample)

    def record_predictions(self, rows: Iterable[PredictionOutcome]) -> int:
        now = self._now()
        return self._insert_many(
            predictions, [_rows.prediction_row(r, now) for r in rows], "prediction records"
        )

    def _insert_many(self, table: sa.Table, rows: list[dict[str, Any]], what: str) -> int:
        if not rows:
            return 0
        _rows.check_fits(table, rows)
        ids = [row["experiment_id"] for row in rows]
        with self._insert_or_not_found(what, ids) as conn:
            conn.execute(table.insert(), rows)
        return len(rows)

    @contextmanager
    def _insert_or_not_found(
        self, what: str, experiment_ids: list[int | None]
    ) -> Iterator[sa.Connection]:
        """A write transaction whose foreign-key failure becomes ``NotFoundError``."""
        try:
            with self._write() as conn:
                yield conn
        except IntegrityError as error:
            named = sorted({i for i in experiment_ids if i is not None})
            raise NotFoundError(
                f"Cannot store {what}: experiment id(s) {named} not found in {self.url}"
            ) from error

    # ---- aggregates ------------------------------------------------------------------------

    def aggregates(
        self, ref: ExperimentRef, *, since: datetime | None = None, percentiles: bool = True
    ) -> list[VariantAggregate]:
        with self._read(snapshot=True) as conn:
            return variant_aggregates(conn, self._load(conn, ref), since, percentiles=percentiles)

    # ---- shadow records --------------------------------------------------------------------

    def record_shadow_results(self, rows: Iterable[ShadowRecord]) -> int:
        batch = list(rows)
        for item in batch:
            item.validate()
        now = self._now()
        return self._insert_many(
            shadow_results, [shadow_row(r, now) for r in batch], "shadow records"
        )

    def shadow_aggregates(
        self, ref: ExperimentRef, *, since: datetime | None = None
    ) -> list[ShadowAggregate]:
        with self._read(snapshot=True) as conn:
            return shadow_aggregates(conn, self._load(conn, ref).id, since)

    # ---- the prediction log (_predlog.py) --------------------------------------------------

    def write_prediction_log(self, rows: Iterable[PredictionLogRecord]) -> int:
        batch = list(rows)
        if not batch:
            return 0
        with self._write() as conn:
            return _predlog.write(conn, batch)

    def query_prediction_log(
        self,
        model: str,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        has_inputs: bool | None = None,
        request_id: str | None = None,
        limit: int = 100,
        with_inputs: bool = False,
    ) -> list[PredictionLogRecord]:
        where = LogFilter(model, version, since, until, status, has_inputs, request_id)
        with self._read() as conn:
            return _predlog.query(conn, where, limit=limit, with_inputs=with_inputs)

    def count_prediction_log(
        self,
        model: str,
        *,
        version: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        has_inputs: bool | None = None,
    ) -> int:
        with self._read() as conn:
            return _predlog.count(conn, LogFilter(model, version, since, until, status, has_inputs))

    def delete_prediction_log(
        self,
        *,
        older_than: datetime | None = None,
        keep_rows: int | None = None,
        model: str | None = None,
    ) -> int:
        with self._write() as conn:
            return _predlog.delete(conn, older_than=older_than, keep_rows=keep_rows, model=model)


def _check_variants(name: str, items: Sequence[Variant]) -> None:
    if not items:
        raise InvalidInputError(f"Experiment '{name}' needs at least one variant", field="variants")
    names = [v.name for v in items]
    if len(set(names)) != len(names):
        raise InvalidInputError(
            f"Experiment '{name}' repeats a variant name: {names}", field="variants"
        )
    if sum(v.is_control for v in items) > 1:
        raise InvalidInputError(
            f"Experiment '{name}' marks more than one variant as control", field="variants"
        )
    for variant in items:
        variant.validate()


def _as_json(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``value`` as it reads back from a JSON column (tuples become lists…), so equality with a
    stored routing is equality as JSON."""
    try:
        out: dict[str, Any] = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"'{what}' must be a JSON object ({exc})", field=what) from None
    return out


def _variants_of(conn: sa.Connection, ids: list[int]) -> dict[int, list[Variant]]:
    out: dict[int, list[Variant]] = {i: [] for i in ids}
    if ids:
        query = sa.select(variant_table).where(variant_table.c.experiment_id.in_(ids))
        for row in conn.execute(query).mappings():
            out[row["experiment_id"]].append(_rows.to_variant(row))
    return out


def _assignment_query(experiment_id: int, routing_key: str) -> sa.Select[Any]:
    return sa.select(assignments).where(
        assignments.c.experiment_id == experiment_id, assignments.c.routing_key == routing_key
    )


def _new_id(result: sa.CursorResult[Any]) -> int:
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row always has one
    return int(key[0])


def _update_weight(conn: sa.Connection, experiment: Experiment, name: str, weight: float) -> None:
    old = experiment.variant(name)
    if old is None:
        raise NotFoundError(f"Experiment '{experiment.name}' has no variant '{name}'")
    Variant(name, old.model, old.version, old.alias, weight).validate()
    where = (variant_table.c.experiment_id == experiment.id) & (variant_table.c.name == name)
    conn.execute(variant_table.update().where(where), {"weight": float(weight)})

"""Conversions between table rows and the store's records."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from sibyl.errors import InvalidInputError
from sibyl.store._types import (
    Assignment,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    Feedback,
    NewFeedback,
    PredictionOutcome,
    Variant,
)

Row = Mapping[Any, Any]


def check_fits(table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Raise ``InvalidInputError`` when a string is longer than its column allows (SQLite would
    store it, PostgreSQL would refuse it: the same answer on every backend)."""
    limits = {
        c.name: c.type.length
        for c in table.columns
        if isinstance(c.type, sa.String) and c.type.length is not None
    }
    for row in rows:
        for name, limit in limits.items():
            value = row.get(name)
            if isinstance(value, str) and len(value) > limit:
                raise InvalidInputError(
                    f"{table.name}.{name} is {len(value)} characters long; at most {limit} "
                    f"fit (value starts {value[:40]!r})",
                    field=name,
                )


def variant_row(experiment_id: int, variant: Variant) -> dict[str, Any]:
    """The ``variants`` row of ``variant``."""
    return {
        "experiment_id": experiment_id,
        "name": variant.name,
        "model": variant.model,
        "version": variant.version,
        "alias": variant.alias,
        "weight": float(variant.weight),
        "is_control": variant.is_control,
    }


def to_variant(row: Row) -> Variant:
    """A :class:`Variant` from its row."""
    return Variant(
        name=row["name"],
        model=row["model"],
        version=row["version"],
        alias=row["alias"],
        weight=float(row["weight"]),
        is_control=bool(row["is_control"]),
    )


def variant_order(variant: Variant) -> tuple[bool, str]:
    """Sort key: control first, then by name."""
    return (not variant.is_control, variant.name)


def to_experiment(row: Row, variants: list[Variant]) -> Experiment:
    """An :class:`Experiment` from its row and its variants."""
    return Experiment(
        id=int(row["id"]),
        name=row["name"],
        model=row["model"],
        kind=ExperimentKind(row["kind"]),
        status=ExperimentStatus(row["status"]),
        salt=row["salt"],
        routing=dict(row["routing"]),
        success_metrics=list(row["success_metrics"]),
        variants=tuple(sorted(variants, key=variant_order)),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        stopped_at=row["stopped_at"],
    )


def to_assignment(row: Row) -> Assignment:
    """An :class:`Assignment` from its row."""
    return Assignment(
        experiment_id=int(row["experiment_id"]),
        routing_key=row["routing_key"],
        variant=row["variant"],
        first_seen=row["first_seen"],
    )


def feedback_row(item: NewFeedback, now: datetime) -> dict[str, Any]:
    """The ``feedback`` row of ``item`` (received now unless it says when)."""
    return {
        "request_id": item.request_id,
        "routing_key": item.routing_key,
        "experiment_id": item.experiment_id,
        "variant": item.variant,
        "model": item.model,
        "version": item.version,
        "outcome": item.outcome,
        "value": None if item.value is None else float(item.value),
        "label": item.label,
        "received_at": item.received_at or now,
        "row": item.row,
        "event_at": item.event_at,
        "prediction_id": None,  # set by the store when the prediction is in the log
    }


def to_feedback(row: Row) -> Feedback:
    """A :class:`Feedback` from its row."""
    return Feedback(
        id=int(row["id"]),
        model=row["model"],
        version=row["version"],
        request_id=row["request_id"],
        routing_key=row["routing_key"],
        experiment_id=row["experiment_id"],
        variant=row["variant"],
        outcome=row["outcome"],
        value=row["value"],
        label=row["label"],
        received_at=row["received_at"],
        row=row.get("row"),
        event_at=row.get("event_at"),
        prediction_id=row.get("prediction_id"),
    )


def prediction_row(item: PredictionOutcome, now: datetime) -> dict[str, Any]:
    """The ``predictions`` row of ``item`` (timestamped now unless it says when)."""
    return {
        "request_id": item.request_id,
        "experiment_id": item.experiment_id,
        "variant": item.variant,
        "model": item.model,
        "version": item.version,
        "latency_ms": float(item.latency_ms),
        "error": bool(item.error),
        "ts": item.ts or now,
    }


def insert_ignoring_duplicates(dialect: str, table: sa.Table, keys: list[str]) -> sa.Executable:
    """``INSERT … ON CONFLICT (keys) DO NOTHING`` for SQLite or PostgreSQL; execute it with one
    row or a list of rows (executemany)."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    return pg_insert(table).on_conflict_do_nothing(index_elements=keys)

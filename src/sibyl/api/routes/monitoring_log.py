"""The prediction log of a model (docs/monitoring.md, "Prediction log").

* ``GET /v1/monitoring/models/{name}/predictions`` — browse logged requests, newest first
  (``limit``, ``since``/``until``, ``status``, ``version``, ``request_id``, ``inputs``).
* ``POST /v1/monitoring/models/{name}/replay`` — re-score logged requests against a version and
  compare with what was served (:func:`sibyl.monitoring.predlog.replay`).

Thin: the store answers the queries (in the thread pool), the prediction service re-scores.
Times without a UTC offset are read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from sibyl.api.routes._deps import blocking, container
from sibyl.api.routes.experiments import ErrorBody
from sibyl.errors import NotFoundError
from sibyl.monitoring.predlog import MAX_LIMIT, ReplaySpec, replay
from sibyl.store import PredictionLogRecord

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input; `field` names it."},
    404: {"model": ErrorBody, "description": "Unknown model or version."},
    503: {"model": ErrorBody, "description": "The store is unreachable."},
}
router = APIRouter(prefix="/v1/monitoring/models", tags=["monitoring"], responses=_ERRORS)


class ReplayBody(BaseModel):
    """Which logged requests to re-score, and against which version."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    version: str = Field(min_length=1)
    """The version that re-scores (a version number or an alias)."""
    since: datetime | None = None
    """Logged at or after this time."""
    until: datetime | None = None
    """Logged before this time."""
    source_version: str | None = None
    """Only requests that this version answered (default: any)."""
    limit: int = Field(default=1000, ge=1, le=MAX_LIMIT)
    """The newest this many requests whose inputs were logged."""
    tolerance: float = Field(default=1e-6, ge=0)
    """Numeric outputs agree when they differ by at most this."""
    max_disagreements: int = Field(default=10, ge=0, le=1000)
    """How many disagreeing rows (and failures) to return."""


def _utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def record_json(record: PredictionLogRecord) -> dict[str, Any]:
    """One logged request as the API shows it."""
    return {
        "id": record.id,
        "request_id": record.request_id,
        "ts": record.ts.isoformat(),
        "model": record.model,
        "version": record.version,
        "status": record.status,
        "n_rows": record.n_rows,
        "latency_ms": record.latency_ms,
        "experiment_id": record.experiment_id,
        "variant": record.variant,
        "routing_key": record.routing_key,
        "cached_rows": record.cached_rows,
        "fallback": record.fallback,
        "error": record.error,
        "inputs": record.inputs,
        "outputs": record.outputs,
    }


@router.get("/{name}/predictions", summary="Browse a model's prediction log")
async def list_predictions(
    name: str,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    since: datetime | None = None,
    until: datetime | None = None,
    status: str | None = None,
    version: str | None = None,
    request_id: str | None = None,
    inputs: bool = False,
) -> dict[str, Any]:
    """Logged requests, newest first; ``inputs=true`` includes the logged inputs (when the
    request's inputs were kept). ``status``: ``ok``, ``invalid``, ``error``, ``timeout``…"""
    c = container(request)
    rows = await blocking(
        c.experiments.store.query_prediction_log, name, version=version, since=_utc(since),
        until=_utc(until), status=status, request_id=request_id, limit=limit, with_inputs=inputs,
    )  # fmt: skip
    if not rows and not c.manager.known(name):
        raise NotFoundError(
            f"No model '{name}' is registered and none is in the prediction log; list models "
            "with GET /v1/models"
        )
    return {"model": name, "count": len(rows), "predictions": [record_json(r) for r in rows]}


@router.post("/{name}/replay", summary="Re-score logged requests against a version")
async def replay_predictions(name: str, body: ReplayBody, request: Request) -> dict[str, Any]:
    """Sends the logged inputs of answered requests to ``version`` (LOW priority, not logged)
    and compares: agreement (same label, or ``|Δ| ≤ tolerance``), mean ``|Δ probability|``, the
    first disagreements. Requests whose inputs were not logged are counted as ``skipped``."""
    c = container(request)
    spec = ReplaySpec(
        name, body.version, _utc(body.since), _utc(body.until), body.source_version,
        body.limit, body.tolerance, body.max_disagreements,
    )  # fmt: skip
    report = await replay(c.service, c.experiments.store, spec)
    return {**report.to_json(), "since": spec.since, "until": spec.until}

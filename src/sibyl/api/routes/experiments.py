"""Experiments control plane (create, list, show, start / pause / stop, results) and feedback.

Thin: bodies are validated here, everything else is :class:`~sibyl.service.ExperimentService`.
Errors take the native error shape (``{"error", "code", "field", …}``) through ``api.errors``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from sibyl.api.codecs._common import loads, require_object
from sibyl.api.routes._deps import container
from sibyl.errors import InvalidInputError
from sibyl.service import ExperimentService, FeedbackItem, NewExperiment
from sibyl.store import Experiment, ExperimentKind, ExperimentStatus, Variant


class ErrorBody(BaseModel):
    """sibyl's native error shape."""

    error: str = Field(description="What went wrong and what to do.")
    code: str = Field(description="e.g. INVALID_INPUT, NOT_FOUND, CONFLICT.")
    request_id: str
    field: str | None = Field(None, description="The offending field (400 only).")


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input; `field` names it."},
    404: {"model": ErrorBody, "description": "Unknown experiment."},
    409: {"model": ErrorBody, "description": "Name taken or status change not allowed."},
    503: {"model": ErrorBody, "description": "The store is unreachable."},
}
router = APIRouter(tags=["experiments"], responses=_ERRORS)


class VariantBody(BaseModel):
    """One arm: a model version (or alias) and its traffic weight."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, description="Variant name, e.g. 'control'.")
    model: str | None = Field(None, description="Model of the variant (default: the experiment's).")
    version: str | None = Field(None, description="Version number (or give alias).")
    alias: str | None = Field(None, description="Alias, e.g. 'production' (or give version).")
    weight: float = Field(1.0, ge=0, description="Traffic weight (only ratios matter).")
    control: bool = Field(False, description="The control variant (default: the first).")


class ExperimentBody(BaseModel):
    """A new A/B/n experiment (created as draft; start it to route traffic)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, description="Model whose unpinned traffic is split.")
    variants: list[VariantBody] = Field(min_length=2)
    success_metrics: list[str] = Field(
        default_factory=list,
        description="e.g. ['success_rate >= 0.95 weight 1.0', 'error_rate <= 0.01 weight 0.5'].",
    )
    salt: str | None = Field(None, description="Hash salt of sticky assignment (random).")
    description: str | None = None
    kind: ExperimentKind = Field(
        ExperimentKind.AB, description="ab, canary, shadow, bandit or ensemble."
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Kind-specific settings (canary steps/dwell/margins, shadow share, bandit "
        "floor, ensemble combine); see docs/traffic.md.",
    )


class FeedbackBody(BaseModel):
    """An outcome for a prediction (``request_id``) or a user (``routing_key``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    request_id: str | None = Field(None, description="X-Request-ID of the prediction.")
    routing_key: str | None = Field(None, description="Routing key the prediction was made for.")
    experiment: str | None = Field(None, description="Experiment name (optional).")
    model: str | None = Field(None, description="Model (needed when experiment is not given).")
    success: bool | None = Field(None, description="Binary outcome (success / conversion).")
    value: float | None = Field(
        None, description="Numeric outcome (finite); for a regressor, the true value."
    )
    label: str | int | float | bool | None = Field(
        None,
        description="Observed label; for a classifier, the true class (compared with the "
        "predicted class as strings: 1, 1.0 and '1' are one class).",
    )
    row: int | None = Field(
        None, ge=0, description="Row of the request the truth is for (default: every row)."
    )
    event_at: AwareDatetime | None = Field(
        None,
        description="When the outcome happened (ISO 8601 with offset). With routing_key and no "
        "request_id: about that key's latest prediction at or before this time.",
    )


class FeedbackBatch(BaseModel):
    """Many outcomes at once, stored all or none."""

    model_config = ConfigDict(extra="forbid")

    items: list[FeedbackBody] = Field(min_length=1, max_length=10_000)


_ITEM_SCHEMA = FeedbackBody.model_json_schema()
_FEEDBACK_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _ITEM_SCHEMA,
        {
            "type": "object",
            "properties": {"items": {"type": "array", "items": _ITEM_SCHEMA}},
            "required": ["items"],
        },
    ]
}


def _service(request: Request) -> ExperimentService:
    return container(request).experiments


def experiment_json(exp: Experiment) -> dict[str, Any]:
    """An experiment as JSON (datetimes ISO 8601)."""
    out = dataclasses.asdict(exp)
    for key in ("created_at", "updated_at", "started_at", "stopped_at"):
        out[key] = out[key].isoformat() if out[key] else None
    out["success_metrics"] = [m.get("spec") for m in exp.success_metrics]
    out["control"] = exp.control.name if exp.control else exp.variants[0].name
    return out


@router.post("/v1/experiments", status_code=201, summary="Create an A/B/n experiment (draft)")
async def create(body: ExperimentBody, request: Request) -> dict[str, Any]:
    """Create a draft experiment; 409 when the name is taken, 400 naming the bad field."""
    variants = [
        Variant(v.name, v.model or "", v.version, v.alias, v.weight, v.control)
        for v in body.variants
    ]
    if variants and not any(v.is_control for v in variants):
        variants[0] = dataclasses.replace(variants[0], is_control=True)
    spec = NewExperiment(
        body.name,
        body.model,
        variants,
        body.success_metrics,
        body.salt,
        body.description,
        body.kind,
        body.config,
    )
    return experiment_json(await _service(request).create(spec))


@router.get("/v1/experiments", summary="List experiments")
async def list_experiments(
    request: Request, model: str | None = None, status: ExperimentStatus | None = None
) -> dict[str, Any]:
    """Experiments, oldest first, optionally of one model / in one status."""
    items = await _service(request).list(model=model, status=status)
    return {"experiments": [experiment_json(e) for e in items]}


@router.get("/v1/experiments/{name}", summary="One experiment")
async def show(name: str, request: Request) -> dict[str, Any]:
    """An experiment with its variants, status and success metrics (404 when unknown)."""
    return experiment_json(await _service(request).get(name))


@router.post("/v1/experiments/{name}/start", summary="Start (or resume) routing traffic")
async def start(name: str, request: Request) -> dict[str, Any]:
    """Draft or paused → running (409 when another experiment runs on the model)."""
    return experiment_json(await _service(request).start_experiment(name))


@router.post("/v1/experiments/{name}/pause", summary="Pause: production answers again")
async def pause(name: str, request: Request) -> dict[str, Any]:
    """Running → paused."""
    return experiment_json(await _service(request).pause(name))


@router.post("/v1/experiments/{name}/stop", summary="Stop for good")
async def stop(name: str, request: Request) -> dict[str, Any]:
    """Draft, running or paused → stopped (records are kept)."""
    return experiment_json(await _service(request).stop_experiment(name))


@router.get("/v1/experiments/{name}/results", summary="Statistics and the decision")
async def results(name: str, request: Request) -> dict[str, Any]:
    """Per variant: n, errors, latency p50/p95/p99, outcome metrics; per treatment vs control:
    difference and relative lift with CIs, fixed-horizon and always-valid p-values, confidence
    sequence, power; the SRM check and the decision (keep_running / ship / no_difference /
    stop_harm)."""
    return await _service(request).results(name)


@router.post(
    "/v1/feedback",
    summary="Report outcomes of predictions",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": _FEEDBACK_SCHEMA}}}},
)
async def feedback(request: Request) -> dict[str, Any]:
    """One object or ``{"items": [...]}`` (up to 10,000, stored all or none): ``request_id``
    or ``routing_key`` (+ optional ``experiment`` or ``model``) and an outcome: ``success``,
    ``value`` and/or ``label``. Ground truth for live quality: ``label`` (classifiers) or
    ``value`` (regressors), optionally for one ``row`` of the request; ``routing_key`` +
    ``event_at`` attribute it to the key's latest prediction at or before that time. Errors
    name the field (``items[i].field`` in bulk)."""
    bodies = _feedback_bodies(loads(await request.body(), "feedback body"))
    items = [FeedbackItem(**{**b.model_dump(), "label": _label(b.label)}) for b in bodies]
    stored = await _service(request).feedback(items)
    return {"stored": stored}


def _label(value: str | int | float | bool | None) -> str | None:
    """A label as stored: strings as sent, numbers and booleans in their JSON form."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def _location(loc: tuple[int | str, ...]) -> str:
    """``("items", 3, "row")`` → ``items[3].row``; union members' type tags are dropped."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("str", "int", "float", "bool") and out:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _feedback_bodies(payload: Any) -> list[FeedbackBody]:
    body = require_object(payload, "feedback body")
    try:
        if "items" in body:
            return FeedbackBatch.model_validate(body).items
        return [FeedbackBody.model_validate(body)]
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = _location(err.get("loc", ()))
        raise InvalidInputError(
            f"'{loc or 'body'}': {err.get('msg')}", field=loc or "body"
        ) from None

"""Ensembles control plane: create (and start), list, show, delete (= stop for good).

An ensemble is an experiment of kind ``ensemble`` (``POST /v1/experiments`` with that kind
creates the same thing as a draft); these routes are the shorter way. Predictions go to the
ordinary prediction routes with the endpoint name as the model. Thin: everything else is
:class:`~sibyl.service.EnsembleBook`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sibyl.api.routes._deps import container
from sibyl.api.routes.experiments import ErrorBody
from sibyl.errors import NotFoundError
from sibyl.service import EnsembleBook, NewEnsemble
from sibyl.store import Experiment, ExperimentStatus, Variant

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input; `field` names it."},
    404: {"model": ErrorBody, "description": "Unknown ensemble."},
    409: {"model": ErrorBody, "description": "Name taken, endpoint busy or a registered model."},
    503: {"model": ErrorBody, "description": "The store or registry is unreachable."},
}
router = APIRouter(prefix="/v1/ensembles", tags=["ensembles"], responses=_ERRORS)


class MemberBody(BaseModel):
    """One member: a model version (or alias) and its weight."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="Registered model of the member.")
    version: str | None = Field(None, description="Version number (or give alias).")
    alias: str | None = Field(None, description="Alias, e.g. 'production' (or give version).")
    weight: float = Field(1.0, gt=0, description="Weight in the mean (only ratios matter).")
    name: str | None = Field(
        None, min_length=1, max_length=100, description="Member name (default: model:ref)."
    )


class EnsembleBody(BaseModel):
    """A new ensemble, created and started at once."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    endpoint: str | None = Field(
        None, min_length=1, description="Model name callers predict with (default: the name)."
    )
    members: list[MemberBody] = Field(min_length=2)
    combine: str = Field("auto", description="auto, mean_proba (classifiers) or mean.")
    min_members: int = Field(1, ge=1, description="Members that must answer.")
    member_timeout_ms: float | None = Field(
        None, gt=0, description="Per-member deadline (default: the request's)."
    )
    description: str | None = None


def _book(request: Request) -> EnsembleBook:
    book = container(request).ensembles
    if book is None:
        raise NotFoundError("ensembles are not enabled on this server")
    return book


def _member_name(m: MemberBody) -> str:
    if m.name:
        return m.name
    return f"{m.model}:{m.version}" if m.version is not None else f"{m.model}@{m.alias}"


def ensemble_json(exp: Experiment) -> dict[str, Any]:
    """An ensemble as JSON (datetimes ISO 8601)."""
    routing = exp.routing
    return {
        "name": exp.name,
        "endpoint": exp.model,
        "status": str(exp.status),
        "task": routing.get("task"),
        "combine": routing.get("combine"),
        "min_members": routing.get("min_members"),
        "member_timeout_ms": routing.get("member_timeout_ms"),
        "description": routing.get("description"),
        "members": [_member_json(v) for v in exp.variants],
        "created_at": exp.created_at.isoformat(),
        "started_at": exp.started_at.isoformat() if exp.started_at else None,
        "stopped_at": exp.stopped_at.isoformat() if exp.stopped_at else None,
    }


def _member_json(v: Variant) -> dict[str, Any]:
    return {
        "name": v.name,
        "model": v.model,
        "version": v.version,
        "alias": v.alias,
        "weight": v.weight,
    }


@router.post("", status_code=201, summary="Create and start an ensemble")
async def create(body: EnsembleBody, request: Request) -> dict[str, Any]:
    """Members are loaded and checked (same task; classifiers: same classes); the endpoint
    answers at once. 409 when the name is taken, the endpoint is a registered model or another
    ensemble serves it; 400 naming the bad field."""
    members = [Variant(_member_name(m), m.model, m.version, m.alias, m.weight)
               for m in body.members]  # fmt: skip
    config: dict[str, Any] = {"combine": body.combine, "min_members": body.min_members}
    if body.member_timeout_ms is not None:
        config["member_timeout_ms"] = body.member_timeout_ms
    spec = NewEnsemble(body.name, members, body.endpoint, config, body.description)
    return ensemble_json(await _book(request).create(spec))


@router.get("", summary="List ensembles")
async def list_ensembles(
    request: Request, status: ExperimentStatus | None = None
) -> dict[str, Any]:
    """Ensembles, oldest first, optionally in one status (running, stopped)."""
    return {"ensembles": [ensemble_json(e) for e in await _book(request).list(status=status)]}


@router.get("/{name}", summary="One ensemble")
async def show(name: str, request: Request) -> dict[str, Any]:
    """An ensemble with its members and settings (404 when unknown)."""
    return ensemble_json(await _book(request).get(name))


@router.delete("/{name}", summary="Stop an ensemble for good")
async def stop(name: str, request: Request) -> dict[str, Any]:
    """The endpoint stops answering at once (404 for its callers afterwards)."""
    return ensemble_json(await _book(request).stop(name))

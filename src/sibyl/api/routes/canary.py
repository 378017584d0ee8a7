"""Canary rollouts: start one against production, read its state, abort it (docs/canary.md).

Thin: bodies are validated here, everything else is :class:`~sibyl.service.CanaryController`.
A canary can also be created as ``POST /v1/experiments`` with ``kind: "canary"``; the
controller moves it either way.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from sibyl.api.routes._deps import container
from sibyl.api.routes.experiments import ErrorBody
from sibyl.errors import SibylError
from sibyl.service import CanaryController, NewCanary

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input; `field` names it."},
    404: {"model": ErrorBody, "description": "Unknown model, version or canary."},
    409: {"model": ErrorBody, "description": "Another experiment splits the traffic, the name is "
          "taken, or the canary is over."},
    503: {"model": ErrorBody, "description": "The store or the registry is unreachable."},
}  # fmt: skip
router = APIRouter(tags=["canary"], responses=_ERRORS)

Duration = float | str


class CanaryBody(BaseModel):
    """A canary of ``version`` against the model's production version; omitted settings take
    their defaults, ``null`` turns a check off."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(description="Candidate version number.")
    name: str | None = Field(None, description="Experiment name (default <model>-canary-v<n>).")
    description: str | None = None
    steps: list[float] | None = Field(
        None, description="Candidate share (%) per step; ends at 100."
    )
    dwell: Duration | None = Field(None, description="Least time per step: seconds or '10m'.")
    max_wait: Duration | None = Field(None, description="Wait past the dwell for a verdict.")
    on_timeout: Literal["rollback", "promote"] | None = Field(
        None, description="No verdict by dwell + max_wait: rollback (default) or promote."
    )
    alpha: float | None = Field(None, description="Level of each always-valid test (0.05).")
    min_requests: int | None = Field(None, description="Requests per arm per step (100).")
    error_rate_margin: float | None = Field(None, description="Absolute (0.01); null: off.")
    latency_margin: float | None = Field(
        None, description="Relative, 0.2 = 20 % slower; null: off."
    )
    quality_metric: Literal["success_rate", "value_mean"] | None = Field(
        None, description="Feedback metric, higher is better (off by default)."
    )
    quality_margin: float | None = Field(None, description="Absolute fall tolerated (0).")
    quality_min_feedback: int | None = Field(None, description="Feedback per arm (30).")


def _controller(request: Request) -> CanaryController:
    c = container(request).canary
    if c is None:
        raise SibylError("canary rollouts are not wired on this server")
    return c


@router.post(
    "/v1/models/{name}/canary", status_code=201, summary="Start a canary against production"
)
async def start(name: str, body: CanaryBody, request: Request) -> dict[str, Any]:
    """Create and start a canary of ``version``: the candidate is loaded first, then takes the
    first step's share; the controller advances, promotes (moves the production alias) or rolls
    back. Returns the canary's state."""
    config = body.model_dump(exclude_unset=True, exclude={"version", "name", "description"})
    spec = NewCanary(name, body.version, config, body.name, body.description)
    return await _controller(request).create(spec)


@router.get("/v1/experiments/{name}/canary", summary="A canary's state")
async def status(name: str, request: Request) -> dict[str, Any]:
    """Phase, step, weights, the verdict as of now with per-check numbers (while running), the
    history of decisions and the config."""
    return await _controller(request).status(name)


class RollbackBody(BaseModel):
    """Why the canary is aborted (recorded in its history)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="rolled back by hand", max_length=500)


@router.post("/v1/experiments/{name}/canary/rollback", summary="Abort a canary")
async def rollback(name: str, request: Request, body: RollbackBody | None = None) -> dict[str, Any]:
    """Baseline 100 %, experiment stopped, reason recorded (409 when it is over already or its
    promotion is under way)."""
    reason = body.reason if body is not None else RollbackBody().reason
    return await _controller(request).rollback(name, reason)

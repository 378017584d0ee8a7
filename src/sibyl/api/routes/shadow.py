"""Shadow report: what a shadow experiment's candidates answered compared with the primary.

Create, start and stop a shadow like any experiment (``POST /v1/experiments`` with
``kind: "shadow"``); this route reads its report (see :mod:`sibyl.service._shadow_report`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from sibyl.api.routes._deps import container
from sibyl.api.routes.experiments import ErrorBody
from sibyl.errors import NotFoundError

router = APIRouter(
    tags=["experiments"],
    responses={
        404: {"model": ErrorBody, "description": "Unknown experiment, or not a shadow."},
        503: {"model": ErrorBody, "description": "The store is unreachable."},
    },
)


@router.get(
    "/v1/experiments/{name}/shadow",
    summary="Shadow report: mirrored, dropped, errors, agreement, latency, promotion gate",
)
async def shadow_report(name: str, request: Request) -> dict[str, Any]:
    """Per candidate: requests mirrored, compared, failed (``errors``) and ``dropped``; the row
    agreement rate with a 95 % interval; latency p50/p95 of primary and candidate on the same
    requests and their difference (candidate − primary); and the verdict of the model's
    promotion gate criteria (``promotion_gates.<model>``, else the defaults) with every check."""
    shadows = container(request).shadows
    if shadows is None:
        raise NotFoundError("Shadow experiments are not enabled on this server")
    return await shadows.report(name)

"""Operations: liveness, readiness, Prometheus metrics, MLflow's ping/health/version."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

import sibyl
from sibyl.api.routes._deps import container

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    """Always 200 while the event loop runs."""
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: preloaded models are loaded and warm")
async def readyz(request: Request) -> JSONResponse:
    """200 when ready, 503 with the reason otherwise."""
    state: dict[str, Any] = container(request).manager.readiness()
    return JSONResponse(state, status_code=200 if state["ready"] else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
async def metrics(request: Request) -> Response:
    """The Prometheus text exposition format."""
    return Response(container(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)


@router.get("/ping", summary="MLflow scoring protocol: ping")
@router.get("/health", summary="MLflow scoring protocol: health")
async def ping() -> Response:
    """200 with an empty body, like ``mlflow models serve``."""
    return Response(b"\n", media_type="application/json")


@router.get("/version", summary="MLflow scoring protocol: server version")
async def version() -> Response:
    """The sibyl version."""
    return Response(sibyl.__version__.encode(), media_type="text/plain")

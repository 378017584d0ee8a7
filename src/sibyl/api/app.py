"""The app factory: FastAPI (control plane, OpenAPI at /docs) behind the raw-ASGI fast path."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

import sibyl
from sibyl.api import errors
from sibyl.api.dataplane import DataPlane
from sibyl.api.fastpath import FastPath
from sibyl.api.routes import (
    alerts,
    canary,
    ensembles,
    experiments,
    jobs,
    models,
    monitoring_drift,
    monitoring_log,
    monitoring_quality,
    ops,
    predict,
    shadow,
    v2,
)
from sibyl.errors import InvalidInputError, SibylError
from sibyl.logs import configure_logging
from sibyl.service import Container, build_container
from sibyl.settings import Settings, load_settings


def create_app(settings: Settings | None = None, container: Container | None = None) -> FastPath:
    """Build the ASGI app. Settings are read here once when not given."""
    settings = settings or load_settings()
    configure_logging(settings.logging)
    c = container or build_container(settings)
    plane = DataPlane(c.service, access_log=settings.server.access_log)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await c.start()
        if settings.server.gc_freeze:
            # start-up (mlflow, sklearn, onnx) leaves ~10^5 long-lived objects: a full collection
            # over them takes ~0.1 s; frozen, they are never scanned again
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            await c.stop()

    api = FastAPI(
        title="sibyl",
        version=sibyl.__version__,
        lifespan=lifespan,
        description="Serve every model in an MLflow registry: native, Open Inference "
        "Protocol V2 and MLflow scoring protocols.",
    )
    api.state.container = c
    api.state.dataplane = plane
    for router in (ops.router, predict.router, models.router, v2.router, experiments.router):
        api.include_router(router)
    api.include_router(ensembles.router)
    api.include_router(canary.router)
    api.include_router(shadow.router)
    api.include_router(monitoring_drift.router)
    api.include_router(alerts.router)
    api.include_router(monitoring_quality.router)
    api.include_router(monitoring_log.router)
    api.include_router(jobs.router)
    api.add_exception_handler(SibylError, _sibyl_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    return FastPath(
        api, plane, max_body_bytes=settings.server.max_body_bytes, enabled=settings.server.fast_path
    )


def _shape(path: str) -> Any:
    if path.startswith("/v2"):
        return errors.v2_body
    if path.startswith("/invocations") or path.endswith("/invocations"):
        return errors.mlflow_body
    return errors.native_body


async def _sibyl_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SibylError)
    status, _ = errors.classify(exc)
    rid = getattr(request.state, "request_id", "") if hasattr(request, "state") else ""
    body = _shape(request.url.path)(exc, rid)
    return Response(
        body, status_code=status, media_type="application/json", headers=errors.error_headers(exc)
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    field = "body"
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        field = loc or field
        problems.append(f"'{loc or 'body'}': {err.get('msg')}")
    return await _sibyl_error(request, InvalidInputError("; ".join(problems), field=field))

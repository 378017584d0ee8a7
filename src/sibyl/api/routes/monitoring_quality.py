"""Live quality, the per-model dashboard and service statistics.

Thin: parameters are checked here, the numbers come from
:class:`~sibyl.service._quality.QualityService` and :mod:`sibyl.service._dashboard`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from sibyl.api.routes._deps import container
from sibyl.errors import InvalidInputError, NotReadyError
from sibyl.monitoring.alerts import parse_duration
from sibyl.service._dashboard import model_dashboard, service_stats
from sibyl.service._quality import QualityService

router = APIRouter(tags=["monitoring"])
WRITERS = ("prediction_log", "log_writer", "predlog")
"""Container attributes that may hold a buffered writer whose backlog ``/v1/stats`` shows."""


def _quality(request: Request) -> QualityService:
    service = container(request).quality
    if service is None:
        raise NotReadyError("Live quality is not wired in this server")
    return service


def _window(value: str, field: str = "window") -> float:
    seconds = parse_duration(value, field=field)
    if seconds <= 0:
        raise InvalidInputError(f"'{field}' must be longer than 0s, got {value!r}", field=field)
    return seconds


@router.get(
    "/v1/monitoring/models/{name}/quality",
    summary="Realised quality per version over a window of prediction time",
)
async def quality(
    name: str,
    request: Request,
    window: str = Query("24h", description='Window of prediction time: "1h", "24h", "7d"…'),
    version: str | None = Query(None, description="One version (default: every version)."),
) -> dict[str, Any]:
    """Per version: task, labelled and predicted rows, label coverage and metrics — accuracy,
    precision, recall, F1, AUC, log loss (classifiers), MAE, RMSE (regressors); ``None`` where
    undefined. Predictions made in the window count, whenever their labels arrived."""
    return await _quality(request).report(name, _window(window), version)


@router.get("/v1/monitoring/models/{name}/dashboard", summary="Dashboard data of one model")
async def dashboard(
    name: str,
    request: Request,
    window: str | None = Query(None, description="Statistics window (default dashboard.window)."),
) -> dict[str, Any]:
    """Current version, health (ok / degraded / failing and why), statistics over the window
    (predictions, success rate, mean and p95 latency, accuracy), the hourly trend of the last
    24 hours, active alerts and drift status."""
    c = container(request)
    settings = c.settings.dashboard
    return await model_dashboard(
        _quality(request),
        settings,
        name,
        _window(window or settings.window),
        alerts=getattr(c, "alerts", None),
        drift=getattr(c, "drift", None),
    )


@router.get("/v1/stats", summary="Service statistics")
async def stats(request: Request) -> dict[str, Any]:
    """Models loaded (versions, task, engine, memory, in-flight requests, queued rows),
    process memory, prediction cache statistics, queue depths per version and the backlog of
    buffered writers."""
    c = container(request)
    writers: dict[str, Any] = {"experiments": c.experiments.writer}
    writers.update({name: getattr(c, name, None) for name in WRITERS})
    return service_stats(c.manager, c.cache, writers)

"""Dashboard data: one model's health, statistics and hourly trend; the service's statistics.

**Health** of a model over the dashboard window (``dashboard.*`` settings):

* ``failing`` — success rate below ``failing_success_rate`` (0.95), p95 latency above
  ``failing_p95_latency_ms`` (1000 ms), or a *critical* alert of the model firing;
* ``degraded`` — success rate below ``degraded_success_rate`` (0.99), p95 latency above
  ``degraded_p95_latency_ms`` (100 ms), any other alert of the model firing, or drift detected
  (the drift report's status is ``drift``);
* ``ok`` otherwise (also without traffic). ``reasons`` lists every rule that matched.

The success rate is ok / served requests: bad input (``invalid``) and unknown models or
versions (``not_found``) are the client's and count neither way. Statistics and the trend come
from the prediction log (p95 in SQL on PostgreSQL, over a bounded sample in Python elsewhere —
the response says which, see :mod:`sibyl.store._logstats`); accuracy from the quality service,
for the current production version. Alerts and drift come from whatever the container wired
(``alerts.active_alerts(model=…)``, ``drift.report(model)``) and degrade to ``[]`` and
``{"status": "unknown"}`` when absent or failing.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import psutil
import structlog

from sibyl.monitoring.alerts import format_duration
from sibyl.monitoring.quality import hourly_metrics
from sibyl.service._manager import ModelManager
from sibyl.service._quality import QualityService
from sibyl.settings import DashboardSettings
from sibyl.store import HourStats, RequestStats

log = structlog.get_logger("sibyl.dashboard")
TREND_HOURS = 24


async def model_dashboard(
    quality: QualityService,
    settings: DashboardSettings,
    model: str,
    window_s: float,
    *,
    alerts: Any = None,
    drift: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The dashboard of ``model`` (``NotFoundError`` when it is not registered)."""
    quality.check_model(model)
    until = now or quality.clock()
    since = until - timedelta(seconds=window_s)
    version = quality.production_version(model)
    store = quality.store
    stats, hours, reports = await asyncio.gather(
        asyncio.to_thread(store.request_stats, model, since=since, until=until,
                          sample=settings.latency_sample),
        asyncio.to_thread(_trend, quality, model, version, until),
        asyncio.to_thread(quality.compute, model, window_s, now=until,
                          tasks=quality.known_tasks(model)),
    )  # fmt: skip
    report = reports.get(version or "")
    active = _alerts(alerts, model)
    drifting = await _drift(drift, model)
    return {
        "model": model,
        "version": version,
        "generated_at": until.isoformat(),
        "health": health(stats, active, drifting, settings),
        "statistics": _statistics(stats, window_s, report.to_dict() if report else None),
        "trend": hours,
        "alerts": active,
        "drift": drifting,
    }


def _statistics(
    stats: RequestStats, window_s: float, report: Mapping[str, Any] | None
) -> dict[str, Any]:
    metrics = (report or {}).get("metrics") or {}
    return {
        "window": format_duration(window_s),
        "total_predictions": stats.requests,
        "rows": stats.rows,
        "by_status": stats.by_status,
        "success_rate": stats.success_rate,
        "errors": stats.errors,
        "latency_mean_ms": stats.latency_mean_ms,
        "latency_p95_ms": stats.latency_p95_ms,
        "latency_p95_method": stats.p95_method,
        "latency_p95_rows": stats.p95_rows,
        "accuracy": metrics.get("accuracy"),
        "quality": report,
    }


def _trend(
    quality: QualityService, model: str, version: str | None, until: datetime
) -> list[dict[str, Any]]:
    """Requests, errors, p95 latency and the production version's accuracy (MAE for a
    regressor) per clock hour, the last 24 hours (the current hour included)."""
    start = until.replace(minute=0, second=0, microsecond=0) - timedelta(hours=TREND_HOURS - 1)
    hours: list[HourStats] = quality.store.hourly_stats(model, since=start, until=until)
    per_hour: dict[int, Any] = {}
    if version is not None:
        data = quality.store.labelled_predictions(
            model, since=start, until=until, version=version, limit=quality.settings.max_rows
        )
        per_hour = hourly_metrics(data, version, quality.known_tasks(model).get(version))
    out = []
    for hour in hours:
        metrics, labelled = per_hour.get(int(hour.start.timestamp()) // 3600, ({}, 0))
        out.append(
            {
                "hour": hour.start.isoformat(),
                "requests": hour.requests,
                "errors": hour.errors,
                "latency_p95_ms": hour.latency_p95_ms,
                "accuracy": metrics.get("accuracy"),
                "mae": metrics.get("mae"),
                "labelled_rows": labelled,
            }
        )
    return out


def health(
    stats: RequestStats,
    alerts: list[dict[str, Any]],
    drift: Mapping[str, Any],
    settings: DashboardSettings,
) -> dict[str, Any]:
    """``{"status": ok | degraded | failing, "reasons": [...]}`` by the module's rules."""
    failing: list[str] = []
    degraded: list[str] = []
    rate, p95 = stats.success_rate, stats.latency_p95_ms
    if rate is not None and rate < settings.failing_success_rate:
        failing.append(f"success rate {rate:.2%} < {settings.failing_success_rate:.2%}")
    elif rate is not None and rate < settings.degraded_success_rate:
        degraded.append(f"success rate {rate:.2%} < {settings.degraded_success_rate:.2%}")
    if p95 is not None and p95 > settings.failing_p95_latency_ms:
        failing.append(f"p95 latency {p95:.1f} ms > {settings.failing_p95_latency_ms:g} ms")
    elif p95 is not None and p95 > settings.degraded_p95_latency_ms:
        degraded.append(f"p95 latency {p95:.1f} ms > {settings.degraded_p95_latency_ms:g} ms")
    for alert in alerts:
        if alert.get("state") == "firing":
            text = f"alert {alert.get('rule')} firing ({alert.get('severity')})"
            (failing if alert.get("severity") == "critical" else degraded).append(text)
    if drift.get("status") == "drift":
        degraded.append("drift detected")
    status = "failing" if failing else "degraded" if degraded else "ok"
    return {"status": status, "reasons": failing + degraded}


def _alerts(engine: Any, model: str) -> list[dict[str, Any]]:
    active = getattr(engine, "active_alerts", None)
    if not callable(active):
        return []
    try:
        return [_as_dict(a) for a in active(model=model)]
    except Exception as exc:  # the dashboard must answer whatever the alert engine does
        log.warning("dashboard_alerts_failed", model=model, error=str(exc))
        return []


async def _drift(monitor: Any, model: str) -> dict[str, Any]:
    report = getattr(monitor, "report", None)
    if not callable(report):
        return {"status": "unknown"}
    try:
        found = report(model)
        if inspect.isawaitable(found):
            found = await found
    except Exception as exc:  # e.g. no reference profile: not the dashboard's failure
        return {"status": "unknown", "reason": getattr(exc, "message", str(exc))}
    out = _as_dict(found)
    out.setdefault("status", "unknown")
    return out


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        return dict(value)
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        return dict(to_dict())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return {"value": str(value)}


# ---- the service ------------------------------------------------------------------------------


def service_stats(
    manager: ModelManager, cache: Any = None, writers: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``GET /v1/stats``: models loaded (versions, memory, queues), process memory, cache
    statistics (``cache.stats()``) and the backlog of every buffered writer in ``writers``."""
    process = psutil.Process()
    models = [_model_stats(manager, name) for name in manager.model_names()]
    stats = getattr(cache, "stats", None)
    return {
        "models": models,
        "loaded_versions": sum(len(m["versions"]) for m in models),
        "memory": {
            "process_rss_bytes": process.memory_info().rss,
            "models_bytes": manager.pool.memory_bytes(),
        },
        "cache": _as_dict(stats()) if callable(stats) else None,
        "queues": {
            f"{m['name']}:{v['version']}": v["queued_rows"] for m in models for v in m["versions"]
        },
        "writers": {name: _backlog(w) for name, w in (writers or {}).items() if w is not None},
    }


def _model_stats(manager: ModelManager, name: str) -> dict[str, Any]:
    production = manager.production(name)
    versions = []
    for served in manager.pool.versions(name):
        state = served.batcher.debug_state()
        versions.append(
            {
                "version": served.version,
                "task": served.loaded.task.value,
                "engine": served.loaded.engine.engine.value,
                "memory_bytes": served.loaded.memory_bytes,
                "inflight": served.inflight,
                "queued_rows": state.get("queued_rows", {}),
            }
        )
    return {
        "name": name,
        "production_version": production.version if production else None,
        "versions": versions,
    }


def _backlog(writer: Any) -> dict[str, Any] | None:
    """What a writer exposes about its backlog: ``stats()``, else its ``pending`` records
    (a count or a buffer, its own or its inner ``writer``'s) and its ``spool``'s rows/bytes."""
    stats = getattr(writer, "stats", None)
    if callable(stats):
        return _as_dict(stats())
    out: dict[str, Any] = {}
    pending = getattr(writer, "pending", None)
    if pending is None:
        pending = getattr(getattr(writer, "writer", None), "pending", None)
    if callable(pending):
        pending = pending()
    if pending is not None:
        out["pending"] = pending if isinstance(pending, int) else len(pending)
    spool = getattr(writer, "spool", None)
    for name in ("rows", "bytes"):
        value = getattr(spool, name, None)
        if isinstance(value, int):
            out[f"spooled_{name}"] = value
    return out or None

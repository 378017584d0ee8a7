"""Prediction-log rows written straight into ``prediction_log`` (SQLAlchemy Core), in the layout
the log writer uses (COMMON layout: ``outputs = {"predictions", "probabilities", "classes"}``),
for the live-quality and dashboard tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sibyl.store import SQLStore
from sibyl.store._schema import prediction_log


def log_row(
    request_id: str,
    ts: datetime,
    predictions: Sequence[Any],
    *,
    model: str = "churn",
    version: str = "1",
    probabilities: Sequence[Sequence[float]] | None = None,
    classes: Sequence[Any] | None = None,
    routing_key: str | None = None,
    status: str = "ok",
    latency_ms: float = 5.0,
) -> dict[str, Any]:
    """One ``prediction_log`` row (a fresh uuid4 hex id)."""
    outputs: dict[str, Any] | None = {"predictions": list(predictions)}
    if probabilities is not None:
        assert outputs is not None
        outputs["probabilities"] = [list(p) for p in probabilities]
        outputs["classes"] = list(classes or [])
    if status != "ok":
        outputs = None
    return {
        "id": uuid.uuid4().hex,
        "request_id": request_id,
        "ts": ts,
        "model": model,
        "version": version,
        "experiment_id": None,
        "variant": None,
        "routing_key": routing_key,
        "n_rows": len(predictions),
        "inputs": None,
        "outputs": outputs,
        "latency_ms": latency_ms,
        "status": status,
        "error": None if status == "ok" else "boom",
        "cached_rows": 0,
        "fallback": None,
    }


def write_log(store: SQLStore, *rows: dict[str, Any]) -> list[str]:
    """Insert ``rows`` in one transaction; returns their ids."""
    with store.engine.begin() as conn:
        conn.execute(prediction_log.insert(), list(rows))
    return [r["id"] for r in rows]

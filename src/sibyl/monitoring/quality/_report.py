"""Quality reports: one version's metrics over one window of prediction time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sibyl.monitoring.quality._join import (
    CLASSIFIER,
    LabelledRow,
    VersionRows,
    explode,
    version_metrics,
)
from sibyl.monitoring.quality._metrics import CLASSIFIER_KEYS, REGRESSOR_KEYS, Metrics
from sibyl.store import LabelledPredictions

CURRENT_KEYS = ("accuracy", "f1", "auc", "log_loss", "mae", "rmse", "labelled_rows")
"""The keys of :meth:`QualityReport.current` (what alert rules read)."""


@dataclass(frozen=True, slots=True)
class QualityReport:
    """Realised quality of one model version over predictions made in ``[since, until)``.

    ``metrics`` holds every classifier and regressor key, ``None`` where it does not apply or
    is undefined. ``labelled_rows`` are predicted rows with a usable truth; ``predicted_rows``
    every row the version answered in the window; ``coverage`` their ratio.
    """

    model: str
    version: str
    window_s: float
    since: datetime
    until: datetime
    task: str
    labelled_rows: int
    predicted_rows: int
    metrics: Metrics = field(default_factory=dict)
    truncated: bool = False

    @property
    def coverage(self) -> float | None:
        """Share of the window's predicted rows that are labelled (``None`` without rows)."""
        if not self.predicted_rows:
            return None
        return min(1.0, self.labelled_rows / self.predicted_rows)

    def current(self) -> dict[str, float | None]:
        """accuracy, f1, auc, log_loss, mae, rmse and labelled_rows (a float)."""
        out: dict[str, float | None] = {k: self.metrics.get(k) for k in CURRENT_KEYS[:-1]}
        out["labelled_rows"] = float(self.labelled_rows)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (ISO 8601 times)."""
        return {
            "model": self.model,
            "version": self.version,
            "window_s": self.window_s,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "task": self.task,
            "labelled_rows": self.labelled_rows,
            "predicted_rows": self.predicted_rows,
            "coverage": self.coverage,
            "metrics": dict(self.metrics),
            "truncated": self.truncated,
        }


def empty_report(
    model: str, version: str, window_s: float, since: datetime, until: datetime, task: str
) -> QualityReport:
    """A report without labelled rows (every metric ``None``)."""
    metrics: Metrics = dict.fromkeys((*CLASSIFIER_KEYS, *REGRESSOR_KEYS))
    return QualityReport(model, version, window_s, since, until, task, 0, 0, metrics)


def build_reports(
    data: LabelledPredictions,
    model: str,
    window_s: float,
    since: datetime,
    until: datetime,
    tasks: Mapping[str, str] | None = None,
) -> dict[str, QualityReport]:
    """Version → its report, for every version that predicted or was labelled in the window
    (``tasks`` maps versions whose task the caller knows)."""
    exploded = explode(data)
    out: dict[str, QualityReport] = {}
    for version in sorted(set(exploded) | set(data.predicted_rows)):
        rows = exploded.get(version, VersionRows(version))
        task = rows.task((tasks or {}).get(version))
        metrics: Metrics = dict.fromkeys((*CLASSIFIER_KEYS, *REGRESSOR_KEYS))
        found, labelled = version_metrics(rows.rows, task)
        metrics.update(found)
        out[version] = QualityReport(
            model, version, window_s, since, until, task, labelled,
            data.predicted_rows.get(version, 0), metrics, data.truncated,
        )  # fmt: skip
    return out


def hourly_metrics(
    data: LabelledPredictions, version: str, task: str | None = None
) -> dict[int, tuple[Metrics, int]]:
    """Whole hours since the epoch (of prediction time) → ``(metrics, labelled rows)`` of one
    version, for the hours that have labelled rows."""
    rows = explode(data).get(version)
    if rows is None:
        return {}
    kind = rows.task(task)
    hours: dict[int, list[LabelledRow]] = {}
    for row in rows.rows:
        hours.setdefault(int(row.ts // 3600), []).append(row)
    out = {h: version_metrics(items, kind) for h, items in hours.items()}
    return {h: value for h, value in out.items() if value[1] > 0}


__all__ = ["CLASSIFIER", "CURRENT_KEYS", "QualityReport", "build_reports", "hourly_metrics"]

"""Watching models in production: metrics (more arrives with the monitoring issue)."""

from sibyl.monitoring.metrics import UNKNOWN_MODEL, Metrics, Status, VersionMetrics

__all__ = ["UNKNOWN_MODEL", "Metrics", "Status", "VersionMetrics"]

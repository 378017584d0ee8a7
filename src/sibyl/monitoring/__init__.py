"""Watching models in production: metrics, drift, label-free performance, alerts.

The public names below are imported lazily (module ``__getattr__``): ``sibyl.settings`` needs
``sibyl.monitoring.alerts`` for its ``alerts`` section, and ``metrics`` imports
``sibyl.batching``, which imports ``sibyl.settings`` — importing ``metrics`` eagerly here would
close that cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sibyl.monitoring.metrics import UNKNOWN_MODEL, Metrics, Status, VersionMetrics

__all__ = ["UNKNOWN_MODEL", "Metrics", "Status", "VersionMetrics"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from sibyl.monitoring import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module 'sibyl.monitoring' has no attribute {name!r}")

"""Where alert rules read their numbers: the :class:`MetricSource` protocol.

The engine calls a source from its evaluation thread (one evaluation at a time, never on the
event loop), so a source may block briefly (a SQL query) but must be thread-safe against the
code that feeds it. ``None`` means *no data* for that window (no traffic, no labels yet); an
exception is logged, counted and treated as no data for that rule.

Two optional abilities, each a small protocol of its own:

* :class:`SeriesSource` — one rule, many label sets: ``series()`` answers every series that
  matches the rule's labels (``drift_score`` per ``feature`` of a model), each becoming an alert
  of its own;
* :class:`MetricCatalog` — ``metrics()`` names the metrics the source knows, so rules naming
  another metric are refused at creation instead of never firing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Protocol, runtime_checkable

MetricFunction = Callable[[Mapping[str, str], float], float | None]
"""``fn(labels, window_s) -> value | None``: one metric of a :class:`MetricFunctions`."""


class MetricSource(Protocol):
    """Answers one number per (metric, label set, window)."""

    def value(self, metric: str, labels: Mapping[str, str], window_s: float) -> float | None:
        """The value of ``metric`` for the series ``labels`` over the last ``window_s`` seconds,
        or ``None`` when there is no data (an unknown metric is no data too)."""
        ...


@runtime_checkable
class SeriesSource(Protocol):
    """Optional: every series of ``metric`` whose labels include ``labels``."""

    def series(
        self, metric: str, labels: Mapping[str, str], window_s: float
    ) -> Iterable[tuple[Mapping[str, str], float | None]]:
        """``(series labels, value | None)`` pairs; the labels should include ``labels``."""
        ...


@runtime_checkable
class MetricCatalog(Protocol):
    """Optional: the metric names a source can answer."""

    def metrics(self) -> Collection[str]:
        """Known metric names."""
        ...


class MetricFunctions:
    """A :class:`MetricSource` and :class:`MetricCatalog` over one function per metric name::

        source = MetricFunctions({"latency_p95_ms": lambda labels, window_s: ...})
        source.register("success_rate", success_rate_of)

    Unknown metrics answer ``None``. Registration is thread-safe.
    """

    def __init__(self, functions: Mapping[str, MetricFunction] | None = None) -> None:
        self._functions: dict[str, MetricFunction] = dict(functions or {})
        self._lock = threading.Lock()

    def register(self, metric: str, function: MetricFunction) -> None:
        """Answer ``metric`` with ``function`` (replacing any earlier one)."""
        with self._lock:
            self._functions[metric] = function

    def value(self, metric: str, labels: Mapping[str, str], window_s: float) -> float | None:
        function = self._functions.get(metric)
        return None if function is None else function(labels, window_s)

    def metrics(self) -> Collection[str]:
        with self._lock:
            return sorted(self._functions)

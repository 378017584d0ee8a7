"""Prometheus metrics of the serving path, with bounded label cardinality.

Labels only ever take values sibyl chose: ``model`` is a registered model name (requests naming an
unknown model count under ``model="_unknown"``), ``version`` a version that was loaded, ``status``
and ``kind`` come from small fixed sets. Series of an unloaded version are removed. Each
:class:`Metrics` owns its own ``CollectorRegistry`` so several apps can live in one process.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from enum import StrEnum

import psutil
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.process_collector import ProcessCollector

from sibyl.batching import Priority
from sibyl.cache import CacheResult

UNKNOWN_MODEL = "_unknown"
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
_LOAD_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Status(StrEnum):
    """Outcome of one prediction request (the ``status`` label)."""

    SUCCESS = "success"
    INVALID = "invalid_input"
    NOT_FOUND = "not_found"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    ERROR = "error"
    CIRCUIT_OPEN = "circuit_open"
    """The version's circuit breaker refused the call (a fallback may still have answered)."""


class Metrics:
    """All serving metrics; thread-safe (prometheus_client is)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        self.requests = Counter(
            "ml_prediction_requests",
            "Prediction requests by outcome.",
            ["model", "version", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "ml_prediction_duration_seconds",
            "Server time of a prediction request (decode to encode).",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rows = Counter(
            "ml_prediction_rows", "Rows predicted.", ["model", "version"], registry=r
        )
        self.load_duration = Histogram(
            "ml_model_load_duration_seconds",
            "Time to download, load, compile and warm a version.",
            ["model"],
            buckets=_LOAD_BUCKETS,
            registry=r,
        )
        self.active = Gauge(
            "ml_active_models", "Model versions loaded in this process.", registry=r
        )
        self.memory = Gauge(
            "ml_memory_usage_bytes",
            "Memory of each loaded version (RSS growth at load) and of the "
            'whole process (model="_process").',
            ["model", "version"],
            registry=r,
        )
        self.errors = Counter(
            "ml_errors",
            "Errors by kind (load, predict, timeout, overload…).",
            ["model", "kind"],
            registry=r,
        )
        self.batch_size = Histogram(
            "ml_batch_size",
            "Rows per model call.",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_duration = Histogram(
            "ml_batch_duration_seconds",
            "Time of one model call.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "ml_queue_depth",
            "Rows waiting per priority lane.",
            ["model", "version", "lane"],
            registry=r,
        )
        self.swaps = Counter(
            "ml_model_swaps", "Production hot swaps completed.", ["model"], registry=r
        )
        self.cache_operations = Counter(
            "ml_cache_operations",
            "Prediction cache keys by result: hit, miss, coalesced (joined an identical "
            "in-flight request), set, error, unavailable (store down or backing off), purge "
            "(one per purge call).",
            ["result"],
            registry=r,
        )
        self.fallbacks = Counter(
            "ml_fallback",
            "Requests a model's fallback chain took over, by why the requested version did not "
            "answer (error, timeout, circuit_open) and the chain member that answered (its "
            'configured name: previous, another model, default; "none": every member failed).',
            ["model", "reason", "answered_by"],
            registry=r,
        )
        self.circuit_state = Gauge(
            "ml_circuit_state",
            "Circuit breaker of each loaded version: 0 closed, 1 half-open, 2 open.",
            ["model", "version"],
            registry=r,
        )
        self.circuit_transitions = Counter(
            "ml_circuit_transitions",
            "Circuit breaker state changes of each loaded version, by the state entered.",
            ["model", "version", "to"],
            registry=r,
        )
        self._cache_results = {
            result.value: self.cache_operations.labels(result.value) for result in CacheResult
        }
        self._process = psutil.Process()

    def for_version(self, model: str, version: str) -> VersionMetrics:
        """Pre-bound children for one loaded version (cheap to use on the hot path)."""
        return VersionMetrics(self, model, version)

    def forget_version(self, model: str, version: str) -> None:
        """Drop the series of an unloaded version (keeps cardinality bounded)."""
        for metric in (self.duration, self.rows, self.batch_size, self.batch_duration, self.memory):
            _remove(metric, model, version)
        for status in Status:
            _remove(self.requests, model, version, status.value)
        for lane in Priority:
            _remove(self.queue_depth, model, version, lane.name.lower())
        _remove(self.circuit_state, model, version)
        for to in ("closed", "half_open", "open"):
            _remove(self.circuit_transitions, model, version, to)

    def on_cache_result(self, result: str, n: int) -> None:
        """The prediction cache's metrics hook: ``n`` keys (or one purge) had ``result``.
        Cheap (a pre-bound child), callable from any thread, never raises."""
        child = self._cache_results.get(result)
        if child is None:  # a result this version does not know: count it all the same
            child = self._cache_results[result] = self.cache_operations.labels(result)
        child.inc(n)

    def count_failure(self, model: str, status: Status) -> None:
        """A request that failed before a version was chosen (unknown model, bad JSON…)."""
        self.requests.labels(model, "", status.value).inc()

    def render(self) -> bytes:
        """The text exposition format for ``GET /metrics``."""
        self.memory.labels("_process", "").set(self._process.memory_info().rss)
        return generate_latest(self.registry)


def _remove(metric: Counter | Gauge | Histogram, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)


@dataclass(slots=True)
class _Children:
    ok: Counter
    duration: Histogram
    rows: Counter
    batch_size: Histogram
    batch_duration: Histogram
    lanes: dict[Priority, Gauge]


class VersionMetrics:
    """Metrics of one loaded version; also the batcher's observer."""

    def __init__(self, metrics: Metrics, model: str, version: str) -> None:
        self.metrics = metrics
        self.model = model
        self.version = version
        m = metrics
        self._c = _Children(
            ok=m.requests.labels(model, version, Status.SUCCESS.value),
            duration=m.duration.labels(model, version),
            rows=m.rows.labels(model, version),
            batch_size=m.batch_size.labels(model, version),
            batch_duration=m.batch_duration.labels(model, version),
            lanes={p: m.queue_depth.labels(model, version, p.name.lower()) for p in Priority},
        )
        self._failed = {s: m.requests.labels(model, version, s.value) for s in Status}
        self._errors = {
            s: m.errors.labels(model, s.value)
            for s in (Status.ERROR, Status.TIMEOUT, Status.OVERLOADED)
        }

    def success(self, seconds: float, rows: int) -> None:
        """A request answered successfully."""
        c = self._c
        c.ok.inc()
        c.duration.observe(seconds)
        c.rows.inc(rows)

    def failure(self, status: Status, seconds: float) -> None:
        """A request for this version failed."""
        self._failed[status].inc()
        self._c.duration.observe(seconds)
        errors = self._errors.get(status)
        if errors is not None:
            errors.inc()

    def on_batch(self, rows: int, seconds: float, ok: bool) -> None:
        """Batcher hook: one model call finished."""
        self._c.batch_size.observe(rows)
        self._c.batch_duration.observe(seconds)
        if not ok:
            self.metrics.errors.labels(self.model, "predict").inc()

    def on_queue(self, lane: Priority, rows: int) -> None:
        """Batcher hook: a lane's depth changed."""
        self._c.lanes[lane].set(rows)

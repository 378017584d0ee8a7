"""``RequestWindows``: a model's success rate and latency quantile over a trailing window, from
this process's Prometheus request counter and latency histogram.

Prometheus series are cumulative, so a window is the difference between the series now and a
snapshot taken ``window`` seconds ago, the way PromQL's ``increase()`` works: per series
(model, version, status / latency bucket), a value lower than before means the series was reset
(its version was unloaded and loaded again) and counts from zero. Snapshots are taken when
asked (the alert engine asks every evaluation), so a window's start is accurate to one
evaluation interval; before a window's length of history exists, the window is "since this
process started". At most ``max_snapshots`` are kept, spaced over the longest window asked for
(capped at 7 days).

What is counted (``ml_prediction_requests_total``): every prediction request of the model, on
every version, including those refused before a version was chosen — except ``invalid_input``
and ``not_found``, which are the caller's mistakes, not the model's failures. The latency
quantile interpolates inside histogram buckets (``histogram_quantile`` semantics), so it is
exact at bucket edges (…, 50, 100, 250 ms, …) and approximate between them.

Per process: behind a load balancer every replica sees a share of the traffic; the numbers
of the replica that evaluates alerts are an estimate of the whole. Thread-safe.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sibyl.monitoring import Metrics, Status

_CALLERS_FAULT = frozenset({Status.INVALID.value, Status.NOT_FOUND.value})
_MAX_HORIZON_S = 7 * 86400.0


@dataclass(frozen=True, slots=True)
class _Snapshot:
    at: float
    requests: Mapping[tuple[str, str, str], float] = field(default_factory=dict)
    """(model, version, status) → requests."""
    buckets: Mapping[tuple[str, str, float], float] = field(default_factory=dict)
    """(model, version, le seconds) → cumulative observations."""


class RequestWindows:
    """Windowed request statistics per model (see the module docstring)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_snapshots: int = 500,
    ) -> None:
        self._metrics = metrics
        self._clock = clock
        self._max = max(2, max_snapshots)
        self._horizon = 300.0
        self._lock = threading.Lock()
        self._snaps: deque[_Snapshot] = deque([_Snapshot(clock())])  # nothing counted yet

    def success_rate(self, model: str | None, window_s: float) -> float | None:
        """Share of the model's requests (all models when ``None``) that succeeded over the
        last ``window_s`` seconds; ``None`` without requests."""
        base, now = self._window(window_s)
        ok = total = 0.0
        for key, value in now.requests.items():
            name, _, status = key
            if (model is not None and name != model) or status in _CALLERS_FAULT:
                continue
            delta = _increase(value, base.requests.get(key))
            total += delta
            if status == Status.SUCCESS.value:
                ok += delta
        return ok / total if total > 0 else None

    def latency_ms(self, model: str | None, window_s: float, q: float = 0.95) -> float | None:
        """The ``q`` quantile of the model's server latency over the last ``window_s``
        seconds, in milliseconds; ``None`` without requests."""
        base, now = self._window(window_s)
        counts: dict[float, float] = {}
        for key, value in now.buckets.items():
            name, _, le = key
            if model is None or name == model:
                counts[le] = counts.get(le, 0.0) + _increase(value, base.buckets.get(key))
        seconds = _quantile(q, counts)
        return None if seconds is None else seconds * 1000.0

    def _window(self, window_s: float) -> tuple[_Snapshot, _Snapshot]:
        now = self._read()
        with self._lock:
            self._horizon = min(_MAX_HORIZON_S, max(self._horizon, window_s))
            start = now.at - window_s
            base = self._snaps[0]
            for snap in self._snaps:
                if snap.at > start:
                    break
                base = snap
            if now.at - self._snaps[-1].at >= self._horizon / self._max:
                self._snaps.append(now)
            while len(self._snaps) > 1 and self._snaps[1].at <= now.at - self._horizon:
                self._snaps.popleft()  # keep one snapshot at or before the horizon
            while len(self._snaps) > self._max:
                self._snaps.popleft()
        return base, now

    def _read(self) -> _Snapshot:
        requests: dict[tuple[str, str, str], float] = {}
        for family in self._metrics.requests.collect():
            for s in family.samples:
                if s.name.endswith("_total"):
                    key = (s.labels["model"], s.labels["version"], s.labels["status"])
                    requests[key] = s.value
        buckets: dict[tuple[str, str, float], float] = {}
        for family in self._metrics.duration.collect():
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    le = float(s.labels["le"])
                    buckets[(s.labels["model"], s.labels["version"], le)] = s.value
        return _Snapshot(self._clock(), requests, buckets)


def _increase(now: float, before: float | None) -> float:
    """Counter increase; a lower value means the series restarted from zero."""
    if before is None or now < before:
        return now
    return now - before


def _quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """``histogram_quantile``: linear inside the bucket holding rank ``q·total``; a rank in
    the ``+Inf`` bucket answers the largest finite edge."""
    edges = sorted(cumulative)
    total = cumulative.get(math.inf, 0.0)
    if not edges or total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for edge in edges:
        count = cumulative[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower
            if count == below:
                return edge
            return lower + (edge - lower) * (rank - below) / (count - below)
        lower, below = edge, count
    return lower


__all__ = ["RequestWindows"]

"""The sliding window of a circuit breaker: call counts per time bucket, O(1) per call."""

from __future__ import annotations

import math
from typing import NamedTuple

_NEVER = -(1 << 62)


class Totals(NamedTuple):
    """What the window holds: calls, failed calls, slow calls, and their summed latency (s)."""

    calls: int
    errors: int
    slow: int
    latency: float


class Window:
    """Counts per time bucket in a ring, plus running totals of the live buckets.

    Not thread-safe (the breaker holds its lock around every use). Time never steps back: an
    earlier ``now`` than already seen counts in the current bucket.

    A bucket leaves the totals when it falls out of the window, so adding an outcome and reading
    the totals cost O(1), plus O(buckets) once per bucket boundary crossed.
    """

    __slots__ = ("_bucket_s", "_buckets", "_current", "_totals")

    def __init__(self, window_s: float, buckets: int) -> None:
        self._bucket_s = window_s / buckets
        self._buckets: list[list[float]] = [[_NEVER, 0, 0, 0, 0.0] for _ in range(buckets)]
        """Each: epoch, calls, errors, slow, latency sum."""
        self._current = _NEVER
        self._totals = [0, 0, 0, 0.0]

    def add(self, now: float, ok: bool, slow: bool, latency_s: float) -> None:
        epoch = self._roll(now)
        bucket = self._buckets[epoch % len(self._buckets)]
        if bucket[0] != epoch:
            bucket[:] = [epoch, 0, 0, 0, 0.0]
        totals = self._totals
        bucket[1] += 1
        totals[0] += 1
        if not ok:
            bucket[2] += 1
            totals[1] += 1
        if slow:
            bucket[3] += 1
            totals[2] += 1
        bucket[4] += latency_s
        totals[3] += latency_s

    def totals(self, now: float) -> Totals:
        self._roll(now)
        calls, errors, slow, latency = self._totals
        return Totals(int(calls), int(errors), int(slow), latency if calls else 0.0)

    def live(self) -> tuple[int, int, int, float]:
        """The totals as of the last ``add`` or ``totals`` (no roll: the caller just did one)."""
        calls, errors, slow, latency = self._totals
        return int(calls), int(errors), int(slow), latency

    def clear(self) -> None:
        for bucket in self._buckets:
            bucket[:] = [_NEVER, 0, 0, 0, 0.0]
        self._totals = [0, 0, 0, 0.0]

    def _roll(self, now: float) -> int:
        """The bucket epoch of ``now``, after dropping the buckets that left the window."""
        epoch = max(math.floor(now / self._bucket_s), self._current)  # never step back
        if epoch != self._current:
            self._current = epoch
            for bucket in self._buckets:
                if bucket[0] != _NEVER and bucket[0] <= epoch - len(self._buckets):
                    for i in range(4):
                        self._totals[i] -= bucket[i + 1]
                    bucket[:] = [_NEVER, 0, 0, 0, 0.0]
        return epoch

"""A sliding window as a ring of buckets, each bucket one float64 state vector.

Bucket ids grow forever (a row window's bucket sequence number, or ``floor(t / width)`` for a
time window); slot ``id % k`` holds bucket ``id`` and is zeroed when a newer id claims it. The
window is every slot whose id lies within the last ``k`` ids, so time buckets expire even when
nothing is observed. Adding a vector and summing the window cost O(k · width), independent of
traffic. Not thread-safe: the owner holds a lock around :meth:`add` and :meth:`total`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sibyl.monitoring.drift._config import WindowSpec


@dataclass(frozen=True)
class WindowTotal:
    """Sum of the live buckets: the state vector, its row count and time range."""

    vector: np.ndarray
    rows: int
    start: float | None
    end: float | None


class BucketRing:
    """``spec.buckets`` buckets of ``width`` floats (see the module docstring)."""

    def __init__(self, width: int, spec: WindowSpec) -> None:
        self.spec = spec
        self.k = spec.buckets
        self._state = np.zeros((self.k, width), dtype=np.float64)
        self._ids = np.full(self.k, -1, dtype=np.int64)
        self._rows = np.zeros(self.k, dtype=np.int64)
        self._first = np.full(self.k, np.nan)
        self._last = np.full(self.k, np.nan)
        self._latest = -1
        self.capacity = math.ceil(spec.rows / self.k) if spec.rows is not None else None
        """Rows per bucket of a row window (split larger batches to this size)."""
        self._width_s = spec.seconds / self.k if spec.seconds is not None else None

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._state, self._ids, self._rows, self._first, self._last))

    def add(self, vector: np.ndarray, rows: int, now: float) -> None:
        """Add a batch's vector (``rows`` rows observed at ``now``) to the current bucket."""
        slot = self._claim(self._bucket_id(rows, now))
        self._state[slot] += vector
        self._rows[slot] += rows
        if not self._first[slot] <= now:  # NaN (fresh bucket) or earlier
            self._first[slot] = now
        if not self._last[slot] >= now:
            self._last[slot] = now

    def total(self, now: float) -> WindowTotal:
        """The live buckets summed (time buckets older than the window at ``now`` excluded)."""
        latest = self._latest
        if self._width_s is not None:
            latest = max(latest, int(now // self._width_s))
        live = (self._ids >= 0) & (self._ids > latest - self.k)
        rows = int(self._rows[live].sum())
        if not rows:
            return WindowTotal(np.zeros(self._state.shape[1]), 0, None, None)
        return WindowTotal(
            self._state[live].sum(axis=0),
            rows,
            float(np.nanmin(self._first[live])),
            float(np.nanmax(self._last[live])),
        )

    def clear(self) -> None:
        self._state[:] = 0.0
        self._ids[:] = -1
        self._rows[:] = 0
        self._first[:] = np.nan
        self._last[:] = np.nan
        self._latest = -1

    def _bucket_id(self, rows: int, now: float) -> int:
        if self._width_s is not None:
            # a clock stepping back never reopens (and wipes) an older slot
            return max(self._latest, int(now // self._width_s))
        current = max(self._latest, 0)
        filled = int(self._rows[current % self.k]) if self._ids[current % self.k] == current else 0
        assert self.capacity is not None
        return current + 1 if filled and filled + rows > self.capacity else current

    def _claim(self, bucket: int) -> int:
        slot = bucket % self.k
        if self._ids[slot] != bucket:
            self._state[slot] = 0.0
            self._rows[slot] = 0
            self._first[slot] = np.nan
            self._last[slot] = np.nan
            self._ids[slot] = bucket
        self._latest = max(self._latest, bucket)
        return slot

"""Skipping an unreachable store for a while instead of paying its timeout on every call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class Backoff:
    """A circuit over one store. Thread-safe.

    Closed (normal): every call may use the store. After a failure it opens for ``initial_s``;
    calls in that period are refused without touching the store. The first call after the period
    is the one probe (concurrent callers keep being refused while it runs): success closes the
    circuit, failure opens it again for twice as long, up to ``max_s``.
    """

    def __init__(
        self,
        initial_s: float = 1.0,
        max_s: float = 10.0,
        *,
        name: str = "cache",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"back-off needs 0 < initial_s ≤ max_s, got {initial_s}, {max_s}")
        self.initial_s = initial_s
        self.max_s = max_s
        self._name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._retry_at = 0.0  # 0: closed
        self._delay = initial_s  # of the next opening after a failed probe
        self._probing = False

    @property
    def is_open(self) -> bool:
        """Whether calls are being refused (or a probe is running)."""
        return self._retry_at != 0.0

    def allow(self) -> bool:
        """Whether this call may use the store (claims the probe when one is due)."""
        if self._retry_at == 0.0:
            return True
        with self._lock:
            now = self._clock()
            if self._retry_at == 0.0:
                return True
            if now < self._retry_at:
                return False
            self._retry_at = now + self._delay  # refuse the others while this probe runs
            self._probing = True
            return True

    def success(self) -> None:
        """The store answered: close."""
        if self._retry_at == 0.0:
            return
        with self._lock:
            if self._retry_at == 0.0:
                return
            self._retry_at = 0.0
            self._delay = self.initial_s
            self._probing = False
        log.info("cache store reachable again", store=self._name)

    def failure(self, error: BaseException) -> None:
        """The store could not be reached: open (again), for longer each time."""
        with self._lock:
            first = self._retry_at == 0.0
            if not (first or self._probing):
                return  # a call that started before the circuit opened: already accounted for
            delay = self.initial_s if first else self._delay
            self._retry_at = self._clock() + delay
            self._delay = min(delay * 2, self.max_s)
            self._probing = False
        if first:
            log.warning(
                "cache store unreachable; serving uncached",
                store=self._name,
                retry_in_s=delay,
                error=str(error),
            )

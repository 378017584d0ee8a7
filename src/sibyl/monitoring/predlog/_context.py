"""What the prediction path learns below the service and the log needs: rows of the current
request that were answered from the cache.

A ``ContextVar`` because the cache sits inside the batcher call that the service awaits in the
same task: ``CachedBatcher`` sets it, the log entry of the request reads and resets it (a
request with nothing cached pays one ``get``).
"""

from __future__ import annotations

from contextvars import ContextVar

CACHED_ROWS: ContextVar[int] = ContextVar("sibyl_cached_rows", default=0)
"""Rows of the current request answered without calling the model (cache hits, or rows an
identical in-flight request predicted)."""


def note_cached_rows(n: int) -> None:
    """Record that ``n`` rows of the current request came from the cache."""
    CACHED_ROWS.set(n)


def take_cached_rows() -> int:
    """The current request's cached rows, reset to 0 for the next request of the task."""
    n = CACHED_ROWS.get()
    if n:
        CACHED_ROWS.set(0)
    return n

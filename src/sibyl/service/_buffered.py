"""BufferedWriter: records appended on the request path, written in batches by one thread.

The path only appends to a ``deque`` (no lock, no I/O); a worker thread writes the buffer every
``flush_interval_s`` or as soon as ``flush_rows`` records wait. A full buffer (``max_pending``)
drops new records, counted in ``dropped{kind}``; what a store failure does is the subclass's
:meth:`BufferedWriter._write_batch` (the experiment and shadow writers drop and count; the
prediction log spools instead, see :mod:`sibyl.monitoring.predlog`).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Generic, TypeVar

import structlog
from prometheus_client import Counter

T = TypeVar("T")


class BufferedWriter(Generic[T]):
    """Buffers records of type ``T`` and writes them from one worker thread.

    Thread safety: :meth:`submit` may be called from any thread or task and never blocks or
    raises. :meth:`start` / :meth:`close` are called once each; ``close`` flushes what is
    buffered (best effort) and joins the thread. Subclasses implement :meth:`_write_batch` and
    :meth:`_kind`.
    """

    def __init__(
        self,
        *,
        dropped: Counter,
        thread_name: str,
        flush_interval_s: float = 1.0,
        flush_rows: int = 500,
        max_pending: int = 100_000,
        logger: structlog.typing.FilteringBoundLogger | None = None,
    ) -> None:
        self.dropped = dropped
        """Counter of dropped records by ``kind``."""
        self.written = 0
        """Records written so far (for tests and diagnostics)."""
        self._interval = flush_interval_s
        self._flush_rows = flush_rows
        self._max_pending = max_pending
        self._pending: deque[T] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._thread_name = thread_name
        self._log = logger or structlog.get_logger(__name__)

    @property
    def pending(self) -> int:
        """Records buffered, not written yet (``GET /v1/stats``)."""
        return len(self._pending)

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def submit(self, record: T) -> None:
        """Buffer one record; drops (and counts) it when the buffer is full."""
        if len(self._pending) >= self._max_pending:
            self.dropped.labels(self._kind(record)).inc()
            return
        self._pending.append(record)
        if len(self._pending) >= self._flush_rows and not self._wake.is_set():
            self._wake.set()

    def flush(self) -> int:
        """Write everything buffered now (from the calling thread); returns records written."""
        batch: list[T] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return 0
        written = self._write_batch(batch)
        self.written += written
        return written

    def close(self) -> None:
        """Stop the worker after a last flush."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        else:
            self._safe_flush()

    def _write_batch(self, batch: list[T]) -> int:
        """Write ``batch``; returns records written (never raises for a store failure)."""
        raise NotImplementedError

    def _kind(self, record: T) -> str:
        """The ``kind`` label a dropped ``record`` is counted under."""
        raise NotImplementedError

    def _run(self) -> None:
        while not self._closing:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._safe_flush()
        self._safe_flush()

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except Exception:  # a bug here must not kill the worker thread
            self._log.exception("buffered_records_flush_failed", writer=self._thread_name)

"""The buffered writer of shadow records (the :class:`OutcomeWriter` pattern).

The mirroring code only appends to an in-memory buffer (a ``deque`` append, no lock, no I/O); a
worker thread writes the buffer to the store every ``flush_interval_s`` or as soon as
``flush_rows`` records wait, one transaction per batch. A store that is down drops the batch and
a full buffer drops new records — counted in ``ml_experiment_records_dropped{kind="shadow"}``
and logged — never a request's problem.
"""

from __future__ import annotations

import threading
from collections import deque

import structlog
from prometheus_client import CollectorRegistry, Counter

from sibyl.errors import SibylError
from sibyl.store import ShadowRecord, Store

log = structlog.get_logger("sibyl.shadow")
KIND = "shadow"


class ShadowWriter:
    """Buffers :class:`ShadowRecord` s and writes them from one worker thread.

    Thread safety: :meth:`submit` may be called from any thread or task and never blocks or
    raises. :meth:`start` / :meth:`close` are called once each; ``close`` flushes what is
    buffered (best effort) and joins the thread. ``dropped`` is the counter to count drops in
    (the experiments' ``ml_experiment_records_dropped``, shared, so it is registered once).
    """

    def __init__(
        self,
        store: Store,
        *,
        flush_interval_s: float = 1.0,
        flush_rows: int = 500,
        max_pending: int = 100_000,
        dropped: Counter | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._store = store
        self._interval = flush_interval_s
        self._flush_rows = flush_rows
        self._max_pending = max_pending
        self._pending: deque[ShadowRecord] = deque()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.dropped = dropped or Counter(
            "ml_experiment_records_dropped",
            "Experiment records (outcomes, assignments, shadow) dropped: store down or buffer "
            "full.",
            ["kind"],
            registry=registry,
        )
        self.written = 0
        """Records written so far (for tests and diagnostics)."""

    def start(self) -> None:
        """Start the worker thread."""
        self._thread = threading.Thread(target=self._run, name="sibyl-shadow", daemon=True)
        self._thread.start()

    def submit(self, record: ShadowRecord) -> None:
        """Buffer one record; drops (and counts) it when the buffer is full."""
        if len(self._pending) >= self._max_pending:
            self.dropped.labels(KIND).inc()
            return
        self._pending.append(record)
        if len(self._pending) >= self._flush_rows:
            self._wake.set()

    @property
    def pending(self) -> int:
        """Records waiting to be written."""
        return len(self._pending)

    def flush(self) -> int:
        """Write everything buffered now (from the calling thread); returns records written."""
        batch: list[ShadowRecord] = []
        while self._pending:
            batch.append(self._pending.popleft())
        if not batch:
            return 0
        try:
            written = self._store.record_shadow_results(batch)
        except SibylError as exc:
            self.dropped.labels(KIND).inc(len(batch))
            log.warning("shadow_records_dropped", count=len(batch), error=exc.message)
            return 0
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
            log.exception("shadow_records_flush_failed")

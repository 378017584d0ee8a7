"""The buffered writer of shadow records (a :class:`~sibyl.service._buffered.BufferedWriter`).

The mirroring code only appends to an in-memory buffer (a ``deque`` append, no lock, no I/O); a
worker thread writes the buffer to the store every ``flush_interval_s`` or as soon as
``flush_rows`` records wait, one transaction per batch. A store that is down drops the batch and
a full buffer drops new records — counted in ``ml_experiment_records_dropped{kind="shadow"}``
and logged — never a request's problem.
"""

from __future__ import annotations

import structlog
from prometheus_client import CollectorRegistry, Counter

from sibyl.errors import SibylError
from sibyl.service._buffered import BufferedWriter
from sibyl.store import ShadowRecord, Store

log = structlog.get_logger("sibyl.shadow")
KIND = "shadow"


class ShadowWriter(BufferedWriter[ShadowRecord]):
    """Buffers :class:`ShadowRecord` s and writes them from one worker thread (see
    :class:`~sibyl.service._buffered.BufferedWriter`). ``dropped`` is the counter to count drops
    in (the experiments' ``ml_experiment_records_dropped``, shared, so it is registered once).
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
        counter = dropped or Counter(
            "ml_experiment_records_dropped",
            "Experiment records (outcomes, assignments, shadow) dropped: store down or buffer "
            "full.",
            ["kind"],
            registry=registry,
        )
        super().__init__(
            dropped=counter,
            thread_name="sibyl-shadow",
            flush_interval_s=flush_interval_s,
            flush_rows=flush_rows,
            max_pending=max_pending,
            logger=log,
        )
        self._store = store

    def _write_batch(self, batch: list[ShadowRecord]) -> int:
        try:
            return self._store.record_shadow_results(batch)
        except SibylError as exc:
            self.dropped.labels(KIND).inc(len(batch))
            log.warning("shadow_records_dropped", count=len(batch), error=exc.message)
            return 0

    def _kind(self, record: ShadowRecord) -> str:
        return KIND

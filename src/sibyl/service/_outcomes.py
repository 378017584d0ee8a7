"""The buffered writer of experiment records: prediction outcomes and sticky assignments.

The prediction path only appends to an in-memory buffer (a ``deque`` append, no lock, no I/O);
a worker thread writes the buffer to the store every ``flush_interval_s`` or as soon as
``flush_rows`` records wait, one transaction per batch of outcomes.

Failure policy (phase 1): a request is never blocked or failed by the store. When the store is
down a flush drops its batch — counted in ``ml_experiment_records_dropped{kind}`` and logged as a
warning — and when the buffer is full (``max_pending``) new records are dropped the same way.
Spooling undelivered records to disk for later delivery comes with the monitoring issue.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Counter

from sibyl.errors import SibylError
from sibyl.service._buffered import BufferedWriter
from sibyl.store import PredictionOutcome, Store

log = structlog.get_logger("sibyl.experiments")


@dataclass(frozen=True, slots=True)
class AssignmentRecord:
    """A routing key placed in a variant (recorded once; the store keeps the first)."""

    experiment_id: int
    routing_key: str
    variant: str


Record = PredictionOutcome | AssignmentRecord


class OutcomeWriter(BufferedWriter[Record]):
    """Buffers experiment records and writes them from one worker thread (see
    :class:`~sibyl.service._buffered.BufferedWriter`): outcomes in one transaction per batch,
    first assignments in bulk, each routing key once per process."""

    def __init__(
        self,
        store: Store,
        *,
        flush_interval_s: float = 1.0,
        flush_rows: int = 500,
        max_pending: int = 100_000,
        registry: CollectorRegistry | None = None,
    ) -> None:
        dropped = Counter(
            "ml_experiment_records_dropped",
            "Experiment records (outcomes, assignments) dropped: store down or buffer full.",
            ["kind"],
            registry=registry,
        )
        super().__init__(
            dropped=dropped,
            thread_name="sibyl-outcomes",
            flush_interval_s=flush_interval_s,
            flush_rows=flush_rows,
            max_pending=max_pending,
            logger=log,
        )
        self._store = store
        self._seen: set[tuple[int, str]] = set()  # assignments already written by this process

    def _write_batch(self, batch: list[Record]) -> int:
        written = self._write([r for r in batch if isinstance(r, PredictionOutcome)])
        return written + self._assign([r for r in batch if isinstance(r, AssignmentRecord)])

    def _kind(self, record: Record) -> str:
        return "outcome" if isinstance(record, PredictionOutcome) else "assignment"

    def _write(self, rows: list[PredictionOutcome]) -> int:
        if not rows:
            return 0
        try:
            return self._store.record_predictions(rows)
        except SibylError as exc:
            self._drop("outcome", len(rows), exc)
            return 0

    def _assign(self, items: list[AssignmentRecord]) -> int:
        """New keys in one transaction; when that fails (an experiment deleted meanwhile), key
        by key so one bad record does not drop the others."""
        fresh: dict[tuple[int, str], str] = {}
        for item in items:
            key = (item.experiment_id, item.routing_key)
            if key not in self._seen:
                fresh.setdefault(key, item.variant)
        if not fresh:
            return 0
        try:
            self._store.record_assignments((e, k, v) for (e, k), v in fresh.items())
            done = list(fresh)
        except SibylError:
            done = []
            for (e, k), v in fresh.items():
                try:
                    self._store.record_assignment(e, k, v)
                except SibylError as exc:
                    self._drop("assignment", 1, exc)
                    continue
                done.append((e, k))
        if len(self._seen) + len(done) > 1_000_000:  # bounded memory; re-recording is idempotent
            self._seen.clear()
        self._seen.update(done)
        return len(done)

    def _drop(self, kind: str, count: int, exc: SibylError) -> None:
        self.dropped.labels(kind).inc(count)
        log.warning("experiment_records_dropped", kind=kind, count=count, error=exc.message)

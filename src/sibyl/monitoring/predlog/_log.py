"""``PredictionLog``: the prediction path's side of the log, its writer, spool and retention.

The path calls :meth:`PredictionLog.answered` or :meth:`PredictionLog.failed` once per request:
a ``len`` check, a context-variable read, a tuple and a ``deque.append`` (≈ 0.5 µs, measured in
``bench/predlog.py``). The :class:`~sibyl.monitoring.predlog.SpoolingWriter` does the rest in
its own threads; retention runs on its shipper thread.

Metrics: ``ml_prediction_log_rows_total{result}`` (``written``, ``spooled``, ``replayed``,
``dropped``, ``corrupt``), ``ml_prediction_log_spool_bytes``, ``ml_prediction_log_backlog``
(rows not in the store yet: memory and spool) and ``ml_prediction_log_store_up`` (1 when the
last write reached the store).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from sibyl.monitoring.metrics import Status
from sibyl.monitoring.predlog._codec import CODEC
from sibyl.monitoring.predlog._context import take_cached_rows
from sibyl.monitoring.predlog._render import Renderer, Resolve
from sibyl.monitoring.predlog._spool import Spool
from sibyl.monitoring.predlog._writer import Periodic, SpoolingWriter
from sibyl.settings import PredictionLogSettings, Settings
from sibyl.store import PredictionLogRecord, Store

if TYPE_CHECKING:
    from sibyl.errors import SibylError
    from sibyl.service import PredictRequest, PredictResult

log = structlog.get_logger("sibyl.predlog")
ADOPT_INTERVAL_S = 60.0


class PredictionLog:
    """One process's prediction log (see the module docstring).

    Thread safety: :meth:`answered` / :meth:`failed` from the event loop (or any thread), never
    block or raise. :meth:`start` / :meth:`close` once each (the container); :meth:`flush` does
    the writer's work in the caller's thread (tests).
    """

    def __init__(
        self,
        store: Store,
        settings: PredictionLogSettings,
        spool_dir: Path,
        *,
        registry: CollectorRegistry | None = None,
        resolve: Resolve | None = None,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock
        self.spool = Spool(spool_dir, max_bytes=int(settings.spool_max_mb * 2**20))
        self.writer: SpoolingWriter[tuple[object, ...], PredictionLogRecord] = SpoolingWriter(
            "sibyl-predlog",
            store.write_prediction_log,
            Renderer(settings, resolve=resolve, rng=rng),
            spool=self.spool,
            codec=CODEC,
            flush_interval_s=settings.flush_interval_s,
            flush_rows=settings.flush_rows,
            max_pending=settings.max_pending,
            retry_max_s=settings.retry_max_s,
            counter=_metrics(self, registry),
            periodic=[
                Periodic("retention", settings.retention_interval_s, self.apply_retention),
                Periodic("adopt", ADOPT_INTERVAL_S, self.spool.adopt),
            ],
        )
        self._pending = self.writer.pending
        self._wake = self.writer.wake
        self._max_pending = settings.max_pending
        self._flush_rows = settings.flush_rows

    # ---- the prediction path ---------------------------------------------------------------

    def answered(
        self,
        req: PredictRequest,
        result: PredictResult,
        started: float,
        experiment_id: int | None = None,
    ) -> None:
        """Log an answered request (``started``: its ``perf_counter`` at arrival)."""
        pending = self._pending
        if len(pending) >= self._max_pending:
            self.writer.count("dropped", 1)
            return
        latency = time.perf_counter() - started
        cached = take_cached_rows()
        pending.append((time.time(), latency, req, result, None, cached, experiment_id, None))
        if len(pending) >= self._flush_rows and not self._wake.is_set():
            self._wake.set()  # (``set`` takes a lock: once per batch, not once per request)

    def failed(
        self,
        req: PredictRequest,
        exc: SibylError,
        status: Status,
        started: float,
        experiment_id: int | None = None,
        variant: str | None = None,
    ) -> None:
        """Log a failed request with its metrics status."""
        pending = self._pending
        if len(pending) >= self._max_pending:
            self.writer.count("dropped", 1)
            return
        latency = time.perf_counter() - started
        take_cached_rows()
        pending.append((time.time(), latency, req, exc, status, 0, experiment_id, variant))
        if len(pending) >= self._flush_rows and not self._wake.is_set():
            self._wake.set()

    # ---- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Open the spool (adopting dead processes' spools) and start the writer. A spool that
        cannot be opened is logged and done without: nothing is then kept while the store is
        down (the server serves all the same)."""
        try:
            self.spool.open()
        except OSError as exc:
            log.error(
                "prediction_spool_unavailable",
                directory=str(self.spool.root),
                error=str(exc),
                consequence="rows are dropped while the store is down",
            )
            self.writer.disable_spool()
        self.writer.start()
        if self.spool.bytes:
            log.info("prediction_spool_pending", rows=self.spool.rows, bytes=self.spool.bytes)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is buffered (what the store does not take stays in the spool)."""
        self.writer.close(timeout_s)
        self.spool.close()

    def flush(self) -> None:
        """Write (and replay) what can be now, in the caller's thread."""
        self.writer.flush()

    # ---- retention -------------------------------------------------------------------------

    def apply_retention(self) -> int:
        """Delete rows past ``retention_max_age_days`` and beyond ``retention_max_rows`` per
        model; returns how many went."""
        s = self.settings
        if s.retention_max_age_days is None and s.retention_max_rows is None:
            return 0
        older = None
        if s.retention_max_age_days is not None:
            older = self._clock() - timedelta(days=s.retention_max_age_days)
        deleted = self.store.delete_prediction_log(older_than=older, keep_rows=s.retention_max_rows)
        if deleted:
            log.info("prediction_log_retention", deleted=deleted)
        return deleted


def _metrics(plog: PredictionLog, registry: CollectorRegistry | None) -> Counter:
    rows = Counter(
        "ml_prediction_log_rows",
        "Prediction log rows by what happened to them: written (to the store), spooled (to the "
        "local spool, store down or busy), replayed (from the spool to the store), dropped "
        "(buffer or spool full, or a row no store accepts), corrupt (torn spool lines).",
        ["result"],
        registry=registry,
    )
    Gauge(
        "ml_prediction_log_spool_bytes",
        "Bytes of prediction log rows waiting in the local spool.",
        registry=registry,
    ).set_function(lambda: plog.spool.bytes)
    Gauge(
        "ml_prediction_log_backlog",
        "Prediction log rows not in the store yet (buffered in memory and spooled).",
        registry=registry,
    ).set_function(lambda: plog.writer.backlog)
    Gauge(
        "ml_prediction_log_store_up",
        "1 when the prediction log's last write reached the store, 0 while it spools.",
        registry=registry,
    ).set_function(lambda: float(plog.writer.healthy))
    return rows


class _Lookup(Protocol):
    def lookup(self, name: str, ref: str | None) -> Any: ...


def wire_prediction_log(
    settings: Settings, store: Store, manager: _Lookup, registry: CollectorRegistry | None
) -> PredictionLog | None:
    """The prediction log ``settings.prediction_log`` describes (``None`` when disabled);
    ``manager.lookup`` resolves the version (and input columns) of failed requests."""
    s = settings.prediction_log
    if not s.enabled:
        return None

    def resolve(model: str, ref: str | None) -> tuple[str, Sequence[str]] | None:
        sv = manager.lookup(model, ref)
        return None if sv is None else (sv.version, sv.loaded.schema.names)

    spool_dir = s.spool_dir or settings.data_dir / "spool" / "predictions"
    return PredictionLog(store, s, spool_dir, registry=registry, resolve=resolve)

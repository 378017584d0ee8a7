"""PredictionLog on a real SQLite store: retention by age and rows, its metrics, a full buffer
counted, the writer threads end to end, a store that is down at first."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from sibyl.errors import InvalidInputError
from sibyl.monitoring.metrics import Status
from sibyl.monitoring.predlog import PredictionLog
from sibyl.runtime.schema import ColumnSpec, InputSchema
from sibyl.runtime.types import Prediction, Task
from sibyl.service import Inputs, PredictRequest, PredictResult
from sibyl.settings import PredictionLogSettings
from sibyl.store import PredictionLogRecord, SQLStore

SCHEMA = InputSchema([ColumnSpec("a", "float")])
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def pair(i: int, model: str = "m") -> tuple[PredictRequest, PredictResult]:
    req = PredictRequest(model, Inputs("rows", [[float(i)]]), request_id=f"r{i}")
    pred = Prediction(np.array([float(i)]))
    return req, PredictResult(model, "1", "python", f"r{i}", pred, Task.REGRESSOR, SCHEMA)


def old(model: str, days: float, n: int) -> list[PredictionLogRecord]:
    return [
        PredictionLogRecord(uuid.uuid4().hex, f"old{i}",
                            NOW - timedelta(days=days, seconds=i), model, "1", 1, 1.0, "ok")
        for i in range(n)
    ]  # fmt: skip


def make(tmp: Path, registry: CollectorRegistry | None = None, **kw: object) -> PredictionLog:
    store = SQLStore(f"sqlite:///{tmp / 'sibyl.db'}")
    store.migrate()
    settings = PredictionLogSettings(**kw)  # type: ignore[arg-type]
    return PredictionLog(store, settings, tmp / "spool", registry=registry, clock=lambda: NOW)


def test_retention_deletes_by_age_and_keeps_the_newest_rows_per_model(tmp_path: Path) -> None:
    plog = make(tmp_path, retention_max_age_days=7, retention_max_rows=3)
    store = plog.store
    store.write_prediction_log(old("a", 10, 2) + old("a", 1, 5) + old("b", 2, 2))
    assert plog.apply_retention() == 2 + 2  # two past 7 days; "a" keeps its newest 3
    assert store.count_prediction_log("a") == 3 and store.count_prediction_log("b") == 2
    kept = [r.request_id for r in store.query_prediction_log("a")]
    assert kept == ["old0", "old1", "old2"]  # the newest (fewest seconds back)
    unlimited = make(tmp_path, retention_max_age_days=None, retention_max_rows=None)
    assert unlimited.apply_retention() == 0


def test_metrics_follow_the_writer(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    plog = make(tmp_path, registry, inputs="none")
    plog.spool.open()
    started = time.perf_counter()
    for i in range(5):
        plog.answered(*pair(i), started)
    plog.failed(pair(9)[0], InvalidInputError("bad"), Status.INVALID, started)
    assert registry.get_sample_value("ml_prediction_log_backlog") == 6
    plog.flush()
    sample = registry.get_sample_value
    assert sample("ml_prediction_log_rows_total", {"result": "written"}) == 6
    assert sample("ml_prediction_log_backlog") == 0
    assert sample("ml_prediction_log_store_up") == 1
    assert sample("ml_prediction_log_spool_bytes") == 0
    statuses = {r.request_id: r.status for r in plog.store.query_prediction_log("m")}
    assert statuses == {**{f"r{i}": "ok" for i in range(5)}, "r9": "invalid"}
    plog.close()


def test_a_full_buffer_drops_and_counts_on_the_path(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    plog = make(tmp_path, registry, max_pending=3)
    started = time.perf_counter()
    for i in range(5):
        plog.answered(*pair(i), started)
    plog.failed(pair(9)[0], InvalidInputError("bad"), Status.INVALID, started)
    assert registry.get_sample_value("ml_prediction_log_rows_total", {"result": "dropped"}) == 3


def test_a_store_without_its_schema_yet_spools_until_migrated(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'late.db'}")  # not migrated: writes fail
    settings = PredictionLogSettings(flush_interval_s=0.05, retry_max_s=0.2)
    plog = PredictionLog(store, settings, tmp_path / "spool")
    plog.start()
    started = time.perf_counter()
    for i in range(50):
        plog.answered(*pair(i), started)
    deadline = time.monotonic() + 10
    while plog.writer.tally["spooled"] < 50:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not plog.writer.healthy
    store.migrate()
    while store.count_prediction_log("m") < 50:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    plog.close()
    assert store.count_prediction_log("m") == 50
    assert plog.writer.tally["replayed"] == 50 and plog.spool.bytes == 0


def test_a_spool_that_cannot_be_opened_is_done_without(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    store = SQLStore(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # every write fails
    plog = PredictionLog(store, PredictionLogSettings(), tmp_path / "file" / "spool")
    plog.start()  # logged, not raised
    plog.answered(*pair(1), time.perf_counter())
    plog.close(timeout_s=5)
    assert plog.writer.tally["dropped"] == 1  # nowhere to keep it: dropped and counted
    assert plog.writer.tally["spooled"] == 0

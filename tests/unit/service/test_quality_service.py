"""QualityService on a real SQLite store and a real model manager, with a controllable clock:
feedback arriving late updates the windows its predictions fell in (by prediction time, numbers
checked by hand), attribution by request id (+ row), by routing key + event time, and before the
log row exists; gauges appear, change and disappear; ``current`` answers for production."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sibyl.errors import InvalidInputError
from sibyl.runtime.loader import LoadedModel
from sibyl.runtime.types import Task
from sibyl.service import ExperimentService, FeedbackItem, ModelManager, OutcomeWriter
from sibyl.service._quality import QualityService
from sibyl.settings import QualitySettings
from sibyl.store import SQLStore
from tests.quality_support import log_row, write_log
from tests.toys import EchoPredictor
from tests.unit.service.conftest import SCHEMA, Env, run, samples

NOW0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
HOUR, DAY, WEEK = 3600.0, 86400.0, 7 * 86400.0
P = [[0.3, 0.7], [0.8, 0.2]]  # probabilities of a predicted 1 and a predicted 0


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLStore]:
    s = SQLStore(f"sqlite:///{tmp_path / 'quality.db'}")
    s.migrate()
    yield s
    s.close()


def serve(env: Env, *versions: tuple[str, Task], production: str = "1") -> ModelManager:
    manager = env.manager()
    for version, task in versions:
        loaded = LoadedModel.from_predictor("churn", version, EchoPredictor(), SCHEMA, task=task)
        manager.add_loaded(loaded, production=version == production)
    return manager


def logged(request_id: str, ts: datetime, preds: list[int], **kw: Any) -> dict[str, Any]:
    probs = [P[0] if p == 1 else P[1] for p in preds]
    return log_row(request_id, ts, preds, probabilities=probs, classes=[0, 1], **kw)


def accuracy(metrics: Any, window: str) -> float | None:
    found = samples(metrics, "ml_model_accuracy")
    return found.get((("model", "churn"), ("version", "1"), ("window", window)))


def test_feedback_arriving_late_updates_quality_windows_correctly(
    env: Env, store: SQLStore
) -> None:
    async def go() -> None:
        manager = serve(env, ("1", Task.CLASSIFIER))
        clock = Clock(NOW0 + timedelta(minutes=5))
        quality = QualityService(store, manager, QualitySettings(windows=["1h", "24h", "7d"]),
                                 registry=manager.metrics.registry, clock=clock)  # fmt: skip
        exps = ExperimentService(store, OutcomeWriter(store))
        # predictions at t0 (11:40), t1 (07:00, routing key "u1"), t2 (three days ago)
        write_log(
            store,
            logged("A", NOW0 - timedelta(minutes=20), [1, 1, 0, 0]),
            logged("B", NOW0 - timedelta(hours=5), [1, 0, 1], routing_key="u1"),
            logged("C", NOW0 - timedelta(days=3), [0, 1]),
        )
        await quality.refresh()  # no labels yet: nothing labelled anywhere
        for window_s in (HOUR, DAY, WEEK):
            now = quality.current("churn", window_s)
            assert now["labelled_rows"] == 0 and now["accuracy"] is None
        assert accuracy(manager.metrics, "7d") is None

        # 12:05 — C's labels arrive, three days late, row by row: C counts in 7d only
        await exps.feedback([FeedbackItem(request_id="C", model="churn", label="0", row=0),
                             FeedbackItem(request_id="C", model="churn", label="0", row=1)])
        await quality.refresh()
        assert quality.current("churn", HOUR)["labelled_rows"] == 0
        assert quality.current("churn", DAY)["labelled_rows"] == 0
        week = quality.current("churn", WEEK)
        assert week["labelled_rows"] == 2 and week["accuracy"] == 1 / 2
        assert accuracy(manager.metrics, "7d") == 1 / 2
        assert accuracy(manager.metrics, "24h") is None  # undefined: no series
        coverage = samples(manager.metrics, "ml_model_label_coverage")
        assert coverage[(("model", "churn"), ("version", "1"), ("window", "7d"))] == 2 / 9

        # 12:30 — A labelled per row by request id; B through routing key u1 + event time
        clock.now = NOW0 + timedelta(minutes=30)
        await exps.feedback([
            FeedbackItem(request_id="A", model="churn", label=label, row=i)
            for i, label in enumerate(["1", "0", "0", "0"])
        ] + [FeedbackItem(routing_key="u1", model="churn", label="1",
                          event_at=NOW0 - timedelta(hours=4))])  # fmt: skip
        await quality.refresh()
        hour = quality.current("churn", HOUR)  # window [11:30, 12:30): A
        assert hour["labelled_rows"] == 4 and hour["accuracy"] == 3 / 4
        day = quality.current("churn", DAY)  # A + B: 7 rows, 5 right
        assert day["labelled_rows"] == 7 and day["accuracy"] == 5 / 7
        assert day["f1"] == pytest.approx(3 / 4)  # TP 3 (A0, B0, B2), FP 1 (A1), FN 1 (B1)
        week = quality.current("churn", WEEK)  # + C: 9 rows, 6 right
        assert week["labelled_rows"] == 9 and week["accuracy"] == 6 / 9
        assert accuracy(manager.metrics, "1h") == 3 / 4
        assert accuracy(manager.metrics, "24h") == 5 / 7

        # 13:00 — the clock moves on: A (11:40) leaves the 1h window; a corrected label for A
        # row 1 arrives and replaces the first one in the windows A is still in
        clock.now = NOW0 + timedelta(hours=1)
        await exps.feedback([FeedbackItem(request_id="A", model="churn", label="1", row=1)])
        await quality.refresh()
        assert quality.current("churn", HOUR)["labelled_rows"] == 0
        assert accuracy(manager.metrics, "1h") is None  # the series is gone
        assert quality.current("churn", DAY)["accuracy"] == 6 / 7
        assert quality.current("churn", WEEK)["accuracy"] == 7 / 9
        await manager.stop()

    run(go)


def test_feedback_before_its_log_row_counts_once_the_row_lands(env: Env, store: SQLStore) -> None:
    async def go() -> None:
        manager = serve(env, ("1", Task.CLASSIFIER))
        clock = Clock(datetime.now(UTC))
        quality = QualityService(store, manager, registry=manager.metrics.registry, clock=clock)
        exps = ExperimentService(store, OutcomeWriter(store))
        await exps.feedback([FeedbackItem(request_id="late", model="churn", label="1")])
        assert store.list_feedback(request_id="late")[0].prediction_id is None
        assert quality.current("churn", DAY)["labelled_rows"] == 0
        (pid,) = write_log(store, logged("late", clock.now - timedelta(seconds=1), [1, 0]))
        report = await quality.report("churn", DAY)  # joined by request id at query time
        (v1,) = report["versions"]
        assert v1["labelled_rows"] == 2 and v1["metrics"]["accuracy"] == 1 / 2
        await quality.refresh()  # and attributed for good
        assert store.list_feedback(request_id="late")[0].prediction_id == pid
        await manager.stop()

    run(go)


def test_current_reads_the_production_version_and_regressors_get_errors(
    env: Env, store: SQLStore
) -> None:
    async def go() -> None:
        manager = serve(env, ("1", Task.REGRESSOR), ("2", Task.REGRESSOR), production="2")
        clock = Clock(datetime.now(UTC))
        quality = QualityService(store, manager, registry=manager.metrics.registry, clock=clock)
        exps = ExperimentService(store, OutcomeWriter(store))
        at = clock.now - timedelta(minutes=1)
        write_log(store, log_row("v1", at, [10.0], version="1"),
                  log_row("v2", at, [10.0, 20.0], version="2"))  # fmt: skip
        await exps.feedback([
            FeedbackItem(request_id="v1", model="churn", value=0.0),
            FeedbackItem(request_id="v2", model="churn", value=13.0, row=0),
            FeedbackItem(request_id="v2", model="churn", value=16.0, row=1),
            FeedbackItem(request_id="v2", model="churn", success=True),  # not ground truth
        ])  # fmt: skip
        now = quality.current("churn", HOUR)
        assert now["labelled_rows"] == 2 and now["accuracy"] is None
        assert now["mae"] == pytest.approx(3.5) and now["rmse"] == pytest.approx(12.5**0.5)
        report = await quality.report("churn", HOUR, version="1")
        assert report["production_version"] == "2"
        assert [v["metrics"]["mae"] for v in report["versions"]] == [10.0]
        assert quality.current("other", HOUR) == {
            "accuracy": None, "f1": None, "auc": None, "log_loss": None, "mae": None,
            "rmse": None, "labelled_rows": 0.0}  # fmt: skip
        await manager.stop()

    run(go)


def test_bad_ground_truth_names_the_item_and_field(env: Env, store: SQLStore) -> None:
    async def go() -> None:
        exps = ExperimentService(store, OutcomeWriter(store))
        write_log(store, logged("two", datetime.now(UTC), [1, 0]))
        items = [FeedbackItem(request_id="two", model="churn", label="1", row=0),
                 FeedbackItem(request_id="two", model="churn", label="1", row=2)]  # fmt: skip
        with pytest.raises(InvalidInputError) as err:
            await exps.feedback(items)
        assert err.value.field == "items[1].row"
        naive = FeedbackItem(routing_key="k", model="churn", label="1",
                             event_at=datetime(2025, 1, 1))  # fmt: skip
        with pytest.raises(InvalidInputError) as bad:
            await exps.feedback([items[0], naive])
        assert bad.value.field == "items[1].event_at"
        assert store.list_feedback(request_id="two") == []

    run(go)


def test_the_refresher_sets_the_gauges_by_itself_and_stops(env: Env, store: SQLStore) -> None:
    async def go() -> None:
        manager = serve(env, ("1", Task.CLASSIFIER))
        settings = QualitySettings(interval_s=0.05, windows=["1h"])
        quality = QualityService(store, manager, settings, registry=manager.metrics.registry)
        exps = ExperimentService(store, OutcomeWriter(store))
        write_log(store, logged("auto", datetime.now(UTC) - timedelta(seconds=1), [1, 0]))
        await exps.feedback([FeedbackItem(request_id="auto", model="churn", label="1")])
        await quality.start()
        for _ in range(1500):  # poll (≤ 30 s): the refresher runs every 50 ms
            if accuracy(manager.metrics, "1h") is not None:
                break
            await asyncio.sleep(0.02)
        assert accuracy(manager.metrics, "1h") == 1 / 2
        await quality.stop()
        await manager.stop()

    run(go)

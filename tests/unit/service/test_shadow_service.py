"""ShadowService on the prediction path, in process with real toys, a real batcher and a real
SQLite store: the primary's answer never changes and never waits; candidates that disagree,
fail or are slow are recorded as such; the concurrency bound drops instead of queueing; a
broken shadow never reaches the caller."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from sibyl.monitoring import Metrics
from sibyl.runtime.loader import LoadedModel
from sibyl.runtime.schema import ColumnSpec, InputSchema
from sibyl.runtime.types import Batch, Prediction, Predictor
from sibyl.service import (
    Inputs,
    ModelManager,
    PredictionService,
    PredictRequest,
    PredictResult,
    ShadowConfig,
    ShadowService,
    ShadowWriter,
)
from sibyl.store import (
    ExperimentKind,
    ExperimentStatus,
    ShadowAggregate,
    ShadowRecord,
    SQLStore,
    Variant,
)
from tests.toys import EchoPredictor, SlowPredictor
from tests.unit.service.conftest import Env, run, toy


class Offset(EchoPredictor):
    """Row sum plus ``offset``: a candidate that answers differently."""

    def __init__(self, offset: float) -> None:
        super().__init__()
        self.offset = offset

    def predict(self, batch: Batch) -> Prediction:
        return Prediction(super().predict(batch).predictions + self.offset)


class Raising:
    """A candidate that always raises."""

    def predict(self, batch: Batch) -> Prediction:
        raise RuntimeError("candidate broken")


class Held(EchoPredictor):
    """Echo that waits for ``release`` (≤ 10 s) before answering: a candidate still busy."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def predict(self, batch: Batch) -> Prediction:
        self.release.wait(10)
        return super().predict(batch)


class FailingWriter(ShadowWriter):
    """A writer with a bug: every submit raises."""

    def submit(self, record: ShadowRecord) -> None:
        raise RuntimeError("writer bug")


@dataclass
class Setup:
    service: PredictionService
    shadows: ShadowService
    store: SQLStore
    registry: CollectorRegistry

    def results(self) -> dict[str, ShadowAggregate]:
        """Flush the writer; aggregates by candidate variant."""
        self.shadows.writer.flush()
        exp = self.store.get_experiment("churn-shadow")
        return {a.variant: a for a in self.store.shadow_aggregates(exp.id)}

    def counted(self, result: str) -> float:
        value = self.registry.get_sample_value(
            "ml_shadow_requests_total", {"model": "churn", "result": result}
        )
        return value or 0.0


def setup(
    env: Env,
    candidates: dict[str, Predictor | LoadedModel],
    *,
    writer: type[ShadowWriter] = ShadowWriter,
    draws: Sequence[float] | None = None,
    **config: Any,
) -> Setup:
    """Model ``churn`` v1 (echo, production) and candidate versions loaded in process; a running
    shadow experiment ``churn-shadow`` over all candidates (variant ``v<version>``)."""
    settings = env.settings()
    manager = ModelManager(env.registry, settings, Metrics())
    manager.add_loaded(toy("churn", "1", EchoPredictor()))
    for version, cand in candidates.items():
        loaded = cand if isinstance(cand, LoadedModel) else toy("churn", version, cand)
        manager.add_loaded(loaded, production=False)
    store = SQLStore(f"sqlite:///{env.tmp / 'store.db'}")
    store.migrate()
    variants = [Variant("primary", "churn", alias="production", is_control=True)]
    variants += [Variant(f"v{v}", "churn", version=v) for v in candidates]
    routing = ShadowConfig.parse({"share": 1.0, **config}).to_json()
    exp = store.create_experiment(
        "churn-shadow", "churn", ExperimentKind.SHADOW, variants, routing=routing
    )
    store.set_status(exp.id, ExperimentStatus.RUNNING)
    registry = CollectorRegistry()
    feed = iter(draws) if draws is not None else None
    shadows = ShadowService(
        manager,
        store,
        writer(store, registry=registry),
        registry=registry,
        draw=(lambda: next(feed)) if feed is not None else (lambda: 0.0),
    )
    shadows.refresh(store.list_experiments(status=ExperimentStatus.RUNNING))
    service = env.service(manager)
    service.shadows = shadows
    return Setup(service, shadows, store, registry)


ROWS = [[[1.0, 2.0]], [[0.5, 0.5], [3.0, -1.0]], [[10.0, 0.0], [1.0, 1.0], [2.0, 2.0]]]


def request(i: int, rows: list[list[float]], ref: str | None = None) -> PredictRequest:
    return PredictRequest("churn", Inputs("rows", rows), ref=ref, request_id=f"req-{i}")


def same(a: PredictResult, b: PredictResult) -> bool:
    plain = ("model", "version", "engine", "request_id", "task", "experiment", "variant")
    if any(getattr(a, f) != getattr(b, f) for f in plain):
        return False
    return bool(np.array_equal(a.prediction.predictions, b.prediction.predictions))


def test_the_primary_answer_is_the_same_with_or_without_a_shadow(env: Env) -> None:
    async def go() -> None:
        held = Held()
        s = setup(env, {"2": Offset(1.0), "3": Raising(), "4": held, "5": EchoPredictor()})
        plain = env.service(s.service.manager)  # the same primary, no shadow
        for i, rows in enumerate(ROWS):
            shadowed = await s.service.predict(request(i, rows))
            # answered while the held candidate is still busy: the caller never waited for it
            assert s.shadows._inflight[1] >= 1 and not held.release.is_set()
            assert same(shadowed, await plain.predict(request(i, rows)))
        held.release.set()
        await s.shadows.drain()
        got = s.results()
        n_rows = sum(len(r) for r in ROWS)
        assert (got["v2"].compared, got["v2"].agreeing_rows, got["v2"].rows) == (3, 0, n_rows)
        assert (got["v3"].errors, got["v3"].compared) == (3, 0)
        assert (got["v4"].compared, got["v4"].agreeing_rows) == (3, n_rows)
        assert got["v5"].unanimous == 3 and got["v5"].latency.primary_p50 is not None
        assert [s.counted(r) for r in ("agree", "disagree", "error", "dropped")] == [6, 3, 3, 0]
        await s.service.manager.stop()

    run(go)


def test_pinned_requests_and_draws_above_the_share_are_not_mirrored(env: Env) -> None:
    async def go() -> None:
        s = setup(env, {"2": EchoPredictor()}, draws=[0.1, 0.6, 0.3, 0.9], share=0.5)
        await s.service.predict(request(0, [[1.0, 1.0]], ref="1"))  # pinned: no draw at all
        for i in range(4):
            await s.service.predict(request(i, [[1.0, 1.0]]))
        await s.shadows.drain()
        assert s.results()["v2"].mirrored == 2
        await s.service.manager.stop()

    run(go)


def test_beyond_max_concurrent_mirrors_are_dropped_not_queued(env: Env) -> None:
    async def go() -> None:
        held = Held()
        s = setup(env, {"2": held}, max_concurrent=2)
        for i in range(5):
            await s.service.predict(request(i, [[1.0, 1.0]]))
        assert s.shadows._inflight[1] == 2 and s.counted("dropped") == 3
        held.release.set()
        await s.shadows.drain()
        got = s.results()["v2"]
        assert (got.compared, got.dropped, got.mirrored) == (2, 3, 2)
        await s.service.manager.stop()

    run(go)


def test_a_slow_candidate_times_out_on_its_own_deadline(env: Env) -> None:
    async def go() -> None:
        s = setup(env, {"2": SlowPredictor(0.5)}, timeout_ms=50)
        result = await s.service.predict(request(0, [[1.0, 1.0]]))
        assert result.version == "1"
        await s.shadows.drain()
        got = s.results()["v2"]
        assert (got.errors, got.compared) == (1, 0)
        await s.service.manager.stop()

    run(go)


def test_a_candidate_with_its_own_schema_gets_its_own_batch(env: Env) -> None:
    async def go() -> None:
        reversed_cols = InputSchema([ColumnSpec("b", "float"), ColumnSpec("a", "float")])
        three = InputSchema([ColumnSpec(c, "float") for c in ("a", "b", "c")])
        s = setup(
            env,
            {
                "2": LoadedModel.from_predictor("churn", "2", Offset(0.0), reversed_cols),
                "3": LoadedModel.from_predictor("churn", "3", EchoPredictor(), three),
            },
        )
        records = Inputs("records", [{"a": 1.0, "b": 5.0}, {"a": 2.0, "b": 0.0}])
        result = await s.service.predict(PredictRequest("churn", records, request_id="r"))
        assert list(result.prediction.predictions) == [6.0, 2.0]
        await s.shadows.drain()
        got = s.results()
        assert (got["v2"].agreeing_rows, got["v2"].rows) == (2, 2)
        assert got["v3"].errors == 1  # no column 'c' in the request: the candidate's error
        await s.service.manager.stop()

    run(go)


def test_a_candidate_that_is_not_loaded_is_dropped_and_loaded_in_the_background(
    env: Env,
) -> None:
    async def go() -> None:
        s = setup(env, {})
        exp = s.store.create_experiment(
            "other-shadow",
            "churn",
            ExperimentKind.SHADOW,
            [
                Variant("primary", "churn", alias="production", is_control=True),
                Variant("v9", "churn", version="9"),
            ],
            routing={"share": 1.0},
        )
        exp = s.store.set_status(exp.id, ExperimentStatus.RUNNING)
        s.shadows.refresh([exp])  # the load of churn:9 starts (and fails: not registered)
        result = await s.service.predict(request(0, [[1.0, 1.0]]))
        assert result.version == "1"
        await s.shadows.drain()
        s.shadows.writer.flush()
        (agg,) = s.store.shadow_aggregates(exp.id)
        assert (agg.dropped, agg.mirrored, agg.candidate_version) == (1, 0, "9")
        await s.service.manager.stop()

    run(go)


def test_a_broken_shadow_never_reaches_the_caller(env: Env) -> None:
    async def go() -> None:
        s = setup(env, {"2": EchoPredictor()}, writer=FailingWriter)
        plain = env.service(s.service.manager)
        for i, rows in enumerate(ROWS):
            got = await s.service.predict(request(i, rows))
            assert same(got, await plain.predict(request(i, rows)))
        await s.shadows.drain()
        assert s.counted("error") == len(ROWS)  # the mirror's own failure, counted
        await s.service.manager.stop()

    run(go)


def test_the_report_reads_the_records(env: Env) -> None:
    async def go() -> None:
        s = setup(env, {"2": Offset(1.0), "3": EchoPredictor()})
        for i in range(6):
            await s.service.predict(request(i, [[float(i), 1.0]]))
        await s.shadows.drain()
        s.shadows.writer.flush()
        report = await s.shadows.report("churn-shadow")
        by = {c["variant"]: c for c in report["candidates"]}
        assert by["v2"]["agreement"]["rate"] == 0.0 and by["v2"]["mirrored"] == 6
        assert by["v3"]["agreement"]["rate"] == 1.0 and by["v3"]["errors"] == 0
        assert report["criteria"]["source"] == "defaults" and report["passed"] is False
        assert by["v3"]["gate"]["checks"][0]["message"] == "mirrored requests 6 < 500"
        await s.service.manager.stop()

    run(go)


def test_stop_cancels_mirrors_in_flight(env: Env) -> None:
    async def go() -> None:
        held = Held()
        s = setup(env, {"2": held})
        await s.service.predict(request(0, [[1.0, 1.0]]))
        assert s.shadows._inflight[1] == 1
        stopping = asyncio.create_task(s.shadows.stop())
        await asyncio.sleep(0)
        held.release.set()  # the worker thread finishes its call; the mirror is already gone
        await stopping
        assert s.shadows._inflight[1] == 0
        await s.service.manager.stop()

    run(go)

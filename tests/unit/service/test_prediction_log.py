"""The prediction log on the real PredictionService and a real SQLite store: one row per
request — answered, failed, routed by an experiment, partly cached — and none for unknown
models or replays; the replay of logged requests against another version."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from sibyl.cache import get_cache
from sibyl.errors import InvalidInputError, NotFoundError, PredictionError, SibylError
from sibyl.monitoring import Metrics
from sibyl.monitoring.predlog import PredictionLog, ReplaySpec, replay, wire_prediction_log
from sibyl.runtime.types import Batch, Prediction
from sibyl.service import (
    ExperimentService,
    Inputs,
    ModelManager,
    OutcomeWriter,
    PredictionService,
    PredictRequest,
    build_snapshot,
)
from sibyl.settings import PredictionLogSettings, Settings
from sibyl.store import ExperimentStatus, SQLStore
from tests.toys import FAIL_MARKER, EchoPredictor, FailingPredictor
from tests.unit.service.conftest import Env, request, run, toy
from tests.unit.service.test_router import experiment


class Shifted(EchoPredictor):
    """Echo, plus 1 on rows whose sum is above 5 (disagrees with echo there)."""

    def predict(self, batch: Batch) -> Prediction:
        sums = np.asarray(batch, dtype=np.float64).sum(axis=1)
        return Prediction(np.where(sums > 5, sums + 1, sums))


@contextmanager
def logged_service(env: Env, *, cache: bool = False, **log: Any) -> Iterator[
        tuple[PredictionService, PredictionLog, SQLStore]]:  # fmt: skip
    log.setdefault("inputs", "all")
    settings = env.settings().model_copy(update={"prediction_log": PredictionLogSettings(**log)})
    store = SQLStore(f"sqlite:///{env.tmp / 'sibyl.db'}")
    store.migrate()
    the_cache = get_cache("memory://?max_entries=100&ttl_s=60") if cache else None
    manager = ModelManager(env.registry, settings, Metrics(), the_cache)
    manager.add_loaded(toy("echo", "1", FailingPredictor()))
    manager.add_loaded(toy("echo", "2", Shifted()), production=False)
    manager.add_loaded(toy("churn", "1", EchoPredictor()))
    manager.add_loaded(toy("churn-v2", "7", EchoPredictor()))
    service = PredictionService(manager, manager.metrics, settings)
    plog = wire_prediction_log(settings, store, manager, manager.metrics.registry)
    assert plog is not None
    service.prediction_log = plog
    plog.spool.open()
    try:
        yield service, plog, store
    finally:
        plog.close()
        store.close()


async def outcome(service: PredictionService, req: PredictRequest) -> type[SibylError] | None:
    try:
        await service.predict(req)
    except SibylError as exc:
        return type(exc)
    return None


def test_every_request_to_a_known_model_is_logged_once_with_its_status(env: Env) -> None:
    async def go() -> None:
        with logged_service(env) as (service, plog, store):
            cases = [
                (request("echo", 1.0, 2.0, request_id="ok-1"), None),
                (PredictRequest("echo", Inputs("rows", [[1.0]]), request_id="bad-1"),
                 InvalidInputError),
                (request("echo", FAIL_MARKER, request_id="boom-1"), PredictionError),
                (request("echo", ref="2", request_id="pinned-1"), None),
                (request("echo", ref="9", request_id="gone-1"), NotFoundError),
                (request("no-such-model", request_id="unknown-1"), NotFoundError),
            ]  # fmt: skip
            for req, expected in cases:
                assert await outcome(service, req) is expected
            await service.manager.stop()
            plog.flush()
            rows = {r.request_id: r for r in store.query_prediction_log("echo", with_inputs=True)}
            assert set(rows) == {"ok-1", "bad-1", "boom-1", "pinned-1", "gone-1"}
            assert not store.query_prediction_log("no-such-model")
            ok = rows["ok-1"]
            assert (ok.status, ok.version, ok.n_rows, ok.cached_rows) == ("ok", "1", 2, 0)
            assert ok.inputs == {"columns": ["a", "b"], "rows": [[1.0, 0.0], [2.0, 0.0]]}
            assert ok.outputs == {"predictions": [1.0, 2.0]}
            assert (rows["bad-1"].status, rows["bad-1"].outputs) == ("invalid", None)
            assert rows["boom-1"].status == "error" and rows["boom-1"].error
            assert (rows["pinned-1"].version, rows["gone-1"].status) == ("2", "not_found")
            assert all(r.latency_ms > 0 for r in rows.values())
            assert plog.writer.tally["written"] == 5

    run(go)


def test_routed_requests_carry_their_experiment_and_variant(env: Env) -> None:
    async def go() -> None:
        with logged_service(env) as (service, plog, store):
            exps = ExperimentService(store, OutcomeWriter(store), refresh_interval_s=0)
            exps.routes = build_snapshot([experiment(ExperimentStatus.RUNNING, exp_id=41)])
            service.experiments = exps
            answered = {}
            for i in range(20):
                res = await service.predict(request("churn", 1.0, routing_key=f"u{i}",
                                                    request_id=f"r{i}"))  # fmt: skip
                answered[f"r{i}"] = (res.model, res.variant)
            with pytest.raises(InvalidInputError):
                await service.predict(request("churn", variant="nope", request_id="bad"))
            await service.manager.stop()
            plog.flush()
            logged = store.query_prediction_log("churn") + store.query_prediction_log("churn-v2")
            by_id = {r.request_id: r for r in logged}
            assert len(by_id) == 21
            for rid, (model, variant) in answered.items():
                row = by_id[rid]
                assert (row.model, row.variant, row.experiment_id) == (model, variant, 41)
                assert row.routing_key == f"u{rid[1:]}"
            assert by_id["bad"].status == "invalid"

    run(go)


def test_cached_rows_are_counted_per_request(env: Env) -> None:
    async def go() -> None:
        with logged_service(env, cache=True) as (service, plog, store):
            await service.predict(request("echo", 1.0, 2.0, request_id="first"))
            await service.predict(request("echo", 1.0, 2.0, 3.0, request_id="second"))
            await service.predict(request("echo", 4.0, request_id="third"))
            await service.manager.stop()
            plog.flush()
            cached = {r.request_id: r.cached_rows for r in store.query_prediction_log("echo")}
            assert cached == {"first": 0, "second": 2, "third": 0}

    run(go)


def test_logging_is_off_when_disabled() -> None:
    settings = Settings(prediction_log=PredictionLogSettings(enabled=False))
    assert wire_prediction_log(settings, None, None, None) is None  # type: ignore[arg-type]


def test_replay_compares_a_version_with_what_was_served(env: Env) -> None:
    async def go() -> None:
        with logged_service(env, inputs="sample", sample_rate=0.5) as (service, plog, store):
            for i in range(40):  # row sums 0..39: v2 disagrees on the 34 rows above 5
                await service.predict(request("echo", float(i), request_id=f"r{i}"))
            plog.flush()
            logged = store.count_prediction_log("echo", has_inputs=True)
            assert 5 < logged < 35  # a sample (seeded by nothing: just not all, not none)
            spec = ReplaySpec("echo", "2", limit=10_000, max_disagreements=3)
            report = await replay(service, store, spec)
            assert (report.requests, report.skipped, report.failed) == (logged, 40 - logged, 0)
            sums = [
                r.inputs["rows"][0][0]
                for r in store.query_prediction_log("echo", has_inputs=True, with_inputs=True)
            ]  # type: ignore[index]
            assert report.rows == logged
            assert report.agreeing_rows == sum(s <= 5 for s in sums)
            assert len(report.disagreements) == min(3, sum(s > 5 for s in sums))
            for d in report.disagreements:
                assert d["replayed"] == d["logged"] + 1 and d["logged_version"] == "1"
            again = await replay(service, store, ReplaySpec("echo", "1", limit=10_000))
            assert again.agreement == 1.0  # the served version agrees with itself
            assert store.count_prediction_log("echo") == 40  # replays are not logged
            with pytest.raises(InvalidInputError):
                await replay(service, store, ReplaySpec("echo", "2", limit=10_001))
            with pytest.raises(NotFoundError):
                await replay(service, store, ReplaySpec("echo", "99"))
            await service.manager.stop()

    run(go)


def test_replayed_requests_the_target_refuses_are_counted_as_failed(env: Env) -> None:
    async def go() -> None:
        with logged_service(env, redact=["b"]) as (service, plog, store):
            await service.predict(request("echo", 1.0, request_id="redacted"))
            with pytest.raises(InvalidInputError):  # logged as invalid: never replayed
                await service.predict(PredictRequest("echo", Inputs("records", [{"a": 1.0}]),
                                                     request_id="bad"))  # fmt: skip
            plog.flush()
            report = await replay(service, store, ReplaySpec("echo", "2"))
            assert (report.requests, report.failed) == (0, 1)
            assert report.errors[0]["request_id"] == "redacted"
            await service.manager.stop()

    run(go)

"""PredictionService: every request counted once by status (read back from the Prometheus text),
bounded model labels, and which model MLflow's ``/invocations`` answers with."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sibyl.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    PredictionError,
    SibylError,
)
from sibyl.monitoring import Metrics
from sibyl.service import Inputs, ModelManager, PredictionService, PredictRequest
from sibyl.settings import BatchSettings
from tests.toys import FAIL_MARKER, EchoPredictor, FailingPredictor, SlowPredictor
from tests.unit.service.conftest import Env, request, requests_by, run, samples, toy


def service_with_toys(env: Env) -> tuple[ModelManager, PredictionService]:
    settings = env.settings()
    settings.batching_overrides = {"slow": BatchSettings(max_batch_size=1, max_queue_rows=1)}
    m = ModelManager(env.registry, settings, Metrics())
    m.add_loaded(toy("echo", "1", FailingPredictor()))
    m.add_loaded(toy("slow", "1", SlowPredictor(0.3)))
    return m, PredictionService(m, m.metrics, settings)


async def outcome(service: PredictionService, req: PredictRequest) -> type[Exception] | None:
    try:
        await service.predict(req)
    except SibylError as exc:
        return type(exc)
    return None


def test_every_request_is_counted_once_under_its_status(env: Env) -> None:
    async def go() -> dict[tuple[str, str, str], float]:
        m, service = service_with_toys(env)
        try:
            echo_cases: list[tuple[PredictRequest, Any]] = [
                (request("echo", 1.0, 2.0), None),
                (request("echo", 3.0), None),
                (PredictRequest("echo", Inputs("rows", [[1.0]])), InvalidInputError),
                (request("echo", FAIL_MARKER), PredictionError),
                (request("echo", ref="9"), NotFoundError),  # no such version in the registry
                (request("no-such-model"), NotFoundError),
            ]
            for req, expected in echo_cases:
                assert await outcome(service, req) is expected
            running = asyncio.create_task(outcome(service, request("slow")))
            await asyncio.sleep(0.05)  # the model is busy with it
            queued = asyncio.create_task(outcome(service, request("slow")))
            await asyncio.sleep(0)
            assert await outcome(service, request("slow")) is OverloadedError  # lane full
            assert await running is None and await queued is None
            running = asyncio.create_task(outcome(service, request("slow")))
            await asyncio.sleep(0.05)
            late = request("slow", timeout_s=0.05)  # expires while queued behind ``running``
            assert await outcome(service, late) is DeadlineExceededError
            assert await running is None
            durations = samples(m.metrics, "ml_prediction_duration_seconds_count")
            assert durations[(("model", "echo"), ("version", "1"))] == 4
            assert durations[(("model", "slow"), ("version", "1"))] == 5
            assert samples(m.metrics, "ml_prediction_rows_total")[
                (("model", "echo"), ("version", "1"))] == 3
            return requests_by(m.metrics)
        finally:
            await m.stop()

    assert run(go) == {
        ("echo", "1", "success"): 2,
        ("echo", "1", "invalid_input"): 1,
        ("echo", "1", "error"): 1,
        ("echo", "", "not_found"): 1,
        ("_unknown", "", "not_found"): 1,
        ("slow", "1", "success"): 3,
        ("slow", "1", "overloaded"): 1,
        ("slow", "1", "timeout"): 1,
    }


def test_requests_for_unknown_models_share_one_label(env: Env) -> None:
    async def go() -> dict[tuple[str, str, str], float]:
        m = env.manager()
        m.add_loaded(toy("known", "1", EchoPredictor()))
        service = env.service(m)
        for name in ("ghost-a", "ghost-b", "ghost-c"):
            with pytest.raises(NotFoundError, match=name):
                await service.predict(request(name))
        await m.stop()
        return requests_by(m.metrics)

    counts = run(go)
    assert counts[("_unknown", "", "not_found")] == 3
    assert not [k for k in counts if k[0].startswith("ghost")]


def test_default_model_is_the_configured_one(env: Env) -> None:
    m = env.manager()
    assert env.service(m, default_model="churn").default_model() == "churn"


def test_default_model_is_the_only_registered_one(env: Env) -> None:
    async def go() -> str:
        m = env.manager()
        m.add_loaded(toy("only", "1", EchoPredictor()))
        name = env.service(m).default_model()
        await m.stop()
        return name

    assert run(go) == "only"


@pytest.mark.parametrize("names", [(), ("a", "b")])
def test_without_a_single_model_default_model_says_how_to_choose(env: Env,
                                                                 names: tuple[str, ...]) -> None:
    async def go() -> None:
        m = env.manager()
        for name in names:
            m.add_loaded(toy(name, "1", EchoPredictor()))
        with pytest.raises(NotFoundError) as info:
            env.service(m).default_model()
        message = info.value.message
        assert f"{len(names)} models are registered" in message
        assert f"({', '.join(names) or 'none'})" in message
        assert "SIBYL_SERVER__DEFAULT_MODEL" in message
        assert "/v1/models/<name>/invocations" in message
        await m.stop()

    run(go)


def test_a_request_timing_out_in_the_model_does_not_block_unloading(env: Env) -> None:
    """Regression: a request whose deadline passed while the worker ran it was never counted
    as done, so draining (eviction, hot swap, shutdown) hung for ever."""

    async def go() -> None:
        m = env.manager()
        m.add_loaded(toy("slow", "1", SlowPredictor(0.3)))
        service = env.service(m)
        assert await outcome(service, request("slow", timeout_s=0.05)) is DeadlineExceededError
        await asyncio.wait_for(m.unload("slow", "1"), 5)  # the model call ends after 0.3 s

    run(go)

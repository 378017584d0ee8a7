"""ModelPool eviction (count, memory budget, production last, never the newcomer) and draining,
driven through ``ModelManager.add_loaded`` with in-process toy predictors."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sibyl.errors import OverloadedError
from sibyl.service import ModelManager
from tests.toys import EchoPredictor, SlowPredictor
from tests.unit.service.conftest import (
    Env,
    request,
    requests_by,
    run,
    samples,
    toy,
    version_series,
)

MB = 1024 * 1024


def loaded_keys(manager: ModelManager) -> set[str]:
    return {f"{sv.name}:{sv.version}" for sv in manager.pool.versions()}


def add(manager: ModelManager, name: str, version: str = "1", *, production: bool = False,
        memory_bytes: int = 0) -> None:
    manager.add_loaded(toy(name, version, EchoPredictor(), memory_bytes), production=production)


def test_count_limit_evicts_the_least_recently_used(env: Env) -> None:
    async def go() -> None:
        m = env.manager(max_models=2)
        service = env.service(m)
        add(m, "a")
        add(m, "b")
        await service.predict(request("a", ref="1"))  # a is now more recent than b
        add(m, "c")
        assert loaded_keys(m) == {"a:1", "c:1"}
        add(m, "d")
        assert loaded_keys(m) == {"c:1", "d:1"}
        await m.stop()

    run(go)


def test_memory_budget_evicts_until_the_measured_memory_fits(env: Env) -> None:
    async def go() -> None:
        m = env.manager(max_models=10, memory_budget_mb=1)
        for name in ("a", "b"):
            add(m, name, memory_bytes=400_000)
        assert loaded_keys(m) == {"a:1", "b:1"}
        add(m, "c", memory_bytes=400_000)  # 1.2 MB > 1 MB
        assert loaded_keys(m) == {"b:1", "c:1"}
        assert m.pool.memory_bytes() == 800_000
        samples_now = samples(m.metrics, "ml_memory_usage_bytes")
        assert samples_now[(("model", "c"), ("version", "1"))] == 400_000
        await m.stop()

    run(go)


def test_the_version_just_added_is_never_evicted_even_over_the_budget(env: Env) -> None:
    async def go() -> None:
        m = env.manager(max_models=1, memory_budget_mb=1)
        add(m, "a", production=True)
        add(m, "b")  # over the count: the production one goes, not the newcomer
        assert loaded_keys(m) == {"b:1"}
        add(m, "huge", memory_bytes=5 * MB)  # alone over the budget: stays, alone
        assert loaded_keys(m) == {"huge:1"}
        m2 = env.manager(max_models=5, memory_budget_mb=1)
        add(m2, "x", memory_bytes=100)
        add(m2, "huge", memory_bytes=5 * MB)
        assert loaded_keys(m2) == {"huge:1"}
        await m.stop()
        await m2.stop()

    run(go)


def test_production_versions_are_evicted_last(env: Env) -> None:
    async def go() -> None:
        m = env.manager(max_models=2)
        add(m, "prod", production=True)  # oldest
        add(m, "x")
        add(m, "y")
        assert loaded_keys(m) == {"prod:1", "y:1"}
        add(m, "prod2", production=True)
        assert loaded_keys(m) == {"prod:1", "prod2:1"}  # y went although newer than prod
        add(m, "z")  # only production ones are left to evict: the least recently used goes
        assert loaded_keys(m) == {"prod2:1", "z:1"}
        await m.stop()

    run(go)


def test_an_evicted_version_answers_its_in_flight_request_then_is_closed_and_forgotten(
    env: Env,
) -> None:
    async def go() -> None:
        m = env.manager(max_models=1)
        service = env.service(m)
        m.add_loaded(toy("slow", "1", SlowPredictor(0.3)), production=False)
        await service.predict(request("slow", 1.0, ref="1"))
        assert ("slow", "1", "success") in requests_by(m.metrics)
        victim = m.pool.get("slow", "1")
        assert victim is not None
        task = asyncio.create_task(service.predict(request("slow", 7.0, ref="1")))
        await asyncio.sleep(0.05)  # the request is in the model now
        assert victim.inflight == 1
        add(m, "echo")
        assert m.pool.get("slow", "1") is None and loaded_keys(m) == {"echo:1"}
        result = await task  # drained: the in-flight request still gets its answer
        assert result.version == "1" and result.prediction.predictions.tolist() == [7.0]
        await m.pool.wait_closed()
        with pytest.raises(OverloadedError, match="shutting down"):
            await victim.batcher.predict(np.array([[1.0, 0.0]]))
        assert version_series(m.metrics, "slow") == []
        assert samples(m.metrics, "ml_active_models")[()] == 1
        await m.stop()

    run(go)

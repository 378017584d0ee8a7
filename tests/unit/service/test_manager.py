"""ModelManager on a real embedded MLflow registry: preload and readiness, the registry-free hot
path, shared loads, hot swap (success, failure, alias removal) and eviction of production."""

from __future__ import annotations

import asyncio
import threading

import pytest

from sibyl.errors import NotFoundError
from sibyl.registry import AliasChange
from sibyl.service import ModelManager
from tests.unit.service import _models
from tests.unit.service.conftest import Env, new_name, request, run, samples


def loaded_versions(manager: ModelManager, name: str) -> list[str]:
    return sorted(sv.version for sv in manager.pool.versions(name))


def production_of(manager: ModelManager, name: str) -> str | None:
    sv = manager.production(name)
    return None if sv is None else sv.version


def test_preload_specs_load_production_alias_and_version_before_ready(env: Env) -> None:
    name = new_name()
    env.register(name, "echo", "echo", "echo", production="1", staging="2")
    m = env.manager(preload=[name, f"{name}@staging", f"{name}:3"])
    assert not m.ready and m.readiness()["started"] is False

    async def go() -> None:
        await m.start()
        assert m.ready
        state = m.readiness()
        assert state["ready"] and state["required"] == [name] and state["errors"] == {}
        assert sorted(state["loaded"]) == [f"{name}:1", f"{name}:2", f"{name}:3"]
        assert production_of(m, name) == "1"
        assert m.lookup(name, "staging").version == "2"  # type: ignore[union-attr]
        assert m.lookup(name, "@staging").version == "2"  # type: ignore[union-attr]
        assert m.lookup(name, "3").version == "3"  # type: ignore[union-attr]
        await m.stop()

    run(go)


def test_a_required_preload_that_cannot_load_keeps_ready_false_and_says_why(env: Env) -> None:
    good, bad = new_name("good"), new_name("bad")
    env.register(good, "echo", production="1")
    env.register(bad, "echo", "broken", production="2")
    m = env.manager(preload=[good, bad])

    async def go() -> None:
        await m.start()
        assert not m.ready
        state = m.readiness()
        assert state["started"] is True and state["ready"] is False
        assert state["required"] == sorted([good, bad])
        assert state["loaded"] == [f"{good}:1"]
        error = state["errors"][bad]
        assert error["version"] == "2"
        assert f"Model '{bad}' version 2 could not be loaded" in error["error"]
        assert "this model cannot be loaded" in error["error"]
        assert m.status(bad)["last_error"] == error
        await m.stop()

    run(go)


def test_a_required_preload_of_a_missing_alias_is_explained_by_readiness(env: Env) -> None:
    """Regression: a resolve failure (unknown alias / version / model) used to leave
    ``readiness()["errors"]`` empty, so ``/readyz`` said 503 without saying why."""
    name = new_name()
    env.register(name, "echo", production="1")
    m = env.manager(preload=[f"{name}@staging"])

    async def go() -> None:
        await m.start()
        assert not m.ready
        assert name in m.readiness()["errors"]
        assert "staging" in m.readiness()["errors"][name]["error"]
        await m.stop()

    run(go)


def test_once_loaded_lookup_and_get_make_no_registry_call(env: Env) -> None:
    name = new_name()
    env.register(name, "echo", "echo", production="1", staging="2")
    m = env.manager(preload=[name, f"{name}@staging"])
    service = env.service(m)

    async def go() -> None:
        await m.start()
        env.registry.calls.clear()
        prod = m.lookup(name, None)
        assert prod is not None and prod.version == "1"
        for ref in (None, "production", "@production", "1"):
            assert m.lookup(name, ref) is prod
            assert await m.get(name, ref) is prod
        assert m.lookup(name, "staging") is m.lookup(name, "2") is not None
        result = await service.predict(request(name, 3.0))
        assert result.version == "1" and result.prediction.predictions.tolist() == [3.0]
        assert (await service.predict(request(name, 2.0, ref="staging"))).version == "2"
        assert env.registry.calls == []
        await m.stop()

    run(go)


def test_concurrent_gets_of_one_version_share_one_load(env: Env) -> None:
    name = new_name()
    env.register(name, "probe", production="1")
    m = env.manager()
    gate = _models.GATES["probe"] = threading.Event()
    before = _models.LOADS["probe"]

    async def go() -> None:
        tasks = [asyncio.create_task(m.get(name, ref)) for ref in (None, "1", None, "1", "1")]
        await asyncio.sleep(0.3)  # all five wait on the one load held at the gate
        assert not any(t.done() for t in tasks)
        gate.set()
        served = await asyncio.gather(*tasks)
        assert all(sv is served[0] for sv in served)
        assert _models.LOADS["probe"] - before == 1
        assert env.registry.calls.count("download") == 1
        assert samples(m.metrics, "ml_model_load_duration_seconds_count") == {
            (("model", name),): 1.0}
        assert production_of(m, name) == "1"
        await m.stop()

    try:
        run(go)
    finally:
        _models.GATES.pop("probe", None)
        gate.set()


def test_hot_swap_serves_the_new_version_and_drains_the_old_one(env: Env) -> None:
    name = new_name()
    env.register(name, "slow", "echo", production="1")
    m = env.manager(preload=[name])
    service = env.service(m)

    async def go() -> None:
        await m.start()
        old = m.production(name)
        assert old is not None and old.version == "1"
        await m.get(name, "2")  # warm beside the old one
        in_flight = asyncio.create_task(service.predict(request(name, 5.0)))
        await asyncio.sleep(0.1)
        assert old.inflight == 1
        await m.apply_change(AliasChange(name, "production", "1", "2"))
        assert production_of(m, name) == "2"
        assert (await service.predict(request(name, 4.0))).version == "2"
        assert old.inflight == 1 and loaded_versions(m, name) == ["2"]  # out, still draining
        result = await in_flight
        assert result.version == "1" and result.prediction.predictions.tolist() == [5.0]
        await m.pool.wait_closed()
        assert old.idle.is_set() and loaded_versions(m, name) == ["2"]
        assert m.status(name)["serving_version"] == "2"
        assert m.status(name)["aliases"]["production"] == "2"
        assert samples(m.metrics, "ml_model_swaps_total") == {(("model", name),): 1.0}
        await m.stop()

    run(go)


def test_hot_swap_loads_the_new_version_when_it_is_not_loaded_yet(env: Env) -> None:
    name = new_name()
    env.register(name, "echo", "echo", production="1")
    m = env.manager(preload=[name])
    service = env.service(m)

    async def go() -> None:
        await m.start()
        await m.apply_change(AliasChange(name, "production", "1", "2"))
        assert production_of(m, name) == "2"
        await m.pool.wait_closed()
        assert loaded_versions(m, name) == ["2"]
        assert (await service.predict(request(name))).version == "2"
        await m.stop()

    run(go)


def test_a_failed_hot_swap_leaves_the_old_version_serving(env: Env) -> None:
    name = new_name()
    env.register(name, "echo", "broken", production="1")
    m = env.manager(preload=[name])
    service = env.service(m)

    async def go() -> None:
        await m.start()
        await m.apply_change(AliasChange(name, "production", "1", "2"))
        assert production_of(m, name) == "1"
        assert (await service.predict(request(name, 2.5))).version == "1"
        status = m.status(name)
        assert status["serving_version"] == "1"
        assert status["last_error"]["version"] == "2"
        assert "this model cannot be loaded" in status["last_error"]["error"]
        assert loaded_versions(m, name) == ["1"] and m.ready
        assert samples(m.metrics, "ml_model_swaps_total") == {}
        assert samples(m.metrics, "ml_errors_total")[(("kind", "load"), ("model", name))] == 1
        await m.stop()

    run(go)


def test_removing_aliases_stops_serving_them(env: Env) -> None:
    name = new_name()
    env.register(name, "echo", "echo", production="1", staging="2")
    m = env.manager(preload=[name, f"{name}@staging"])
    service = env.service(m)

    async def go() -> None:
        await m.start()
        await m.apply_change(AliasChange(name, "staging", "2", None))
        assert m.lookup(name, "staging") is None
        assert "staging" not in m.status(name)["aliases"]
        assert m.lookup(name, "2") is not None  # the version itself stays loaded
        env.registry.client.delete_registered_model_alias(name, "production")
        await m.apply_change(AliasChange(name, "production", "1", None))
        assert m.production(name) is None
        await m.pool.wait_closed()
        assert loaded_versions(m, name) == ["2"]
        with pytest.raises(NotFoundError, match="production"):
            await service.predict(request(name))
        await m.stop()

    run(go)


def test_an_evicted_production_version_is_reloaded_on_the_next_request(env: Env) -> None:
    """Regression: the pool evicted a production version behind the manager's back, which kept
    routing unpinned requests to the closed version (429 'shutting down' for ever)."""
    first, second = new_name("p"), new_name("p")
    env.register(first, "echo", production="1")
    env.register(second, "echo", production="1")
    m = env.manager(max_models=1)
    service = env.service(m)

    async def go() -> None:
        try:
            await service.predict(request(first))
            await service.predict(request(second))  # evicts first (the only candidate)
            await m.pool.wait_closed()
            assert loaded_versions(m, first) == []
            result = await service.predict(request(first, 6.0))
            assert result.prediction.predictions.tolist() == [6.0]
        finally:
            await m.stop()

    run(go)


def test_the_last_alias_move_wins_when_swaps_overlap(env: Env) -> None:
    """Regression: a slow load for an older alias target, finishing after a newer swap, used to
    switch production back to the stale version."""
    name = new_name()
    env.register(name, "echo", "gated", "echo", production="1")
    m = env.manager(preload=[name])
    gate = _models.GATES["gated"] = threading.Event()

    async def go() -> None:
        await m.start()
        try:
            slow_swap = asyncio.create_task(
                m.apply_change(AliasChange(name, "production", "1", "2")))
            await asyncio.sleep(0.3)  # version 2 is loading, held at the gate
            await m.apply_change(AliasChange(name, "production", "2", "3"))
            assert production_of(m, name) == "3"
            gate.set()
            await slow_swap
            assert m.status(name)["aliases"]["production"] == "3"
            assert production_of(m, name) == "3"
        finally:
            gate.set()
            await m.stop()

    try:
        run(go)
    finally:
        _models.GATES.pop("gated", None)

"""Fallback chains and circuit breakers on the live path (PredictionService over a real
ModelManager and real toy predictors; breakers on a clock the test drives)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from sibyl.errors import CircuitOpenError, InvalidInputError, PredictionError
from sibyl.monitoring import Metrics
from sibyl.registry import AliasChange
from sibyl.service import Inputs, ModelManager, PredictionService, PredictRequest, reset_circuits
from sibyl.service._fallbacks import parse_chain, previous_version
from sibyl.settings import CircuitSettings, FallbackSettings, Settings
from tests.toys import EchoPredictor, SlowPredictor, SwitchPredictor
from tests.unit.service.conftest import Env, new_name, request, run, samples, toy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


BREAKER = {"min_requests": 4, "max_error_rate": 0.5, "open_s": 10.0, "window_s": 30.0}


def build(
    env: Env,
    chains: dict[str, dict[str, Any]] | None = None,
    clock: FakeClock | None = None,
    **breaker: Any,
) -> tuple[ModelManager, PredictionService]:
    settings: Settings = env.settings()
    settings.breaker = CircuitSettings(**{**BREAKER, **breaker})
    settings.fallbacks = {k: FallbackSettings(**v) for k, v in (chains or {}).items()}
    m = ModelManager(env.registry, settings, Metrics(), clock=clock or FakeClock())
    return m, PredictionService(m, m.metrics, settings)


def fallbacks(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    return {
        (d["model"], d["reason"], d["answered_by"]): v
        for key, v in samples(metrics, "ml_fallback_total").items()
        for d in [dict(key)]
    }


def gauge(metrics: Metrics, model: str, version: str) -> float:
    return samples(metrics, "ml_circuit_state")[(("model", model), ("version", version))]


def transitions(metrics: Metrics, model: str, version: str) -> dict[str, float]:
    return {
        dict(k)["to"]: v
        for k, v in samples(metrics, "ml_circuit_transitions_total").items()
        if dict(k)["model"] == model and dict(k)["version"] == version and v
    }


def test_a_failing_version_is_answered_by_the_previous_one(env: Env) -> None:
    async def go() -> None:
        m, service = build(env, {"m": {"chain": ["previous"]}})
        m.add_loaded(toy("m", "1", EchoPredictor()))
        m.add_loaded(toy("m", "2", SwitchPredictor(failing=True)))  # replaces 1 in production
        result = await service.predict(request("m", 3.0))
        assert (result.model, result.version, result.fallback) == ("m", "1", "version 1")
        assert result.fallback_reason == "error"
        assert result.prediction.predictions.tolist() == [3.0]
        assert fallbacks(m.metrics) == {("m", "error", "previous"): 1}
        by_status = samples(m.metrics, "ml_prediction_requests_total")
        assert by_status[(("model", "m"), ("status", "error"), ("version", "2"))] == 1
        assert by_status[(("model", "m"), ("status", "success"), ("version", "1"))] == 0
        await m.stop()

    run(go)


def test_the_breaker_opens_skips_the_version_half_opens_and_closes_when_it_heals(
    env: Env,
) -> None:
    async def go() -> None:
        clock = FakeClock()
        m, service = build(env, {"m": {"chain": ["previous"]}}, clock)
        m.add_loaded(toy("m", "1", EchoPredictor()))
        flaky = SwitchPredictor(failing=True)
        m.add_loaded(toy("m", "2", flaky))
        for _ in range(4):  # min_requests failures: the circuit opens
            assert (await service.predict(request("m"))).fallback_reason == "error"
        assert gauge(m.metrics, "m", "2") == 2
        assert m.status("m")["loaded"][-1]["circuit"]["state"] == "open"
        calls = flaky.calls
        result = await service.predict(request("m"))
        assert (result.fallback, result.fallback_reason) == ("version 1", "circuit_open")
        assert flaky.calls == calls  # an open circuit does not call the version
        clock.advance(10.0)  # open_s: half-open
        assert gauge(m.metrics, "m", "2") == 1
        flaky.failing = False
        result = await service.predict(request("m", 5.0))  # the probe
        assert (result.version, result.fallback) == ("2", None)
        assert gauge(m.metrics, "m", "2") == 0
        assert transitions(m.metrics, "m", "2") == {"open": 1, "half_open": 1, "closed": 1}
        assert fallbacks(m.metrics) == {("m", "error", "previous"): 4,
                                        ("m", "circuit_open", "previous"): 1}
        by_status = samples(m.metrics, "ml_prediction_requests_total")
        assert by_status[(("model", "m"), ("status", "circuit_open"), ("version", "2"))] == 1
        await m.stop()

    run(go)


def test_a_failed_probe_reopens_the_circuit(env: Env) -> None:
    async def go() -> None:
        clock = FakeClock()
        m, service = build(env, {"m": {"chain": ["previous"]}}, clock)
        m.add_loaded(toy("m", "1", EchoPredictor()))
        sv = m.add_loaded(toy("m", "2", SwitchPredictor(failing=True)))
        for _ in range(4):
            await service.predict(request("m"))
        clock.advance(10.0)
        assert (await service.predict(request("m"))).fallback_reason == "error"  # the probe
        assert sv.breaker is not None
        snap = sv.breaker.snapshot()
        assert snap.state.value == "open" and snap.times_opened == 2
        assert "probe failed" in (snap.reason or "")
        await m.stop()

    run(go)


def test_without_a_chain_an_open_circuit_answers_503_with_retry_after(env: Env) -> None:
    async def go() -> None:
        clock = FakeClock()
        m, service = build(env, clock=clock)
        m.add_loaded(toy("m", "1", SwitchPredictor(failing=True)))
        for _ in range(4):
            with pytest.raises(PredictionError):
                await service.predict(request("m"))
        with pytest.raises(CircuitOpenError) as caught:
            await service.predict(request("m"))
        assert caught.value.retry_after == 10
        assert "circuit breaker is open" in caught.value.message
        clock.advance(4.2)
        with pytest.raises(CircuitOpenError) as caught:
            await service.predict(request("m"))
        assert caught.value.retry_after == 6
        counts = samples(m.metrics, "ml_prediction_requests_total")
        assert counts[(("model", "m"), ("status", "circuit_open"), ("version", "1"))] == 2
        assert counts[(("model", "m"), ("status", "error"), ("version", "1"))] == 4
        await m.stop()

    run(go)


def test_bad_input_and_shed_requests_are_no_verdict_on_the_version(env: Env) -> None:
    async def go() -> None:
        clock = FakeClock()
        m, service = build(env, {"m": {"chain": ["previous"]}}, clock)
        m.add_loaded(toy("m", "1", EchoPredictor()))
        flaky = SwitchPredictor(failing=True)
        sv = m.add_loaded(toy("m", "2", flaky))
        bad = PredictRequest("m", Inputs("rows", [[1.0]]))  # one column instead of two
        for _ in range(10):
            with pytest.raises(InvalidInputError):
                await service.predict(bad)
        assert sv.breaker is not None and sv.breaker.snapshot().calls == 0
        for _ in range(4):
            await service.predict(request("m"))
        clock.advance(10.0)  # half-open: one probe
        with pytest.raises(InvalidInputError):
            await service.predict(bad)  # not a probe: validated before the breaker is asked
        flaky.failing = False
        assert (await service.predict(request("m"))).fallback is None  # the probe closes it
        assert sv.breaker.snapshot().state.value == "closed"
        await m.stop()

    run(go)


def test_a_probe_that_ends_without_a_verdict_is_handed_back(env: Env) -> None:
    async def go() -> None:
        clock = FakeClock()
        m, service = build(env, clock=clock)
        sv = m.add_loaded(toy("m", "1", SlowPredictor(0.2)))
        assert sv.breaker is not None
        for _ in range(4):
            sv.breaker.record(False, 0.01)
        clock.advance(10.0)  # half-open: one probe
        probe = asyncio.create_task(service.predict(request("m")))
        await asyncio.sleep(0.05)  # the probe is with the model
        probe.cancel()  # the client went away: no verdict
        with pytest.raises(asyncio.CancelledError):
            await probe
        result = await service.predict(request("m", 4.0))  # may probe at once, and closes it
        assert (result.version, result.fallback) == ("1", None)
        assert sv.breaker.snapshot().state.value == "closed"
        await m.stop()

    run(go)


def test_a_timeout_goes_to_the_chain(env: Env) -> None:
    async def go() -> None:
        m, service = build(env, {"m": {"chain": ["rules"], "timeout_ms": 50}})
        m.add_loaded(toy("rules", "4", EchoPredictor()))
        m.add_loaded(toy("m", "1", SlowPredictor(0.5)))
        started = time.perf_counter()
        result = await service.predict(request("m", 2.0))
        assert time.perf_counter() - started < 0.4
        assert (result.model, result.version) == ("rules", "4")
        assert (result.fallback, result.fallback_reason) == ("model rules:4", "timeout")
        assert fallbacks(m.metrics) == {("m", "timeout", "rules"): 1}
        await m.stop()

    run(go)


def test_the_default_answers_when_every_other_member_fails(env: Env) -> None:
    async def go() -> None:
        default = {"default": 1, "probabilities": [0.2, 0.8], "classes": [0, 1]}
        m, service = build(env, {"m": {"chain": ["previous", "rules", default]}})
        m.add_loaded(toy("rules", "1", SwitchPredictor(failing=True)))
        m.add_loaded(toy("m", "1", SwitchPredictor(failing=True)))
        m.add_loaded(toy("m", "2", SwitchPredictor(failing=True)))
        result = await service.predict(request("m", 1.0, 2.0))
        assert (result.fallback, result.engine, result.version) == ("default", "default", "2")
        assert result.prediction.predictions.tolist() == [1, 1]
        np.testing.assert_allclose(result.prediction.probabilities, [[0.2, 0.8], [0.2, 0.8]])
        assert fallbacks(m.metrics) == {("m", "error", "default"): 1}
        await m.stop()

    run(go)


def test_when_every_member_fails_the_primarys_error_is_raised_naming_them(env: Env) -> None:
    async def go() -> None:
        m, service = build(env, {"m": {"chain": ["previous", "ghost"]}})
        m.add_loaded(toy("m", "1", SwitchPredictor(failing=True)))
        m.add_loaded(toy("m", "2", SwitchPredictor(failing=True)))
        with pytest.raises(PredictionError) as caught:
            await service.predict(request("m"))
        message = caught.value.message
        assert message.startswith("model 'm:2' raised while predicting")
        assert str(caught.value) == message
        assert "every fallback failed too: previous: model 'm:1' raised" in message
        assert "ghost: " in message
        assert fallbacks(m.metrics) == {("m", "error", "none"): 1}
        await m.stop()

    run(go)


def test_on_picks_the_failures_the_chain_answers(env: Env) -> None:
    async def go() -> None:
        m, service = build(env, {"m": {"chain": ["previous"], "on": ["circuit_open"]}})
        m.add_loaded(toy("m", "1", EchoPredictor()))
        m.add_loaded(toy("m", "2", SwitchPredictor(failing=True)))
        for _ in range(4):
            with pytest.raises(PredictionError):
                await service.predict(request("m"))
        assert (await service.predict(request("m"))).fallback_reason == "circuit_open"
        await m.stop()

    run(go)


def test_a_pinned_version_that_fails_is_answered_by_production(env: Env) -> None:
    async def go() -> None:
        m, service = build(env, {"m": {"chain": ["previous"]}})
        m.add_loaded(toy("m", "1", EchoPredictor()))
        m.add_loaded(toy("m", "2", SwitchPredictor(failing=True)), production=False)
        result = await service.predict(request("m", ref="2"))
        assert (result.version, result.fallback) == ("1", "version 1")
        await m.stop()

    run(go)


def test_slow_calls_open_the_circuit(env: Env) -> None:
    async def go() -> None:
        m, service = build(env, {"m": {"chain": ["previous"]}}, slow_call_ms=20,
                           max_slow_rate=0.5)
        m.add_loaded(toy("m", "1", EchoPredictor()))
        m.add_loaded(toy("m", "2", SlowPredictor(0.05)))
        for _ in range(4):  # slow but answered
            assert (await service.predict(request("m"))).fallback is None
        result = await service.predict(request("m"))
        assert (result.fallback, result.fallback_reason) == ("version 1", "circuit_open")
        reason = m.status("m")["loaded"][-1]["circuit"]["reason"]
        assert "took over 0.02 s" in reason
        await m.stop()

    run(go)


def test_concurrent_requests_to_a_failing_version_are_all_answered(env: Env) -> None:
    async def go() -> None:
        m, service = build(env, {"m": {"chain": ["previous"]}})
        m.add_loaded(toy("m", "1", EchoPredictor()))
        m.add_loaded(toy("m", "2", SwitchPredictor(failing=True)))
        results = []
        for wave in range(6):  # 50 at once: within batching.max_concurrency (64), not shed
            results += await asyncio.gather(*(service.predict(request("m", float(i)))
                                              for i in range(wave * 50, wave * 50 + 50)))
        assert {r.fallback for r in results} == {"version 1"}
        assert [r.prediction.predictions[0] for r in results] == [float(i) for i in range(300)]
        assert sum(fallbacks(m.metrics).values()) == 300
        await m.stop()

    run(go)


def test_reset_closes_the_circuits_of_a_model(env: Env) -> None:
    async def go() -> None:
        m, service = build(env)
        sv = m.add_loaded(toy("m", "1", SwitchPredictor(failing=True)))
        for _ in range(4):
            with pytest.raises(PredictionError):
                await service.predict(request("m"))
        assert reset_circuits(m.pool.versions("m"), "9") == []
        assert reset_circuits(m.pool.versions("m")) == ["1"]
        assert sv.breaker is not None and sv.breaker.snapshot().state.value == "closed"
        assert transitions(m.metrics, "m", "1") == {"open": 1, "closed": 1}
        await m.stop()

    run(go)


def test_breakers_can_be_turned_off_per_model(env: Env) -> None:
    async def go() -> None:
        m, _ = build(env)
        m.settings.breaker_overrides = {"free": CircuitSettings(enabled=False)}
        assert m.add_loaded(toy("free", "1", EchoPredictor())).breaker is None
        assert m.add_loaded(toy("m", "1", EchoPredictor())).breaker is not None
        assert m.status("free")["loaded"][0]["circuit"] is None
        await m.stop()

    run(go)


# -- the registry: which version was "previous", warming, hot swap ---------------------------

def test_previous_is_the_tagged_version_else_the_highest_lower_live_one(env: Env) -> None:
    tagged, untagged = new_name("tagged"), new_name("untagged")
    env.register(tagged, "echo", "echo", "echo")
    env.registry.promote(tagged, "1")
    env.registry.promote(tagged, "3")  # 1 → archived, recorded as previous production
    assert previous_version(env.registry, tagged, "3") == "1"
    env.register(untagged, "echo", "echo", "echo", "echo", production="4")
    env.registry.set_stage(untagged, "3", "archived")
    assert previous_version(env.registry, untagged, "4") == "2"
    assert previous_version(env.registry, untagged, "1") is None


def test_members_are_warmed_when_the_production_version_loads(env: Env) -> None:
    name, rules = new_name("main"), new_name("rules")
    env.register(name, "echo", "echo")
    env.registry.promote(name, "1")
    env.registry.promote(name, "2")
    env.register(rules, "echo", production="1")

    async def go() -> dict[str, Any] | None:
        m, service = build(env, {name: {"chain": ["previous", rules, {"default": 0}]}})
        await m.get(name, None)  # the production version, 2
        deadline = time.monotonic() + 60
        while m.lookup(name, "1") is None or m.lookup(rules, None) is None:
            assert time.monotonic() < deadline, "fallback members were not warmed"
            await asyncio.sleep(0.05)
        described = service.fallbacks.describe(name)
        await m.stop()
        return described

    assert run(go) == {"chain": ["previous", rules, "default"],
                       "on": ["circuit_open", "error", "timeout"], "timeout_ms": None,
                       "previous": {"of": "2", "version": "1"}}


def test_a_hot_swap_keeps_the_replaced_version_loaded_as_previous(env: Env) -> None:
    name, plain = new_name("swap"), new_name("plain")
    env.register(name, "echo", "echo", production="1")
    env.register(plain, "echo", "echo", production="1")

    async def go() -> None:
        m, service = build(env, {name: {"chain": ["previous"]}})
        for model in (name, plain):
            await m.get(model, None)
            env.registry.client.set_registered_model_alias(model, "production", "2")
            await m.apply_change(AliasChange(model, "production", "1", "2"))
        await m.pool.wait_closed()
        assert m.lookup(name, "1") is not None  # kept: it is the chain's "previous" now
        assert m.lookup(plain, "1") is None  # no chain: unloaded as before
        assert service.fallbacks.describe(name)["previous"] == {"of": "2", "version": "1"}
        await m.stop()

    run(go)


# -- configuration --------------------------------------------------------------------------

@pytest.mark.parametrize(("chain", "field"), [
    (["previous", {"default": 0}, "rules"], "fallbacks.m.chain[1]"),
    (["rules:two"], "fallbacks.m.chain[0]"),
    (["rules@"], "fallbacks.m.chain[0]"),
    (["previous", "previous"], "fallbacks.m.chain"),
    ([{"default": 0, "probabilities": [0.5, 0.5], "classes": [0]}],
     "fallbacks.m.chain[0].probabilities"),
])
def test_malformed_chains_are_refused_naming_the_member(chain: list[Any], field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_chain("m", FallbackSettings(chain=chain))
    assert caught.value.field == field


def test_chains_and_breakers_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIBYL_FALLBACKS", '{"churn": {"chain": ["previous", "churn-rules@prod'
                       'uction", {"default": 0}], "on": ["error", "timeout"], "timeout_ms": 300}}')
    monkeypatch.setenv("SIBYL_BREAKER__MIN_REQUESTS", "50")
    monkeypatch.setenv("SIBYL_BREAKER_OVERRIDES", '{"churn": {"slow_call_ms": 200}}')
    s = Settings()
    chain = parse_chain("churn", s.fallbacks["churn"])
    assert [(m.label, m.model, m.ref) for m in chain.members] == [
        ("previous", None, None), ("churn-rules@production", "churn-rules", "production"),
        ("default", None, None)]
    assert chain.timeout_s == 0.3 and {k.value for k in chain.on} == {"error", "timeout"}
    assert s.breaker_for("other").min_requests == 50
    assert s.breaker_for("churn").slow_call_ms == 200

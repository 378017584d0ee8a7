"""What alert rules read in the server, on real objects.

* ``RequestWindows``: success rate and p95 latency of a model over a trailing window, from the
  process's own Prometheus series — per window (with a controllable clock), excluding the
  caller's mistakes, surviving a series that restarts from zero.
* ``AlertService``: ``accuracy_drop`` = the version's logged accuracy (real MLflow registry)
  minus live accuracy; default rules for every model that gets a serving version; the
  Prometheus series it adds.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sibyl.monitoring import Metrics, Status
from sibyl.monitoring.alerts import AlertSettings, InMemoryRuleRepository
from sibyl.service._alerts import AlertService
from sibyl.service._request_windows import RequestWindows
from tests.toys import EchoPredictor
from tests.unit.service.conftest import Env, new_name, run, samples, toy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_success_rate_and_latency_are_per_window() -> None:
    metrics, clock = Metrics(), Clock()
    windows = RequestWindows(metrics, clock=clock)
    assert windows.success_rate("m", 60) is None and windows.latency_ms("m", 60) is None
    vm = metrics.for_version("m", "1")
    for _ in range(10):
        vm.success(0.02, 1)
        vm.failure(Status.ERROR, 0.2)
        vm.failure(Status.INVALID, 0.001)  # the caller's mistake: counted neither way
    metrics.for_version("other", "1").success(5.0, 1)
    clock.now += 10
    assert windows.success_rate("m", 60) == pytest.approx(0.5)  # since start
    assert windows.success_rate(None, 60) == pytest.approx(11 / 21)  # every model
    clock.now += 90  # the first 20 requests are now older than a 60 s window
    for _ in range(100):
        vm.success(0.02, 1)
    assert windows.success_rate("m", 60) == pytest.approx(1.0)
    # 100 requests in the (0.01, 0.025] bucket: p95 interpolated at rank 95 of 100
    assert windows.latency_ms("m", 60) == pytest.approx(10 + 15 * 0.95)
    assert windows.success_rate("m", 200) == pytest.approx(110 / 120)


def test_a_series_restarting_from_zero_counts_from_zero() -> None:
    metrics, clock = Metrics(), Clock()
    windows = RequestWindows(metrics, clock=clock)
    for _ in range(40):
        metrics.for_version("m", "1").success(0.01, 1)
    clock.now += 100
    assert windows.success_rate("m", 60) == 1.0  # snapshot with 40 successes
    metrics.forget_version("m", "1")  # unloaded …
    vm = metrics.for_version("m", "1")  # … and loaded again: the counter starts at 0
    vm.failure(Status.ERROR, 0.01)
    vm.success(0.01, 1)
    clock.now += 100
    assert windows.success_rate("m", 60) == pytest.approx(0.5)


class LiveQuality:
    """The live-quality service's reading interface, answering a fixed window."""

    def __init__(self, accuracy: float | None) -> None:
        self.accuracy = accuracy
        self.asked: list[tuple[str, float]] = []

    def current(self, model: str, window_s: float) -> dict[str, Any]:
        self.asked.append((model, window_s))
        return {"accuracy": self.accuracy, "labelled_rows": 120.0}


def test_accuracy_drop_is_the_logged_accuracy_minus_the_live_one(env: Env) -> None:
    name = new_name("acc")
    client = env.registry.client
    client.create_registered_model(name)
    experiment = client.create_experiment(new_name("runs"))
    with_metric = client.create_run(experiment).info.run_id
    client.log_metric(with_metric, "val_accuracy", 0.91)
    client.create_model_version(name, "file:///nowhere", run_id=with_metric)
    client.create_model_version(name, "file:///nowhere", run_id=client.create_run(
        experiment).info.run_id)  # fmt: skip
    serving = {"version": "1"}
    service = AlertService(AlertSettings(enabled=False), InMemoryRuleRepository(), Metrics(),
                           env.registry, serving_version=lambda m: serving["version"])  # fmt: skip
    value = service.source.value
    assert value("accuracy_drop", {"model": name}, 3600) is None  # no live quality here
    service.quality = LiveQuality(0.81)
    assert value("accuracy_drop", {"model": name}, 3600) == pytest.approx(0.10)
    assert service.quality.asked == [(name, 3600)]
    service.quality = LiveQuality(None)  # no labels yet
    assert value("accuracy_drop", {"model": name}, 3600) is None
    serving["version"] = "2"  # its run logged no accuracy
    service.quality = LiveQuality(0.81)
    assert value("accuracy_drop", {"model": name}, 3600) is None
    assert value("drift_score_max", {"model": name}, 3600) is None  # drift not wired


def test_served_models_get_default_rules_and_the_alert_series_exist(env: Env) -> None:
    metrics = Metrics()
    service = AlertService(AlertSettings(enabled=False), InMemoryRuleRepository(), metrics,
                           env.registry)  # fmt: skip

    async def scenario() -> list[str]:
        manager = env.manager()
        manager.on_production(service.on_production)
        manager.add_loaded(toy("early", "1", EchoPredictor()))  # before start: installed then
        await service.start()
        manager.add_loaded(toy("late", "1", EchoPredictor()))  # installed in a worker thread
        for _ in range(500):
            names = [r.name for r in service.engine.list_rules()]
            if "late:drift" in names:
                break
            await asyncio.sleep(0.01)
        await service.stop()
        return names

    names = run(scenario)
    for model in ("early", "late"):
        assert {f"{model}:{r}" for r in ("success_rate", "latency_p95", "drift",
                                         "accuracy_drop")} <= set(names)  # fmt: skip
    gauges = samples(metrics, "ml_alerts")
    assert len(gauges) == 6 and set(gauges.values()) == {0.0}  # pending/firing × 3 severities
    service.engine.delete_rule("early:drift")
    service.install_defaults(["early"])  # once per process: a deleted default stays deleted
    assert "early:drift" not in {r.name for r in service.engine.list_rules()}

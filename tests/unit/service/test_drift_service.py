"""Drift on the serving path: the observing predictor and the DriftService, on real objects.

* The observing predictor hands every (sampled) model batch to the version's monitor and never
  lets a failed observation change or fail the prediction; failures are counted.
* The DriftService reads a version's profile from the real registry when the manager loads it,
  judges live traffic (in-distribution → ok, one feature shifted → that feature drifts),
  publishes ``ml_drift_score`` only for the columns of served versions and removes the series
  when the version is unloaded; classifiers get a label-free accuracy estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from sibyl.errors import InvalidInputError, NotFoundError
from sibyl.monitoring import Metrics
from sibyl.monitoring.drift import DriftMonitor, ReferenceProfile, build_profile
from sibyl.registry import save_profile
from sibyl.runtime.loader import LoadedModel
from sibyl.runtime.types import Batch, Prediction, Task
from sibyl.service import ModelManager, PredictionService
from sibyl.service._drift import DriftService
from sibyl.service._drift_watch import ObservingPredictor, VersionWatch
from sibyl.settings import DriftSettings
from tests.toys import ClassifierToy, EchoPredictor
from tests.unit.service.conftest import SCHEMA, Env, new_name, run, samples
from tests.unit.service.conftest import request as predict_request

SETTINGS = DriftSettings(window_rows=600, min_rows=400, report_interval_s=3600)


def reference(n: int = 4000, seed: int = 0, extra: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    if extra:
        frame["zzz"] = rng.normal(size=n)  # a column the served model does not take
    return frame


def profile_of(frame: pd.DataFrame) -> ReferenceProfile:
    return build_profile(frame, (frame["a"] + frame["b"]).to_numpy())


class LengthPredictor:
    """Predicts 0 for every row of any batch (it reads nothing but the length)."""

    def predict(self, batch: Batch) -> Prediction:
        return Prediction(np.zeros(len(batch)))


class ExplodingMonitor(DriftMonitor):
    """A monitor with a bug: every observation raises."""

    def observe(self, batch: Any, outputs: Any = None, *, now: float | None = None) -> int:
        raise RuntimeError("bug in the monitor")


def test_observing_predictor_never_fails_a_prediction_and_counts_failures() -> None:
    profile = profile_of(reference())
    failures: list[BaseException] = []
    watch = VersionWatch(
        "m",
        "1",
        monitor=DriftMonitor(profile, columns=("a", "b")),
        fold_rows=1,
        on_failure=lambda w, exc: failures.append(exc),
    )
    observing = ObservingPredictor(LengthPredictor(), watch)
    good = np.zeros((5, 2))
    assert observing.predict(good).predictions.tolist() == [0.0] * 5
    not_records = [[1.0, 2.0], [3.0, 4.0]]  # a list batch must hold records: unreadable
    assert observing.predict(not_records).predictions.tolist() == [0.0, 0.0]
    assert isinstance(failures[-1], InvalidInputError)
    watch.replace_monitor(ExplodingMonitor(profile, columns=("a", "b")))
    assert observing.predict(good).predictions.tolist() == [0.0] * 5
    assert isinstance(failures[-1], RuntimeError)
    assert (watch.batches, watch.observed_batches, watch.observed_rows) == (3, 1, 5)
    assert watch.failures == 2 and "bug in the monitor" in str(watch.last_error)


def test_observing_predictor_samples_every_kth_batch() -> None:
    monitor = DriftMonitor(profile_of(reference()), columns=("a", "b"))
    watch = VersionWatch("m", "1", monitor=monitor, every=3, fold_rows=1)
    observing = ObservingPredictor(EchoPredictor(), watch)
    for _ in range(9):
        observing.predict(np.ones((4, 2)))
    assert (watch.batches, watch.observed_batches, monitor.rows()) == (9, 3, 12)


def test_small_batches_are_folded_together_and_a_bad_one_alone() -> None:
    monitor = DriftMonitor(profile_of(reference()), columns=("a", "b"))
    failures: list[BaseException] = []
    watch = VersionWatch(
        "m", "1", monitor=monitor, fold_rows=4, on_failure=lambda w, exc: failures.append(exc)
    )
    observing = ObservingPredictor(LengthPredictor(), watch)
    for _ in range(10):
        observing.predict(np.ones((1, 2)))
    assert (monitor.rows(), watch.describe()["buffered_rows"]) == (8, 2)  # two folds of 4
    watch.flush()
    assert (monitor.rows(), watch.observed_batches, watch.failures) == (10, 10, 0)
    observing.predict(np.ones((1, 2)))
    observing.predict(np.ones(1))  # 1-D: unreadable; the group fails, then one by one
    observing.predict(np.ones((2, 2)))
    assert (monitor.rows(), watch.failures, len(failures)) == (13, 1, 1)


async def _send(service: PredictionService, name: str, frame: pd.DataFrame) -> None:
    for start in range(0, len(frame), 50):
        chunk = frame.iloc[start : start + 50][["a", "b"]].to_numpy().tolist()
        req = predict_request(name)
        await service.predict(type(req)(name, type(req.inputs)("rows", chunk)))


def _scores(metrics: Metrics, model: str) -> dict[tuple[str, str], float]:
    return {
        (dict(k)["feature"], dict(k)["method"]): v
        for k, v in samples(metrics, "ml_drift_score").items()
        if dict(k)["model"] == model
    }


def test_profile_read_at_load_judges_traffic_and_series_follow_the_version(env: Env) -> None:
    name = new_name("drift")
    env.register(name, "echo", production="1")
    save_profile(env.registry, name, "1", profile_of(reference(extra=True)))

    async def scenario() -> dict[str, Any]:
        manager = env.manager()
        drift = DriftService(
            SETTINGS, env.registry, manager.metrics.registry, serving_version=lambda m: "1"
        )
        manager.add_serving_hook(drift)
        service = env.service(manager)
        await manager.get(name, None)  # loads: the profile is read in the loader thread
        out: dict[str, Any] = {"before": drift.report(name)}
        await _send(service, name, reference(600, seed=1))
        drift.refresh()
        out["ok"] = drift.report(name)
        out["ok_scores"] = _scores(manager.metrics, name)
        shifted = reference(600, seed=2)
        shifted["a"] += 1.0
        await _send(service, name, shifted)
        drift.refresh()
        out["drift"] = drift.report(name)
        out["full"] = drift.drift_report(name)
        out["scores"] = _scores(manager.metrics, name)
        await manager.unload(name, "1")
        out["after"] = _scores(manager.metrics, name)
        out["report_after"] = drift.report(name)
        return out

    out = run(scenario)
    assert out["before"]["status"] == "insufficient_data" and out["before"]["max_score"] is None
    assert out["ok"]["status"] == "ok" and out["ok"]["drifted_features"] == []
    assert out["ok"]["max_score"] is not None and out["ok"]["max_score"] < 0.1
    assert out["drift"]["status"] == "drift" and "a" in out["drift"]["drifted_features"]
    assert "b" not in out["drift"]["drifted_features"]
    assert out["scores"][("a", "psi")] > 0.2 > out["scores"][("b", "psi")]
    features = {f for f, _ in out["scores"]}
    assert features == {"a", "b", "output:prediction"}  # zzz is not a model input: no series
    assert out["full"]["version"] == "1" and out["full"]["observed"]["observed_rows"] == 1200
    assert out["full"]["estimated_performance"] is None  # a regressor: no CBPE
    assert out["after"] == {} and out["report_after"]["status"] == "unknown"


def test_a_version_without_profile_is_not_watched_until_one_is_set(env: Env) -> None:
    name = new_name("plain")
    env.register(name, "echo", production="1")

    async def scenario() -> tuple[Any, ...]:
        manager = env.manager()
        drift = DriftService(SETTINGS, env.registry, manager.metrics.registry)
        manager.add_serving_hook(drift)
        service = env.service(manager)
        await manager.get(name, None)
        before = drift.report(name)
        with pytest.raises(NotFoundError, match="sibyl monitoring profile"):
            drift.drift_report(name)
        assert drift.set_profile(name, "1", profile_of(reference()))
        assert not drift.set_profile(name, "2", profile_of(reference()))  # not served
        await _send(service, name, reference(500, seed=3))
        drift.refresh()
        return before, drift.report(name)

    before, after = run(scenario)
    assert before["status"] == "unknown"
    assert after["status"] == "ok" and after["version"] == "1"


def test_a_classifier_gets_a_label_free_accuracy_estimate(env: Env) -> None:
    metrics = Metrics()
    drift = DriftService(SETTINGS, None, metrics.registry)

    async def scenario() -> tuple[float | None, dict[str, Any], dict[Any, float]]:
        manager = ModelManager(env.registry, env.settings(), metrics)
        manager.add_serving_hook(drift)
        loaded = LoadedModel.from_predictor(
            "clf", "3", ClassifierToy(), SCHEMA, task=Task.CLASSIFIER, classes=(0, 1)
        )
        manager.add_loaded(loaded)  # served from memory: wrapped without prepare
        service = PredictionService(manager, metrics, env.settings())
        await _send(service, "clf", reference(600, seed=4))
        drift.refresh()
        body = drift.drift_report("clf")
        gauges = samples(metrics, "ml_model_estimated_accuracy")
        await manager.unload("clf", "3")
        return (
            drift.estimated_accuracy_of("clf"),
            body,
            gauges | {"after": len(samples(metrics, "ml_model_estimated_accuracy"))},
        )

    accuracy, body, gauges = run(scenario)
    # P(class 1) = sigmoid(a + b): the expected accuracy is E[max(p, 1 - p)] ≈ 0.76 here
    assert body["estimated_performance"]["metrics"]["accuracy"] == pytest.approx(0.76, abs=0.04)
    assert body["status"] == "unknown"  # no profile: no drift, but an estimate
    assert gauges[(("model", "clf"), ("version", "3"))] == pytest.approx(
        body["estimated_performance"]["metrics"]["accuracy"]
    )
    assert gauges["after"] == 0 and accuracy is None

"""Ensembles on the service layer: the weighted mean of the members' answers (probabilities
aligned by class label), failing members skipped and reported, a clear error when too few
answer, member deadlines, and the validation of members and endpoint."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from sibyl.errors import (
    BackendUnavailableError,
    ConflictError,
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
)
from sibyl.monitoring import Metrics
from sibyl.runtime.loader import LoadedModel
from sibyl.runtime.types import Batch, Prediction, Task
from sibyl.service import (
    EnsembleBook,
    ExperimentService,
    Inputs,
    ModelManager,
    NewEnsemble,
    NewExperiment,
    OutcomeWriter,
    PredictionService,
    PredictRequest,
    PredictResult,
)
from sibyl.service._ensemble_book import wire_ensembles
from sibyl.service._ensemble_combine import Combine, combine
from sibyl.store import ExperimentKind, Variant, get_store
from tests.toys import FAIL_MARKER, EchoPredictor
from tests.unit.service.conftest import SCHEMA, Env, new_name, request, run


class ProbaToy:
    """Two-class toy: P(classes[1]) = sigmoid(scale · row sum); raises on ``FAIL_MARKER``."""

    def __init__(self, scale: float, classes: tuple[Any, Any] = (0, 1), delay: float = 0.0):
        self.scale, self.classes, self.delay = scale, classes, delay

    def predict(self, batch: Batch) -> Prediction:
        x = np.asarray(batch, dtype=np.float64)
        if (x == FAIL_MARKER).any():
            raise RuntimeError("toy classifier failure")
        time.sleep(self.delay)
        p1 = 1 / (1 + np.exp(-self.scale * x.sum(axis=1)))
        probs = np.column_stack([1 - p1, p1])
        return Prediction(np.asarray(self.classes)[(p1 > 0.5).astype(int)], probs, self.classes)


class ValueToy(EchoPredictor):
    """Regressor toy: ``scale`` · row sum."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def predict(self, batch: Batch) -> Prediction:
        return Prediction(super().predict(batch).predictions * self.scale)


def loaded(name: str, version: str, predictor: Any, task: Task) -> LoadedModel:
    classes = getattr(predictor, "classes", None)
    return LoadedModel.from_predictor(name, version, predictor, SCHEMA, task=task, classes=classes)


class Stack:
    """A manager serving model ``clf`` v1–v4 (classifiers; v3 fails on FAIL_MARKER like every
    toy, v4 has other classes), ``slow`` v1 (a classifier taking 0.5 s) and ``reg`` v1–v2."""

    def __init__(self, env: Env) -> None:
        settings = env.settings()
        self.manager = ModelManager(env.registry, settings, Metrics())
        self.clf = new_name("clf")
        toys = {
            (self.clf, "1"): ProbaToy(1.0),
            (self.clf, "2"): ProbaToy(3.0, classes=(1, 0)),  # columns in the other order
            (self.clf, "4"): ProbaToy(1.0, classes=("no", "yes")),
            ("slow", "1"): ProbaToy(2.0, delay=0.5),
        }
        for (name, version), toy in toys.items():
            self.manager.add_loaded(loaded(name, version, toy, Task.CLASSIFIER), production=False)
        for version, scale in (("1", 1.0), ("2", 3.0)):
            self.manager.add_loaded(
                loaded("reg", version, ValueToy(scale), Task.REGRESSOR), production=False
            )
        store = get_store(f"sqlite:///{env.tmp / 'ensembles.db'}")
        self.experiments = ExperimentService(store, OutcomeWriter(store), refresh_interval_s=0)
        self.service = PredictionService(
            self.manager, self.manager.metrics, settings, self.experiments
        )
        self.metrics = CollectorRegistry()
        self.book: EnsembleBook = wire_ensembles(
            self.experiments, self.service, self.manager, self.metrics
        )

    async def start(self) -> None:
        await self.experiments.start()

    async def stop(self) -> None:
        await self.book.close()
        await self.experiments.stop()
        await self.manager.stop()

    async def ensemble(self, name: str, *members: tuple[str, str, float], **config: Any) -> str:
        variants = [
            Variant(f"m{i}", model, version=v, weight=w) for i, (model, v, w) in enumerate(members)
        ]
        await self.book.create(NewEnsemble(name, variants, config=config))
        return name

    def failures(self, ensemble: str, member: str) -> float:
        labels = {"ensemble": ensemble, "member": member}
        return self.metrics.get_sample_value("ml_ensemble_member_failures_total", labels) or 0.0


def on(env: Env, body: Any) -> None:
    async def go() -> None:
        stack = Stack(env)
        await stack.start()
        try:
            await body(stack)
        finally:
            await stack.stop()

    run(go)


def weighted_proba(results: list[PredictResult], weights: list[float]) -> np.ndarray[Any, Any]:
    """The expected ensemble probabilities in the first result's class order."""
    order = list(results[0].prediction.classes or ())
    total = sum(weights)
    out = np.zeros((len(results[0].prediction), len(order)))
    for r, w in zip(results, weights, strict=True):
        probs = np.asarray(r.prediction.probabilities)
        for j, label in enumerate(r.prediction.classes or ()):
            out[:, order.index(label)] += w / total * probs[:, j]
    return out


SUMS = (0.4, -0.3, 1.2, -2.0)


def test_classifier_ensemble_is_the_weighted_mean_of_its_members_pinned(env: Env) -> None:
    async def body(s: Stack) -> None:
        name = await s.ensemble(new_name("blend"), (s.clf, "1", 3.0), (s.clf, "2", 1.0))
        got = await s.service.predict(request(name, *SUMS))
        pinned = [await s.service.predict(request(s.clf, *SUMS, ref=v)) for v in ("1", "2")]
        expected = weighted_proba(pinned, [3.0, 1.0])
        assert got.prediction.classes == (0, 1)
        np.testing.assert_allclose(got.prediction.probabilities, expected, rtol=0, atol=1e-12)
        assert list(got.prediction.predictions) == list(expected.argmax(axis=1))
        assert (got.model, got.engine, got.task) == (name, "ensemble", Task.CLASSIFIER)
        assert got.version == f"{s.clf}:1+{s.clf}:2"
        assert got.members is not None
        assert [(m.name, m.version, m.share, m.ok) for m in got.members] == [
            ("m0", "1", 0.75, True),
            ("m1", "2", 0.25, True),
        ]

    on(env, body)


def test_regressor_ensemble_averages_values(env: Env) -> None:
    async def body(s: Stack) -> None:
        name = await s.ensemble(new_name("reg"), ("reg", "1", 1.0), ("reg", "2", 1.0))
        got = await s.service.predict(request(name, 1.0, 2.0))
        np.testing.assert_allclose(got.prediction.predictions, [2.0, 4.0])  # (1x + 3x) / 2
        assert got.task is Task.REGRESSOR and got.prediction.probabilities is None

    on(env, body)


def test_a_failing_member_is_skipped_reported_and_counted(env: Env) -> None:
    async def body(s: Stack) -> None:
        name = await s.ensemble(
            new_name("flaky"), (s.clf, "1", 1.0), ("slow", "1", 1.0), member_timeout_ms=100
        )
        got = await s.service.predict(request(name, 0.5))
        assert got.members is not None
        ok, late = got.members
        assert (ok.ok, ok.share, late.ok, late.share) == (True, 1.0, False, 0.0)
        assert late.error is not None and late.error.startswith("DeadlineExceededError")
        alone = await s.service.predict(request(s.clf, 0.5, ref="1"))
        np.testing.assert_array_equal(got.prediction.probabilities, alone.prediction.probabilities)
        assert got.version == f"{s.clf}:1"
        assert s.failures(name, "m1") == 1 and s.failures(name, "m0") == 0

    on(env, body)


def test_too_few_answers_fail_with_every_members_error(env: Env) -> None:
    async def body(s: Stack) -> None:
        name = await s.ensemble(new_name("down"), (s.clf, "1", 1.0), (s.clf, "2", 1.0))
        with pytest.raises(BackendUnavailableError) as info:
            await s.service.predict(request(name, FAIL_MARKER))
        msg = info.value.message
        assert "0 of 2 members answered" in msg
        for member, version in (("m0", "1"), ("m1", "2")):
            assert f"member '{member}' ({s.clf} version {version}): PredictionError" in msg
        assert s.failures(name, "m0") == s.failures(name, "m1") == 1

        strict = await s.ensemble(
            new_name("strict"),
            (s.clf, "1", 1.0),
            ("slow", "1", 1.0),
            min_members=2,
            member_timeout_ms=100,
        )
        # the only failures were deadlines: 504, as for a model that answers too late
        with pytest.raises(DeadlineExceededError, match="1 of 2 members answered"):
            await s.service.predict(request(strict, 0.5))
        # every member refusing the input as invalid is the caller's fault: 400, not 503
        bad = PredictRequest(name, Inputs("records", [{"zzz": 1.0}]))
        with pytest.raises(InvalidInputError, match="could not answer") as info:
            await s.service.predict(bad)
        assert info.value.field is not None

    on(env, body)


def test_an_ensemble_has_no_versions_and_other_models_are_untouched(env: Env) -> None:
    async def body(s: Stack) -> None:
        name = await s.ensemble(new_name("plain"), (s.clf, "1", 1.0), (s.clf, "2", 1.0))
        with pytest.raises(InvalidInputError) as info:
            await s.service.predict(request(name, 1.0, ref="1"))
        assert info.value.field == "version"
        plain = await s.service.predict(request(s.clf, 1.0, ref="1"))
        assert plain.members is None and plain.version == "1"

    on(env, body)


def test_validation_names_the_member_or_setting_at_fault(env: Env) -> None:
    async def body(s: Stack) -> None:
        def members(*refs: tuple[str, str]) -> list[Variant]:
            return [Variant(f"m{i}", m, version=v) for i, (m, v) in enumerate(refs)]

        cases: list[tuple[list[Variant], dict[str, Any], str]] = [
            (members((s.clf, "1"), ("reg", "1")), {}, "variants"),  # classifier + regressor
            (members((s.clf, "1"), (s.clf, "4")), {}, "variants"),  # other classes
            (members((s.clf, "1"), ("no-such-model", "1")), {}, "variants[1]"),
            (members((s.clf, "1"), (s.clf, "1")), {"min_members": 3}, "config.min_members"),
            (members((s.clf, "1"), (s.clf, "2")), {"combine": "mean"}, "config.combine"),
            (members((s.clf, "1"), (s.clf, "2")), {"combine": "vote"}, "config.combine"),
            (
                members((s.clf, "1"), (s.clf, "2")),
                {"member_timeout_ms": 0},
                "config.member_timeout_ms",
            ),
            (
                [Variant("a", "", version="1"), Variant("b", s.clf, version="1")],
                {},
                "variants[0].model",
            ),
        ]
        for variants, config, field in cases:
            with pytest.raises(InvalidInputError) as info:
                await s.book.create(NewEnsemble(new_name("bad"), variants, config=config))
            assert info.value.field == field, (field, info.value.message)
        with pytest.raises(ConflictError, match="is a registered model"):
            await s.book.create(NewEnsemble(s.clf, members((s.clf, "1"), (s.clf, "2"))))
        # the generic experiments API creates the same thing as a draft
        exp = await s.experiments.create(
            NewExperiment(
                "draft-blend",
                "draft-endpoint",
                members((s.clf, "1"), (s.clf, "2")),
                kind=ExperimentKind.ENSEMBLE,
            )
        )
        assert exp.routing == {
            "combine": Combine.MEAN_PROBA.value,
            "task": "classifier",
            "min_members": 1,
            "member_timeout_ms": None,
        }

    on(env, body)


def test_create_list_show_stop(env: Env) -> None:
    async def body(s: Stack) -> None:
        name = await s.ensemble(new_name("life"), (s.clf, "1", 1.0), (s.clf, "2", 2.0))
        assert name in s.book.endpoints
        with pytest.raises(ConflictError, match="already serves endpoint"):
            await s.book.create(
                NewEnsemble(
                    new_name("twin"),
                    [Variant("a", s.clf, version="1"), Variant("b", s.clf, version="2")],
                    endpoint=name,
                )
            )
        assert [e.name for e in await s.book.list()] == [name]
        assert (await s.book.get(name)).status == "running"
        stopped = await s.book.stop(name)
        assert stopped.status == "stopped" and name not in s.book.endpoints
        with pytest.raises(NotFoundError):
            await s.service.predict(request(name, 1.0))

    on(env, body)


def test_combine_aligns_classes_by_label() -> None:
    a = Prediction(np.array([1, 0]), np.array([[0.2, 0.8], [0.6, 0.4]]), (0, 1))
    b = Prediction(np.array([0, 0]), np.array([[0.1, 0.9], [0.3, 0.7]]), (1, 0))
    got = combine([a, b], [1.0, 3.0], Combine.MEAN_PROBA)
    expected = np.array(
        [
            [0.2 / 4 + 0.9 * 3 / 4, 0.8 / 4 + 0.1 * 3 / 4],
            [0.6 / 4 + 0.7 * 3 / 4, 0.4 / 4 + 0.3 * 3 / 4],
        ]
    )
    np.testing.assert_allclose(got.probabilities, expected)
    assert got.classes == (0, 1) and list(got.predictions) == [0, 0]


def test_a_member_answered_by_its_fallback_counts_as_failed(env: Env) -> None:
    async def body(s: Stack) -> None:
        name = await s.ensemble(new_name("fb"), (s.clf, "1", 1.0), (s.clf, "2", 1.0))

        async def member(req: PredictRequest) -> PredictResult:
            # the service's version path, as if version 2 had failed and its chain answered
            result = await s.service._predict(req)
            if req.ref == "2":
                return replace(result, fallback="default", fallback_reason="error")
            return result

        got = await s.book.endpoints[name].predict(request(name, 0.5), member)
        assert got.members is not None
        assert [m.ok for m in got.members] == [True, False]
        assert "fallback default answered instead" in (got.members[1].error or "")
        assert got.version == f"{s.clf}:1"
        assert s.failures(name, "m1") == 1

    on(env, body)

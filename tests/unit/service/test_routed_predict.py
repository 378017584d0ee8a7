"""PredictionService with a running experiment: variants answer, the result names them, a pin
bypasses, an unknown override is a counted 400 — and a store that is down fails no request."""

from __future__ import annotations

from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from sibyl.errors import InvalidInputError
from sibyl.monitoring import Metrics
from sibyl.service import (
    ExperimentService,
    ModelManager,
    OutcomeWriter,
    PredictionService,
    build_snapshot,
)
from sibyl.store import ExperimentStatus, get_store
from tests.toys import EchoPredictor
from tests.unit.service.conftest import Env, request, requests_by, run, toy
from tests.unit.service.test_router import experiment


def routed_service(env: Env) -> tuple[PredictionService, ExperimentService, CollectorRegistry]:
    """Model ``churn`` v1 (production) and ``churn-v2`` v7, an experiment between them, and a
    store that was never migrated: every write to it fails."""
    settings = env.settings()
    manager = ModelManager(env.registry, settings, Metrics())
    manager.add_loaded(toy("churn", "1", EchoPredictor()))
    manager.add_loaded(toy("churn-v2", "7", EchoPredictor()))
    store = get_store(f"sqlite:///{env.tmp / 'never-migrated.db'}")
    registry = CollectorRegistry()
    exps = ExperimentService(store, OutcomeWriter(store, registry=registry), refresh_interval_s=0)
    exps.routes = build_snapshot([experiment(ExperimentStatus.RUNNING)])
    return PredictionService(manager, manager.metrics, settings, exps), exps, registry


def test_variants_answer_and_a_down_store_fails_no_request(env: Env) -> None:
    async def go() -> None:
        service, exps, registry = routed_service(env)
        got = Counter()
        for i in range(200):
            result = await service.predict(request("churn", 1.0, routing_key=f"user-{i}"))
            assert result.experiment == "churn-ab"
            assert (result.model, result.version) == (
                ("churn", "1") if result.variant == "control" else ("churn-v2", "7")
            )
            again = await service.predict(request("churn", 1.0, routing_key=f"user-{i}"))
            assert again.variant == result.variant
            got[result.variant] += 1
        assert set(got) == {"control", "candidate"}
        assert exps.writer.flush() == 0  # the store is down: dropped and counted, not raised
        dropped = registry.get_sample_value(
            "ml_experiment_records_dropped_total", {"kind": "outcome"}
        )
        assert dropped == 400
        await service.manager.stop()

    run(go)


def test_a_pinned_request_bypasses_and_an_unknown_override_is_counted(env: Env) -> None:
    async def go() -> None:
        service, exps, _ = routed_service(env)
        pinned = await service.predict(request("churn", 1.0, ref="1", variant="candidate"))
        assert (pinned.experiment, pinned.variant, pinned.version) == (None, None, "1")
        forced = await service.predict(request("churn", 1.0, variant="candidate"))
        assert (forced.variant, forced.model) == ("candidate", "churn-v2")
        with pytest.raises(InvalidInputError) as info:
            await service.predict(request("churn", 1.0, variant="nope"))
        assert info.value.field == "X-Variant"
        assert requests_by(service.metrics)[("churn", "", "invalid_input")] == 1
        exps.routes = {}  # paused: production answers again, the override is ignored
        plain = await service.predict(request("churn", 1.0, variant="candidate"))
        assert (plain.experiment, plain.version) == (None, "1")
        await service.manager.stop()

    run(go)

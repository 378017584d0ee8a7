"""The shadow promotion gate on a real MLflow registry and a real SQLite store: verdicts from
shadow records, sibyl's own promotions refused before anything moves, and alias moves made by
anyone rolled back before the manager ever loads the refused version."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from sibyl.errors import PromotionRefusedError
from sibyl.monitoring import Metrics
from sibyl.registry import AliasChange
from sibyl.service import ModelManager, ShadowGate
from sibyl.service._gate import GATE_TAG
from sibyl.settings import PromotionGateSettings
from sibyl.store import (
    ExperimentKind,
    ExperimentStatus,
    ShadowRecord,
    ShadowStatus,
    SQLStore,
    Variant,
)
from tests.unit.service.conftest import Env, new_name, run

CRITERIA = PromotionGateSettings(min_requests=4, min_agreement=0.9, max_error_rate=0.1)


def shadow(store: SQLStore, model: str, results: dict[str, list[bool | None]], **kw: object) -> str:
    """A running shadow of ``model`` with one candidate per version in ``results``, each given
    one record per entry: True agrees, False disagrees, None fails."""
    versions = list(results)
    variants = [Variant("primary", model, alias="production", is_control=True)]
    variants += [Variant(f"v{v}", model, version=v) for v in versions]
    exp = store.create_experiment(
        new_name("shadow"), model, ExperimentKind.SHADOW, variants, routing={"share": 1.0}
    )
    store.set_status(exp.id, kw.get("status", ExperimentStatus.RUNNING))  # type: ignore[arg-type]
    rows = [
        ShadowRecord(
            exp.id,
            f"v{v}",
            f"r{i}",
            model,
            "1",
            model,
            v,
            ShadowStatus.ERROR if ok is None else ShadowStatus.COMPARED,
            rows=0 if ok is None else 1,
            agreeing_rows=1 if ok else 0,
            primary_latency_ms=2.0,
            shadow_latency_ms=3.0,
        )
        for v in versions
        for i, ok in enumerate(results[v])
    ]
    store.record_shadow_results(rows)
    return exp.name


def gated(env: Env, model: str) -> tuple[ShadowGate, SQLStore, CollectorRegistry]:
    """Model ``model`` with versions 1–3 (1 in production) and a gate on it."""
    env.register(model, "echo", "echo", "echo", production="1")
    store = SQLStore(f"sqlite:///{env.tmp / 'store.db'}")
    store.migrate()
    metrics = CollectorRegistry()
    gate = ShadowGate(store, env.registry, {model: CRITERIA}, metrics=metrics)
    env.registry.add_promotion_check(gate.check_promotion)
    return gate, store, metrics


def decisions(metrics: CollectorRegistry, model: str, result: str) -> float:
    value = metrics.get_sample_value("ml_promotion_gate_total", {"model": model, "result": result})
    return value or 0.0


def test_verdicts_come_from_shadow_records(env: Env) -> None:
    model = new_name("gate")
    gate, store, _ = gated(env, model)
    assert "no shadow experiment" in gate.verdict(model, "2").message
    good = shadow(store, model, {"2": [True] * 5, "3": [True, False, False, None, True]})
    assert gate.verdict(model, "2").passed and gate.verdict(model, "2").experiment == good
    bad = gate.verdict(model, "3")
    assert not bad.passed and bad.experiment == good
    assert "agreement 0.5 < 0.9" in bad.message and "error rate 0.2 > 0.1" in bad.message
    assert "sibyl shadow report" in bad.message
    shadow(store, model, {"3": [True] * 9}, status=ExperimentStatus.STOPPED)
    assert gate.verdict(model, "3").passed  # a stopped shadow's period counts
    assert gate.verdict(new_name("ungated"), "7").passed


def test_a_draft_shadow_does_not_count_and_a_down_store_fails_closed(env: Env) -> None:
    model = new_name("gate")
    gate, store, _ = gated(env, model)
    store.create_experiment(
        new_name("draft"), model, ExperimentKind.SHADOW,
        [Variant("p", model, alias="production", is_control=True), Variant("c", model, version="2")],
        routing={"share": 1.0},
    )  # fmt: skip
    assert not gate.verdict(model, "2").passed
    never = ShadowGate(
        SQLStore(f"sqlite:///{env.tmp / 'empty.db'}"), env.registry, {model: CRITERIA}
    )
    verdict = never.verdict(model, "2")
    assert not verdict.passed and "cannot be read" in verdict.message


def test_sibyl_promotions_are_refused_before_anything_moves(env: Env) -> None:
    model = new_name("gate")
    _, store, metrics = gated(env, model)
    shadow(store, model, {"2": [True] * 5, "3": [False] * 5})
    with pytest.raises(PromotionRefusedError) as info:
        env.registry.promote(model, "3")
    assert "agreement 0 < 0.9" in info.value.message
    with pytest.raises(PromotionRefusedError):
        env.registry.set_stage(model, "3", "production")
    assert env.registry.resolve(model).version == "1"
    assert env.registry.promote(model, "2").previous == "1"
    assert env.registry.promote(model, "2").previous is None  # re-promoting: not checked
    env.registry.set_stage(model, "3", "staging")  # other stages are not gated
    assert decisions(metrics, model, "refuse") == 2


def test_a_first_production_version_is_not_gated(env: Env) -> None:
    model = new_name("gate")
    env.register(model, "echo")
    store = SQLStore(f"sqlite:///{env.tmp / 'store.db'}")
    store.migrate()
    env.registry.add_promotion_check(
        ShadowGate(store, env.registry, {model: CRITERIA}).check_promotion
    )
    assert env.registry.promote(model, "1").version == "1"


def test_an_alias_moved_elsewhere_is_rolled_back_and_never_loaded(env: Env) -> None:
    async def go() -> None:
        model = new_name("gate")
        gate, store, metrics = gated(env, model)
        shadow(store, model, {"2": [True] * 5})
        manager = ModelManager(env.registry, env.settings(), Metrics(), gate=gate.allow_swap)
        await manager.get(model, None)
        downloads = env.registry.calls.count("download")
        client = env.registry.client
        client.set_registered_model_alias(model, "production", "3")  # as a plain MLflow user
        await manager.apply_change(AliasChange(model, "production", "1", "3"))
        assert env.registry.resolve(model).version == "1"
        assert manager.production(model).version == "1"  # type: ignore[union-attr]
        assert manager.status(model)["aliases"]["production"] == "1"
        assert manager.lookup(model, "3") is None
        assert env.registry.calls.count("download") == downloads  # v3 never even fetched
        tag = client.get_model_version(model, "3").tags[GATE_TAG]
        assert "no shadow experiment" in tag
        assert decisions(metrics, model, "rollback") == 1
        # the watcher then sees 3 → 1: back to the serving version, not gated, nothing moves
        await manager.apply_change(AliasChange(model, "production", "3", "1"))
        assert env.registry.resolve(model).version == "1"
        # a version with a passing shadow period stands and is swapped in
        client.set_registered_model_alias(model, "production", "2")
        await manager.apply_change(AliasChange(model, "production", "1", "2"))
        assert manager.production(model).version == "2"  # type: ignore[union-attr]
        assert env.registry.resolve(model).version == "2"
        assert decisions(metrics, model, "pass") == 1
        await manager.stop()

    run(go)


def test_the_rollback_leaves_a_newer_move_alone(env: Env) -> None:
    async def go() -> None:
        model = new_name("gate")
        gate, store, metrics = gated(env, model)
        shadow(store, model, {"2": [True] * 5})
        env.registry.client.set_registered_model_alias(model, "production", "3")
        env.registry.client.set_registered_model_alias(model, "production", "2")
        # the verdict on 3 arrives after production already moved on to 2
        assert not await gate.allow_swap(AliasChange(model, "production", "1", "3"), "1")
        assert env.registry.resolve(model).version == "2"
        assert decisions(metrics, model, "superseded") == 1
        assert await gate.allow_swap(AliasChange(model, "production", "3", "2"), "1")

    run(go)

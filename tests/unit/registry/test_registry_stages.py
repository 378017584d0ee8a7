"""Stage transitions and promotion gates on an embedded MLflow registry."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from sibyl.errors import InvalidInputError, NotFoundError, PromotionRefusedError
from sibyl.registry import PREVIOUS_PRODUCTION_TAG, STAGE_TAG, Gate, ModelRegistry, Stage
from tests.unit.registry.conftest import Registered


def _stages(registry: ModelRegistry, name: str) -> dict[str, Stage]:
    return {v.version: v.stage for v in registry.list_versions(name)}


def test_fresh_versions_are_drafts_without_aliases(model: Registered) -> None:
    for v in model.registry.list_versions(model.name):
        assert v.stage is Stage.DRAFT
        assert v.aliases == ()


def test_one_production_at_a_time_previous_archived(model: Registered) -> None:
    reg, name = model.registry, model.name
    first = reg.promote(name, "1")
    assert (first.version, first.stage, first.previous) == ("1", Stage.PRODUCTION, None)
    second = reg.promote(name, 2)
    assert second.previous == "1"
    assert _stages(reg, name) == {"3": Stage.DRAFT, "2": Stage.PRODUCTION, "1": Stage.ARCHIVED}
    assert reg.get_version(name, "1").aliases == ()
    assert reg.get_version(name, "1").tags.get(STAGE_TAG) is None  # surfaced as .stage
    assert reg.previous_production(name) == "1"
    raw = MlflowClient(tracking_uri=model.logged.tracking_uri).get_registered_model(name)
    assert raw.tags[PREVIOUS_PRODUCTION_TAG] == "1"
    assert reg.resolve(name).version == "2"


def test_rollback_and_repromoting_the_same_version(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.promote(name, "1")
    reg.promote(name, "2")
    back = reg.promote(name, "1")
    assert back.previous == "2"
    assert reg.previous_production(name) == "2"
    again = reg.promote(name, "1")
    assert again.previous is None
    assert _stages(reg, name)["1"] is Stage.PRODUCTION
    assert reg.previous_production(name) == "2"


def test_staging_moves_and_previous_staging_becomes_draft(model: Registered) -> None:
    reg, name = model.registry, model.name
    assert reg.set_stage(name, "1", "staging").stage is Stage.STAGING
    info = reg.set_stage(name, "3", Stage.STAGING)
    assert info.aliases == ("staging",)
    assert _stages(reg, name) == {"3": Stage.STAGING, "2": Stage.DRAFT, "1": Stage.DRAFT}


def test_promoting_the_staging_version_frees_staging(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.set_stage(name, "2", Stage.STAGING)
    reg.promote(name, "2")
    assert reg.get_version(name, "2").aliases == ("production",)
    with pytest.raises(NotFoundError, match="alias 'staging'"):
        reg.resolve(name, "staging")


def test_archiving_removes_every_alias(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.promote(name, "1")
    MlflowClient(tracking_uri=model.logged.tracking_uri).set_registered_model_alias(
        name, "champion", "1")
    info = reg.set_stage(name, "1", Stage.ARCHIVED)
    assert (info.stage, info.aliases) == (Stage.ARCHIVED, ())
    assert reg.aliases()[name] == {}


def test_demoting_production_to_draft_leaves_no_production(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.promote(name, "2")
    assert reg.set_stage(name, "2", Stage.DRAFT).stage is Stage.DRAFT
    with pytest.raises(NotFoundError, match="has no version with alias 'production'"):
        reg.resolve(name)


def test_alias_moved_by_a_plain_client_wins_over_stale_tags(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.promote(name, "1")
    MlflowClient(tracking_uri=model.logged.tracking_uri).set_registered_model_alias(
        name, "production", "3")
    assert _stages(reg, name) == {"3": Stage.PRODUCTION, "2": Stage.DRAFT, "1": Stage.ARCHIVED}


def test_bad_stage_and_unknown_version(model: Registered) -> None:
    with pytest.raises(InvalidInputError, match="Unknown stage 'live'"):
        model.registry.set_stage(model.name, "1", "live")
    with pytest.raises(NotFoundError, match=f"Model '{model.name}' has no version 9"):
        model.registry.promote(model.name, "9")


# ---- gates: versions 1 = accuracy .80 / log_loss .50, 2 = .90 / .30, 3 = .85 / .45 ---------


def test_gate_passes_when_there_is_no_production(model: Registered) -> None:
    result = model.registry.promote(model.name, "1", gate=Gate("accuracy"))
    assert result.gate is not None
    assert result.gate.passed
    assert "no production version" in result.gate.message


def test_gate_refuses_a_worse_candidate_and_keeps_production(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.promote(name, "2")
    with pytest.raises(PromotionRefusedError) as err:
        reg.promote(name, "1", gate=Gate("accuracy"))
    assert f"model '{name}' version 1 refused by the 'accuracy' gate" in err.value.message
    assert "0.8 vs 0.9 of production version 2" in err.value.message
    assert reg.resolve(name).version == "2"
    assert _stages(reg, name)["1"] is Stage.DRAFT


def test_gate_accepts_within_tolerance(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.promote(name, "2")
    result = reg.promote(name, "3", gate=Gate("accuracy", tolerance=0.06))
    assert result.gate is not None
    assert (result.gate.candidate_value, result.gate.production_value) == (0.85, 0.90)
    assert result.previous == "2"
    assert reg.resolve(name).version == "3"


def test_gate_lower_is_better_and_missing_metric(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.promote(name, "3")
    with pytest.raises(PromotionRefusedError, match="log_loss"):
        reg.promote(name, "1", gate=Gate("log_loss", higher_is_better=False))
    assert reg.promote(name, "2", gate=Gate("log_loss", higher_is_better=False)).gate
    with pytest.raises(PromotionRefusedError, match="no metric 'f1'"):
        reg.promote(name, "1", gate=Gate("f1"))
    check = reg.check_gate(name, "1", Gate("accuracy"))
    assert not check.passed
    assert reg.resolve(name).version == "2"

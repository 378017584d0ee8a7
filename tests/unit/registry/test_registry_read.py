"""Listing, resolving, metadata and registration on an embedded MLflow registry."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sibyl.errors import BackendUnavailableError, InvalidInputError, NotFoundError
from sibyl.registry import ModelRegistry, Stage
from tests.contract.registry_support import LoggedModels, new_name
from tests.unit.registry.conftest import Registered


def test_list_models_and_versions(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.promote(name, "2")
    info = next(m for m in reg.list_models() if m.name == name)
    assert (info.latest_version, info.aliases) == ("3", {"production": "2"})
    versions = reg.list_versions(name)
    assert [v.version for v in versions] == ["3", "2", "1"]
    v2 = versions[1]
    assert (v2.stage, v2.aliases) == (Stage.PRODUCTION, ("production",))
    assert v2.run_id == model.logged.run_ids["better"]
    assert v2.source.startswith("file://")
    assert v2.created_at.tzinfo is UTC
    assert v2.flavors == ()


def test_unknown_model_says_how_to_list_models(registry: ModelRegistry) -> None:
    with pytest.raises(NotFoundError) as err:
        registry.list_versions("nope")
    assert err.value.message == (
        f"Model 'nope' is not registered in registry {registry.uri}; list the registered "
        "models with `sibyl models list`")
    with pytest.raises(NotFoundError, match="'nope' is not registered"):
        registry.resolve("nope", "3")


def test_resolve_references(model: Registered) -> None:
    reg, name = model.registry, model.name
    reg.promote(name, "1")
    reg.set_stage(name, "2", Stage.STAGING)
    MlflowClient(tracking_uri=model.logged.tracking_uri).set_registered_model_alias(
        name, "champion", "3")
    assert reg.resolve(name).version == "1"
    assert reg.resolve(name, None).version == "1"
    assert reg.resolve(name, "production").version == "1"
    assert reg.resolve(name, "@production").version == "1"
    assert reg.resolve(name, "staging").version == "2"
    assert reg.resolve(name, "champion").version == "3"
    assert reg.resolve(name, "@champion").aliases == ("champion",)
    assert reg.resolve(name, "2").version == "2"
    assert reg.resolve(name, "latest").version == "3"


def test_resolve_not_found_messages(model: Registered) -> None:
    reg, name = model.registry, model.name
    with pytest.raises(NotFoundError) as err:
        reg.resolve(name)
    assert err.value.message == (
        f"Model '{name}' has no version with alias 'production' in registry {reg.uri}; "
        f"promote one with `sibyl models promote {name} <version> production`")
    assert reg.uri.startswith("sqlite:///")
    reg.set_stage(name, "3", Stage.STAGING)
    with pytest.raises(NotFoundError, match=r"alias 'gold' .*\(its aliases: @staging→3\)"):
        reg.resolve(name, "@gold")
    with pytest.raises(NotFoundError, match=rf"no version 9 .*`sibyl models versions {name}`"):
        reg.resolve(name, "9")
    with pytest.raises(InvalidInputError, match="'v2' is not a version number"):
        reg.get_version(name, "v2")


def test_latest_of_a_model_without_versions(registry: ModelRegistry) -> None:
    name = new_name()
    registry.client.create_registered_model(name)
    assert registry.list_versions(name) == []
    with pytest.raises(NotFoundError, match="has no versions"):
        registry.resolve(name, "latest")


def test_semver_description_and_tags(model: Registered) -> None:
    reg, name = model.registry, model.name
    assert reg.set_semver(name, "1", "1.4.2").semver == "1.4.2"
    with pytest.raises(InvalidInputError, match=r"MAJOR\.MINOR\.PATCH"):
        reg.set_semver(name, "1", "1.4")
    assert reg.set_description(name, "1", "baseline").description == "baseline"
    info = reg.set_tags(name, "1", {"team": "growth", "dataset": "2024-q1"})
    assert info.tags == {"team": "growth", "dataset": "2024-q1"}
    assert info.semver == "1.4.2"
    with pytest.raises(InvalidInputError, match="managed by sibyl"):
        reg.set_tags(name, "1", {"sibyl.stage": "production"})
    with pytest.raises(NotFoundError, match="no version 7"):
        reg.set_semver(name, "7", "1.0.0")


def test_register_model_from_a_runs_uri(registry: ModelRegistry, logged: LoggedModels) -> None:
    name = new_name()
    run_id = logged.run_ids["wide"]
    info = registry.register_model(name, f"runs:/{run_id}/model", description="wide one",
                                   tags={"owner": "me"}, semver="0.1.0")
    assert (info.version, info.stage, info.run_id) == ("1", Stage.DRAFT, run_id)
    assert (info.description, info.tags, info.semver) == ("wide one", {"owner": "me"}, "0.1.0")
    assert info.source.startswith("file://")
    assert registry.model_uri(name, 1) == f"models:/{name}/1"


def test_register_model_validates_before_writing(registry: ModelRegistry,
                                                 logged: LoggedModels) -> None:
    name = new_name()
    with pytest.raises(InvalidInputError):
        registry.register_model(name, logged.uris["base"], semver="one")
    with pytest.raises(InvalidInputError):
        registry.register_model(name, logged.uris["base"], tags={"sibyl.semver": "1.0.0"})
    assert name not in registry.aliases()
    with pytest.raises(NotFoundError):
        registry.register_model(name, "models:/m-00000000000000000000000000000000")


def test_aliases_snapshot(model: Registered) -> None:
    reg, name = model.registry, model.name
    assert reg.aliases()[name] == {}
    reg.promote(name, "2")
    reg.set_stage(name, "3", Stage.STAGING)
    assert reg.aliases()[name] == {"production": "2", "staging": "3"}


def test_experiment_id_creates_under_the_artifact_location(logged: LoggedModels,
                                                           tmp_path: Path) -> None:
    reg = ModelRegistry(logged.tracking_uri, artifact_location=tmp_path.as_uri())
    name = new_name("exp")
    first = reg.experiment_id(name)
    assert reg.experiment_id(name) == first
    assert reg.client.get_experiment(first).artifact_location == tmp_path.as_uri()


def test_unopenable_sqlite_is_backend_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BackendUnavailableError, match=r"sqlite:///.*/file/mlflow\.db"):
        ModelRegistry(f"sqlite:///{blocker / 'mlflow.db'}")


def test_unreachable_server_is_backend_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.helpers import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    uri = f"http://127.0.0.1:{free_port()}"
    reg = ModelRegistry(uri)
    with pytest.raises(BackendUnavailableError) as err:
        reg.list_models()
    assert err.value.message.startswith(f"MLflow registry {uri} cannot be reached")
    assert "check that the tracking server or database is running" in err.value.message

"""Reference profiles stored with model versions in a real MLflow registry (SQLite + files)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sibyl.errors import InvalidInputError, NotFoundError
from sibyl.monitoring.drift import ReferenceProfile, build_profile
from sibyl.registry import ModelRegistry
from sibyl.registry._profiles import PROFILE_TAG, load_profile, log_profile, save_profile


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    import mlflow

    before = mlflow.get_tracking_uri()
    tmp = tmp_path_factory.mktemp("profiles")
    reg = ModelRegistry(
        f"sqlite:///{tmp / 'mlflow.db'}", artifact_location=(tmp / "artifacts").as_uri()
    )
    yield reg  # type: ignore[misc]
    assert mlflow.get_tracking_uri() == before  # nothing here touched the global URI


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    data = pd.DataFrame({"x": rng.normal(size=500), "c": rng.choice(["a", "b"], 500)})
    return build_profile(data, rng.dirichlet(np.ones(3), 500), classes=["lo", "mid", "hi"])


def _ensure_model(registry: ModelRegistry, name: str) -> None:
    if name not in {m.name for m in registry.list_models()}:
        registry.client.create_registered_model(name)


def _version(registry: ModelRegistry, name: str, *, with_run: bool = True) -> str:
    client = registry.client
    _ensure_model(registry, name)
    if not with_run:
        return str(client.create_model_version(name, source="file:///nowhere/model").version)
    run = client.create_run(registry.experiment_id("training"))
    source = f"{run.info.artifact_uri}/model"
    return str(client.create_model_version(name, source=source, run_id=run.info.run_id).version)


def test_save_and_load_round_trip_with_the_version(
    registry: ModelRegistry, profile: ReferenceProfile
) -> None:
    version = _version(registry, "churn")
    location = save_profile(registry, "churn", version, profile)
    assert location.startswith("runs:/") and location.endswith("/reference_profile.json")
    tags = registry.get_version("churn", version).tags
    assert tags[PROFILE_TAG] == location
    assert load_profile(registry, "churn", version) == profile
    assert load_profile(registry.client, "churn", int(version)) == profile  # a bare client too


def test_saving_again_replaces_the_profile(
    registry: ModelRegistry, profile: ReferenceProfile
) -> None:
    version = _version(registry, "churn")
    save_profile(registry, "churn", version, profile)
    uploaded = build_profile(pd.DataFrame({"x": np.arange(100.0)}), source="upload")
    save_profile(registry, "churn", version, uploaded)
    assert load_profile(registry, "churn", version) == uploaded


def test_a_version_without_a_run_gets_one(
    registry: ModelRegistry, profile: ReferenceProfile
) -> None:
    version = _version(registry, "rules", with_run=False)
    save_profile(registry, "rules", version, profile)
    assert load_profile(registry, "rules", version) == profile


def test_a_profile_logged_by_the_training_run_is_found(
    registry: ModelRegistry, profile: ReferenceProfile
) -> None:
    client = registry.client
    _ensure_model(registry, "trained")
    run = client.create_run(registry.experiment_id("training"))
    log_profile(client, run.info.run_id, profile)  # before the version exists
    mv = client.create_model_version(
        "trained", f"{run.info.artifact_uri}/model", run_id=run.info.run_id
    )
    assert load_profile(registry, "trained", mv.version) == profile


def test_missing_profiles_and_versions_say_what_to_do(registry: ModelRegistry) -> None:
    version = _version(registry, "bare")
    with pytest.raises(NotFoundError, match=r"has no reference profile.*build_profile"):
        load_profile(registry, "bare", version)
    with pytest.raises(NotFoundError, match="no version 99"):
        load_profile(registry, "bare", 99)
    with pytest.raises(InvalidInputError, match="version"):
        load_profile(registry, "bare", "production")


def test_a_corrupt_profile_is_invalid_input(
    registry: ModelRegistry, profile: ReferenceProfile
) -> None:
    version = _version(registry, "corrupt")
    location = save_profile(registry, "corrupt", version, profile)
    run_id, _, path = location.removeprefix("runs:/").partition("/")
    data = json.loads(profile.to_json())
    data["format_version"] = 99
    registry.client.log_text(run_id, json.dumps(data), path)
    with pytest.raises(InvalidInputError, match="newer"):
        load_profile(registry, "corrupt", version)

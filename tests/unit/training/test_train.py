"""Training a generic estimator on a CSV into a real MLflow registry, and the promotion gate
measured on the candidate's holdout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sibyl.errors import InvalidInputError, NotFoundError
from sibyl.registry import ModelRegistry, load_profile
from sibyl.runtime.loader import load_model
from sibyl.settings import RuntimeSettings
from sibyl.training import Cancelled, train_estimator
from tests.unit.training.conftest import Mlflow, binary_frame, new_name


def test_generic_estimator_registers_a_staging_version(
    csv_path: Path, mlflow_target: Mlflow, tmp_path: Path
) -> None:
    name = new_name("rf")
    seen: list[float] = []
    outcome = train_estimator(
        csv_path,
        "y",
        name=name,
        tracking_uri=mlflow_target.uri,
        artifact_location=mlflow_target.artifacts,
        estimator="random_forest",
        params={"n_estimators": 30, "max_depth": 5},
        progress=lambda f, _m: seen.append(f),
    )
    assert outcome.stage == "staging" and outcome.task == "classification"
    assert seen == sorted(seen) and seen[0] == 0.0
    assert {"accuracy", "f1", "roc_auc", "log_loss"} <= outcome.metrics.keys()
    assert outcome.metrics["roc_auc"] > 0.8
    registry = ModelRegistry(mlflow_target.uri)
    info = registry.get_version(name, outcome.version)
    assert info.stage.value == "staging"
    assert info.tags["sibyl.training.target"] == "y"
    run = registry.client.get_run(info.run_id or "")
    assert run.data.metrics["roc_auc"] == pytest.approx(outcome.metrics["roc_auc"])
    assert run.data.params["n_estimators"] == "30"
    profile = load_profile(registry, name, outcome.version)
    assert {"a", "city"} <= {c.name for c in profile.features}
    assert "proba" in {c.name for c in profile.outputs}
    path = registry.download(name, outcome.version, tmp_path / "models")
    loaded = load_model(
        path, name=name, version=outcome.version, settings=RuntimeSettings(), tags=info.tags
    )
    assert [c.name for c in loaded.schema.columns] == ["a", "b", "c", "d", "city"]
    batch = loaded.schema.from_records([{"a": 1.0, "b": 0.5, "c": 0.0, "d": 0.1, "city": "lyon"}])
    assert np.asarray(loaded.predictor.predict(batch).predictions).tolist() in ([0], [1])


def test_regression_metrics_and_parquet(mlflow_target: Mlflow, tmp_path: Path) -> None:
    frame = binary_frame(400).assign(y=lambda f: 2.0 * f["a"] + f["b"])
    frame.to_parquet(tmp_path / "reg.parquet")
    outcome = train_estimator(
        tmp_path / "reg.parquet",
        "y",
        name=new_name("reg"),
        tracking_uri=mlflow_target.uri,
        estimator="linear",
        stage="draft",
    )
    assert outcome.task == "regression" and outcome.stage == "draft"
    assert outcome.metrics["r2"] > 0.95 and {"mae", "rmse"} <= outcome.metrics.keys()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target": "nope"}, "target"),
        ({"features": ["a", "zz"]}, "features"),
        ({"estimator": "deep_forest"}, "estimator"),
        ({"params": {"n_trees": 3}}, "params"),
        ({"stage": "prod"}, "stage"),
        ({"test_size": 1.5}, "test_size"),
        ({"auto_promote": True, "gate_metric": "rmse"}, "gate_metric"),
    ],
)
def test_bad_input_names_the_field(
    csv_path: Path, mlflow_target: Mlflow, kwargs: dict[str, object], field: str
) -> None:
    args: dict[str, object] = {"target": "y", **kwargs}
    target = str(args.pop("target"))
    with pytest.raises(InvalidInputError) as caught:
        train_estimator(csv_path, target, name=new_name(), tracking_uri=mlflow_target.uri, **args)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_missing_file_and_cancellation(csv_path: Path, mlflow_target: Mlflow) -> None:
    with pytest.raises(NotFoundError):
        train_estimator(
            csv_path.with_name("absent.csv"), "y", name="x", tracking_uri=mlflow_target.uri
        )
    name = new_name()
    with pytest.raises(Cancelled):
        train_estimator(
            csv_path, "y", name=name, tracking_uri=mlflow_target.uri, should_stop=lambda: True
        )
    with pytest.raises(NotFoundError):
        ModelRegistry(mlflow_target.uri).list_versions(name)


def test_promotion_gate_refuses_a_worse_model(csv_path: Path, mlflow_target: Mlflow) -> None:
    name = new_name("gate")
    common = {
        "name": name,
        "tracking_uri": mlflow_target.uri,
        "auto_promote": True,
        "gate_metric": "roc_auc",
        "gate_tolerance": 0.01,
    }
    first = train_estimator(csv_path, "y", estimator="linear", **common)  # type: ignore[arg-type]
    assert first.gate is not None and first.gate.promoted and first.stage == "production"
    worse = train_estimator(  # a single stump: far worse on the same data
        csv_path,
        "y",
        estimator="random_forest",
        params={"n_estimators": 1, "max_depth": 1},
        **common,  # type: ignore[arg-type]
    )
    registry = ModelRegistry(mlflow_target.uri)
    assert worse.gate is not None and not worse.gate.passed and not worse.gate.promoted
    assert worse.stage == "staging"
    assert worse.gate.production_version == first.version
    assert worse.gate.candidate is not None and worse.gate.production is not None
    assert worse.gate.candidate < worse.gate.production - 0.01
    assert "holdout" in worse.gate.message
    assert registry.resolve(name, "production").version == first.version
    assert "worse by" in registry.get_version(name, worse.version).tags["sibyl.training.gate"]

    better = _better_candidate(csv_path, name, mlflow_target)
    assert better.gate is not None and better.gate.promoted, better.gate
    assert registry.resolve(name, "production").version == better.version
    assert registry.previous_production(name) == first.version


def _better_candidate(csv_path: Path, name: str, target: Mlflow):  # type: ignore[no-untyped-def]
    """The same linear model with the informative features only: not worse on the holdout."""
    frame = pd.read_csv(csv_path)
    return train_estimator(
        frame,
        "y",
        name=name,
        tracking_uri=target.uri,
        estimator="linear",
        auto_promote=True,
        gate_metric="roc_auc",
        gate_tolerance=0.01,
    )

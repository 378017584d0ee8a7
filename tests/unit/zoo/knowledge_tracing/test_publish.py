"""Registering DKT models in a real MLflow (SQLite) and serving them back per docs/zoo.md."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from sibyl.registry import load_profile
from sibyl.zoo.knowledge_tracing import simulate_5
from sibyl.zoo.knowledge_tracing.publish import log_model, request_frame, signature
from sibyl.zoo.knowledge_tracing.train import (
    MODEL_NAMES,
    ModelRecipe,
    Recipe,
    Trained,
    register_all,
    train_model,
)

TINY = Recipe(
    "tiny",
    200,
    {
        "lstm": ModelRecipe({"hidden": 8, "embedding": 4}, {"max_epochs": 1}),
        "transformer": ModelRecipe({"dim": 8, "heads": 2}, {"max_epochs": 1}),
    },
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both tiny models registered once; what the tests read back."""
    root = tmp_path_factory.mktemp("mlflow")
    uri, artifacts = f"sqlite:///{root / 'mlflow.db'}", str(root / "artifacts")
    dataset = simulate_5(TINY.n_students, seed=0)
    trained: dict[str, Trained] = {}
    versions: dict[str, str] = {}
    for kind, name in MODEL_NAMES.items():
        trained[kind] = train_model(kind, dataset, chosen=TINY, seed=0)
        versions[kind] = log_model(trained[kind], name, dataset, uri, artifacts)
    return {"uri": uri, "trained": trained, "versions": versions, "dataset": dataset}


def _read(registry: dict[str, Any], kind: str, read: Callable[[str], Any]) -> Any:
    """``read`` (an MLflow function taking a model URI) on the registered ``kind``, with the
    global tracking URI set to the test registry only for the call."""
    import mlflow

    mlflow.set_tracking_uri(registry["uri"])
    try:
        return read(f"models:/{MODEL_NAMES[kind]}/{registry['versions'][kind]}")
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


def _load(registry: dict[str, Any], kind: str) -> Any:
    import mlflow.pytorch

    return _read(registry, kind, mlflow.pytorch.load_model)


@pytest.mark.parametrize("kind", list(MODEL_NAMES))
def test_the_loaded_module_answers_the_contract_call(registry: dict[str, Any], kind: str) -> None:
    module = _load(registry, kind).eval()
    exercises = torch.tensor([[0, 1, 2, 3], [7, 8, 0, 0]])
    correct = torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0]])
    lengths, query = torch.tensor([4, 2]), torch.tensor([4, 9])
    with torch.inference_mode():
        out = module(exercises=exercises, correct=correct, lengths=lengths, query=query)
        original = registry["trained"][kind].model(
            exercises=exercises, correct=correct, lengths=lengths, query=query
        )
    assert out["p_correct"].shape == (2,) and out["mastery"].shape == (2, 50)
    torch.testing.assert_close(out["mastery"], original["mastery"])


@pytest.mark.parametrize("kind", list(MODEL_NAMES))
def test_signature_metadata_and_example_follow_docs_zoo(
    registry: dict[str, Any], kind: str
) -> None:
    from mlflow.models import infer_signature

    info = _model_info(registry, kind)
    inferred = infer_signature(request_frame(registry["dataset"]).head(20))
    assert info.signature.inputs == inferred.inputs == signature().inputs
    assert info.signature.inputs.input_names() == ["exercises", "correct", "query"]
    assert info.metadata["sibyl"]["sequence"] == {
        "columns": ["exercises", "correct"],
        "min_length": 1,
        "max_length": 200,
        "truncate": False,
        "ranges": {"exercises": [0, 49], "correct": [0, 1], "query": [0, 49]},
        "outputs": ["p_correct", "mastery", "weakest", "suggested"],
    }


def _model_info(registry: dict[str, Any], kind: str) -> Any:
    import mlflow.models

    return _read(registry, kind, mlflow.models.get_model_info)


@pytest.mark.parametrize("kind", list(MODEL_NAMES))
def test_run_holds_metrics_params_profile_and_description(
    registry: dict[str, Any], kind: str
) -> None:
    import mlflow

    client = mlflow.MlflowClient(registry["uri"])
    name = MODEL_NAMES[kind]
    version = client.get_model_version(name, registry["versions"][kind])
    run = client.get_run(str(version.run_id))
    trained: Trained = registry["trained"][kind]
    assert run.data.metrics["auc"] == pytest.approx(trained.auc)
    assert {"val_auc", "epochs", "train_seconds"} <= set(run.data.metrics)
    assert run.data.params["kind"] == kind and run.data.params["train.max_epochs"] == "1"
    description = str(version.description)
    assert "test AUC" in description and "Simulated-5" in description
    profile = load_profile(client, name, registry["versions"][kind])
    assert profile.rows == 100  # one request per training student
    assert set(profile.feature_names) == {"length", "accuracy", "query"}
    length, query = profile.feature("length"), profile.feature("query")
    assert 1 <= length.min <= length.max <= 49  # type: ignore[union-attr]
    assert query.min >= 0 and query.max <= 49  # type: ignore[union-attr]


def test_tracking_uri_is_restored(registry: dict[str, Any]) -> None:
    import mlflow

    assert not mlflow.is_tracking_uri_set()  # type: ignore[no-untyped-call]
    assert registry["uri"]


def test_request_frame_queries_the_next_exercise() -> None:
    dataset = simulate_5(30, seed=1)
    frame = request_frame(dataset, seed=2)
    for row, exercises in zip(frame.to_dict("records"), dataset.exercises, strict=True):
        n = len(row["exercises"])
        assert 1 <= n < 50 and len(row["correct"]) == n
        assert row["exercises"] == exercises[:n].tolist() and row["query"] == exercises[n]


def test_register_all_small_registers_both_models(tmp_path: Path) -> None:
    steps: list[str] = []
    registered = register_all(
        f"sqlite:///{tmp_path / 'm.db'}", str(tmp_path / "a"), progress=steps.append
    )
    assert [r.name for r in registered] == ["dkt", "dkt-transformer"]
    assert all(r.version == "1" and r.engine_hint == "pytorch" for r in registered)
    assert registered[0].metrics["auc"] > 0.75 and registered[1].metrics["auc"] > 0.75
    assert steps[0] == "generating Simulated-5" and len(steps) == 5

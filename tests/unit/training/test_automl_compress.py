"""AutoML within its wall-clock budget, time-boxed fits, and tree pruning of every ensemble
family into a new registered version."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sibyl.errors import InvalidInputError
from sibyl.registry import ModelRegistry
from sibyl.training import automl, compress_model, train_estimator
from sibyl.training._data import Task
from sibyl.training._families import fit_within
from tests.unit.training.conftest import Mlflow, binary_frame, new_name


def test_automl_respects_its_budget(mlflow_target: Mlflow) -> None:
    budget = 12.0
    name = new_name("auto")
    started = time.monotonic()
    outcome = automl(
        binary_frame(1500), "y", name=name, tracking_uri=mlflow_target.uri, budget_s=budget
    )
    elapsed = time.monotonic() - started
    assert elapsed <= 1.05 * budget, f"took {elapsed:.2f} s for a {budget} s budget"
    assert outcome.elapsed_s <= 1.05 * budget
    board = outcome.leaderboard
    assert len(board) >= 2 and outcome.trials >= len(board)
    assert [r.validation for r in board] == sorted((r.validation for r in board), reverse=True)
    assert all(r.size_bytes > 0 and r.latency_p99_ms > 0 for r in board)
    assert outcome.winner == board[0].family
    assert outcome.registered is not None
    info = ModelRegistry(mlflow_target.uri).get_version(name, outcome.registered.version)
    assert info.tags["sibyl.training.estimator"] == outcome.winner


@pytest.mark.parametrize(
    "family", ["random_forest", "hist_gradient_boosting", "lightgbm", "xgboost"]
)
def test_fits_stop_adding_trees_at_the_cap(family: str) -> None:
    frame = binary_frame(3000)
    x, y = frame.drop(columns="y"), frame["y"]
    size = {"random_forest": "n_estimators", "hist_gradient_boosting": "max_iter"}.get(
        family, "n_estimators"
    )
    started = time.monotonic()
    model = fit_within(family, {size: 5000}, x, y, Task.CLASSIFICATION, 0, cap_s=1.0)
    assert time.monotonic() - started < 4.0
    grown = model.named_steps["model"]
    trees = {
        "random_forest": lambda m: len(m.estimators_),
        "hist_gradient_boosting": lambda m: m.n_iter_,
        "lightgbm": lambda m: m.booster_.current_iteration(),
        "xgboost": lambda m: m.get_booster().num_boosted_rounds(),
    }[family](grown)
    assert 0 < trees < 5000
    assert model.predict(x.head(3)).shape == (3,)


@pytest.mark.parametrize(
    ("estimator", "params"),
    [
        ("random_forest", {"n_estimators": 40}),
        ("gradient_boosting", {"n_estimators": 60}),
        ("hist_gradient_boosting", {"max_iter": 60}),
        ("xgboost", {"n_estimators": 60}),
        ("lightgbm", {"n_estimators": 60}),
    ],
)
def test_tree_pruning_keeps_the_metric_and_shrinks(
    csv_path: Path, mlflow_target: Mlflow, estimator: str, params: dict[str, int]
) -> None:
    name = new_name(estimator[:6])
    trained = train_estimator(
        csv_path, "y", name=name, tracking_uri=mlflow_target.uri, estimator=estimator, params=params
    )
    tolerance = 0.01
    outcome = compress_model(
        name, trained.version, tracking_uri=mlflow_target.uri, tolerance=tolerance
    )
    report = outcome.report
    assert report.method == "tree_pruning" and report.metric == "roc_auc"
    assert report.metric_before is not None and report.metric_after is not None
    assert report.metric_after >= report.metric_before - tolerance
    assert report.size_after < report.size_before
    registry = ModelRegistry(mlflow_target.uri)
    info = registry.get_version(name, outcome.version or "")
    assert info.stage.value == "staging"
    assert info.tags["sibyl.training.compressed_from"] == trained.version
    assert info.tags["sibyl.training.compression"] == "tree_pruning"


def test_pruning_refuses_a_model_without_trees(csv_path: Path, mlflow_target: Mlflow) -> None:
    name = new_name("lin")
    trained = train_estimator(
        csv_path, "y", name=name, tracking_uri=mlflow_target.uri, estimator="linear"
    )
    with pytest.raises(InvalidInputError) as caught:
        compress_model(name, trained.version, tracking_uri=mlflow_target.uri)
    assert caught.value.field == "model"

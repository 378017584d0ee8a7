"""Optuna tuning: strategies, pruners, exact trial counts, the Pareto front of a
multi-objective study, MLflow trial runs, comparison, cancellation — and two processes sharing
one study on the real PostgreSQL with no trial lost or duplicated."""

from __future__ import annotations

import json
import subprocess
import sys

import optuna
import pytest

from sibyl.errors import ConflictError, InvalidInputError
from sibyl.registry import ModelRegistry
from sibyl.training import Cancelled, compare_studies, get_storage, tune
from tests.contract.store_support import fresh_postgres_database, postgres_or_skip
from tests.helpers import ROOT
from tests.unit.training.conftest import Mlflow, binary_frame, new_name

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {
    "n_estimators": {"type": "int", "low": 5, "high": 30},
    "max_depth": {"type": "int", "low": 1, "high": 6},
}
DATA = binary_frame(300).drop(columns="city")


def _tune(mlflow_target: Mlflow, **kwargs: object):  # type: ignore[no-untyped-def]
    args: dict[str, object] = {
        "tracking_uri": mlflow_target.uri,
        "name": new_name("t"),
        "data": DATA,
        "target": "y",
        "folds": 2,
        "register": False,
        "log_trials": False,
        **kwargs,
    }
    return tune(args.pop("space", SPACE), **args)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["random", "tpe", "bayesian", "cmaes", "nsga2"])
def test_each_strategy_runs_exactly_n_trials(mlflow_target: Mlflow, strategy: str) -> None:
    outcome = _tune(mlflow_target, strategy=strategy, n_trials=5)
    assert outcome.states == {"COMPLETE": 5}
    assert outcome.best and 0.5 < outcome.best[0].values[0] <= 1.0


def test_grid_search_visits_each_point_once(mlflow_target: Mlflow) -> None:
    space = {
        "max_depth": {"type": "int", "low": 1, "high": 3},
        "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
        "n_estimators": 5,
    }
    outcome = _tune(mlflow_target, space=space, strategy="grid")
    assert outcome.states == {"COMPLETE": 6}
    assert {tuple(sorted(t.params.items())) for t in outcome.best} <= {
        (("criterion", c), ("max_depth", d)) for c in ("gini", "entropy") for d in (1, 2, 3)
    }


def test_grid_points_are_distinct(mlflow_target: Mlflow, tmp_path) -> None:  # type: ignore[no-untyped-def]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    space = {
        "max_depth": {"type": "int", "low": 1, "high": 3},
        "criterion": {"type": "categorical", "choices": ["gini", "entropy"]},
    }
    outcome = _tune(mlflow_target, space=space, strategy="grid", storage=storage, n_jobs=2)
    trials = optuna.load_study(study_name=outcome.study_name, storage=storage).trials
    points = {(t.params["max_depth"], t.params["criterion"]) for t in trials}
    assert len(trials) == len(points) == 6


def test_pruner_prunes_and_threads_share_the_plan(mlflow_target: Mlflow) -> None:
    space = {"max_depth": {"type": "int", "low": 1, "high": 8}, "n_estimators": 3}
    outcome = _tune(
        mlflow_target,
        space=space,
        strategy="random",
        pruner="median",
        folds=3,
        n_trials=16,
        n_jobs=2,
        seed=3,
    )
    assert sum(outcome.states.values()) == 16
    assert outcome.states.get("PRUNED", 0) >= 1
    assert outcome.trials_run_here == 16


def test_multi_objective_returns_a_non_dominated_front(mlflow_target: Mlflow) -> None:
    outcome = _tune(
        mlflow_target, strategy="nsga2", n_trials=8, objectives=["latency_p99_ms", "size_bytes"]
    )
    assert outcome.objectives == ["roc_auc", "latency_p99_ms", "size_bytes"]
    assert outcome.directions == ["maximize", "minimize", "minimize"]
    front = [t.values for t in outcome.best]
    assert front and all(v is not None and len(v) == 3 for v in front)
    assert [v[0] for v in front] == sorted((v[0] for v in front), reverse=True)  # type: ignore[index]

    def dominates(a: list[float], b: list[float]) -> bool:
        no_worse = a[0] >= b[0] and a[1] <= b[1] and a[2] <= b[2]
        return no_worse and (a[0] > b[0] or a[1] < b[1] or a[2] < b[2])

    assert not any(dominates(a, b) for a in front for b in front if a is not b)  # type: ignore[arg-type]


def test_best_model_registered_with_trials_logged_as_nested_runs(mlflow_target: Mlflow) -> None:
    name = new_name("best")
    outcome = _tune(mlflow_target, name=name, n_trials=4, register=True, log_trials=True)
    assert outcome.registered is not None and outcome.chosen is not None
    registry = ModelRegistry(mlflow_target.uri)
    tags = registry.get_version(name, outcome.registered.version).tags
    assert tags["sibyl.training.study"] == outcome.study_name
    assert tags["sibyl.training.trial"] == str(outcome.chosen.number)
    experiment = registry.client.get_experiment_by_name(f"{name}-tuning")
    assert experiment is not None
    children = registry.client.search_runs(
        [experiment.experiment_id], f"tags.mlflow.parentRunId = '{outcome.mlflow_run_id}'"
    )
    trial_runs = [r for r in children if "sibyl.trial" in r.data.tags]
    assert sorted(int(r.data.tags["sibyl.trial"]) for r in trial_runs) == [0, 1, 2, 3]
    assert all("roc_auc" in r.data.metrics for r in trial_runs)


def test_compare_studies_and_errors(mlflow_target: Mlflow, tmp_path) -> None:  # type: ignore[no-untyped-def]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    _tune(mlflow_target, study_name="a", strategy="random", n_trials=3, storage=storage)
    _tune(mlflow_target, study_name="b", strategy="tpe", n_trials=4, storage=storage)
    rows = {r.study_name: r for r in compare_studies(["a", "b"], storage)}
    assert rows["a"].states == {"COMPLETE": 3} and rows["b"].states == {"COMPLETE": 4}
    assert rows["a"].best_values and rows["b"].trial_seconds > 0
    with pytest.raises(ConflictError):  # same study, other objectives
        _tune(mlflow_target, study_name="a", n_trials=1, storage=storage, objectives=["size_bytes"])
    with pytest.raises(InvalidInputError) as caught:
        _tune(mlflow_target, strategy="annealing", n_trials=1)
    assert caught.value.field == "strategy"
    with pytest.raises(InvalidInputError):
        _tune(mlflow_target)  # neither n_trials nor timeout


def test_cancellation_stops_between_trials(mlflow_target: Mlflow, tmp_path) -> None:  # type: ignore[no-untyped-def]
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 4

    with pytest.raises(Cancelled):
        _tune(mlflow_target, study_name="c", n_trials=10, storage=storage, should_stop=stop)
    states = [t.state.name for t in optuna.load_study(study_name="c", storage=storage).trials]
    assert states.count("WAITING") >= 7  # the rest stays queued for a rerun
    rerun = _tune(mlflow_target, study_name="c", n_trials=10, storage=storage)
    assert rerun.states.get("WAITING", 0) == 0 and rerun.states.get("COMPLETE", 0) >= 8


@pytest.mark.postgres
@pytest.mark.slow
def test_two_processes_share_a_postgres_study_exactly(mlflow_target: Mlflow) -> None:
    postgres_or_skip()
    n_trials = 10
    with fresh_postgres_database() as url:
        get_storage(url)  # tables created once, so both workers start on equal terms
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "tests.unit.training._tune_worker",
                    url,
                    "shared",
                    mlflow_target.uri,
                    str(n_trials),
                    register,
                ],
                cwd=ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for register in ("1", "1")
        ]
        results = []
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=240)
            assert proc.returncode == 0, stderr[-3000:]
            results.append(json.loads(stdout.strip().splitlines()[-1]))
        trials = optuna.load_study(study_name="shared", storage=get_storage(url)).trials
    assert sorted(t.number for t in trials) == list(range(n_trials))
    assert {t.state.name for t in trials} == {"COMPLETE"}
    assert len({t._trial_id for t in trials}) == n_trials
    workers = {str(t.user_attrs["sibyl.worker"]).split(":")[1] for t in trials}
    assert len(workers) == 2, "both processes ran trials"
    assert sum(r["run_here"] for r in results) == n_trials
    assert sorted(r["created"] for r in results) == [False, True]  # one registers the best
    registry = ModelRegistry(mlflow_target.uri)
    assert len(registry.list_versions("shared-model")) == 1
    runs = registry.client.search_runs(
        [registry.client.get_experiment_by_name("shared-model-tuning").experiment_id],
        f"tags.mlflow.parentRunId = '{results[0]['run']}'",
    )
    assert sorted(
        int(r.data.tags["sibyl.trial"]) for r in runs if "sibyl.trial" in r.data.tags
    ) == list(range(n_trials))

"""What a tuning trial does: a :class:`Problem` (a split data set and a way to build a model
from parameters) and the objective that scores one parameter set on it.

A trial cross-validates on the training part only (``folds`` folds, stratified for classifiers;
``folds=1``: one 80/20 split) — the holdout stays untouched until the chosen parameters are
refitted on the whole training part and evaluated once. Single-objective trials report the
running mean after each fold, so a pruner can stop a poor trial early. Objectives:

* the metric (``roc_auc``, ``rmse``, … — mean over folds);
* ``latency_p99_ms`` — p99 wall time of ``predict`` on a batch of ``latency_rows`` validation
  rows, for the model of the last fold;
* ``size_bytes`` — that model's pickled size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sibyl.errors import InvalidInputError
from sibyl.training._control import StopCheck, check_stop
from sibyl.training._data import Split, Task
from sibyl.training._metrics import latency_p99_ms, score, size_bytes

if TYPE_CHECKING:
    import optuna
    import pandas as pd

    from sibyl.training._space import SearchSpace

LATENCY = "latency_p99_ms"
SIZE = "size_bytes"
COSTS = (LATENCY, SIZE)


@dataclass(frozen=True)
class Problem:
    """A data set split once (seeded) and ``build(params)`` → an unfitted estimator."""

    split: Split
    target: str
    build: Callable[[dict[str, Any]], Any]
    estimator: str
    source: str

    @property
    def task(self) -> Task:
        """Classification or regression."""
        return self.split.task


def fold_indices(
    x: pd.DataFrame, y: pd.Series[Any], task: Task, folds: int, seed: int
) -> list[tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    """(train rows, validation rows) per fold (positions), stratified for classifiers."""
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    if folds < 1:
        raise InvalidInputError(f"folds must be at least 1, got {folds}", field="folds")
    positions = np.arange(len(x))
    stratify = task is Task.CLASSIFICATION and int(y.value_counts().min()) >= max(folds, 2)
    if folds == 1:
        train, val = train_test_split(
            positions, test_size=0.2, random_state=seed, stratify=y if stratify else None
        )
        return [(train, val)]
    splitter = (
        StratifiedKFold(folds, shuffle=True, random_state=seed)
        if stratify
        else KFold(folds, shuffle=True, random_state=seed)
    )
    return list(splitter.split(positions, y if stratify else None))


def make_objective(
    problem: Problem,
    space: SearchSpace,
    objectives: Sequence[str],
    *,
    folds: int,
    seed: int,
    should_stop: StopCheck,
    latency_rows: int = 32,
) -> Callable[[optuna.Trial], float | list[float]]:
    """The function a trial runs: sample ``space``, cross-validate, return the ``objectives``
    (one float when there is one). Raises ``optuna.TrialPruned`` when pruned."""
    import optuna

    metric = objectives[0]
    x, y = problem.split.x_train, problem.split.y_train
    indices = fold_indices(x, y, problem.task, folds, seed)
    single = len(objectives) == 1

    def objective(trial: optuna.Trial) -> float | list[float]:
        params = space.suggest(trial)
        scores: list[float] = []
        model: Any = None
        val_x = x
        for step, (train_rows, val_rows) in enumerate(indices):
            check_stop(should_stop, "tuning")
            model = problem.build(params)
            model.fit(x.iloc[train_rows], y.iloc[train_rows])
            val_x = x.iloc[val_rows]
            scores.append(score(model, val_x, y.iloc[val_rows], problem.task, metric))
            if single:
                trial.report(float(np.nanmean(scores)), step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after fold {step + 1}")
        values = {metric: float(np.nanmean(scores))}
        if not single:
            values[LATENCY] = latency_p99_ms(model.predict, val_x, batch_rows=latency_rows)
            values[SIZE] = float(size_bytes(model))
        for key, value in values.items():
            trial.set_user_attr(key, value)
        return values[metric] if single else [values[o] for o in objectives]

    return objective


def tabular_problem(
    data: Any,
    target: str,
    *,
    estimator: str,
    features: list[str] | None = None,
    task: str = "auto",
    test_size: float = 0.25,
    seed: int = 0,
) -> Problem:
    """A :class:`Problem` over a CSV/Parquet file or DataFrame and a named estimator (the
    searched parameters are the estimator's own, e.g. ``n_estimators``)."""
    from sibyl.training._data import load_dataset, split_dataset
    from sibyl.training._estimators import build_pipeline, canonical_name, make_estimator

    dataset = load_dataset(data, target, features, task)
    split = split_dataset(dataset, test_size, seed)
    make_estimator(estimator, dataset.task, None, seed)  # fail fast on a bad name

    def build(params: dict[str, Any]) -> Any:
        return build_pipeline(make_estimator(estimator, dataset.task, params, seed), split.x_train)

    return Problem(split, target, build, canonical_name(estimator), dataset.source)

"""AutoML: given a data set and a wall-clock budget, search model families and their
hyper-parameters, return a leaderboard and register the winner — all within the budget + 5 %.

How the budget is kept (``Deadline`` from the call's start; loading, the registry connection,
the search, the leaderboard and registration all count):

* a reserve is set aside for the end (leaderboard timings and registration): 3 s + 10 % of
  the budget;
* the search runs in rounds; each surviving family gets one Optuna (TPE) trial per round, its
  first trial being the library defaults. After every second round the worse half of the
  families (by best validation score) is dropped — successive halving, so the budget flows to
  the families that do well;
* a trial starts only when the family's slowest fit so far fits in the time left, and each fit
  is time-boxed *inside* (:func:`~sibyl.training._families.fit_within`: trees / boosting
  iterations stop being added at the cap);
* models are scored on a validation split of the training part; the best of each family is
  then measured on the untouched holdout (metric, p99 latency of a 32-row batch, pickled
  size) for the leaderboard. The winner (best validation score) is registered as is — no refit,
  so registration time is predictable.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from threadpoolctl import threadpool_limits

from sibyl.errors import InvalidInputError
from sibyl.training._control import (
    Deadline,
    Progress,
    StopCheck,
    check_stop,
    never_stop,
    no_progress,
)
from sibyl.training._data import Split, Task, load_dataset, split_dataset
from sibyl.training._families import FIRST, SPACES, available_families, fit_within, space_key
from sibyl.training._metrics import (
    check_metric,
    default_metric,
    evaluate,
    higher_is_better,
    latency_p99_ms,
    score,
    size_bytes,
)
from sibyl.training._objective import fold_indices
from sibyl.training._space import load_space
from sibyl.training._strategies import require_optuna
from sibyl.training._train import GateSpec, TrainingOutcome, open_registry, publish_model

if TYPE_CHECKING:
    import optuna
    import pandas as pd

_MIN_BUDGET_S = 5.0


@dataclass(frozen=True)
class LeaderboardRow:
    """A family's best model: validation and holdout metric, p99 latency, size, effort."""

    family: str
    params: dict[str, Any]
    validation: float
    holdout: float
    latency_p99_ms: float
    size_bytes: int
    trials: int
    fit_seconds: float


@dataclass(frozen=True)
class AutoMLOutcome:
    """The leaderboard (best validation score first), the winner and what was registered."""

    metric: str
    task: str
    leaderboard: list[LeaderboardRow]
    winner: str
    registered: TrainingOutcome | None
    budget_s: float
    elapsed_s: float
    trials: int
    holdout_metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (a job's result)."""
        return asdict(self)


@dataclass
class _Family:
    """Search state of one family."""

    name: str
    study: optuna.Study
    space: Any
    best: float = -math.inf
    best_params: dict[str, Any] = field(default_factory=dict)
    model: Any = None
    trials: int = 0
    slowest_s: float = 0.0
    fit_seconds: float = 0.0


def automl(
    data: str | Path | pd.DataFrame,
    target: str,
    *,
    name: str,
    tracking_uri: str,
    artifact_location: str | None = None,
    budget_s: float = 60.0,
    features: list[str] | None = None,
    task: str = "auto",
    metric: str | None = None,
    families: list[str] | None = None,
    test_size: float = 0.25,
    seed: int = 0,
    threads: int = 1,
    register: bool = True,
    stage: str = "staging",
    auto_promote: bool = False,
    gate_tolerance: float = 0.0,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
) -> AutoMLOutcome:
    """Search ``families`` (default: linear, HistGradientBoosting, random forest, LightGBM,
    XGBoost — those installed) for the best model of ``target`` on ``data`` by ``metric``
    within ``budget_s`` seconds in total; register the winner as ``name`` (see the module
    docstring for how the budget is kept). ``threads`` caps the native thread pools (OpenMP,
    BLAS) during the search."""
    deadline = Deadline(budget_s)
    require_optuna()
    if budget_s < _MIN_BUDGET_S:
        raise InvalidInputError(f"budget_s must be at least {_MIN_BUDGET_S} s", field="budget_s")
    reserve = 3.0 + 0.1 * budget_s
    dataset = load_dataset(data, target, features, task)
    split = split_dataset(dataset, test_size, seed)
    goal = check_metric(metric or default_metric(dataset.task), dataset.task)
    chosen = available_families(families)
    if not chosen:
        raise InvalidInputError("None of the requested families is installed", field="families")
    registry = open_registry(tracking_uri, artifact_location) if register else None
    progress(deadline.fraction(), f"searching {', '.join(chosen)} for {budget_s:.0f} s")
    state = [_new_family(f, dataset.task, seed) for f in chosen]
    with threadpool_limits(threads):  # OpenMP pools spin badly on a busy machine
        trials = _search(state, split, goal, seed, deadline, reserve, progress, should_stop)
    ranked = [f for f in state if f.model is not None]
    if not ranked:
        raise InvalidInputError(
            f"No model finished within {budget_s:.0f} s; give a larger budget", field="budget_s"
        )
    ranked.sort(key=lambda f: f.best, reverse=True)
    share = max(0.05, 0.25 * reserve / len(ranked))
    with threadpool_limits(threads):
        board = [_row(f, split, goal, share) for f in ranked]
    winner = ranked[0]
    holdout = evaluate(winner.model, split.x_test, split.y_test, split.task)
    registered = None
    if registry is not None:
        progress(deadline.fraction(), f"registering the winner ({winner.name})")
        registered = publish_model(
            registry,
            name=name,
            model=winner.model,
            split=split,
            target=target,
            params={"estimator": winner.name, **winner.best_params, "budget_s": budget_s},
            metrics={**holdout, f"validation_{goal}": _signed(goal, winner.best)},
            tags={"estimator": winner.name, "source": dataset.source, "automl": "true"},
            stage=stage,
            gate=GateSpec(goal, gate_tolerance) if auto_promote else None,
            experiment=f"{name}-automl",
        )
    progress(1.0, f"winner {winner.name}: {goal} {board[0].holdout:.4g} on the holdout")
    return AutoMLOutcome(
        goal,
        split.task.value,
        board,
        winner.name,
        registered,
        budget_s,
        deadline.elapsed(),
        trials,
        holdout,
    )


def _new_family(family: str, task: Task, seed: int) -> _Family:
    import optuna

    key = space_key(family, task)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=3),
    )
    study.enqueue_trial(FIRST[key])
    return _Family(family, study, load_space(SPACES[key]))


def _search(
    state: list[_Family],
    split: Split,
    goal: str,
    seed: int,
    deadline: Deadline,
    reserve: float,
    progress: Progress,
    should_stop: StopCheck,
) -> int:
    train_rows, val_rows = fold_indices(split.x_train, split.y_train, split.task, 1, seed)[0]
    parts = (
        split.x_train.iloc[train_rows],
        split.y_train.iloc[train_rows],
        split.x_train.iloc[val_rows],
        split.y_train.iloc[val_rows],
    )
    alive, rounds, total = list(state), 0, 0
    while alive:
        ran = 0
        for family in alive:
            check_stop(should_stop, "AutoML")
            left = deadline.remaining() - reserve
            if left <= 0 or (family.trials and family.slowest_s > left):
                continue
            _trial(family, parts, split.task, goal, seed, left)
            ran, total = ran + 1, total + 1
            best = max(f.best for f in state)
            progress(
                min(0.9, deadline.fraction()),
                f"{family.name} trial {family.trials}: best {goal} {_signed(goal, best):.4g}",
            )
        if ran == 0:
            break
        rounds += 1
        if rounds % 2 == 0 and len(alive) > 2:
            alive = sorted(alive, key=lambda f: f.best, reverse=True)[: math.ceil(len(alive) / 2)]
    return total


def _trial(
    family: _Family,
    parts: tuple[Any, Any, Any, Any],
    task: Task,
    goal: str,
    seed: int,
    cap_s: float,
) -> None:
    import time

    x_fit, y_fit, x_val, y_val = parts
    trial = family.study.ask()
    params = family.space.suggest(trial)
    started = time.monotonic()
    try:
        model = fit_within(family.name, params, x_fit, y_fit, task, seed, cap_s)
        value = _signed(goal, score(model, x_val, y_val, task, goal))
    except (ValueError, TypeError, ArithmeticError) as exc:
        trial.set_user_attr("error", str(exc)[:300])
        family.study.tell(trial, state=_fail())
        family.trials += 1
        return
    seconds = time.monotonic() - started
    family.study.tell(trial, value if math.isfinite(value) else -1e300)
    family.trials += 1
    family.fit_seconds += seconds
    family.slowest_s = max(family.slowest_s, seconds)
    if math.isfinite(value) and value > family.best:
        family.best, family.best_params, family.model = value, params, model


def _fail() -> Any:
    from optuna.trial import TrialState

    return TrialState.FAIL


def _signed(goal: str, value: float) -> float:
    """Scores are maximised: a lower-is-better metric is negated (and back)."""
    return value if higher_is_better(goal) else -value


def _row(family: _Family, split: Split, goal: str, seconds: float) -> LeaderboardRow:
    model = family.model
    return LeaderboardRow(
        family.name,
        family.best_params,
        _signed(goal, family.best),
        score(model, split.x_test, split.y_test, split.task, goal),
        latency_p99_ms(model.predict, split.x_test, batch_rows=32, repeats=30, max_seconds=seconds),
        size_bytes(model),
        family.trials,
        family.fit_seconds,
    )

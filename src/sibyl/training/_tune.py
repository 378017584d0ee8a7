"""Hyper-parameter tuning with Optuna: :func:`tune` searches a space for a tabular estimator or
a zoo use case, logs every trial to MLflow and registers the best (or a chosen Pareto) model;
:func:`~sibyl.training._tune_report.compare_studies` puts studies side by side.

Flow of :func:`tune`: build the problem (data split once, seeded; the holdout is never seen by a
trial), open or join the study (:mod:`sibyl.training._study`: the creator queues exactly
``n_trials``), run trials in ``n_jobs`` threads until the queue is empty, the ``timeout`` passes
or ``should_stop()``; then — in the process that created the study, once no other worker's trial
is still running — refit the chosen parameters on the whole training part, evaluate once on the
holdout and register the model (staging; optionally through the holdout promotion gate).
MLflow: one parent run per study (experiment ``<name>-tuning``), one nested run per trial
(params, objective values, state, worker, duration).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import InvalidInputError, NotFoundError
from sibyl.training._control import (
    Deadline,
    MonotonicProgress,
    Progress,
    StopCheck,
    never_stop,
    no_progress,
)
from sibyl.training._metrics import check_metric, default_metric, evaluate, higher_is_better
from sibyl.training._objective import COSTS, LATENCY, SIZE, Problem, make_objective
from sibyl.training._space import SearchSpace, load_space
from sibyl.training._storage import describe, get_storage
from sibyl.training._strategies import (
    canonical_strategy,
    make_pruner,
    make_sampler,
    require_optuna,
)
from sibyl.training._study import (
    RUN_ATTR,
    SPEC_ATTR,
    OpenedStudy,
    count_states,
    grid_plan,
    open_study,
    run_worker,
    wait_idle,
)
from sibyl.training._train import GateSpec, TrainingOutcome, open_registry, publish_model
from sibyl.training._tune_log import close_study_run, reporter, study_run
from sibyl.training._tune_report import TrialSummary, TuningOutcome, best_trials

if TYPE_CHECKING:
    import optuna

    from sibyl.registry import ModelRegistry


def tune(
    space: str | Path | dict[str, Any] | SearchSpace,
    *,
    tracking_uri: str,
    artifact_location: str | None = None,
    name: str | None = None,
    data: Any = None,
    target: str | None = None,
    use_case: str | None = None,
    estimator: str | None = None,
    features: list[str] | None = None,
    task: str = "auto",
    full: bool = False,
    strategy: str = "tpe",
    pruner: str | None = None,
    n_trials: int | None = None,
    timeout: float | None = None,
    n_jobs: int = 1,
    storage: Any = None,
    study_name: str | None = None,
    metric: str | None = None,
    objectives: Sequence[str] | None = None,
    folds: int = 3,
    test_size: float = 0.25,
    seed: int = 0,
    register: bool = True,
    choose_trial: int | None = None,
    stage: str = "staging",
    auto_promote: bool = False,
    gate_tolerance: float = 0.0,
    log_trials: bool = True,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
) -> TuningOutcome:
    """Tune ``estimator`` on ``data``/``target`` (or the zoo ``use_case``) over ``space``.

    ``objectives``: the metric (default: ``metric`` or the task's — ROC AUC / RMSE; put first
    when left out), optionally followed by ``latency_p99_ms`` and/or ``size_bytes``
    (multi-objective: the outcome's ``best`` is the Pareto front; ``choose_trial`` picks which
    trial to register, default the best on the metric). ``n_trials`` and/or ``timeout``
    (seconds) bound the study; ``n_jobs`` threads run trials here; ``storage`` (URL or Optuna
    storage; None: memory) shares the study with other processes running the same
    ``study_name`` (default ``<name>-<strategy>``).
    """
    started = time.monotonic()
    require_optuna()
    _check_bounds(n_trials, timeout, n_jobs, strategy)
    chosen_strategy = canonical_strategy(strategy)
    spec = load_space(space)
    problem, name = _problem(
        spec, name, data, target, use_case, estimator, features, task, full, test_size, seed
    )
    goals = _objectives(objectives, metric, problem)
    directions = ["maximize" if higher_is_better(g) else "minimize" for g in goals]
    registry = open_registry(tracking_uri, artifact_location) if (register or log_trials) else None
    opened = _open(
        spec,
        problem,
        goals,
        directions,
        chosen_strategy,
        pruner,
        n_trials,
        storage,
        study_name or f"{name}-{chosen_strategy}",
        folds,
        seed,
        name,
        registry,
        log_trials,
    )
    run_id = opened.study.user_attrs.get(RUN_ATTR)
    objective = make_objective(
        problem, spec, goals, folds=folds, seed=seed, should_stop=should_stop
    )
    report = reporter(
        opened.study, registry, run_id, MonotonicProgress(progress), n_trials, timeout, goals
    )
    done = _run_threads(opened, objective, n_jobs, Deadline(timeout), should_stop, report)
    registered, chosen = None, None
    if opened.created:
        registered, chosen = _finish(
            opened,
            problem,
            spec,
            goals,
            registry,
            run_id,
            name,
            chosen_strategy,
            register,
            choose_trial,
            stage,
            auto_promote,
            gate_tolerance,
            timeout,
            should_stop,
        )
    progress(1.0, f"study '{opened.study.study_name}' done")
    return TuningOutcome(
        opened.study.study_name,
        describe(opened.storage),
        chosen_strategy,
        list(goals),
        directions,
        count_states(opened.study),
        best_trials(opened.study, goals),
        chosen,
        registered,
        done,
        time.monotonic() - started,
        run_id,
    )


def _check_bounds(n_trials: int | None, timeout: float | None, n_jobs: int, strategy: str) -> None:
    if n_trials is not None and n_trials < 1:
        raise InvalidInputError(f"n_trials must be at least 1, got {n_trials}", field="n_trials")
    if timeout is not None and timeout <= 0:
        raise InvalidInputError(f"timeout must be > 0 seconds, got {timeout}", field="timeout")
    if n_trials is None and timeout is None and canonical_strategy(strategy) != "grid":
        raise InvalidInputError("Give n_trials and/or timeout to bound the study", field="n_trials")
    if n_jobs < 1:
        raise InvalidInputError(f"n_jobs must be at least 1, got {n_jobs}", field="n_jobs")


def _problem(
    spec: SearchSpace,
    name: str | None,
    data: Any,
    target: str | None,
    use_case: str | None,
    estimator: str | None,
    features: list[str] | None,
    task: str,
    full: bool,
    test_size: float,
    seed: int,
) -> tuple[Problem, str]:
    from sibyl.training._objective import tabular_problem
    from sibyl.training._zoo_problems import zoo_problem

    if (data is None) == (use_case is None):
        raise InvalidInputError("Give either data (with target) or use_case", field="data")
    if use_case is not None:
        problem, model_name = zoo_problem(use_case, full=full, seed=seed)
        return problem, name or model_name
    if not target:
        raise InvalidInputError("target names the column to predict", field="target")
    if not name:
        raise InvalidInputError("name is the registered model to create", field="name")
    chosen = estimator or spec.estimator or "random_forest"
    return tabular_problem(
        data, target, estimator=chosen, features=features, task=task, test_size=test_size, seed=seed
    ), name


def _objectives(
    objectives: Sequence[str] | None, metric: str | None, problem: Problem
) -> list[str]:
    goals = list(objectives or [])
    if not goals or goals[0] in COSTS:  # costs only: the metric comes first
        goals.insert(0, metric or default_metric(problem.task))
    check_metric(goals[0], problem.task, "objectives")
    extra = [g for g in goals[1:] if g not in COSTS]
    if extra or len(set(goals)) != len(goals):
        raise InvalidInputError(
            f"objectives: a metric, then optionally {LATENCY} and/or {SIZE}; got {goals}",
            field="objectives",
        )
    return goals


def _open(
    spec: SearchSpace,
    problem: Problem,
    goals: list[str],
    directions: list[str],
    strategy: str,
    pruner: str | None,
    n_trials: int | None,
    storage: Any,
    study_name: str,
    folds: int,
    seed: int,
    name: str,
    registry: ModelRegistry | None,
    log_trials: bool,
) -> OpenedStudy:
    if len(goals) > 1 and pruner not in (None, "none"):
        raise InvalidInputError("Pruners work with one objective only", field="pruner")
    if strategy == "grid":
        plan: list[dict[str, Any]] | None = grid_plan(spec.grid(), n_trials, seed)
    else:
        plan = [{} for _ in range(n_trials)] if n_trials is not None else None
    attrs: dict[str, Any] = {
        SPEC_ATTR: {
            "space": spec.to_dict(),
            "objectives": goals,
            "strategy": strategy,
            "estimator": problem.estimator,
            "model": name,
            "folds": folds,
        },
    }
    if log_trials and registry is not None:
        attrs[RUN_ATTR] = study_run(registry, name, study_name, strategy)
    opened = open_study(
        study_name,
        get_storage(storage),
        directions=directions,
        sampler=make_sampler(strategy, seed),
        pruner=make_pruner(pruner, folds),
        plan=plan,
        attrs=attrs,
    )
    if not opened.created:
        if RUN_ATTR in attrs and registry is not None:  # ours was not needed
            registry.client.delete_run(attrs[RUN_ATTR])
        opened.study.sampler.reseed_rng()  # another process samples too: differ from it
    return opened


def _run_threads(
    opened: OpenedStudy,
    objective: Any,
    n_jobs: int,
    deadline: Deadline,
    should_stop: StopCheck,
    on_trial: Any,
) -> int:
    def work() -> int:
        return run_worker(
            opened, objective, deadline=deadline, should_stop=should_stop, on_trial=on_trial
        )

    if n_jobs == 1:
        return work()
    with ThreadPoolExecutor(n_jobs, thread_name_prefix="sibyl-tune") as pool:
        futures = [pool.submit(work) for _ in range(n_jobs)]
        return sum(f.result() for f in futures)


def _finish(
    opened: OpenedStudy,
    problem: Problem,
    spec: SearchSpace,
    goals: list[str],
    registry: ModelRegistry | None,
    run_id: str | None,
    name: str,
    strategy: str,
    register: bool,
    choose_trial: int | None,
    stage: str,
    auto_promote: bool,
    gate_tolerance: float,
    timeout: float | None,
    should_stop: StopCheck,
) -> tuple[TrainingOutcome | None, TrialSummary | None]:
    study = opened.study
    wait_idle(study, timeout if timeout is not None else 600.0, should_stop)
    best = best_trials(study, goals)
    if registry is not None and run_id:
        close_study_run(registry, run_id, best, goals, count_states(study))
    if not best:
        return None, None
    chosen = _choose(study, best, choose_trial)
    if not register or registry is None:
        return None, chosen
    params = {**spec.fixed, **chosen.params}
    model = problem.build(params).fit(problem.split.x_train, problem.split.y_train)
    metrics = evaluate(model, problem.split.x_test, problem.split.y_test, problem.task)
    metrics.update({f"cv_{g}": v for g, v in zip(goals, chosen.values or [], strict=False)})
    outcome = publish_model(
        registry,
        name=name,
        model=model,
        split=problem.split,
        target=problem.target,
        params=params,
        metrics=metrics,
        tags={
            "estimator": problem.estimator,
            "source": problem.source,
            "study": study.study_name,
            "trial": str(chosen.number),
            "strategy": strategy,
        },
        stage=stage,
        gate=GateSpec(goals[0], gate_tolerance) if auto_promote else None,
        experiment=f"{name}-tuning",
        parent_run_id=run_id,
    )
    return outcome, chosen


def _choose(study: optuna.Study, best: list[TrialSummary], number: int | None) -> TrialSummary:
    if number is None:
        return best[0]
    for trial in study.get_trials(deepcopy=False):
        if trial.number == number and trial.state.name == "COMPLETE":
            return TrialSummary.of(trial)
    raise NotFoundError(
        f"Study '{study.study_name}' has no complete trial {number}; choose one of "
        f"{[t.number for t in best]} (the Pareto front)"
    )

"""``sibyl tune`` (Optuna search that registers the best model) and ``sibyl studies``
(list and compare stored studies)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from sibyl.cli._common import console, fail, out, quiet_libraries
from sibyl.cli._training_common import fmt, fraction_bar, mlflow_target, store_url
from sibyl.errors import SibylError

studies = typer.Typer(no_args_is_help=True, help="Optuna studies: list and compare.")

StorageOpt = Annotated[
    str | None,
    typer.Option(
        help="Optuna storage: a sqlite:/// or postgresql:// URL, or 'store' for "
        "sibyl's own database (default: in memory)."
    ),
]


def _storage(value: str | None) -> Any:
    from sibyl.training import storage_for_store

    return storage_for_store(store_url()) if value == "store" else value


def tune(
    use_case: Annotated[
        str | None, typer.Argument(help="Zoo use case: calendar, threat or churn (or give --data).")
    ] = None,
    data: Annotated[Path | None, typer.Option(help="CSV or Parquet file to tune on.")] = None,
    target: Annotated[str | None, typer.Option(help="Column to predict (with --data).")] = None,
    name: Annotated[str | None, typer.Option(help="Registered model name.")] = None,
    estimator: Annotated[
        str | None,
        typer.Option(help="Estimator (default: the space's 'estimator:' or random_forest)."),
    ] = None,
    space: Annotated[Path | None, typer.Option(help="Search space, JSON or YAML.")] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", help="Trials in all.")] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds before no new trial starts.")
    ] = None,
    strategy: Annotated[
        str, typer.Option(help="random, grid, tpe (bayesian), cmaes, nsga2.")
    ] = "tpe",
    pruner: Annotated[str | None, typer.Option(help="median or hyperband.")] = None,
    jobs: Annotated[int, typer.Option(help="Parallel trials in this process.")] = 1,
    storage: StorageOpt = None,
    study: Annotated[
        str | None,
        typer.Option(help="Study name (join it from other processes with the same --storage)."),
    ] = None,
    metric: Annotated[str | None, typer.Option(help="Metric to optimise.")] = None,
    multi_objective: Annotated[
        bool, typer.Option(help="Also minimise p99 latency and model bytes (Pareto front).")
    ] = False,
    choose_trial: Annotated[
        int | None, typer.Option(help="Trial to register (default: the best on the metric).")
    ] = None,
    folds: Annotated[int, typer.Option(help="Cross-validation folds per trial.")] = 3,
    seed: Annotated[int, typer.Option()] = 0,
    register: Annotated[bool, typer.Option(help="Register the chosen model.")] = True,
    auto_promote: Annotated[bool, typer.Option(help="Promote through the holdout gate.")] = False,
    tolerance: Annotated[float, typer.Option(help="Gate tolerance.")] = 0.0,
) -> None:
    """Tune a model with Optuna, log every trial to MLflow and register the best one (staging).

    Two terminals running the same command with ``--storage postgresql://…`` share the study:
    exactly ``--n-trials`` trials run in all.
    """
    from sibyl.training import tune as run_tune
    from sibyl.training._objective import LATENCY, SIZE
    from sibyl.training._zoo_problems import DEFAULT_SPACES

    uri, artifacts = mlflow_target()
    try:
        chosen_space: Any = space if space is not None else DEFAULT_SPACES.get(use_case or "")
        if chosen_space is None:
            raise fail(ValueError("--space is required (a JSON or YAML search space)"))
        goals = [LATENCY, SIZE] if multi_objective else None
        with quiet_libraries(), fraction_bar("tuning") as bar:
            outcome = run_tune(
                chosen_space,
                tracking_uri=uri,
                artifact_location=artifacts,
                name=name,
                data=data,
                target=target,
                use_case=use_case,
                estimator=estimator,
                strategy=strategy,
                pruner=pruner,
                n_trials=n_trials,
                timeout=timeout,
                n_jobs=jobs,
                storage=_storage(storage),
                study_name=study,
                metric=metric,
                objectives=goals,
                folds=folds,
                seed=seed,
                register=register,
                choose_trial=choose_trial,
                auto_promote=auto_promote,
                gate_tolerance=tolerance,
                progress=bar,
            )
    except SibylError as exc:
        raise fail(exc) from exc
    _print_outcome(outcome)


def _print_outcome(outcome: Any) -> None:
    from rich.table import Table

    title = f"study {outcome.study_name} ({outcome.strategy}, {outcome.storage}): " + ", ".join(
        f"{k.lower()} {v}" for k, v in sorted(outcome.states.items())
    )
    front = "Pareto front" if len(outcome.objectives) > 1 else "best trial"
    table = Table(
        "trial", *outcome.objectives, "params", title=f"{title} — {front}", title_justify="left"
    )
    for trial in outcome.best:
        table.add_row(
            str(trial.number),
            *(fmt(v) for v in trial.values or []),
            ", ".join(f"{k}={fmt(v)}" for k, v in trial.params.items()),
        )
    out.print(table)
    if outcome.registered is not None:
        r = outcome.registered
        gate = f"; gate: {r.gate.message}" if r.gate else ""
        console.print(
            f"registered {r.name} v{r.version} ({r.stage}) from trial {outcome.chosen.number}{gate}"
        )
    elif outcome.chosen is None:
        console.print("no trial completed")


@studies.command("list")
def list_cmd(storage: StorageOpt = "store") -> None:
    """The studies stored in ``--storage``."""
    from sibyl.training import list_studies

    try:
        names = list_studies(_storage(storage))
    except SibylError as exc:
        raise fail(exc) from exc
    for study_name in names:
        out.print(study_name)


@studies.command("compare")
def compare_cmd(
    names: Annotated[list[str], typer.Argument(help="Study names.")],
    storage: StorageOpt = "store",
) -> None:
    """Best value, trials per state and time of several studies, side by side."""
    from rich.table import Table

    from sibyl.training import compare_studies

    try:
        rows = compare_studies(names, _storage(storage))
    except SibylError as exc:
        raise fail(exc) from exc
    table = Table(
        "study",
        "directions",
        "best",
        "complete",
        "pruned",
        "failed",
        "trial s",
        "wall s",
        "best params",
    )
    for r in rows:
        table.add_row(
            r.study_name,
            ",".join(r.directions),
            ", ".join(fmt(v) for v in r.best_values or []),
            str(r.states.get("COMPLETE", 0)),
            str(r.states.get("PRUNED", 0)),
            str(r.states.get("FAIL", 0)),
            f"{r.trial_seconds:.1f}",
            f"{r.wall_seconds:.1f}",
            ", ".join(f"{k}={fmt(v)}" for k, v in r.best_params.items()),
        )
    out.print(table)

"""MLflow records of a tuning study: one parent run per study, one nested run per trial
(params, objective values, state, worker, duration), the best values on the parent at the end.
A trial is never failed by MLflow trouble: logging errors are warnings."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from sibyl.training._control import Deadline, Progress
from sibyl.training._study import ERROR_ATTR, WORKER_ATTR, count_states, planned_trials

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from sibyl.registry import ModelRegistry
    from sibyl.training._tune_report import TrialSummary

_log = logging.getLogger(__name__)
_FINISHED = ("COMPLETE", "PRUNED", "FAIL")


def study_run(registry: ModelRegistry, name: str, study_name: str, strategy: str) -> str:
    run = registry.client.create_run(
        registry.experiment_id(f"{name}-tuning"),
        run_name=study_name,
        tags={"sibyl.study": study_name, "sibyl.strategy": strategy},
    )
    return str(run.info.run_id)


def reporter(
    study: optuna.Study,
    registry: ModelRegistry | None,
    run_id: str | None,
    progress: Progress,
    n_trials: int | None,
    timeout: float | None,
    goals: list[str],
) -> Any:
    clock = Deadline(timeout)
    total = n_trials if n_trials is not None else planned_trials(study)

    def on_trial(trial: FrozenTrial) -> None:
        if registry is not None and run_id:
            _log_trial(registry, run_id, study.study_name, trial, goals)
        finished = sum(count_states(study).get(s, 0) for s in _FINISHED)
        fraction = finished / total if total else clock.fraction()
        value = f"{goals[0]} {trial.values[0]:.4g}" if trial.values else trial.state.name
        progress(0.95 * fraction, f"trial {trial.number} ({finished}/{total or '?'}): {value}")

    return on_trial


def _log_trial(
    registry: ModelRegistry, run_id: str, study_name: str, trial: FrozenTrial, goals: list[str]
) -> None:
    from sibyl.training._tracking import PARENT_RUN_TAG, log_values

    client = registry.client
    try:
        experiment = client.get_run(run_id).info.experiment_id
        tags = {
            PARENT_RUN_TAG: run_id,
            "sibyl.study": study_name,
            "sibyl.trial": str(trial.number),
            "sibyl.trial_state": trial.state.name,
            WORKER_ATTR: str(trial.user_attrs.get(WORKER_ATTR, "")),
        }
        if ERROR_ATTR in trial.user_attrs:
            tags[ERROR_ATTR] = str(trial.user_attrs[ERROR_ATTR])
        child = client.create_run(experiment, run_name=f"trial {trial.number}", tags=tags)
        metrics = {g: v for g, v in zip(goals, trial.values or [], strict=False)}
        if trial.duration is not None:
            metrics["trial_seconds"] = trial.duration.total_seconds()
        log_values(client, child.info.run_id, trial.params, metrics)
        status = "FINISHED" if trial.state.name in ("COMPLETE", "PRUNED") else "FAILED"
        client.set_terminated(child.info.run_id, status)
    except Exception as exc:  # a study never fails because MLflow hiccupped
        _log.warning("could not log trial %s of %s to MLflow: %s", trial.number, study_name, exc)


def close_study_run(
    registry: ModelRegistry,
    run_id: str,
    best: list[TrialSummary],
    goals: list[str],
    states: dict[str, int],
) -> None:
    from sibyl.training._tracking import log_values

    metrics: dict[str, float] = {f"trials_{k.lower()}": float(v) for k, v in states.items()}
    if best and best[0].values:
        metrics.update({f"best_{g}": v for g, v in zip(goals, best[0].values, strict=False)})
    params = {f"best.{k}": v for k, v in (best[0].params if best else {}).items()}
    try:
        log_values(registry.client, run_id, params, metrics)
        registry.client.set_terminated(run_id, "FINISHED")
    except Exception as exc:
        _log.warning("could not close the study run %s: %s", run_id, exc)

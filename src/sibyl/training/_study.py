"""Optuna studies shared by many workers with exactly the requested number of trials.

Planning: the process that *creates* a study (``create_study`` without ``load_if_exists``: one
winner, whatever the race) queues its trials up front — ``n_trials`` empty trials (their
parameters are sampled when a worker picks them up, so TPE / CMA-ES / NSGA-II still learn from
the finished ones), or the grid points for grid search — then marks the study planned. Every
worker (threads of this process, other processes, other machines on the same RDB storage) pops
queued trials one at a time — Optuna's atomic WAITING → RUNNING transition, a row update on
PostgreSQL — and stops when none is left, so the study ends with exactly ``n_trials`` trials,
none lost, none run twice. Without ``n_trials`` (a timeout only) workers create trials until
the deadline. A worker stopped by the deadline leaves the remaining queued trials WAITING: the
next ``tune`` with the same study name carries on with them.

Each trial records the worker that ran it (``sibyl.worker`` user attribute: host:pid:thread) and,
when the study has an MLflow run, is logged as a nested run under it.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sibyl.errors import ConflictError, InvalidInputError, NotReadyError
from sibyl.training._control import Cancelled, Deadline, StopCheck

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

PLANNED_ATTR = "sibyl.planned"
RUN_ATTR = "sibyl.mlflow_run_id"
SPEC_ATTR = "sibyl.spec"
WORKER_ATTR = "sibyl.worker"
ERROR_ATTR = "sibyl.error"
_PLAN_WAIT_S = 120.0


@dataclass
class OpenedStudy:
    """A study, its storage object and whether this call created it (and so planned it)."""

    study: optuna.Study
    storage: Any
    created: bool


def open_study(
    name: str,
    storage: Any,
    *,
    directions: list[str],
    sampler: Any,
    pruner: Any,
    plan: list[dict[str, Any]] | None,
    attrs: dict[str, Any],
) -> OpenedStudy:
    """Create study ``name`` and queue ``plan`` (one dict of fixed parameters per trial; None:
    no plan), or load it when it exists — then wait until its creator has planned it."""
    import optuna

    try:
        study = optuna.create_study(
            storage=storage,
            study_name=name,
            directions=directions,  # type: ignore[arg-type]
            sampler=sampler,
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        _check_directions(study, directions)
        _wait_planned(study)
        return OpenedStudy(study, storage, False)
    for key, value in attrs.items():
        study.set_user_attr(key, value)
    for params in plan or []:
        study.enqueue_trial(params)
    study.set_user_attr(PLANNED_ATTR, len(plan) if plan is not None else -1)
    return OpenedStudy(study, storage, True)


def _check_directions(study: optuna.Study, directions: list[str]) -> None:
    have = [d.name.lower() for d in study.directions]
    if have != directions:
        raise ConflictError(
            f"Study '{study.study_name}' exists with directions {have}, not {directions}; "
            "use another study name or the same objectives"
        )


def _wait_planned(study: optuna.Study) -> None:
    deadline = time.monotonic() + _PLAN_WAIT_S
    while PLANNED_ATTR not in study.user_attrs:
        if time.monotonic() > deadline:
            raise NotReadyError(
                f"Study '{study.study_name}' was created but never planned; its creator may "
                "have died — delete the study and start again"
            )
        time.sleep(0.2)


def planned_trials(study: optuna.Study) -> int | None:
    """How many trials the study's creator queued (None: no plan, a timeout-only study)."""
    value = study.user_attrs.get(PLANNED_ATTR, -1)
    return None if value is None or int(value) < 0 else int(value)


def grid_plan(grid: list[dict[str, Any]], n_trials: int | None, seed: int) -> list[dict[str, Any]]:
    """The grid points in a seeded random order, cut to ``n_trials``."""
    points = list(grid)
    random.Random(seed).shuffle(points)
    return points[:n_trials] if n_trials is not None else points


def pop_trial(study: optuna.Study, storage: Any, planned: bool) -> optuna.Trial | None:
    """A trial for this worker: a queued one (atomically moved to RUNNING) or, when the study
    has no plan, a new one; None when a planned study has nothing queued."""
    import optuna
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study.study_name)
    for frozen in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if storage.set_trial_state_values(frozen._trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, frozen._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    if planned:
        return None
    return optuna.Trial(study, storage.create_new_trial(study_id))


def worker_id() -> str:
    """``host:pid:thread`` of the caller."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def run_worker(
    opened: OpenedStudy,
    objective: Callable[[optuna.Trial], float | list[float]],
    *,
    deadline: Deadline,
    should_stop: StopCheck,
    on_trial: Callable[[FrozenTrial], None],
) -> int:
    """Run trials until the plan is used up, the deadline passes or ``should_stop`` says so
    (then :class:`Cancelled`, the running trial told FAIL). Returns the trials this worker
    finished. A failing objective fails its trial only (error kept in ``sibyl.error``)."""
    import optuna
    from optuna.trial import TrialState

    study = opened.study
    planned = planned_trials(study) is not None
    done = 0
    while not deadline.expired():
        if should_stop():
            raise Cancelled("tuning was cancelled; run it again to finish the queued trials")
        trial = pop_trial(study, opened.storage, planned)
        if trial is None:
            break
        trial.set_user_attr(WORKER_ATTR, worker_id())
        values, state = None, TrialState.COMPLETE
        try:
            values = objective(trial)
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except Cancelled:
            study.tell(trial, state=TrialState.FAIL)
            raise
        except (InvalidInputError, ValueError, TypeError, ArithmeticError, MemoryError) as exc:
            trial.set_user_attr(ERROR_ATTR, f"{type(exc).__name__}: {exc}"[:500])
            state = TrialState.FAIL
        frozen = study.tell(trial, values) if values is not None else study.tell(trial, state=state)
        done += 1
        on_trial(frozen)
    return done


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trials per state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING``, ``WAITING``)."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def wait_idle(study: optuna.Study, timeout_s: float, should_stop: StopCheck) -> bool:
    """Wait until no trial of the study is RUNNING (other workers finishing); False on
    timeout."""
    from optuna.trial import TrialState

    deadline = time.monotonic() + timeout_s
    while study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if time.monotonic() > deadline or should_stop():
            return False
        time.sleep(0.5)
    return True

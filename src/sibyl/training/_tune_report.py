"""What tuning returns and reads back: trial and study summaries, the best trials (the Pareto
front for several objectives), and :func:`compare_studies` over a storage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sibyl.errors import NotFoundError
from sibyl.training._metrics import higher_is_better
from sibyl.training._storage import describe, get_storage
from sibyl.training._study import count_states

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from sibyl.training._train import TrainingOutcome


@dataclass(frozen=True)
class TrialSummary:
    """One trial: number, state, objective values, parameters, who ran it and how long."""

    number: int
    state: str
    values: list[float] | None
    params: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    duration_s: float | None = None

    @classmethod
    def of(cls, trial: FrozenTrial) -> TrialSummary:
        """The summary of an Optuna trial."""
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        values = list(trial.values) if trial.values is not None else None
        return cls(
            trial.number,
            trial.state.name,
            values,
            dict(trial.params),
            dict(trial.user_attrs),
            duration,
        )


@dataclass(frozen=True)
class TuningOutcome:
    """What a :func:`tune` call did: the study, its trials per state, the best trial(s) — the
    Pareto front for several objectives, best first on the first — the chosen one and the
    version registered from it (None when this worker did not register)."""

    study_name: str
    storage: str
    strategy: str
    objectives: list[str]
    directions: list[str]
    states: dict[str, int]
    best: list[TrialSummary]
    chosen: TrialSummary | None
    registered: TrainingOutcome | None
    trials_run_here: int
    seconds: float
    mlflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (a job's result)."""
        return asdict(self)


@dataclass(frozen=True)
class StudySummary:
    """One row of :func:`compare_studies`."""

    study_name: str
    directions: list[str]
    best_values: list[float] | None
    best_params: dict[str, Any]
    states: dict[str, int]
    trial_seconds: float
    """Sum of the trials' durations (CPU-ish cost)."""
    wall_seconds: float
    """First trial start → last trial end (elapsed time with parallel workers)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return asdict(self)


def best_trials(study: optuna.Study, goals: list[str]) -> list[TrialSummary]:
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return []
    if len(goals) == 1:
        return [TrialSummary.of(study.best_trial)]
    sign = 1.0 if higher_is_better(goals[0]) else -1.0
    front = sorted(study.best_trials, key=lambda t: -sign * t.values[0])
    return [TrialSummary.of(t) for t in front]


def compare_studies(study_names: Sequence[str], storage: Any) -> list[StudySummary]:
    """One :class:`StudySummary` per study in ``storage`` (URL or Optuna storage):
    best values and parameters, trials per state, summed trial time and wall time."""
    import optuna

    opened = get_storage(storage)
    rows = []
    for study_name in study_names:
        try:
            study = optuna.load_study(study_name=study_name, storage=opened)
        except KeyError:
            raise NotFoundError(
                f"No study '{study_name}' in {describe(opened)}; list them with "
                "`sibyl studies list --storage …`"
            ) from None
        rows.append(_summary(study))
    return rows


def list_studies(storage: Any) -> list[str]:
    """Names of the studies in ``storage``."""
    import optuna

    return [s.study_name for s in optuna.get_all_study_summaries(get_storage(storage))]


def _summary(study: optuna.Study) -> StudySummary:
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.datetime_complete is not None and t.datetime_start is not None]
    seconds = sum(t.duration.total_seconds() for t in done if t.duration is not None)
    wall = 0.0
    if done:
        start = min(t.datetime_start for t in done if t.datetime_start is not None)
        end = max(t.datetime_complete for t in done if t.datetime_complete is not None)
        wall = (end - start).total_seconds()
    best = best_trials(study, ["x"] * len(study.directions)) if len(study.directions) == 1 else []
    if len(study.directions) > 1:
        front = study.best_trials
        best = [TrialSummary.of(front[0])] if front else []
    return StudySummary(
        study.study_name,
        [d.name.lower() for d in study.directions],
        best[0].values if best else None,
        best[0].params if best else {},
        count_states(study),
        seconds,
        wall,
    )

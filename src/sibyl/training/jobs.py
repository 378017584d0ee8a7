"""Training, tuning, AutoML and compression as job kinds (``train``, ``train_use_case``, ``tune``,
``automl``, ``compress``).

Loaded by the job system in every process that submits or runs jobs
(:data:`sibyl.jobs._kinds.BUILTIN_MODULES`); light to import — the training code is imported when
a job runs. Each kind validates its parameters at submit time (a 400 naming ``params.<field>``),
reports progress through the job, stops when the job is cancelled, and writes to the registry of
the process's settings (``registry.tracking_uri`` / ``MLFLOW_TRACKING_URI``). Results are the
outcome's ``to_dict()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from sibyl.jobs import JobContext


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrainParams(_Params):
    """A generic estimator on a dataset (see :func:`sibyl.training.train_estimator`)."""

    data: str = Field(description="CSV or Parquet path.")
    target: str
    name: str = Field(description="Registered model name.")
    estimator: str = "random_forest"
    params: dict[str, Any] | None = None
    features: list[str] | None = None
    task: str = "auto"
    test_size: float = Field(0.25, gt=0, lt=1)
    seed: int = 0
    stage: str = "staging"
    auto_promote: bool = False
    gate_metric: str | None = None
    gate_tolerance: float = Field(0.0, ge=0)


class UseCaseParams(_Params):
    """A zoo use case (see :func:`sibyl.training.train_use_case`)."""

    use_case: str
    full: bool = False
    seed: int = 0
    stage: str = "staging"
    auto_promote: bool = False
    gate_metric: str | None = None
    gate_tolerance: float = Field(0.0, ge=0)


class TuneParams(_Params):
    """An Optuna study (see :func:`sibyl.training.tune`); the same ``storage`` + ``study_name``
    submitted as several jobs share the study's trials across workers."""

    space: dict[str, Any] | str
    name: str | None = None
    data: str | None = None
    target: str | None = None
    use_case: str | None = None
    estimator: str | None = None
    features: list[str] | None = None
    strategy: str = "tpe"
    pruner: str | None = None
    n_trials: int | None = Field(None, ge=1)
    timeout: float | None = Field(None, gt=0)
    storage: str | None = None
    study_name: str | None = None
    metric: str | None = None
    objectives: list[str] | None = None
    folds: int = Field(3, ge=2)
    seed: int = 0
    register: bool = True
    stage: str = "staging"
    auto_promote: bool = False
    gate_tolerance: float = Field(0.0, ge=0)


class AutoMLParams(_Params):
    """A budgeted search across model families (see :func:`sibyl.training.automl`)."""

    data: str
    target: str
    name: str
    budget_s: float = Field(60.0, gt=0)
    features: list[str] | None = None
    task: str = "auto"
    metric: str | None = None
    families: list[str] | None = None
    seed: int = 0
    register: bool = True
    stage: str = "staging"
    auto_promote: bool = False
    gate_tolerance: float = Field(0.0, ge=0)


class CompressParams(_Params):
    """Compress a registered version into a new one (see :func:`sibyl.training.compress_model`)."""

    model: str
    version: str
    tolerance: float = Field(0.01, ge=0)
    metric: str | None = None
    data: str | None = None
    target: str | None = None
    register: bool = True
    stage: str = "staging"


def _run(ctx: JobContext, call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call a training function with the job's registry, progress and cancellation; a training
    ``Cancelled`` becomes the job's cancellation (not a failure to retry)."""
    from sibyl.training import Cancelled

    settings = ctx.settings
    try:
        outcome = call(
            *args,
            tracking_uri=settings.tracking_uri(),
            artifact_location=settings.artifact_root(),
            progress=ctx.progress,
            should_stop=lambda: ctx.cancelled,
            **kwargs,
        )
    except Cancelled:
        ctx.check_cancelled()
        raise
    if isinstance(outcome, list):
        return {"outcomes": [o.to_dict() for o in outcome]}
    result: dict[str, Any] = outcome.to_dict()
    return result


def _train(ctx: JobContext, p: TrainParams) -> dict[str, Any]:
    from sibyl.training import train_estimator

    args = p.model_dump(exclude={"data", "target"})
    return _run(ctx, train_estimator, p.data, p.target, **args)


def _train_use_case(ctx: JobContext, p: UseCaseParams) -> dict[str, Any]:
    from sibyl.training import train_use_case

    args = p.model_dump(exclude={"use_case"})
    return _run(ctx, train_use_case, p.use_case, datasets_dir=ctx.settings.datasets_path(), **args)


def _tune(ctx: JobContext, p: TuneParams) -> dict[str, Any]:
    from sibyl.training import tune

    return _run(ctx, tune, p.space, **p.model_dump(exclude={"space"}))


def _automl(ctx: JobContext, p: AutoMLParams) -> dict[str, Any]:
    from sibyl.training import automl

    args = p.model_dump(exclude={"data", "target"})
    return _run(ctx, automl, p.data, p.target, **args)


def _compress(ctx: JobContext, p: CompressParams) -> dict[str, Any]:
    from sibyl.training import compress_model

    args = p.model_dump(exclude={"model", "version"})
    return _run(ctx, compress_model, p.model, p.version, **args)


def register_kinds() -> None:
    """Register the training kinds (called by the job system's loader)."""
    from sibyl.jobs import register_job_kind

    register_job_kind("train", _train, TrainParams, description="Train and register an estimator")
    register_job_kind(
        "train_use_case", _train_use_case, UseCaseParams, description="Train a zoo use case"
    )
    register_job_kind("tune", _tune, TuneParams, description="Optuna hyper-parameter search")
    register_job_kind("automl", _automl, AutoMLParams, description="Budgeted AutoML search")
    register_job_kind("compress", _compress, CompressParams, description="Compress a version")

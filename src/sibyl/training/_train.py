"""Training jobs: a generic estimator on a tabular data set, or a zoo use case, registered
into MLflow as a new (staging) version and optionally promoted through the holdout gate.

:func:`train_estimator` — load, split (stratified for classifiers, seeded), fit, evaluate on the
holdout (:mod:`sibyl.training._metrics`), log the run (params, metrics, model with signature
and input example, reference profile, holdout rows) and register the version in ``stage``; with
``auto_promote`` the candidate goes to production only when :func:`holdout_gate` passes.
:func:`publish_model` is the register-and-gate half, shared with tuning, AutoML and compression.
:func:`train_use_case` runs a zoo use case's own trainer (``sibyl train <use-case>``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import InvalidInputError, PromotionRefusedError
from sibyl.training._control import (
    Progress,
    StopCheck,
    check_stop,
    never_stop,
    no_progress,
)
from sibyl.training._data import Split, load_dataset, split_dataset
from sibyl.training._estimators import build_pipeline, canonical_name, make_estimator
from sibyl.training._gate import GateDecision, holdout_gate, promote_if_passed
from sibyl.training._metrics import check_metric, default_metric, evaluate
from sibyl.training._tracking import (
    frame_profile,
    log_holdout,
    log_sklearn_model,
    log_values,
    register_version,
    training_run,
)

if TYPE_CHECKING:
    import pandas as pd

    from sibyl.registry import ModelRegistry

STAGES = ("draft", "staging", "production")


@dataclass(frozen=True)
class GateSpec:
    """Auto-promotion: ``metric`` (default: the task's, ROC AUC / RMSE) may be worse than
    production's on the candidate's holdout by at most ``tolerance`` (absolute)."""

    metric: str | None = None
    tolerance: float = 0.0

    def __post_init__(self) -> None:
        if self.tolerance < 0:
            raise InvalidInputError(
                f"gate tolerance must be >= 0, got {self.tolerance}", field="gate_tolerance"
            )


@dataclass(frozen=True)
class TrainingOutcome:
    """A registered model version, its holdout metrics and the gate's decision if asked."""

    name: str
    version: str
    run_id: str
    stage: str
    task: str
    estimator: str
    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    gate: GateDecision | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (a job's result)."""
        return asdict(self)


def open_registry(tracking_uri: str, artifact_location: str | None = None) -> ModelRegistry:
    """The registry façade for ``tracking_uri`` (experiments created under
    ``artifact_location``)."""
    from sibyl.registry import ModelRegistry

    return ModelRegistry(tracking_uri, artifact_location=artifact_location)


def train_estimator(
    data: str | Path | pd.DataFrame,
    target: str,
    *,
    name: str,
    tracking_uri: str,
    artifact_location: str | None = None,
    estimator: str = "random_forest",
    params: dict[str, Any] | None = None,
    features: list[str] | None = None,
    task: str = "auto",
    test_size: float = 0.25,
    seed: int = 0,
    stage: str = "staging",
    auto_promote: bool = False,
    gate_metric: str | None = None,
    gate_tolerance: float = 0.0,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
) -> TrainingOutcome:
    """Train ``estimator`` (see :data:`~sibyl.training.ESTIMATORS`) with ``params`` on
    ``data`` (CSV/Parquet path or DataFrame) to predict ``target`` from ``features`` (default:
    every other column), register it as a new version of ``name`` in ``stage`` and, with
    ``auto_promote``, promote it when the holdout gate (``gate_metric``, ``gate_tolerance``)
    passes. Raises :class:`InvalidInputError` naming the bad field, :class:`Cancelled` when
    ``should_stop()`` turns True between steps."""
    _check_stage(stage)
    gate = GateSpec(gate_metric, gate_tolerance) if auto_promote else None
    progress(0.0, f"loading {data if not hasattr(data, 'columns') else 'data'}")
    dataset = load_dataset(data, target, features, task)
    split = split_dataset(dataset, test_size, seed)
    if gate is not None and gate.metric:
        check_metric(gate.metric, dataset.task, "gate_metric")
    check_stop(should_stop, f"training of '{name}'")
    progress(0.1, f"fitting {estimator} on {len(split.x_train)} rows")
    started = time.perf_counter()
    model = build_pipeline(make_estimator(estimator, dataset.task, params, seed), split.x_train)
    check_labels(model, split.y_train)
    model.fit(split.x_train, split.y_train)
    check_stop(should_stop, f"training of '{name}'")
    progress(0.6, "evaluating on the holdout")
    metrics = {**evaluate(model, split.x_test, split.y_test, dataset.task)}
    metrics["train_seconds"] = time.perf_counter() - started
    metrics["n_train"] = float(len(split.x_train))
    all_params = {"estimator": canonical_name(estimator), **(params or {})}
    all_params.update({"target": target, "test_size": test_size, "seed": seed})
    progress(0.7, f"registering '{name}'")
    return publish_model(
        open_registry(tracking_uri, artifact_location),
        name=name,
        model=model,
        split=split,
        target=target,
        params=all_params,
        metrics=metrics,
        tags={"source": dataset.source, "estimator": canonical_name(estimator)},
        stage=stage,
        gate=gate,
    )


def check_labels(model: Any, y: pd.Series[Any]) -> None:
    """XGBoost classifiers need labels ``0 … K-1``: refuse others with the fix."""
    import numpy as np

    from sibyl.training._estimators import final_estimator

    estimator = final_estimator(model)
    if type(estimator).__name__ != "XGBClassifier":
        return
    values = np.unique(np.asarray(y))
    if values.dtype.kind not in "iub" or values.tolist() != list(range(len(values))):
        raise InvalidInputError(
            "xgboost classifiers need class labels 0…K-1; encode the target as integers or "
            "use lightgbm / hist_gradient_boosting",
            field="target",
        )


def publish_model(
    registry: ModelRegistry,
    *,
    name: str,
    model: Any,
    split: Split,
    target: str,
    params: dict[str, Any],
    metrics: dict[str, float],
    tags: dict[str, str],
    stage: str = "staging",
    gate: GateSpec | None = None,
    experiment: str | None = None,
    parent_run_id: str | None = None,
    description: str | None = None,
) -> TrainingOutcome:
    """Log a fitted scikit-learn-compatible ``model`` (run in ``experiment``, default
    ``name``), register it in ``stage`` and run the gate when ``gate`` is given."""
    from sibyl.training._estimators import family_of

    started = time.perf_counter()
    family = tags.get("estimator") or family_of(model)
    all_tags = {"task": split.task.value, "target": target, "estimator": family, **tags}
    profile = frame_profile(model, split.x_train)
    with training_run(
        registry, experiment or name, f"{name} ({family})", parent_run_id=parent_run_id
    ) as run_id:
        client = registry.client
        log_values(client, run_id, params, metrics)
        log_holdout(client, run_id, split.x_test, split.y_test, target)
        from sibyl.registry import log_profile

        log_profile(client, run_id, profile)
        source = log_sklearn_model(client, run_id, model, split.x_train)
    text = description or _describe(family, split, metrics)
    registered = register_version(
        registry,
        name,
        source,
        run_id,
        description=text,
        tags=all_tags,
        stage=stage,
        profile=profile,
    )
    decision = _gate(registry, name, registered.version, model, split, gate)
    final_stage = "production" if decision is not None and decision.promoted else stage
    return TrainingOutcome(
        name,
        registered.version,
        run_id,
        final_stage,
        split.task.value,
        family,
        metrics,
        params,
        decision,
        time.perf_counter() - started,
    )


def _gate(
    registry: ModelRegistry,
    name: str,
    version: str,
    model: Any,
    split: Split,
    gate: GateSpec | None,
) -> GateDecision | None:
    if gate is None:
        return None
    metric = gate.metric or default_metric(split.task)
    decision = holdout_gate(
        registry,
        name,
        model,
        (split.x_test, split.y_test),
        split.task,
        metric=metric,
        tolerance=gate.tolerance,
    )
    decision = promote_if_passed(registry, name, version, decision)
    registry.client.set_model_version_tag(name, version, "sibyl.training.gate", decision.message)
    return decision


def _describe(family: str, split: Split, metrics: dict[str, float]) -> str:
    shown = ", ".join(
        f"{k} {v:.4f}"
        for k, v in metrics.items()
        if k not in ("n_test", "n_train", "train_seconds")
    )
    return (
        f"{family} {split.task.value} trained by sibyl on {len(split.x_train)} rows; "
        f"holdout ({len(split.x_test)} rows): {shown}"
    )


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise InvalidInputError(
            f"stage must be one of {', '.join(STAGES)}, got '{stage}'", field="stage"
        )


# ---- zoo use cases ------------------------------------------------------------------------


_ZOO_METRICS = ("roc_auc", "auc", "accuracy", "macro_f1")


def train_use_case(
    use_case: str,
    *,
    tracking_uri: str,
    artifact_location: str,
    full: bool = False,
    seed: int = 0,
    stage: str = "staging",
    auto_promote: bool = False,
    gate_metric: str | None = None,
    gate_tolerance: float = 0.0,
    datasets_dir: str | Path | None = None,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
) -> list[TrainingOutcome]:
    """Train a zoo use case (``dkt``, ``calendar``, ``struggle``, ``threat``, ``churn``) with
    its own trainer, put the new versions in ``stage`` and, with ``auto_promote``, promote
    each through the registry's run-metric gate (``gate_metric``, default the first of
    roc_auc / auc / accuracy / macro_f1 it logged; the zoo's generators are seeded, so the
    same ``seed`` means the same holdout)."""
    from sibyl.zoo.catalog import get_use_case

    _check_stage(stage)
    case = get_use_case(use_case)
    registry = open_registry(tracking_uri, artifact_location)
    steps = [0.0]

    def note(message: str) -> None:
        check_stop(should_stop, f"training of use case '{use_case}'")
        steps[0] += (0.9 - steps[0]) * 0.25
        progress(steps[0], message)

    registered = case.register_all(
        tracking_uri,
        artifact_location,
        full=full,
        seed=seed,
        progress=note,
        datasets_dir=Path(datasets_dir) if datasets_dir else None,
    )
    outcomes = []
    for model in registered:
        registry.set_stage(model.name, model.version, stage)
        decision = None
        if auto_promote:
            metric = gate_metric or next((m for m in _ZOO_METRICS if m in model.metrics), None)
            decision = _zoo_gate(registry, model.name, model.version, metric, gate_tolerance)
        final = "production" if decision is not None and decision.promoted else stage
        run_id = registry.client.get_model_version(model.name, model.version).run_id or ""
        outcomes.append(
            TrainingOutcome(
                model.name,
                model.version,
                run_id,
                final,
                "zoo",
                use_case,
                dict(model.metrics),
                {"full": full, "seed": seed},
                decision,
            )
        )
    progress(1.0, f"trained {len(outcomes)} model(s) of '{use_case}'")
    return outcomes


def _zoo_gate(
    registry: ModelRegistry, name: str, version: str, metric: str | None, tolerance: float
) -> GateDecision:
    from sibyl.registry import Gate

    if metric is None:
        return GateDecision(
            "", tolerance, False, False, None, None, None, "no gate metric: pass gate_metric"
        )
    gate = Gate(metric, metric not in ("log_loss", "rmse", "mae"), tolerance)
    try:
        result = registry.promote(name, version, "production", gate=gate)
    except PromotionRefusedError as exc:
        checked = registry.check_gate(name, version, gate)
        return GateDecision(
            metric,
            tolerance,
            False,
            False,
            checked.candidate_value,
            checked.production_value,
            None,
            exc.message,
        )
    assert result.gate is not None
    return GateDecision(
        metric,
        tolerance,
        True,
        True,
        result.gate.candidate_value,
        result.gate.production_value,
        result.previous,
        result.gate.message,
    )

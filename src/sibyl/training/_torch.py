"""Torch trainers as jobs: the knowledge-tracing models (DKT LSTM, SAKT-style Transformer) with
early stopping on validation AUC and a checkpoint that lets a killed job resume.

The loop itself is :func:`sibyl.zoo.knowledge_tracing.loop.fit`: after every epoch it writes
the checkpoint atomically (model, optimizer, RNG states, early-stopping state, best weights);
started again with the same ``checkpoint`` path, data, recipe and seed it continues from the
last finished epoch and ends with exactly the weights an uninterrupted run would have.
Here ``progress`` is told after every epoch and ``should_stop()`` is polled there too:
:class:`Cancelled` leaves the checkpoint of that epoch behind, so resuming loses nothing.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import InvalidInputError
from sibyl.training._control import Progress, StopCheck, check_stop, never_stop, no_progress
from sibyl.training._train import TrainingOutcome, _check_stage, open_registry

if TYPE_CHECKING:
    from sibyl.zoo.knowledge_tracing.loop import EpochReport
    from sibyl.zoo.knowledge_tracing.train import Recipe, Trained


def kt_recipe(
    kind: str,
    *,
    full: bool = False,
    n_students: int | None = None,
    hyper: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
) -> Recipe:
    """The zoo's SMALL/FULL recipe with ``kind``'s constructor (``hyper``) and training
    (``training``: :class:`TrainConfig` fields) settings overridden."""
    from sibyl.zoo.knowledge_tracing.train import KINDS, ModelRecipe, recipe

    if kind not in KINDS:
        raise InvalidInputError(
            f"kind must be one of {', '.join(KINDS)}, got '{kind}'", field="kind"
        )
    base = recipe(full)
    model = base.models[kind]
    merged = ModelRecipe({**model.hyper, **(hyper or {})}, {**model.training, **(training or {})})
    return replace(
        base, n_students=n_students or base.n_students, models={**base.models, kind: merged}
    )


def fit_knowledge_tracer(
    kind: str = "lstm",
    *,
    checkpoint: str | Path | None = None,
    full: bool = False,
    n_students: int | None = None,
    hyper: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    seed: int = 0,
    threads: int = 1,
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
) -> tuple[Trained, Any]:
    """Generate Simulated-5 (``n_students``, ``seed``) and train ``kind`` on it, resuming from
    ``checkpoint`` when the file exists; returns the trained model (scored on the test
    students) and the data set."""
    from sibyl.zoo.knowledge_tracing.data import simulate_5
    from sibyl.zoo.knowledge_tracing.train import train_model

    chosen = kt_recipe(kind, full=full, n_students=n_students, hyper=hyper, training=training)
    max_epochs = int(chosen.models[kind].training.get("max_epochs", 60))
    progress(0.0, f"generating Simulated-5 ({chosen.n_students} students)")
    dataset = simulate_5(chosen.n_students, seed=seed)

    def on_epoch(report: EpochReport) -> None:
        progress(
            min(0.9, 0.9 * report.epoch / max_epochs),
            f"epoch {report.epoch}: val AUC {report.val_auc:.4f} (best {report.best_val_auc:.4f})",
        )
        check_stop(should_stop, f"training of {kind}")  # the epoch's checkpoint is written

    check_stop(should_stop, f"training of {kind}")
    trained = train_model(
        kind,
        dataset,
        chosen=chosen,
        seed=seed,
        threads=threads,
        checkpoint=checkpoint,
        on_epoch=on_epoch,
    )
    return trained, dataset


def train_knowledge_tracing(
    kind: str = "lstm",
    *,
    tracking_uri: str,
    artifact_location: str,
    name: str | None = None,
    checkpoint: str | Path | None = None,
    full: bool = False,
    n_students: int | None = None,
    hyper: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    seed: int = 0,
    threads: int = 1,
    stage: str = "staging",
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
) -> TrainingOutcome:
    """Train DKT (``kind="lstm"``) or the Transformer (``"transformer"``) with checkpoints
    (see the module docstring) and register it as ``name`` (default ``dkt`` /
    ``dkt-transformer``) in ``stage``, with the zoo's torch sequence contract."""
    from sibyl.zoo.knowledge_tracing.publish import log_model
    from sibyl.zoo.knowledge_tracing.train import MODEL_NAMES

    _check_stage(stage)
    started = time.perf_counter()
    trained, dataset = fit_knowledge_tracer(
        kind,
        checkpoint=checkpoint,
        full=full,
        n_students=n_students,
        hyper=hyper,
        training=training,
        seed=seed,
        threads=threads,
        progress=progress,
        should_stop=should_stop,
    )
    model_name = name or MODEL_NAMES[kind]
    progress(0.92, f"registering {model_name}")
    version = log_model(trained, model_name, dataset, tracking_uri, artifact_location, seed=seed)
    registry = open_registry(tracking_uri, artifact_location)
    if stage != "draft":
        registry.set_stage(model_name, version, stage)
    run_id = registry.client.get_model_version(model_name, version).run_id or ""
    progress(1.0, f"registered {model_name} v{version}")
    return TrainingOutcome(
        model_name,
        version,
        run_id,
        stage,
        "knowledge_tracing",
        kind,
        trained.metrics(),
        trained.params(),
        None,
        time.perf_counter() - started,
    )

"""Training DKT (LSTM) and the SAKT-style Transformer on Simulated-5: the recipes, one call that
trains and scores a model, and :func:`register_all`, the use case's entry point (zoo contract).

Two recipes: :data:`SMALL` (``sibyl demo``, CI: seconds) and :data:`FULL` (``sibyl train dkt
--full``, ``sibyl zoo reproduce dkt --full``: trained to convergence with early stopping).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sibyl.errors import InvalidInputError
from sibyl.zoo._registering import Progress, Registered, no_progress

if TYPE_CHECKING:
    import os

    from sibyl.zoo.knowledge_tracing.data import KTDataset
    from sibyl.zoo.knowledge_tracing.loop import EpochReport, FitResult, TrainConfig
    from sibyl.zoo.knowledge_tracing.models import KnowledgeTracer

KINDS = ("lstm", "transformer")
"""Model kinds: DKT's LSTM and the SAKT-style Transformer."""
MODEL_NAMES = {"lstm": "dkt", "transformer": "dkt-transformer"}
"""Registered model name of each kind."""
TITLES = {"lstm": "DKT (LSTM)", "transformer": "DKT-Transformer (SAKT)"}
"""Human-readable name of each kind (tables, descriptions)."""


@dataclass(frozen=True)
class ModelRecipe:
    """A model's constructor arguments (besides ``n_exercises``) and training settings
    (:class:`~sibyl.zoo.knowledge_tracing.loop.TrainConfig` fields but ``seed``)."""

    hyper: dict[str, Any]
    training: dict[str, Any]


@dataclass(frozen=True)
class Recipe:
    """How to train both models: a :class:`ModelRecipe` per kind and the student count."""

    name: str
    n_students: int
    models: dict[str, ModelRecipe] = field(default_factory=dict)


SMALL = Recipe(
    "small",
    4000,
    {
        "lstm": ModelRecipe(
            {"hidden": 64, "embedding": 32, "dropout": 0.2},
            {"max_epochs": 6, "patience": 2, "lr": 1e-2, "batch_size": 64},
        ),
        "transformer": ModelRecipe(
            {"dim": 32, "heads": 2, "dropout": 0.1},
            {"max_epochs": 4, "patience": 2, "lr": 5e-3, "batch_size": 64},
        ),
    },
)
"""A few epochs of small models: the demo and the CI smoke run (≈ 5 s per model on an idle
core; test AUC ≈ 0.80 LSTM, 0.81 Transformer)."""

FULL = Recipe(
    "full",
    4000,
    {
        "lstm": ModelRecipe(
            {"hidden": 100, "embedding": 50, "dropout": 0.5, "input_dropout": 0.2},
            {
                "max_epochs": 100,
                "patience": 10,
                "lr": 2e-3,
                "weight_decay": 1e-4,
                "lr_decay": 0.5,
                "decay_after": 3,
            },
        ),
        "transformer": ModelRecipe(
            {"dim": 64, "heads": 4, "dropout": 0.2},
            {"max_epochs": 100, "patience": 10, "lr": 1e-3},
        ),
    },
)
"""Trained to convergence: early stopping on validation AUC (patience 10 epochs), for the LSTM
with the learning rate halved after every 3 epochs without improvement."""


def recipe(full: bool) -> Recipe:
    """:data:`FULL` or :data:`SMALL`."""
    return FULL if full else SMALL


def build_model(kind: str, n_exercises: int, hyper: dict[str, Any], seed: int) -> KnowledgeTracer:
    """A freshly initialised model of ``kind`` (seeded). Raises :class:`InvalidInputError`
    for an unknown kind."""
    import torch

    from sibyl.zoo.knowledge_tracing.models import DKTLSTM, SAKT

    classes = {"lstm": DKTLSTM, "transformer": SAKT}
    if kind not in classes:
        raise InvalidInputError(
            f"kind must be one of {', '.join(KINDS)}, got '{kind}'", field="kind"
        )
    torch.manual_seed(seed)
    model: KnowledgeTracer = classes[kind](n_exercises, **hyper)
    return model


def train_config(kind: str, chosen: Recipe, seed: int, threads: int = 1) -> TrainConfig:
    """The :class:`TrainConfig` of ``kind`` in ``chosen``."""
    from sibyl.zoo.knowledge_tracing.loop import TrainConfig

    return TrainConfig(**chosen.models[kind].training, seed=seed, threads=threads)


@dataclass(frozen=True)
class Trained:
    """A trained model, how training went, its test AUC (paper protocol) and wall time."""

    kind: str
    fit: FitResult
    auc: float
    seconds: float
    config: TrainConfig

    @property
    def model(self) -> KnowledgeTracer:
        """The trained module (best validation weights, eval mode)."""
        return self.fit.model

    def metrics(self) -> dict[str, float]:
        """What registration logs: ``auc`` (test), ``val_auc``, epochs and seconds."""
        return {
            "auc": self.auc,
            "val_auc": self.fit.best_val_auc,
            "best_epoch": float(self.fit.best_epoch),
            "epochs": float(self.fit.epochs),
            "train_seconds": self.fit.seconds,
        }

    def params(self) -> dict[str, Any]:
        """Constructor arguments and training settings, prefixed ``model.`` / ``train.``."""
        hyper = {f"model.{k}": v for k, v in self.model.hyper_parameters.items()}
        return {
            "kind": self.kind,
            **hyper,
            **{f"train.{k}": v for k, v in asdict(self.config).items()},
        }


def train_model(
    kind: str,
    dataset: KTDataset,
    *,
    chosen: Recipe = SMALL,
    seed: int = 0,
    threads: int = 1,
    checkpoint: str | os.PathLike[str] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> Trained:
    """Train ``kind`` on ``dataset.train()`` with the ``chosen`` recipe and score it on
    ``dataset.test()`` with :func:`~sibyl.zoo.knowledge_tracing.evaluate_positions`.
    ``checkpoint`` and ``on_epoch`` are handed to
    :func:`~sibyl.zoo.knowledge_tracing.loop.fit`."""
    from sibyl.zoo.knowledge_tracing.data import evaluate_positions
    from sibyl.zoo.knowledge_tracing.loop import dataset_predictions, fit, from_dataset

    started = time.perf_counter()
    n_exercises = max(int(dataset.exercises.max()) + 1, dataset.beta.size)
    model = build_model(kind, n_exercises, chosen.models[kind].hyper, seed)
    config = train_config(kind, chosen, seed, threads)
    result = fit(
        model, from_dataset(dataset.train()), config, checkpoint=checkpoint, on_epoch=on_epoch
    )
    auc = evaluate_positions(dataset, dataset_predictions(result.model, dataset))
    return Trained(kind, result, auc, time.perf_counter() - started, config)


def register_all(
    tracking_uri: str,
    artifact_location: str,
    *,
    full: bool = False,
    seed: int = 0,
    progress: Progress = no_progress,
) -> list[Registered]:
    """Generate Simulated-5 (``seed``), train DKT and the Transformer (:data:`FULL` or
    :data:`SMALL`) and register them as ``dkt`` and ``dkt-transformer`` (torch flavor, the
    sequence contract of ``docs/zoo.md``). ``progress`` is called before each step."""
    from sibyl.zoo.knowledge_tracing.data import simulate_5
    from sibyl.zoo.knowledge_tracing.publish import log_model

    progress("generating Simulated-5")
    dataset = simulate_5(recipe(full).n_students, seed=seed)
    registered = []
    for kind in KINDS:
        name = MODEL_NAMES[kind]
        progress(f"training {name}")
        trained = train_model(kind, dataset, chosen=recipe(full), seed=seed)
        progress(f"registering {name}")
        version = log_model(trained, name, dataset, tracking_uri, artifact_location, seed=seed)
        registered.append(Registered(name, version, trained.metrics(), "production", "pytorch"))
    return registered

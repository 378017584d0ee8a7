"""Training a :class:`~sibyl.zoo.knowledge_tracing.models.KnowledgeTracer`: padded data, masked
BCE in mini-batches, early stopping on validation AUC, and a checkpoint to resume from.

:func:`fit` is seeded: the same data, model initialisation, :class:`TrainConfig` and thread
count give the same weights, and a run killed after any epoch and restarted with the same
``checkpoint`` path ends with exactly the weights of an uninterrupted run. The checkpoint is
written atomically after every epoch and holds the latest state (to resume) and the best one
(by validation AUC).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from sklearn.metrics import roc_auc_score
from torch import Tensor

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing.data import FloatArray, KTDataset, StudentSequence
from sibyl.zoo.knowledge_tracing.models import KnowledgeTracer


@dataclass(frozen=True)
class SequenceData:
    """Right-padded sequences: ``exercises`` and ``correct`` ``(n, T)`` int64 (pad value 0),
    ``lengths`` ``(n,)`` with every length in ``1 … T``."""

    exercises: Tensor
    correct: Tensor
    lengths: Tensor

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def rows(self, index: Tensor) -> SequenceData:
        """The rows ``index``, cut to the longest of them."""
        lengths = self.lengths[index]
        steps = int(lengths.max())
        return SequenceData(self.exercises[index, :steps], self.correct[index, :steps], lengths)

    def mask(self) -> Tensor:
        """``(n, T)`` bool: True at real (not padded) steps."""
        return torch.arange(self.exercises.shape[1]) < self.lengths.unsqueeze(1)


def from_dataset(dataset: KTDataset) -> SequenceData:
    """Every row of a fixed-order data set (no padding: every length is ``T``)."""
    exercises = torch.as_tensor(dataset.exercises, dtype=torch.long)
    correct = torch.as_tensor(dataset.correct.astype(np.int64))
    lengths = torch.full((exercises.shape[0],), exercises.shape[1], dtype=torch.long)
    return SequenceData(exercises, correct, lengths)


def from_sequences(sequences: Sequence[StudentSequence]) -> SequenceData:
    """Pad per-student sequences on the right with 0. Raises :class:`InvalidInputError` for an
    empty list, an empty sequence or answers of another length than their exercises."""
    if not sequences:
        raise InvalidInputError("sequences must hold at least one student", field="sequences")
    lengths = [len(s.exercises) for s in sequences]
    for i, (exercises, correct) in enumerate(sequences):
        if len(exercises) == 0 or len(correct) != len(exercises):
            raise InvalidInputError(
                f"student {i}: need a non-empty sequence with one answer per exercise, got "
                f"{len(exercises)} exercises and {len(correct)} answers",
                field="sequences",
            )
    ex = np.zeros((len(sequences), max(lengths)), dtype=np.int64)
    co = np.zeros_like(ex)
    for i, (exercises, correct) in enumerate(sequences):
        ex[i, : lengths[i]], co[i, : lengths[i]] = exercises, correct
    return SequenceData(torch.from_numpy(ex), torch.from_numpy(co), torch.tensor(lengths))


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`fit` trains. ``max_epochs`` caps the epochs; training stops earlier once the
    validation AUC has not improved for ``patience`` epochs; every ``decay_after`` epochs
    without improvement the learning rate is multiplied by ``lr_decay`` (1: constant). A decay
    also restarts from the best weights so far. ``val_fraction`` of the training
    rows (chosen by ``seed``) are held out for validation. ``threads`` is handed to
    ``torch.set_num_threads`` for the call (the previous count is restored)."""

    max_epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.0
    patience: int = 6
    lr_decay: float = 1.0
    decay_after: int = 3
    val_fraction: float = 0.1
    grad_clip: float = 1.0
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        for name in ("max_epochs", "batch_size", "patience", "decay_after", "threads"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"{name} must be at least 1", field=name)
        if not 0.0 < self.lr_decay <= 1.0:
            raise InvalidInputError("lr_decay must be within (0, 1]", field="lr_decay")


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch did (passed to :func:`fit`'s ``on_epoch``)."""

    epoch: int
    train_loss: float
    val_auc: float
    best_val_auc: float
    lr: float
    """The learning rate the epoch trained with."""


@dataclass
class FitResult:
    """The trained model (best validation state loaded, in eval mode) and how it got there."""

    model: KnowledgeTracer
    best_val_auc: float
    best_epoch: int
    epochs: int
    seconds: float
    history: list[EpochReport] = field(default_factory=list)


@dataclass
class _State:
    """Everything a checkpoint holds besides the model and optimizer weights."""

    epoch: int = 0
    best_val_auc: float = -1.0
    best_epoch: int = 0
    best_weights: dict[str, Tensor] | None = None
    history: list[EpochReport] = field(default_factory=list)
    seconds: float = 0.0


def masked_bce(logits: Tensor, correct: Tensor, mask: Tensor) -> Tensor:
    """Mean binary cross-entropy over the real steps only (``mask`` True)."""
    losses = F.binary_cross_entropy_with_logits(logits, correct.float(), reduction="none")
    return (losses * mask).sum() / mask.sum().clamp(min=1)


def predict_positions(model: KnowledgeTracer, data: SequenceData, batch_size: int = 512) -> Tensor:
    """``(n, T)`` probabilities of every answer from the answers before it (eval mode, no
    gradients); padded steps hold arbitrary values."""
    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            index = torch.arange(start, min(start + batch_size, len(data)))
            part = SequenceData(data.exercises[index], data.correct[index], data.lengths[index])
            out.append(torch.sigmoid(model.position_logits(part.exercises, part.correct)))
    return torch.cat(out)


def positions_auc(model: KnowledgeTracer, data: SequenceData) -> float:
    """AUC pooled over every real step but the first of every row (the paper's protocol,
    generalised to padded rows)."""
    mask = data.mask()
    mask[:, 0] = False
    p = predict_positions(model, data)
    return float(roc_auc_score(data.correct[mask].numpy(), p[mask].numpy()))


def dataset_predictions(model: KnowledgeTracer, dataset: KTDataset) -> FloatArray:
    """Predictions for ``dataset.test()`` in the shape :func:`evaluate_positions` scores."""
    probs = predict_positions(model, from_dataset(dataset.test()))
    return np.asarray(probs.numpy(), dtype=np.float64)


def split_rows(n: int, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    """Training and validation row indices (a seeded permutation; at least one each)."""
    if n < 2 or not 0.0 < val_fraction < 1.0:
        raise InvalidInputError(
            f"need at least 2 rows and 0 < val_fraction < 1, got {n} rows and {val_fraction}",
            field="val_fraction",
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    return order[n_val:], order[:n_val]


def fit(
    model: KnowledgeTracer,
    data: SequenceData,
    config: TrainConfig = TrainConfig(),
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``data`` (the training students) and return it with the best
    validation weights loaded.

    With ``checkpoint``, an existing file at that path is resumed from (its model, optimizer,
    RNG and early-stopping state; it must come from the same model and config), and the file is
    rewritten after every epoch. ``on_epoch`` is called after each epoch; an exception it
    raises stops training with the checkpoint of that epoch already written. Seeds torch's
    global RNG (dropout) from ``config.seed``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _fit(model, data, config, Path(checkpoint) if checkpoint else None, on_epoch)
    finally:
        torch.set_num_threads(threads)


def _fit(
    model: KnowledgeTracer,
    data: SequenceData,
    config: TrainConfig,
    path: Path | None,
    on_epoch: Callable[[EpochReport], None] | None,
) -> FitResult:
    train_rows, val_rows = split_rows(len(data), config.val_fraction, config.seed)
    val = data.rows(val_rows)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    shuffle = torch.Generator().manual_seed(config.seed + 1)
    torch.manual_seed(config.seed + 2)
    state = _load(path, model, optimizer, shuffle) if path and path.exists() else _State()
    while state.epoch < config.max_epochs and not _stale(state, config):
        started = time.perf_counter()
        loss = _epoch(model, data, train_rows, optimizer, shuffle, config)
        _score(state, model, val, loss, optimizer.param_groups[0]["lr"])
        _decay(state, model, optimizer, config)
        state.seconds += time.perf_counter() - started
        if path is not None:
            _save(path, model, optimizer, shuffle, state)
        if on_epoch is not None:
            on_epoch(state.history[-1])
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    model.eval()
    return FitResult(
        model, state.best_val_auc, state.best_epoch, state.epoch, state.seconds, state.history
    )


def _decay(
    state: _State, model: KnowledgeTracer, optimizer: torch.optim.Optimizer, config: TrainConfig
) -> None:
    """Stateless schedule (the optimizer's saved ``lr`` carries it across a resume)."""
    since = state.epoch - state.best_epoch
    if config.lr_decay == 1.0 or since == 0 or since % config.decay_after:
        return
    for group in optimizer.param_groups:
        group["lr"] *= config.lr_decay
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)


def _stale(state: _State, config: TrainConfig) -> bool:
    return state.epoch - state.best_epoch >= config.patience and state.epoch > 0


def _epoch(
    model: KnowledgeTracer,
    data: SequenceData,
    rows: Tensor,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    config: TrainConfig,
) -> float:
    """One pass over ``rows`` in shuffled mini-batches; the mean training loss."""
    model.train()
    order = rows[torch.randperm(len(rows), generator=shuffle)]
    total, batches = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        batch = data.rows(order[start : start + config.batch_size])
        loss = masked_bce(
            model.position_logits(batch.exercises, batch.correct), batch.correct, batch.mask()
        )
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        total, batches = total + float(loss.detach()), batches + 1
    return total / max(batches, 1)


def _score(
    state: _State, model: KnowledgeTracer, val: SequenceData, loss: float, lr: float
) -> None:
    auc = positions_auc(model, val)
    state.epoch += 1
    if auc > state.best_val_auc:
        state.best_val_auc, state.best_epoch = auc, state.epoch
        state.best_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state.history.append(EpochReport(state.epoch, loss, auc, state.best_val_auc, lr))


def _save(
    path: Path,
    model: KnowledgeTracer,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
    state: _State,
) -> None:
    """Write the checkpoint next to ``path`` then rename it over: a kill never leaves half a
    file."""
    payload: dict[str, Any] = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "shuffle_rng": shuffle.get_state(),
        "torch_rng": torch.get_rng_state(),
        "epoch": state.epoch,
        "best_val_auc": state.best_val_auc,
        "best_epoch": state.best_epoch,
        "best_weights": state.best_weights,
        "history": [asdict(r) for r in state.history],
        "seconds": state.seconds,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def _load(
    path: Path,
    model: KnowledgeTracer,
    optimizer: torch.optim.Optimizer,
    shuffle: torch.Generator,
) -> _State:
    """Restore model, optimizer and RNGs from ``path``; the rest of the state is returned."""
    try:
        payload = torch.load(path, weights_only=True)
        model.load_state_dict(payload["model"])
        optimizer.load_state_dict(payload["optimizer"])
    except (RuntimeError, KeyError, ValueError) as exc:
        raise InvalidInputError(
            f"checkpoint {path} does not fit this model and config ({exc}); delete it to start "
            "over",
            field="checkpoint",
        ) from exc
    shuffle.set_state(payload["shuffle_rng"])
    torch.set_rng_state(payload["torch_rng"])
    return _State(
        payload["epoch"],
        payload["best_val_auc"],
        payload["best_epoch"],
        payload["best_weights"],
        [EpochReport(**r) for r in payload["history"]],
        payload["seconds"],
    )


def load_best(path: str | os.PathLike[str], model: KnowledgeTracer) -> float:
    """Load the best weights of checkpoint ``path`` into ``model``; their validation AUC."""
    payload = torch.load(Path(path), weights_only=True)
    if payload["best_weights"] is None:
        raise InvalidInputError(f"checkpoint {path} has no finished epoch", field="checkpoint")
    model.load_state_dict(payload["best_weights"])
    return float(payload["best_val_auc"])

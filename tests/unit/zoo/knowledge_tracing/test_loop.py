"""The training loop: padding + masking, variable-length data, checkpoints and resuming."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing import StudentSequence, simulate_5, variable_length
from sibyl.zoo.knowledge_tracing.loop import (
    EpochReport,
    TrainConfig,
    fit,
    from_dataset,
    from_sequences,
    load_best,
    masked_bce,
    positions_auc,
    predict_positions,
)
from sibyl.zoo.knowledge_tracing.models import DKTLSTM, SAKT

TINY = TrainConfig(max_epochs=3, batch_size=32, patience=5, lr=1e-2, seed=3)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _lstm(seed: int = 0) -> DKTLSTM:
    torch.manual_seed(seed)
    return DKTLSTM(50, hidden=16, embedding=8)


def test_from_sequences_pads_right_with_zero() -> None:
    data = from_sequences(
        [
            StudentSequence(np.array([4, 5, 6]), np.array([1, 1, 1], dtype=np.int8)),
            StudentSequence(np.array([7]), np.array([1], dtype=np.int8)),
        ]
    )
    assert data.exercises.tolist() == [[4, 5, 6], [7, 0, 0]]
    assert data.correct.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert data.lengths.tolist() == [3, 1]
    assert data.mask().tolist() == [[True, True, True], [True, False, False]]


@pytest.mark.parametrize(
    "sequences", [[], [StudentSequence(np.array([], dtype=np.int64), np.array([], dtype=np.int8))]]
)
def test_from_sequences_refuses_empty_input(sequences: list[StudentSequence]) -> None:
    with pytest.raises(InvalidInputError):
        from_sequences(sequences)


def test_masked_loss_ignores_padded_steps() -> None:
    logits = torch.tensor([[2.0, -1.0, 50.0], [0.5, -50.0, 9.0]])
    correct = torch.tensor([[1, 0, 0], [1, 1, 0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    changed = logits.clone()
    changed[~mask] = torch.tensor([-7.0, 3.0, 1.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits[mask], correct[mask].float()
    )
    torch.testing.assert_close(masked_bce(logits, correct, mask), expected)
    torch.testing.assert_close(masked_bce(changed, correct, mask), expected)


def test_variable_length_training_runs_and_padding_does_not_leak() -> None:
    data = from_sequences(variable_length(n_students=120, min_len=3, max_len=40, seed=1))
    model = fit(SAKT(50, dim=16, heads=2), data, TrainConfig(max_epochs=2, batch_size=16)).model
    assert 0.0 <= positions_auc(model, data) <= 1.0
    probs = predict_positions(model, data)
    other_padding = data.__class__(
        torch.where(data.mask(), data.exercises, 49),
        torch.where(data.mask(), data.correct, 1),
        data.lengths,
    )
    mask = data.mask()
    torch.testing.assert_close(predict_positions(model, other_padding)[mask], probs[mask])
    alone = predict_positions(model, data.rows(torch.tensor([0])))
    torch.testing.assert_close(alone[0], probs[0, : int(data.lengths[0])])


def test_training_is_seeded() -> None:
    data = from_dataset(simulate_5(100, seed=0))
    first = fit(_lstm(), data, TINY)
    second = fit(_lstm(), data, TINY)
    assert [r.val_auc for r in first.history] == [r.val_auc for r in second.history]
    for a, b in zip(first.model.parameters(), second.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_training_learns_on_simulated_5() -> None:
    data = from_dataset(simulate_5(400, seed=0).train())
    result = fit(_lstm(), data, TrainConfig(max_epochs=4, batch_size=32, lr=1e-2))
    assert result.best_val_auc > 0.6  # chance is 0.5; the accuracy bars are in test_reproduce
    assert result.history[-1].train_loss < result.history[0].train_loss


class _KilledError(Exception):
    pass


def _kill_after(epoch: int) -> object:
    def on_epoch(report: EpochReport) -> None:
        if report.epoch == epoch:
            raise _KilledError

    return on_epoch


def test_a_killed_training_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    data = from_dataset(simulate_5(100, seed=0))
    config = TrainConfig(
        max_epochs=4, batch_size=16, patience=10, lr=0.3, seed=5, lr_decay=0.5, decay_after=1
    )
    straight = fit(_lstm(), data, config, checkpoint=tmp_path / "straight.pt")
    path = tmp_path / "killed.pt"
    with pytest.raises(_KilledError):
        fit(_lstm(), data, config, checkpoint=path, on_epoch=_kill_after(2))  # type: ignore[arg-type]
    assert path.exists()
    epochs_seen: list[int] = []
    resumed = fit(
        _lstm(seed=99),
        data,
        config,
        checkpoint=path,
        on_epoch=lambda r: epochs_seen.append(r.epoch),
    )
    assert epochs_seen == [3, 4]
    assert resumed.history == straight.history
    assert len({r.lr for r in straight.history}) > 1  # the schedule acted (and was resumed)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)
    fresh = _lstm(seed=7)
    assert load_best(path, fresh) == resumed.best_val_auc
    for a, b in zip(fresh.parameters(), resumed.model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_a_checkpoint_of_another_model_is_refused(tmp_path: Path) -> None:
    data = from_dataset(simulate_5(60, seed=0))
    path = tmp_path / "ckpt.pt"
    fit(_lstm(), data, TrainConfig(max_epochs=1), checkpoint=path)
    with pytest.raises(InvalidInputError, match="does not fit") as caught:
        fit(DKTLSTM(50, hidden=8, embedding=8), data, TrainConfig(max_epochs=2), checkpoint=path)
    assert caught.value.field == "checkpoint"


def test_early_stopping_stops_after_patience_epochs_without_improvement() -> None:
    data = from_dataset(simulate_5(100, seed=0))
    result = fit(_lstm(), data, TrainConfig(max_epochs=50, patience=2, lr=0.3, batch_size=8))
    assert result.epochs == result.best_epoch + 2 < 50


def test_learning_rate_halves_after_each_epoch_without_improvement() -> None:
    data = from_dataset(simulate_5(100, seed=0))
    config = TrainConfig(
        max_epochs=8, patience=8, lr=0.1, batch_size=8, lr_decay=0.5, decay_after=1
    )
    history = fit(_lstm(), data, config).history
    assert any(r.val_auc < r.best_val_auc for r in history[:-1])  # some epoch did not improve
    for before, after in itertools.pairwise(history):
        improved = before.val_auc == before.best_val_auc
        assert after.lr == (before.lr if improved else before.lr * 0.5)


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("batch_size", {"batch_size": 0}),
        ("lr_decay", {"lr_decay": 1.5}),
        ("threads", {"threads": 0}),
    ],
)
def test_bad_train_config_names_the_field(field: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInputError) as caught:
        TrainConfig(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field

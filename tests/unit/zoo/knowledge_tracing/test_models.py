"""DKT (LSTM) and SAKT modules: the serving contract, causality and padding invariance."""

from __future__ import annotations

import pytest
import torch

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing.models import DKTLSTM, SAKT, KnowledgeTracer

N = 12


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _models() -> list[KnowledgeTracer]:
    torch.manual_seed(0)
    return [
        DKTLSTM(N, hidden=16, embedding=8).eval(),
        SAKT(N, dim=16, heads=2, blocks=2).eval(),
    ]


def _history(n: int, steps: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, N, (n, steps), generator=g), torch.randint(
        0, 2, (n, steps), generator=g
    )


@pytest.mark.parametrize("model", _models(), ids=["lstm", "sakt"])
def test_forward_follows_the_contract(model: KnowledgeTracer) -> None:
    ex, co = _history(3, 7, seed=1)
    lengths, query = torch.tensor([7, 3, 1]), torch.tensor([0, 5, 11])
    with torch.inference_mode():
        out = model(exercises=ex, correct=co, lengths=lengths, query=query)
    assert set(out) == {"p_correct", "mastery", "weakest", "suggested"}
    assert out["p_correct"].shape == (3,) and out["mastery"].shape == (3, N)
    assert torch.all((out["mastery"] > 0) & (out["mastery"] < 1))
    torch.testing.assert_close(out["p_correct"], out["mastery"][torch.arange(3), query])


@pytest.mark.parametrize("model", _models(), ids=["lstm", "sakt"])
def test_padding_never_changes_a_prediction(model: KnowledgeTracer) -> None:
    ex, co = _history(1, 5, seed=2)
    query = torch.tensor([4])
    with torch.inference_mode():
        alone = model(exercises=ex, correct=co, lengths=torch.tensor([5]), query=query)
        other_ex, other_co = _history(1, 9, seed=3)
        padded_ex = torch.cat([torch.cat([ex, torch.zeros(1, 4, dtype=torch.long)], 1), other_ex])
        padded_co = torch.cat([torch.cat([co, torch.ones(1, 4, dtype=torch.long)], 1), other_co])
        batch = model(
            exercises=padded_ex,
            correct=padded_co,
            lengths=torch.tensor([5, 9]),
            query=torch.tensor([4, 0]),
        )
    torch.testing.assert_close(batch["mastery"][0], alone["mastery"][0])
    torch.testing.assert_close(batch["p_correct"][0], alone["p_correct"][0])


@pytest.mark.parametrize("model", _models(), ids=["lstm", "sakt"])
def test_position_predictions_only_see_the_past(model: KnowledgeTracer) -> None:
    ex, co = _history(2, 10, seed=4)
    changed = co.clone()
    changed[:, 6:] = 1 - changed[:, 6:]
    with torch.inference_mode():
        before, after = model.position_logits(ex, co), model.position_logits(ex, changed)
    torch.testing.assert_close(before[:, :7], after[:, :7])  # answer 6 is predicted before it
    assert not torch.allclose(before[:, 7:], after[:, 7:])


@pytest.mark.parametrize("model", _models(), ids=["lstm", "sakt"])
def test_mastery_after_a_history_is_the_next_position_prediction(model: KnowledgeTracer) -> None:
    ex, co = _history(2, 8, seed=5)
    with torch.inference_mode():
        positions = torch.sigmoid(model.position_logits(ex, co))
        out = model(
            exercises=ex[:, :7], correct=co[:, :7], lengths=torch.tensor([7, 7]), query=ex[:, 7]
        )
    torch.testing.assert_close(out["p_correct"], positions[:, 7])


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("exercises", {"exercises": torch.tensor([[0, N]])}),
        ("correct", {"correct": torch.tensor([[0, 2]])}),
        ("query", {"query": torch.tensor([-1])}),
        ("lengths", {"lengths": torch.tensor([0])}),
        ("lengths", {"lengths": torch.tensor([3])}),
        ("correct", {"correct": torch.tensor([[0, 1, 1]])}),
    ],
)
def test_bad_input_names_the_field(field: str, kwargs: dict[str, torch.Tensor]) -> None:
    call = {
        "exercises": torch.tensor([[0, 1]]),
        "correct": torch.tensor([[0, 1]]),
        "lengths": torch.tensor([2]),
        "query": torch.tensor([3]),
    }
    with pytest.raises(InvalidInputError) as caught:
        _models()[0](**{**call, **kwargs})
    assert caught.value.field == field


def test_histories_longer_than_max_length_are_refused() -> None:
    model = SAKT(N, dim=8, heads=2, max_length=4).eval()
    ex, co = _history(1, 5, seed=6)
    with pytest.raises(InvalidInputError, match="at most 4"):
        model(exercises=ex, correct=co, lengths=torch.tensor([5]), query=torch.tensor([0]))


def test_max_length_history_is_served() -> None:
    model = SAKT(N, dim=8, heads=2, max_length=6).eval()
    ex, co = _history(1, 6, seed=7)
    with torch.inference_mode():
        out = model(exercises=ex, correct=co, lengths=torch.tensor([6]), query=torch.tensor([0]))
    assert out["mastery"].shape == (1, N)

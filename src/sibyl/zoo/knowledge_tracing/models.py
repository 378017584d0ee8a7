"""Knowledge-tracing networks: DKT (an LSTM, Piech et al. 2015) and a SAKT-style Transformer.

Both are :class:`KnowledgeTracer` modules and follow the sequence-model contract of
``docs/zoo.md``:

* inputs are right-padded ``LongTensor(n, T)`` of exercise ids and 0/1 answers (pad value 0)
  plus the true ``lengths``; nothing at or after a row's length changes any output of that row;
* :meth:`KnowledgeTracer.position_logits` is the training view: entry ``[i, t]`` is the logit of
  P(answer ``t`` of row ``i`` is right) given the row's answers ``0 … t-1`` (entry ``t = 0`` is
  the prior, from no history);
* ``forward(exercises, correct, lengths, query)`` is the serving view and returns
  ``{"p_correct": (n,), "mastery": (n, n_exercises), "weakest": (n, 3), "suggested": (n, 3)}``:
  ``mastery[i, j]`` = P(right on exercise ``j`` next) after row ``i``'s whole history,
  ``p_correct[i] = mastery[i, query[i]]``; the last two are the per-student insights (weakest
  exercises, suggested next ones) computed from ``mastery``.

The classes live here (an importable module) so ``mlflow.pytorch``'s pickle can load them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812  (the usual torch alias)
from torch import Tensor, nn

from sibyl.errors import InvalidInputError
from sibyl.zoo.knowledge_tracing.insights import PRODUCTIVE_BAND

MAX_LENGTH = 200
"""Longest history the served models accept (the ``max_length`` of their metadata)."""
OUTPUTS = ("p_correct", "mastery", "weakest", "suggested")
"""Keys of ``forward``'s result, the primary prediction first."""
INSIGHT_K = 3
"""Exercises in the ``weakest`` and ``suggested`` outputs."""


def insight_indices(mastery: Tensor, k: int = INSIGHT_K) -> tuple[Tensor, Tensor]:
    """Per row, the ``k`` weakest exercises (lowest mastery first) and the ``k`` suggested next
    ones: the productive-band rule of :mod:`~sibyl.zoo.knowledge_tracing.insights` with no
    exclusions — for its symmetric band that is the order of the distance to the band's middle
    (in-band exercises first, then the nearest out of it); ties go to the lower id."""
    k = min(k, int(mastery.shape[1]))
    weakest = torch.argsort(mastery, dim=1, stable=True)[:, :k]
    low, high = PRODUCTIVE_BAND
    distance = (mastery - (low + high) / 2.0).abs()
    return weakest, torch.argsort(distance, dim=1, stable=True)[:, :k]


def interaction_ids(exercises: Tensor, correct: Tensor, n_exercises: int) -> Tensor:
    """One id per (exercise, answer) pair: ``exercise + n_exercises · correct`` (0 … 2N-1)."""
    return exercises + n_exercises * correct


def check_inputs(
    exercises: Tensor, correct: Tensor, lengths: Tensor, query: Tensor, n_exercises: int
) -> None:
    """Raise :class:`InvalidInputError` naming the field unless the shapes and ids fit.

    ``exercises`` and ``correct`` must be ``(n, T)``, ``lengths`` and ``query`` ``(n,)``; every
    length within ``1 … T``, every id within ``0 … n_exercises - 1``, answers 0 or 1.
    """
    if exercises.dim() != 2 or correct.shape != exercises.shape:
        raise InvalidInputError(
            f"exercises and correct must both be (n, T), got {tuple(exercises.shape)} and "
            f"{tuple(correct.shape)}",
            field="correct",
        )
    n, steps = exercises.shape
    for name, value in (("lengths", lengths), ("query", query)):
        if value.shape != (n,):
            raise InvalidInputError(
                f"{name} must have shape ({n},), got {tuple(value.shape)}", field=name
            )
    _check_range("lengths", lengths, 1, steps)
    _check_range("exercises", exercises, 0, n_exercises - 1)
    _check_range("query", query, 0, n_exercises - 1)
    _check_range("correct", correct, 0, 1)


def _check_range(name: str, values: Tensor, low: int, high: int) -> None:
    if values.numel() and (int(values.min()) < low or int(values.max()) > high):
        raise InvalidInputError(
            f"{name} must be within [{low}, {high}], got values in "
            f"[{int(values.min())}, {int(values.max())}]",
            field=name,
        )


class KnowledgeTracer(nn.Module):
    """Base class: the serving ``forward`` over two methods a subclass implements.

    Subclasses set ``n_exercises`` and ``max_length`` and implement :meth:`position_logits`
    and :meth:`mastery_logits`. ``hyper_parameters`` records the constructor arguments (logged
    as run params, enough to rebuild the module).
    """

    n_exercises: int
    max_length: int
    hyper_parameters: dict[str, Any]

    def position_logits(self, exercises: Tensor, correct: Tensor) -> Tensor:
        """``(n, T)`` logits; ``[i, t]`` predicts answer ``t`` from answers ``< t`` of row i."""
        raise NotImplementedError

    def mastery_logits(self, exercises: Tensor, correct: Tensor, lengths: Tensor) -> Tensor:
        """``(n, n_exercises)`` logits of the next answer on every exercise after the whole
        history (the first ``lengths[i]`` steps of row ``i``)."""
        raise NotImplementedError

    def forward(
        self, exercises: Tensor, correct: Tensor, lengths: Tensor, query: Tensor
    ) -> dict[str, Tensor]:
        """The contract call: ``{"p_correct": (n,), "mastery": (n, n_exercises), "weakest":
        (n, k), "suggested": (n, k)}`` (``k`` = :data:`INSIGHT_K`, see :func:`insight_indices`).

        Raises :class:`InvalidInputError` for shapes, ids or lengths outside the contract.
        """
        check_inputs(exercises, correct, lengths, query, self.n_exercises)
        if exercises.shape[1] > self.max_length:
            raise InvalidInputError(
                f"exercises may hold at most {self.max_length} steps, got {exercises.shape[1]}",
                field="exercises",
            )
        mastery = torch.sigmoid(self.mastery_logits(exercises, correct, lengths))
        p_correct = mastery.gather(1, query.unsqueeze(1)).squeeze(1)
        weakest, suggested = insight_indices(mastery)
        return {
            "p_correct": p_correct,
            "mastery": mastery,
            "weakest": weakest,
            "suggested": suggested,
        }


class DKTLSTM(KnowledgeTracer):
    """Deep Knowledge Tracing: embedding of the (exercise, answer) pair → dropout
    (``input_dropout``) → LSTM → dropout → linear to one logit per exercise for the next step.

    The prior (position 0) is the linear layer applied to the LSTM's zero initial state. The
    LSTM is causal, so right padding cannot reach an earlier step.
    """

    def __init__(
        self,
        n_exercises: int,
        hidden: int = 128,
        embedding: int = 64,
        layers: int = 1,
        dropout: float = 0.2,
        input_dropout: float = 0.0,
        max_length: int = MAX_LENGTH,
    ) -> None:
        super().__init__()
        self.n_exercises, self.max_length = n_exercises, max_length
        self.hyper_parameters = {
            "n_exercises": n_exercises,
            "hidden": hidden,
            "embedding": embedding,
            "layers": layers,
            "dropout": dropout,
            "input_dropout": input_dropout,
            "max_length": max_length,
        }
        self.drop_input = nn.Dropout(input_dropout)
        self.embed = nn.Embedding(2 * n_exercises, embedding)
        self.lstm = nn.LSTM(embedding, hidden, num_layers=layers, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(hidden, n_exercises)

    def _states(self, exercises: Tensor, correct: Tensor) -> Tensor:
        """``(n, T + 1, hidden)``: the zero initial state, then the state after each step."""
        embedded = self.embed(interaction_ids(exercises, correct, self.n_exercises))
        hidden, _ = self.lstm(self.drop_input(embedded))
        start = hidden.new_zeros(hidden.shape[0], 1, hidden.shape[2])
        return torch.cat([start, hidden], dim=1)

    def position_logits(self, exercises: Tensor, correct: Tensor) -> Tensor:
        """See :meth:`KnowledgeTracer.position_logits`."""
        states = self._states(exercises, correct)[:, :-1]
        logits: Tensor = self.out(self.drop(states))
        return logits.gather(2, exercises.unsqueeze(2)).squeeze(2)

    def mastery_logits(self, exercises: Tensor, correct: Tensor, lengths: Tensor) -> Tensor:
        """See :meth:`KnowledgeTracer.mastery_logits`."""
        states = self._states(exercises, correct)
        last = states[torch.arange(states.shape[0]), lengths]
        logits: Tensor = self.out(self.drop(last))
        return logits


class SAKT(KnowledgeTracer):
    """A SAKT-style Transformer (Pandey & Karypis 2019): the queried exercise attends over the
    embeddings of past (exercise, answer) interactions.

    Keys/values are ``[START, x_0, …, x_{T-1}]`` (a learned start token, then the interaction
    embeddings), each plus a learned position embedding. A query for the answer at position
    ``t`` is the exercise embedding plus the position embedding of ``t`` and sees keys
    ``0 … t`` only (the start token and the interactions before ``t``): a causal mask. Then
    residual + layer norm, a position-wise feed-forward block, and a linear to one logit.
    ``blocks`` such attention blocks are stacked; every block attends over the same keys.
    """

    def __init__(
        self,
        n_exercises: int,
        dim: int = 64,
        heads: int = 4,
        blocks: int = 1,
        dropout: float = 0.2,
        max_length: int = MAX_LENGTH,
    ) -> None:
        super().__init__()
        if dim % heads:
            raise InvalidInputError(
                f"dim ({dim}) must be a multiple of heads ({heads})", field="dim"
            )
        self.n_exercises, self.max_length, self.heads = n_exercises, max_length, heads
        self.hyper_parameters = {
            "n_exercises": n_exercises,
            "dim": dim,
            "heads": heads,
            "blocks": blocks,
            "dropout": dropout,
            "max_length": max_length,
        }
        self.interaction = nn.Embedding(2 * n_exercises + 1, dim)  # last id: the start token
        self.exercise = nn.Embedding(n_exercises, dim)
        self.key_position = nn.Embedding(max_length + 1, dim)
        self.query_position = nn.Embedding(max_length + 1, dim)
        self.blocks = nn.ModuleList(_AttentionBlock(dim, heads, dropout) for _ in range(blocks))
        self.out = nn.Linear(dim, 1)

    def _keys(self, exercises: Tensor, correct: Tensor) -> Tensor:
        """``(n, T + 1, dim)``: start token then interactions, plus positions ``0 … T``."""
        ids = interaction_ids(exercises, correct, self.n_exercises)
        start = ids.new_full((ids.shape[0], 1), 2 * self.n_exercises)
        ids = torch.cat([start, ids], dim=1)
        positions = torch.arange(ids.shape[1], device=ids.device)
        embedded: Tensor = self.interaction(ids) + self.key_position(positions)
        return embedded

    def _predict(self, query_ex: Tensor, query_pos: Tensor, keys: Tensor) -> Tensor:
        """Logits ``(n, Q)`` for exercises ``query_ex (n, Q)`` asked at positions
        ``query_pos (n, Q)``; a query at position ``t`` sees keys ``0 … t``."""
        allowed = torch.arange(keys.shape[1], device=keys.device) <= query_pos.unsqueeze(2)
        hidden = self.exercise(query_ex) + self.query_position(query_pos)
        for block in self.blocks:
            hidden = block(hidden, keys, allowed.unsqueeze(1))
        logits: Tensor = self.out(hidden).squeeze(2)
        return logits

    def position_logits(self, exercises: Tensor, correct: Tensor) -> Tensor:
        """See :meth:`KnowledgeTracer.position_logits`."""
        n, steps = exercises.shape
        positions = torch.arange(steps, device=exercises.device).expand(n, steps)
        return self._predict(exercises, positions, self._keys(exercises, correct))

    def mastery_logits(self, exercises: Tensor, correct: Tensor, lengths: Tensor) -> Tensor:
        """See :meth:`KnowledgeTracer.mastery_logits`: every exercise asked at ``lengths``."""
        n = exercises.shape[0]
        every = torch.arange(self.n_exercises, device=exercises.device).expand(n, -1)
        at = lengths.unsqueeze(1).expand(n, self.n_exercises)
        return self._predict(every, at, self._keys(exercises, correct))


class _AttentionBlock(nn.Module):
    """Multi-head attention of queries over keys (boolean ``allowed`` mask), residual + layer
    norm, then a feed-forward layer, residual + layer norm."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(dim, dim) for _ in range(3))
        self.merge = nn.Linear(dim, dim)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.drop = nn.Dropout(dropout)

    def _split(self, x: Tensor) -> Tensor:
        n, length, dim = x.shape
        return x.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, queries: Tensor, keys: Tensor, allowed: Tensor) -> Tensor:
        """``queries (n, Q, d)``, ``keys (n, K, d)``, ``allowed (n, 1, Q, K)`` → ``(n, Q, d)``."""
        attended = F.scaled_dot_product_attention(
            self._split(self.q(queries)),
            self._split(self.k(keys)),
            self._split(self.v(keys)),
            attn_mask=allowed,
        )
        n, _, length, _ = attended.shape
        merged = self.merge(attended.transpose(1, 2).reshape(n, length, -1))
        hidden: Tensor = self.norm1(queries + self.drop(merged))
        out: Tensor = self.norm2(hidden + self.drop(self.ffn(hidden)))
        return out

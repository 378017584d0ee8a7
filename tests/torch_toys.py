"""Toy torch modules following the sequence-model contract of docs/zoo.md (and a tensor one).

They live in an importable module because ``mlflow.pytorch`` pickles modules by reference: a
server subprocess with the repository on ``PYTHONPATH`` unpickles them from here.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import torch
from torch import nn

N_IDS = 50
SEQUENCE_META = {
    "columns": ["exercises", "correct"],
    "min_length": 1,
    "max_length": 20,
    "truncate": False,
    "ranges": {"exercises": [0, N_IDS - 1], "correct": [0, 1], "query": [0, N_IDS - 1]},
    "outputs": ["p_correct", "mastery"],
}


def _check_contract(exercises: Any, correct: Any, lengths: Any, query: Any) -> None:
    """Fail loudly when sibyl does not call the module as the contract says."""
    n, t = exercises.shape
    assert exercises.dtype == correct.dtype == lengths.dtype == query.dtype == torch.int64
    assert correct.shape == (n, t) and lengths.shape == (n,) and query.shape == (n,)
    assert int(lengths.max()) == t and int(lengths.min()) >= 1
    assert not torch.is_grad_enabled()


class MeanToy(nn.Module):
    """p_correct = mean of ``correct`` over the history; mastery = per-id mean of ``correct``
    (0.5 for ids never seen); ``query_mastery`` = mastery of the queried id. Exact under padding
    only when the padding is on the right and ``lengths`` is right."""

    def __init__(self, n_ids: int = N_IDS) -> None:
        super().__init__()
        self.n_ids = n_ids

    def forward(
        self, exercises: Any, correct: Any, lengths: Any, query: Any
    ) -> dict[str, torch.Tensor]:
        _check_contract(exercises, correct, lengths, query)
        mask = torch.arange(exercises.shape[1])[None, :] < lengths[:, None]
        right = (correct * mask).to(torch.float64)
        p_correct = right.sum(1) / lengths.to(torch.float64)
        seen = nn.functional.one_hot(exercises, self.n_ids).to(torch.float64) * mask[..., None]
        counts = seen.sum(1)
        sums = (seen * right[..., None]).sum(1)
        mastery = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, 0.5))
        return {"p_correct": p_correct.to(torch.float32), "mastery": mastery.to(torch.float32),
                "unused": torch.zeros(len(query))}


class LastToy(nn.Module):
    """A single-output module: the last ``correct`` of each history (needs right padding)."""

    def forward(self, exercises: Any, correct: Any, lengths: Any, query: Any) -> dict[str, Any]:
        _check_contract(exercises, correct, lengths, query)
        last = correct.gather(1, (lengths - 1)[:, None])[:, 0]
        return {"last": last.to(torch.float32)}


class TinyGRU(nn.Module):
    """A real recurrent model: embedding → GRU over the packed (unpadded) history → sigmoid."""

    def __init__(self, n_ids: int = N_IDS, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(2 * n_ids, 8)
        self.gru = nn.GRU(8, 8, batch_first=True)
        self.head = nn.Linear(8 + 8, n_ids)
        self.query_embed = nn.Embedding(n_ids, 8)

    def forward(self, exercises: Any, correct: Any, lengths: Any, query: Any) -> dict[str, Any]:
        _check_contract(exercises, correct, lengths, query)
        x = self.embed(exercises * 2 + correct)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.gru(packed)
        logits = self.head(torch.cat([h[0], self.query_embed(query)], dim=1))
        mastery = torch.sigmoid(logits)
        return {"p_correct": mastery.gather(1, query[:, None])[:, 0], "mastery": mastery}


class LinearToy(nn.Module):
    """A tensor-signature module: ``(n, 3)`` float32 → ``(n, 2)``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.dtype == torch.float32
        return self.lin(x)


def example_frame() -> pd.DataFrame:
    """Three histories of different lengths (the logged input example)."""
    return pd.DataFrame({
        "exercises": [[1, 2, 1], [4], [7, 7, 3, 9, 1]],
        "correct": [[1, 0, 1], [0], [1, 1, 0, 0, 1]],
        "query": [1, 4, 7],
    })


def log_sequence_model(module: nn.Module, name: str, *, meta: dict[str, Any] | None = None,
                       registered: bool = True, path: str | None = None) -> str:
    """Log (``path`` None: into the active MLflow run, registered as ``name``) or save a
    contract module with signature, input example and ``sibyl.sequence`` metadata."""
    import mlflow.pytorch
    from mlflow.models import infer_signature

    x = example_frame()
    out = pd.DataFrame({"p_correct": [0.5, 0.5, 0.5]})
    kwargs: dict[str, Any] = {
        "signature": infer_signature(x, out), "input_example": x, "pip_requirements": ["torch"],
        "serialization_format": "pickle",
        "metadata": {"sibyl": {"sequence": SEQUENCE_META if meta is None else meta}},
    }
    if path is not None:
        mlflow.pytorch.save_model(module, path, **kwargs)
        return path
    info = mlflow.pytorch.log_model(module, name="model", registered_model_name=name if registered
                                    else None, **kwargs)
    return str(info.registered_model_version)

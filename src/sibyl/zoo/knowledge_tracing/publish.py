"""Logging a trained knowledge-tracing module into MLflow per the torch sequence contract of
``docs/zoo.md``: signature, list-cell input example, ``sibyl.sequence`` metadata, metrics,
params, reference profile and description.

The frames here describe *serving requests*: one row per (history, query) pair, the history a
prefix of a student's attempts and the query the exercise answered next.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from sibyl.zoo.knowledge_tracing.models import OUTPUTS, KnowledgeTracer

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature

    from sibyl.zoo.knowledge_tracing.data import KTDataset
    from sibyl.zoo.knowledge_tracing.train import Trained

SEQUENCE_COLUMNS = ("exercises", "correct")
"""The sequence columns of a DKT request, in signature order; ``query`` follows them."""


def sequence_metadata(model: KnowledgeTracer) -> dict[str, Any]:
    """The ``{"sibyl": {"sequence": …}}`` metadata of ``model`` (table in ``docs/zoo.md``)."""
    top = model.n_exercises - 1
    return {
        "sibyl": {
            "sequence": {
                "columns": list(SEQUENCE_COLUMNS),
                "min_length": 1,
                "max_length": model.max_length,
                "truncate": False,
                "ranges": {"exercises": [0, top], "correct": [0, 1], "query": [0, top]},
                "outputs": list(OUTPUTS),
            }
        }
    }


def signature() -> ModelSignature:
    """Inputs ``exercises: Array(long)``, ``correct: Array(long)``, ``query: long`` (what
    ``infer_signature`` gives for :func:`request_frame`); outputs ``p_correct: float``,
    ``mastery: Array(float)``, ``weakest`` and ``suggested``: ``Array(long)``."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    inputs = Schema(
        [
            ColSpec(Array(DataType.long), "exercises"),
            ColSpec(Array(DataType.long), "correct"),
            ColSpec(DataType.long, "query"),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.float, "p_correct"),
            ColSpec(Array(DataType.float), "mastery"),
            ColSpec(Array(DataType.long), "weakest"),
            ColSpec(Array(DataType.long), "suggested"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def request_frame(dataset: KTDataset, seed: int = 0) -> pd.DataFrame:
    """One serving request per student of ``dataset``: a history of a random length
    ``1 … T-1`` (list cells ``exercises``, ``correct``) and ``query``, the next exercise."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    steps = dataset.exercises.shape[1]
    cuts = rng.integers(1, steps, size=dataset.n_students)
    rows = zip(dataset.exercises, dataset.correct, cuts.tolist(), strict=True)
    return pd.DataFrame(
        [
            {
                "exercises": [int(x) for x in ex[:cut]],
                "correct": [int(c) for c in co[:cut]],
                "query": int(ex[cut]),
            }
            for ex, co, cut in rows
        ]
    )


def profile_frame(requests: pd.DataFrame) -> pd.DataFrame:
    """What the reference profile summarises per request: history ``length``, the share of
    right answers in it (``accuracy``) and the ``query`` id."""
    import pandas as pd

    return pd.DataFrame(
        {
            "length": requests["exercises"].map(len).astype("int64"),
            "accuracy": requests["correct"].map(lambda c: float(np.mean(c))),
            "query": requests["query"].astype("int64"),
        }
    )


def describe(trained: Trained) -> str:
    """The registered version's description."""
    from sibyl.zoo.knowledge_tracing.train import TITLES

    hyper = ", ".join(f"{k} {v}" for k, v in trained.model.hyper_parameters.items())
    return (
        f"{TITLES[trained.kind]} on Simulated-5 ({hyper}); test AUC {trained.auc:.3f} "
        "(positions 2…50 pooled, the paper's protocol). Input: a student's exercise ids and 0/1 "
        "answers plus the queried exercise; output: p_correct and per-exercise mastery."
    )


class _DropExampleCheck(logging.Filter):
    """MLflow checks an input example through its pyfunc, which feeds a torch model one float
    tensor: for a sequence model that check can only fail. sibyl calls the module per the
    contract instead, so the resulting warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to validate serving input example")


@contextmanager
def _quiet_example_check() -> Iterator[None]:
    logger, drop = logging.getLogger("mlflow.models.model"), _DropExampleCheck()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def log_model(
    trained: Trained,
    name: str,
    dataset: KTDataset,
    tracking_uri: str,
    artifact_location: str,
    *,
    seed: int = 0,
) -> str:
    """Log ``trained`` with ``mlflow.pytorch`` into experiment ``name``, register it as
    ``name`` and return the new version. The reference profile covers one request per
    training student; the input example is five of them."""
    import mlflow.pytorch
    import torch

    from sibyl.zoo._registering import log_and_register_model

    requests = request_frame(dataset.train(), seed)
    trained.model.eval()
    with _quiet_example_check():
        return log_and_register_model(
            mlflow.pytorch.log_model,
            name,
            profiled=profile_frame(requests),
            metrics=trained.metrics(),
            params={**trained.params(), "seed": seed, "n_students": dataset.n_students},
            description=describe(trained),
            tracking_uri=tracking_uri,
            artifact_location=artifact_location,
            pytorch_model=trained.model,
            serialization_format="pickle",  # the whole module; MLflow 3's default pt2 traces
            signature=signature(),
            input_example=requests.head(5),
            metadata=sequence_metadata(trained.model),
            # explicit requirements: inferring them costs MLflow ≈ 6 s a model
            pip_requirements=[f"torch=={torch.__version__}"],
        )

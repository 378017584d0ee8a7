"""Types every predictor shares: batches in, :class:`Prediction` out.

A *batch* is what one model call receives: a 2-D ``numpy`` array in signature column order when
every input column is numeric (the fast path, what ONNX Runtime wants), otherwise a
``pandas.DataFrame`` with the signature's columns. The input schema builds batches; the batcher
concatenates them; a predictor never sees protocol objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Batch: TypeAlias = "np.ndarray[Any, Any] | pd.DataFrame"


class Engine(StrEnum):
    """What executes a model version."""

    ONNX = "onnxruntime"
    SKLEARN = "sklearn"
    XGBOOST = "xgboost"
    LIGHTGBM = "lightgbm"
    PYFUNC = "pyfunc"
    TORCH = "pytorch"
    PYTHON = "python"
    """A plain Python predictor (toy predictors in tests, rule models)."""


class Task(StrEnum):
    """What a model's outputs mean."""

    CLASSIFIER = "classifier"
    REGRESSOR = "regressor"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Prediction:
    """Outputs of one model call over ``n`` rows.

    ``predictions`` has ``n`` rows (labels for classifiers, values for regressors, anything for
    pyfunc models); ``probabilities`` is ``(n, len(classes))`` for classifiers, else ``None``.
    ``outputs`` holds the named outputs of multi-output models (torch modules returning a dict),
    each with first dimension ``n``; ``predictions`` then holds the same data row by row (one
    object per row with one key per output, or the values themselves for a single output).
    """

    predictions: np.ndarray[Any, Any]
    probabilities: np.ndarray[Any, Any] | None = None
    classes: tuple[Any, ...] | None = None
    outputs: Mapping[str, np.ndarray[Any, Any]] | None = None

    def __len__(self) -> int:
        return len(self.predictions)

    def slice(self, start: int, stop: int) -> Prediction:
        """Rows ``start:stop`` (views, no copy)."""
        probs = None if self.probabilities is None else self.probabilities[start:stop]
        outs = None
        if self.outputs is not None:
            outs = {k: v[start:stop] for k, v in self.outputs.items()}
        return Prediction(self.predictions[start:stop], probs, self.classes, outs)


@runtime_checkable
class Predictor(Protocol):
    """Anything that turns a batch into a :class:`Prediction`.

    Contract: ``predict`` is called from one worker thread at a time per predictor (the batcher
    guarantees it), may block, returns exactly one output row per input row, and raises any
    exception on failure (the caller turns it into ``PredictionError`` for that batch only).
    """

    def predict(self, batch: Batch) -> Prediction:
        """Predict every row of ``batch``."""
        ...


@runtime_checkable
class DescribesOutputs(Protocol):
    """Optional ability of a predictor: OIP V2 metadata of its named outputs.

    ``describe_outputs`` returns ``[{"name", "datatype", "shape"}]`` (``-1`` = variable
    dimension, the first is the batch); it is cheap and safe to call from any thread.
    """

    def describe_outputs(self) -> list[dict[str, Any]]:
        """Metadata of each output tensor, in output order."""
        ...


@dataclass(slots=True)
class EngineChoice:
    """Which engine serves a version and why (shown in ``/v1/models/{name}``)."""

    engine: Engine
    reason: str
    max_abs_diff: float | None = None
    """Largest output difference ONNX vs native seen during verification."""
    details: dict[str, Any] = field(default_factory=dict)

"""Model outputs as named columns (the same names at profile time and at observe time).

Outputs may be a ``sibyl.runtime.Prediction`` (or anything with ``predictions``,
``probabilities`` and ``classes`` attributes), a mapping with those keys, or a bare array:
2-D probabilities or 1-D predictions. Column names are fixed by :class:`OutputKind`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sibyl.errors import InvalidInputError
from sibyl.monitoring.drift._profile import ColumnKind, OutputKind, Scalar

PREDICTION = "prediction"
PROBA = "proba"
PROBA_DECIMALS = 6
"""Probability columns are compared at this resolution (1e-6), coarser than float32's."""


@dataclass(frozen=True)
class RawOutputs:
    """Outputs split into their parts (any may be missing)."""

    predictions: np.ndarray[Any, Any] | None
    probabilities: np.ndarray[Any, Any] | None
    classes: tuple[Any, ...] | None


def split_outputs(outputs: Any, kind: OutputKind | None = None) -> RawOutputs:
    """Normalise any accepted outputs value; a bare 2-D float array is probabilities unless
    ``kind`` says ``values``."""
    if hasattr(outputs, "predictions") and hasattr(outputs, "probabilities"):
        return RawOutputs(
            _arr(outputs.predictions),
            _arr(outputs.probabilities),
            _classes(getattr(outputs, "classes", None)),
        )
    if isinstance(outputs, Mapping):
        return RawOutputs(
            _arr(outputs.get("predictions")),
            _arr(outputs.get("probabilities")),
            _classes(outputs.get("classes")),
        )
    array = np.asarray(outputs)
    if kind is OutputKind.PROBABILITIES or (
        kind is None and array.ndim == 2 and array.dtype.kind == "f"
    ):
        return RawOutputs(None, array, None)
    return RawOutputs(array, None, None)


def infer_kind(raw: RawOutputs) -> OutputKind:
    if raw.probabilities is not None:
        return OutputKind.PROBABILITIES
    if raw.predictions is not None and raw.predictions.dtype.kind == "f":
        return OutputKind.VALUES
    return OutputKind.LABELS


def default_classes(raw: RawOutputs) -> tuple[Scalar, ...]:
    """Classes when none were given: the outputs' own, else ``0 … K-1``."""
    if raw.classes is not None:
        return tuple(_scalar(c) for c in raw.classes)
    probs = raw.probabilities
    k = 2 if probs is None or probs.ndim == 1 or probs.shape[1] == 1 else probs.shape[1]
    return tuple(range(k))


def output_columns(
    raw: RawOutputs, kind: OutputKind, classes: Sequence[Scalar] | None, n: int
) -> dict[str, tuple[ColumnKind, Any]]:
    """``{column name: (kind, values)}`` for ``n`` rows; missing parts give all-null columns."""
    if kind is OutputKind.PROBABILITIES:
        return _probability_columns(raw, tuple(classes or default_classes(raw)), n)
    preds = raw.predictions
    if kind is OutputKind.LABELS:
        return {PREDICTION: (ColumnKind.CATEGORICAL, _labels(preds, n))}
    values: np.ndarray[Any, Any] = (
        np.full(n, np.nan) if preds is None else _rows(preds, n, "predictions")
    )
    if values.ndim == 2 and values.shape[1] > 1:
        return {
            f"{PREDICTION}[{j}]": (ColumnKind.NUMERIC, values[:, j]) for j in range(values.shape[1])
        }
    return {PREDICTION: (ColumnKind.NUMERIC, values.reshape(n))}


def _probability_columns(
    raw: RawOutputs, classes: tuple[Scalar, ...], n: int
) -> dict[str, tuple[ColumnKind, Any]]:
    # rounded to PROBA_DECIMALS: the reference quantiles of a confident model sit at 1 - 1e-9
    # and beyond, where a float32 engine (ONNX Runtime) and the float64 native model disagree;
    # unrounded, the same model served by the other engine would show as prediction drift
    probs = np.round(_aligned_probabilities(raw, classes, n), PROBA_DECIMALS)
    columns: dict[str, tuple[ColumnKind, Any]] = {}
    if len(classes) == 2:
        columns[PROBA] = (ColumnKind.NUMERIC, probs[:, 1])
    else:
        for j, cls in enumerate(classes):
            columns[f"{PROBA}[{cls}]"] = (ColumnKind.NUMERIC, probs[:, j])
    if raw.predictions is not None:
        labels = _labels(raw.predictions, n)
    elif raw.probabilities is not None:
        best = np.argmax(np.nan_to_num(probs, nan=-1.0), axis=1)
        labels = [classes[i] for i in best.tolist()]
    else:
        labels = [None] * n
    columns[PREDICTION] = (ColumnKind.CATEGORICAL, labels)
    return columns


def _aligned_probabilities(raw: RawOutputs, classes: tuple[Scalar, ...], n: int) -> np.ndarray:
    """``(n, len(classes))`` in the profile's class order (NaN for a class the outputs lack)."""
    k = len(classes)
    if raw.probabilities is None:
        return np.full((n, k), np.nan)
    probs = _rows(raw.probabilities, n, "probabilities").astype(np.float64, copy=False)
    if probs.ndim == 1 or probs.shape[1] == 1:
        positive = probs.reshape(n)
        return np.column_stack([1.0 - positive, positive]) if k == 2 else np.full((n, k), np.nan)
    live = raw.classes
    if live is None or tuple(_scalar(c) for c in live) == classes:
        if probs.shape[1] != k:
            raise InvalidInputError(
                f"outputs have {probs.shape[1]} probability columns, the drift profile "
                f"expects {k} (classes {list(classes)})",
                field="outputs",
            )
        return probs
    position = {_scalar(c): j for j, c in enumerate(live)}
    out = np.full((n, k), np.nan)
    for j, cls in enumerate(classes):
        if cls in position:
            out[:, j] = probs[:, position[cls]]
    return out


def _labels(preds: np.ndarray[Any, Any] | None, n: int) -> list[Any]:
    if preds is None:
        return [None] * n
    values = _rows(preds, n, "predictions")
    if values.ndim > 1:
        values = values.reshape(n, -1)[:, 0]
    return list(values.tolist())


def _rows(values: np.ndarray[Any, Any], n: int, field: str) -> np.ndarray[Any, Any]:
    if len(values) != n:
        raise InvalidInputError(
            f"outputs.{field} has {len(values)} rows but the batch has {n}", field="outputs"
        )
    return values


def _arr(value: Any) -> np.ndarray[Any, Any] | None:
    return None if value is None else np.asarray(value)


def _classes(value: Any) -> tuple[Any, ...] | None:
    return None if value is None else tuple(value)


def _scalar(value: Any) -> Scalar:
    """A class label as JSON holds it (numpy scalars unwrapped, anything else as text)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str | int | float | bool):
        return value
    return str(value)

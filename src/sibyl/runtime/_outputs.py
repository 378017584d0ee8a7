"""Named outputs: models that answer several values per row (a torch module's dict of tensors,
a pyfunc model's multi-column DataFrame).

:func:`named_prediction` turns ``{name: (n, …) array}`` into a :class:`Prediction` whose
``predictions`` are row objects and whose ``outputs`` keep the named arrays (the V2 codec answers
one tensor per name); :class:`OutputShapes` remembers the names, datatypes and shapes a predictor
produced so ``GET /v2/models/{m}`` can describe them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from sibyl.runtime.types import Prediction

Array = np.ndarray[Any, Any]


def named_prediction(outputs: Mapping[str, Array], n: int) -> Prediction:
    """Named ``(n, …)`` arrays as a Prediction: row objects (the values for one output)."""
    first = next(iter(outputs.values()))
    if len(outputs) == 1:
        values = first.reshape(n) if first.ndim == 2 and first.shape[1] == 1 else first
        return Prediction(values, outputs=outputs)
    rows = np.empty(n, dtype=object)
    names = list(outputs)
    for i, row in enumerate(zip(*(outputs[k] for k in names), strict=True)):
        rows[i] = dict(zip(names, row, strict=True))
    return Prediction(rows, outputs=outputs)


def oip_datatype(arr: Array) -> str:
    """The Open Inference Protocol datatype of an array (``BYTES`` for anything not numeric)."""
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "b":
        return "BOOL"
    if kind in "iu":
        return f"{'U' if kind == 'u' else ''}INT{size * 8}"
    if kind == "f":
        return f"FP{size * 8}"
    return "BYTES"


class OutputShapes:
    """OIP metadata of a predictor's outputs, as first seen (the loader's warm-up call).

    Not locked: the first calls may race to record the same description, which is harmless.
    """

    def __init__(self, default_names: Sequence[str] = ("predict",)) -> None:
        self._default = tuple(default_names) or ("predict",)
        self._described: list[dict[str, Any]] | None = None

    def observe(self, pred: Prediction) -> None:
        """Record the outputs of ``pred`` unless some were recorded already."""
        if self._described is None:
            named = pred.outputs if pred.outputs is not None else {"predict": pred.predictions}
            self._described = [
                {"name": k, "datatype": oip_datatype(a), "shape": [-1, *a.shape[1:]]}
                for k, a in named.items()
            ]

    def describe(self) -> list[dict[str, Any]]:
        """``[{"name", "datatype", "shape"}]``; before any call, the default names as FP32."""
        if self._described is not None:
            return self._described
        return [{"name": n, "datatype": "FP32", "shape": [-1]} for n in self._default]

"""The torch flavor: ``torch.nn.Module``s logged with ``mlflow.pytorch`` (extra ``sibyl[torch]``).

Two kinds of modules are served. *Column* modules (column signatures, the sequence-model contract
of ``docs/zoo.md``) are called with one keyword argument per column: sequence columns right-padded
with 0 to the longest sequence of the batch as ``LongTensor(n, T)`` plus ``lengths``
(``LongTensor(n)``), ``long`` columns as ``LongTensor(n)``, ``double`` as ``FloatTensor(n)``,
``boolean`` as ``BoolTensor(n)``. *Tensor* modules (tensor signatures) get the batch as one
tensor (float32, int64 for integer signatures). torch is imported only when a model is loaded;
its intra-op threads follow ``runtime.inference_threads`` in whichever thread predicts.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sibyl.errors import MissingExtraError, PredictionError
from sibyl.runtime._outputs import OutputShapes, named_prediction
from sibyl.runtime.types import Batch, Engine, Prediction, Task

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from sibyl.runtime.schema import ColumnSpec, InputSchema

Array = np.ndarray[Any, Any]
TORCH_PIN = "torch==2.13.0"
_DTYPES = {"int": "int64", "float": "float32", "bool": "bool"}


def import_torch() -> Any:
    """The torch module; :class:`MissingExtraError` naming the extra when it is not installed."""
    try:
        import torch
    except ImportError:
        raise MissingExtraError("torch", "torch") from None
    return torch


class TorchPredictor:
    """Runs a torch module under ``torch.inference_mode()`` (see the module docstring).

    Outputs: a dict of tensors (keys = ``outputs`` when given, else the dict's) becomes one row
    per input — an object with one key per output, or the values themselves for a single output
    — and the named arrays in :attr:`Prediction.outputs`; a plain tensor becomes the values
    (``(n, 1)`` flattened). Raises :class:`PredictionError` when an output is missing or does
    not have one row per input. Always :attr:`Task.OTHER`; one call at a time (the batcher's).
    """

    engine = Engine.TORCH
    task = Task.OTHER
    classes = None

    def __init__(
        self,
        module: Any,
        *,
        columns: Sequence[ColumnSpec] | None = None,
        outputs: Sequence[str] = (),
        tensor_dtype: str = "float32",
        flat: bool = False,
        threads: int = 1,
    ) -> None:
        self.module = module
        self.threads = max(1, threads)
        self._torch = import_torch()
        self._columns = None if columns is None else tuple(columns)
        self._outputs = tuple(outputs)
        self._tensor_dtype = tensor_dtype
        self._flat = flat
        self._shapes = OutputShapes(self._outputs)

    @classmethod
    def load(cls, path: Path, signature: Any, schema: InputSchema, threads: int) -> TorchPredictor:
        """Load with ``mlflow.pytorch.load_model`` and switch to eval mode; ``threads`` is the
        intra-op thread count of the predicting thread."""
        import_torch()
        import mlflow.pytorch

        module = mlflow.pytorch.load_model(str(path))
        with contextlib.suppress(NotImplementedError):  # exported (pt2) programs have no eval()
            module.eval()
        inputs = getattr(signature, "inputs", None)
        outputs = schema.sequence.outputs if schema.sequence is not None else ()
        if inputs is not None and inputs.is_tensor_spec():
            spec = inputs.inputs[0]
            dtype = "int64" if np.issubdtype(spec.type, np.integer) else "float32"
            return cls(
                module,
                tensor_dtype=dtype,
                flat=len(spec.shape) == 1,
                outputs=outputs,
                threads=threads,
            )
        columns = schema.columns if schema.typed else None
        return cls(module, columns=columns, outputs=outputs, threads=threads)

    def describe(self) -> str:
        """The engine in words, for ``GET /v1/models/{name}``."""
        torch = self._torch
        kind = (
            "exported (pt2) program"
            if isinstance(self.module, torch.fx.GraphModule)
            else "eager module"
        )
        return (
            f"torch {torch.__version__} {kind} under inference_mode, "
            f"{self.threads} intra-op thread(s)"
        )

    def predict(self, batch: Batch) -> Prediction:
        """Predict every row of ``batch`` (see the class docstring)."""
        n = int(batch.shape[0])
        if self._torch.get_num_threads() != self.threads:  # per calling thread (OpenMP)
            self._torch.set_num_threads(self.threads)
        with self._torch.inference_mode():
            if self._columns is None:
                out = self.module(self._tensor(batch))
            else:
                out = self.module(**self._kwargs(batch))
        pred = self._prediction(out, n)
        self._shapes.observe(pred)
        return pred

    def describe_outputs(self) -> list[dict[str, Any]]:
        """OIP metadata of the outputs (shapes as seen at warm-up; ``[-1]`` before it)."""
        return self._shapes.describe()

    # -- inputs ----------------------------------------------------------------------------------
    def _tensor(self, batch: Batch) -> Any:
        arr = np.ascontiguousarray(np.asarray(batch, dtype=self._tensor_dtype))
        if self._flat and arr.ndim == 2:
            arr = arr[:, 0]
        return self._torch.from_numpy(arr)

    def _kwargs(self, batch: Batch) -> dict[str, Any]:
        torch, cols = self._torch, self._columns or ()
        if isinstance(batch, np.ndarray):  # numeric column signature: one column per kwarg
            return {
                c.name: torch.from_numpy(np.ascontiguousarray(batch[:, j], dtype=_DTYPES[c.kind]))
                for j, c in enumerate(cols)
            }
        kwargs: dict[str, Any] = {}
        lengths: Array | None = None
        for c in cols:
            if c.kind == "seq":
                padded, lengths = pad(batch[c.name].tolist())
                kwargs[c.name] = torch.from_numpy(padded)
            else:
                kwargs[c.name] = torch.from_numpy(_scalars(batch, c))
        if lengths is not None:
            kwargs["lengths"] = torch.from_numpy(lengths)
        return kwargs

    # -- outputs ---------------------------------------------------------------------------------
    def _prediction(self, out: Any, n: int) -> Prediction:
        if isinstance(out, (tuple, list)) and self._outputs:
            out = dict(zip(self._outputs, out, strict=False))
        if isinstance(out, Mapping):
            named = _named(out, self._outputs)
            return named_prediction({k: _numpy(v, k, n) for k, v in named.items()}, n)
        arr = _numpy(out, "output", n)
        return Prediction(arr.reshape(n) if arr.ndim == 2 and arr.shape[1] == 1 else arr)


def pad(sequences: list[list[int]]) -> tuple[Array, Array]:
    """Right-pad ``sequences`` with 0 to the longest: ``(int64 (n, T), int64 lengths (n,))``."""
    lengths = np.fromiter(map(len, sequences), dtype=np.int64, count=len(sequences))
    width = int(lengths.max()) if len(lengths) else 0
    padded = np.zeros((len(sequences), width), dtype=np.int64)
    mask = np.arange(width) < lengths[:, None]
    total = int(lengths.sum())
    padded[mask] = np.fromiter(itertools.chain.from_iterable(sequences), np.int64, count=total)
    return padded, lengths


def _named(out: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    wanted = names or tuple(str(k) for k in out)
    missing = [k for k in wanted if k not in out]
    if missing or not wanted:
        raise PredictionError(
            f"the torch module returned outputs {sorted(map(str, out))}; the model's metadata "
            f"names {list(wanted)} (missing {missing}); return a dict with every output"
        )
    return {k: out[k] for k in wanted}


def _numpy(value: Any, name: str, n: int) -> Array:
    arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    if arr.ndim == 0 or arr.shape[0] != n:
        got = "a scalar" if arr.ndim == 0 else f"first dimension {arr.shape[0]}"
        raise PredictionError(
            f"the torch module's output '{name}' has {got} for {n} input rows; every output "
            "needs one row per input"
        )
    return arr


def _scalars(frame: pd.DataFrame, col: ColumnSpec) -> Array:
    # a copy: pandas hands out read-only views, which torch.from_numpy warns about
    return np.array(frame[col.name].to_numpy(dtype=_DTYPES.get(col.kind, "float32")), copy=True)

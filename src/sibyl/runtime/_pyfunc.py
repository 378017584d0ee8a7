"""The generic fallback: any MLflow model through ``mlflow.pyfunc``.

Used for every flavor sibyl has no native predictor for (PythonModel, transformers, catboost …).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from sibyl.errors import PredictionError
from sibyl.runtime._outputs import OutputShapes, named_prediction
from sibyl.runtime.types import Batch, Engine, Prediction, Task

if TYPE_CHECKING:
    import pandas as pd

    from sibyl.runtime.schema import InputSchema

Array = np.ndarray[Any, Any]


class PyfuncPredictor:
    """Runs any MLflow model through ``mlflow.pyfunc`` — the fallback for every other flavor.

    An ndarray batch becomes a DataFrame with ``columns`` (cast to the signature's ``dtypes``, as
    pyfunc's schema enforcement refuses float64 for ``long`` / ``float`` columns); without
    ``columns`` (tensor signatures) the array is passed as ``array_dtype`` (1-D when ``flat``).
    Outputs become one row each: an
    ndarray or Series as is, a one-column DataFrame (or ``(n, 1)`` array) as that column, a wider
    DataFrame as named outputs (one per column; row objects in ``predictions``), a list as an
    array. Always :attr:`Task.OTHER`.
    """

    engine = Engine.PYFUNC
    task = Task.OTHER
    classes = None

    def __init__(
        self,
        model: Any,
        *,
        columns: Sequence[str] | None = None,
        dtypes: Mapping[str, Any] | None = None,
        array_dtype: Any = None,
        flat: bool = False,
    ) -> None:
        self.model = model
        self._columns = None if columns is None else list(columns)
        self._dtypes = {k: v for k, v in (dtypes or {}).items() if np.dtype(v) != np.float64}
        self._array_dtype = array_dtype
        self._flat = flat
        self._shapes = OutputShapes()

    @classmethod
    def from_signature(cls, model: Any, signature: Any, schema: InputSchema) -> PyfuncPredictor:
        """Columns and the numpy dtypes pyfunc's schema enforcement insists on, from the
        signature (no columns for tensor signatures or none at all)."""
        inputs = getattr(signature, "inputs", None)
        if inputs is None:
            return cls(model)
        if inputs.is_tensor_spec():
            spec = inputs.inputs[0]
            return cls(model, array_dtype=spec.type, flat=len(spec.shape) == 1)
        dtypes: dict[str, Any] = {}
        for spec, col in zip(inputs.inputs, schema.columns, strict=False):
            if col.kind in ("float", "int", "bool") and col.required:
                with contextlib.suppress(Exception):  # non-primitive types have no numpy dtype
                    dtypes[col.name] = np.dtype(spec.type.to_numpy())
        return cls(model, columns=schema.names, dtypes=dtypes)

    def predict(self, batch: Batch) -> Prediction:
        """Predict every row; raise :class:`PredictionError` unless there is one output per row."""
        n = int(batch.shape[0])
        pred = pyfunc_prediction(self.model.predict(self._frame(batch)), n)
        self._shapes.observe(pred)
        return pred

    def describe_outputs(self) -> list[dict[str, Any]]:
        """OIP metadata of the outputs (as seen at warm-up): one per column of a multi-column
        DataFrame, else ``predict``."""
        return self._shapes.describe()

    def _frame(self, batch: Batch) -> Any:
        import pandas as pd

        if not isinstance(batch, np.ndarray):
            frame = batch
        elif self._columns is None:
            arr = batch if self._array_dtype is None else batch.astype(self._array_dtype)
            return arr[:, 0] if self._flat and arr.ndim == 2 else arr
        else:
            frame = pd.DataFrame(batch, columns=self._columns, copy=False)
        if not self._dtypes:
            return frame
        casts = {c: t for c, t in self._dtypes.items() if c in frame.columns}
        return frame.astype(casts) if casts else frame


def pyfunc_prediction(out: Any, n: int) -> Prediction:
    """A pyfunc model's output as a Prediction: a multi-column DataFrame (or dict of columns)
    becomes named outputs, one per column (row objects in ``predictions``); anything else one
    value per row (see :func:`pyfunc_rows`)."""
    import pandas as pd

    if isinstance(out, dict):
        out = pd.DataFrame(out)
    if isinstance(out, pd.DataFrame) and out.shape[1] > 1:
        _check_rows(len(out), n)
        return named_prediction({str(c): _column(out[c]) for c in out.columns}, n)
    return Prediction(pyfunc_rows(out, n))


def _column(series: pd.Series[Any]) -> Array:
    values = series.to_numpy()
    if values.dtype != object:
        return values
    return _objects(values.tolist())  # list cells stay one object each


def _check_rows(got: int, n: int) -> None:
    if got != n:
        raise PredictionError(
            f"the pyfunc model returned {got} outputs for {n} input rows; "
            "its predict must return one output per row"
        )


def pyfunc_rows(out: Any, n: int) -> Array:
    """A pyfunc model's output as an array of ``n`` rows (see :class:`PyfuncPredictor`)."""
    import pandas as pd

    if isinstance(out, dict):
        out = pd.DataFrame(out)
    if isinstance(out, pd.DataFrame):
        arr = out.iloc[:, 0].to_numpy() if out.shape[1] == 1 else _objects(out.to_dict("records"))
    elif isinstance(out, pd.Series):
        arr = out.to_numpy()
    elif isinstance(out, list):
        arr = _list_rows(out)
    else:
        arr = np.asarray(out)
    if arr.ndim == 2 and arr.shape[-1] == 1:
        arr = arr.reshape(len(arr))
    if arr.ndim == 0:
        raise PredictionError(
            f"the pyfunc model returned a scalar for {n} input rows; "
            "its predict must return one output per row"
        )
    _check_rows(len(arr), n)
    return arr


def _list_rows(values: list[Any]) -> Array:
    try:
        return np.asarray(values)
    except ValueError:  # ragged rows: keep each row as one object
        return _objects(values)


def _objects(values: Sequence[Any]) -> Array:
    arr = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        arr[i] = v
    return arr

"""ONNX for numeric schemas whose pipeline selects columns by name.

A ``ColumnTransformer`` that picks ``["PlcmtScore", "GPAadj", …]`` cannot be converted with the
single ``input`` tensor of :func:`~sibyl.runtime._onnx.convert` (skl2onnx: "Unable to find
column name 'PlcmtScore' among names ['input']"). :func:`selects_by_name` spots such pipelines
once, before converting; :func:`compile_columns` then converts them like the frame path (one
``(n, 1)`` input per signature column, ``float32`` for ``float`` / ``bool``, ``int64`` for
``int``) and serves them with :class:`OnnxColumnsPredictor`, which takes the float64 ndarray
batches the numeric schema builds. Models without by-name selection keep the single-tensor
:class:`~sibyl.runtime._onnx.OnnxPredictor`, untouched.

Under ``nan_policy='allow'`` (or with optional columns) the verification also runs rows with
NaN holes (:func:`rows_with_missing`); a difference there is reported as such, and NaN in a
column the native model refuses keeps going to the native model (which raises, as before).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sibyl.runtime._onnx import OnnxPredictor, short_error, verify
from sibyl.runtime._onnx_frame import OnnxFeedsPredictor, compile_frame
from sibyl.runtime._onnx_text import pipeline_steps
from sibyl.runtime.types import Batch, Engine, EngineChoice, Prediction, Predictor

if TYPE_CHECKING:
    from sibyl.runtime.schema import InputSchema
    from sibyl.settings import RuntimeSettings

Array = np.ndarray[Any, Any]
_HOLE_ROWS = 2
"""Rows per nullable column with NaN in it in the NaN check (plus one row with all of them)."""


def selects_by_name(model: Any) -> bool:
    """Whether a fitted ``ColumnTransformer`` anywhere in ``model`` selects columns by name.

    Walks it with :func:`~sibyl.runtime._onnx_text.pipeline_steps`; a pure function of the
    fitted model, cheap (no conversion).
    """
    for step in pipeline_steps(model):
        selections = getattr(step, "transformers_", None)
        if selections is not None and any(_named(cols) for _, _, cols in selections):
            return True
    return False


def _named(columns: Any) -> bool:
    if isinstance(columns, str):
        return True
    if isinstance(columns, (list, tuple, np.ndarray)):
        return any(isinstance(c, str) for c in columns)
    return False


class OnnxColumnsPredictor(OnnxFeedsPredictor):
    """An :class:`~sibyl.runtime._onnx_frame.OnnxFeedsPredictor` over numeric ndarray batches.

    The float64 batch is transposed and cast to float32 once; each float / bool column is fed
    as a ``(n, 1)`` view of that copy, each int column as its own int64 ``(n, 1)`` array.
    A batch with NaN in a nullable int column (int64 cannot hold it) or in a column whose NaN
    the native model refuses (:meth:`route_nan_to_fallback`) goes to ``fallback``, the native
    predictor, as does a DataFrame batch.
    """

    def _prepare(self) -> None:
        feeds = self.feeds
        self._floats = tuple((f.column, j) for j, f in enumerate(feeds) if f.kind != "int")
        self._ints = tuple((f.column, j) for j, f in enumerate(feeds) if f.kind == "int")
        self._to_fallback = [j for j, f in enumerate(feeds) if f.kind == "int" and f.nullable]

    def predict(self, batch: Batch) -> Prediction:
        """Predict every row of a numeric batch (see the class docstring)."""
        if not isinstance(batch, np.ndarray):
            return self.fallback.predict(batch)
        if self._to_fallback and np.isnan(batch[:, self._to_fallback]).any():
            return self.fallback.predict(batch)
        n = batch.shape[0]
        columns = np.asarray(batch.T, dtype=np.float32, order="C")
        inputs = {name: columns[j].reshape(n, 1) for name, j in self._floats}
        for name, j in self._ints:
            inputs[name] = batch[:, j].astype(np.int64).reshape(n, 1)
        return self.decode(self.session.run(self._fetch, inputs)[0])

    def route_nan_to_fallback(self, columns: list[int]) -> None:
        """Send batches with NaN in ``columns`` to ``fallback`` too (call before serving)."""
        self._to_fallback = sorted({*self._to_fallback, *columns})


def compile_columns(
    model: Any,
    native: Predictor,
    *,
    schema: InputSchema,
    settings: RuntimeSettings,
    sample: Batch,
) -> tuple[OnnxPredictor | None, EngineChoice]:
    """:func:`~sibyl.runtime._onnx.compile_onnx` for numeric schemas and by-name pipelines.

    Verifies on ``sample`` (float64 rows), then on rows with NaN holes in the columns that may
    hold NaN (:func:`nullable_columns`, :func:`rows_with_missing`). Same contract: never raises
    for a model that merely does not convert or verify.
    """
    compiled, choice = compile_frame(
        model,
        native,
        schema=schema,
        settings=settings,
        sample=sample,
        predictors=OnnxColumnsPredictor.factory,
    )
    columns = nullable_columns(schema)
    if not isinstance(compiled, OnnxColumnsPredictor) or not columns or not len(sample):
        return compiled, choice
    return _verify_missing(compiled, choice, native, np.asarray(sample), columns, settings)


def nullable_columns(schema: InputSchema) -> list[int]:
    """Indices of the float / bool columns a batch may hold NaN in (``nan_policy='allow'``, or
    optional columns). Int columns are left out: :class:`OnnxColumnsPredictor` sends NaN in
    them to the native predictor."""
    allow = schema.nan_policy == "allow"
    return [
        j for j, c in enumerate(schema.columns) if c.kind != "int" and (allow or not c.required)
    ]


def rows_with_missing(sample: Array, columns: list[int]) -> Array:
    """Copies of ``sample``'s first rows: each of ``columns`` is NaN in ``_HOLE_ROWS`` rows (one
    column per row), then one row has all of them NaN."""
    count = _HOLE_ROWS * len(columns) + 1
    rows = sample[np.arange(count) % len(sample)].copy()
    for i in range(count - 1):
        rows[i, columns[i % len(columns)]] = np.nan
    rows[-1, columns] = np.nan
    return rows


def _refused(native: Predictor, sample: Array, columns: list[int]) -> dict[int, str]:
    """The columns whose NaN the native model raises on, with its (short) error."""
    refused: dict[int, str] = {}
    for j in columns:
        try:
            native.predict(rows_with_missing(sample, [j]))
        except Exception as exc:  # the model's own failure is the information we want
            refused[j] = short_error(exc)
    return refused


def _verify_missing(
    compiled: OnnxColumnsPredictor,
    choice: EngineChoice,
    native: Predictor,
    sample: Array,
    columns: list[int],
    settings: RuntimeSettings,
) -> tuple[OnnxPredictor | None, EngineChoice]:
    """``choice`` extended by the NaN check, or the native fallback with the precise reason.

    Columns whose NaN the native model refuses stay refused: batches with NaN there go to the
    native predictor, which raises as before (ONNX would silently return NaN-based outputs).
    """
    refused = _refused(native, sample, columns)
    compiled.route_nan_to_fallback(list(refused))
    reason, worst = choice.reason, choice.max_abs_diff or 0.0
    kept = [j for j in columns if j not in refused]
    if kept:
        rows = rows_with_missing(sample, kept)
        try:
            check = verify(
                native.predict(rows),
                compiled.predict(rows),
                atol=settings.onnx_atol,
                rtol=settings.onnx_rtol,
            )
        except Exception as exc:  # ORT (or native on the combined row) failed
            return None, _nan_failure(native, f": {short_error(exc)}; serving natively")
        if not check.ok:
            reason = _nan_mismatch(check.rows, check.problem)
            return None, _nan_failure(native, reason, check.max_abs_diff)
        worst = max(worst, check.max_abs_diff)
        reason += f"; and on {check.rows} rows with NaN, max |Δ| {check.max_abs_diff:.1e}"
    if refused:
        names = ", ".join(f"'{compiled.feeds[j].column}'" for j in refused)
        reason += (
            f"; NaN in {names} goes to the native model, which raises on it "
            f"({next(iter(refused.values()))})"
        )
    return compiled, replace(choice, reason=reason, max_abs_diff=worst)


def _nan_failure(native: Predictor, detail: str, diff: float | None = None) -> EngineChoice:
    fallback = getattr(native, "engine", Engine.PYTHON)
    return EngineChoice(fallback, f"verification failed on rows with NaN {detail}", diff)


def _nan_mismatch(rows: int, problem: str | None) -> str:
    return (
        f"({rows} rows with NaN in one or all nullable columns): {problem}; ONNX handles NaN "
        "differently from the native model here (an imputer before the estimator avoids it); "
        "serving natively"
    )

"""ONNX compilation: convert a native model, run it in ONNX Runtime, keep it only if it agrees.

:func:`compile_onnx` converts a scikit-learn estimator or pipeline (skl2onnx; xgboost / lightgbm
sklearn-API models inside it through onnxmltools' converters) or a raw xgboost / lightgbm booster
(onnxmltools), opens an ``InferenceSession`` pinned to ``inference_threads``, and verifies it
against the native predictor on the rows it is given (the loader passes the input example plus
a seeded synthetic sample). Every outcome
is an :class:`EngineChoice` whose reason says what happened; nothing here raises for a model that
merely does not convert. ONNX libraries are imported lazily, so serving without the ``onnx``
extra works (the reason then names the pip command).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sibyl.runtime._converters import register_converters
from sibyl.runtime.types import Batch, Engine, EngineChoice, Prediction, Predictor, Task

if TYPE_CHECKING:
    from sibyl.runtime.schema import InputSchema
    from sibyl.settings import RuntimeSettings

Array = np.ndarray[Any, Any]
ONNX_FLAVORS = ("sklearn", "xgboost", "lightgbm")
_ML_OPSET = 3  # onnxmltools' tree converters refuse newer ai.onnx.ml opsets
_INPUT = "input"


@dataclass(frozen=True, slots=True)
class Verification:
    """Outcome of comparing ONNX outputs with native outputs on the same rows."""

    ok: bool
    rows: int
    max_abs_diff: float
    problem: str | None = None
    rows_bad: int = 0
    """Rows on which ONNX and native disagree beyond the tolerance (when ``ok`` is false)."""


class OnnxPredictor:
    """Runs a converted model in ONNX Runtime; outputs match the native predictor's layout.

    The float64 batch is cast to float32 once per call. Classifier labels are the native
    ``classes`` (same values and dtype) picked by the most probable column, or the model's label
    output cast to the native dtype when it has no probabilities. ``InferenceSession.run`` is
    thread-safe and releases the GIL.
    """

    engine = Engine.ONNX

    def __init__(
        self,
        session: Any,
        *,
        task: Task,
        classes: tuple[Any, ...] | None = None,
        label_dtype: Any = None,
        has_proba: bool = False,
    ) -> None:
        self.session = session
        self.task = task
        self.classes = classes
        self._labels: Array | None = None
        if classes is not None:
            self._labels = np.asarray(classes, dtype=label_dtype)
        self._dtype = label_dtype
        self._input = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        self._proba = has_proba and task is Task.CLASSIFIER and classes is not None
        if self._proba and len(outputs) < 2:
            raise ValueError("the converted classifier has no probability output")
        self._fetch = [outputs[1] if self._proba else outputs[0]]

    def predict(self, batch: Batch) -> Prediction:
        """Predict every row of a numeric batch."""
        x = np.asarray(batch, dtype=np.float32)
        out = np.asarray(self.session.run(self._fetch, {self._input: x})[0])
        # decode() inlined: the extra call measured ≈ 0.25 µs (3 %) of a 1-row call
        if self._proba and self._labels is not None:
            probs = out.astype(np.float64)
            return Prediction(self._labels[probs.argmax(axis=1)], probs, self.classes)
        if self.task is Task.CLASSIFIER:
            return Prediction(out.astype(self._dtype), None, self.classes)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        return Prediction(out.astype(np.float64))

    def decode(self, fetched: Any) -> Prediction:
        """The :class:`Prediction` of the fetched output (probabilities, labels or values).

        :meth:`predict` repeats this body inline (hot path): change both together.
        """
        out = np.asarray(fetched)
        if self._proba and self._labels is not None:
            probs = out.astype(np.float64)
            return Prediction(self._labels[probs.argmax(axis=1)], probs, self.classes)
        if self.task is Task.CLASSIFIER:
            return Prediction(out.astype(self._dtype), None, self.classes)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        return Prediction(out.astype(np.float64))


def onnx_precheck(
    settings: RuntimeSettings, schema: InputSchema, flavor: str, task: Task
) -> str | None:
    """Why ONNX is not even tried for this model, or ``None`` when it should be."""
    if not settings.onnx:
        return "ONNX disabled by settings"
    if flavor not in ONNX_FLAVORS:
        return f"no ONNX converter for the {flavor} flavor (only {', '.join(ONNX_FLAVORS)})"
    if not schema.typed:
        return "model has no input signature; ONNX needs typed input columns"
    if not schema.numeric and flavor != "sklearn":
        return (
            f"schema has non-numeric columns; ONNX is only tried on those for sklearn "
            f"pipelines, not the {flavor} flavor"
        )
    if task is Task.OTHER:
        return "ONNX is only used for classifiers and regressors"
    return None


def compile_onnx(
    model: Any,
    native: Predictor,
    *,
    schema: InputSchema,
    settings: RuntimeSettings,
    sample: Batch,
) -> tuple[OnnxPredictor | None, EngineChoice]:
    """Convert ``model`` and verify it against ``native`` on the rows ``sample``.

    ``sample`` is a float64 array for a numeric schema, else a DataFrame of the schema's
    columns (then :func:`sibyl.runtime._onnx_frame.compile_frame` takes over: one ONNX input per
    column). A numeric-schema pipeline whose ``ColumnTransformer`` selects columns by name gets
    one input per column too (:func:`sibyl.runtime._onnx_columns.compile_columns`); every other
    numeric model the single float32 tensor of :class:`OnnxPredictor`. The predictor is
    ``None`` on any failure; the reason of the returned choice says what happened. ``native``
    must have ``engine``, ``task`` and ``classes`` attributes (the native predictors of this
    package do).
    """
    fallback = getattr(native, "engine", Engine.PYTHON)
    try:
        _import_onnx()
    except ImportError as exc:
        return None, EngineChoice(
            fallback, f"onnx extra not installed: pip install 'sibyl[onnx]' ({exc.name})"
        )
    if not schema.numeric:
        from sibyl.runtime._onnx_frame import compile_frame  # it builds on this module

        return compile_frame(model, native, schema=schema, settings=settings, sample=sample)
    from sibyl.runtime._onnx_columns import compile_columns, selects_by_name

    if selects_by_name(model):  # one input per column; decided here, once, not per request
        return compile_columns(model, native, schema=schema, settings=settings, sample=sample)
    try:
        proto = convert(model, len(schema.names))
    except Exception as exc:  # converters raise anything; the reason carries it
        converter = "onnxmltools" if _booster_library(model) else "skl2onnx"
        return None, EngineChoice(
            fallback, f"{converter} cannot convert {type_name(model)}: {short_error(exc)}"
        )
    try:
        compiled, check = open_and_verify(proto, native, sample, settings)
    except Exception as exc:  # a native or ORT failure on the sample: serve native
        return None, EngineChoice(fallback, f"verification failed: {short_error(exc)}")
    if not check.ok:
        return None, EngineChoice(
            fallback, f"verification failed: {check.problem}", check.max_abs_diff
        )
    return compiled, compiled_choice(check, proto, fallback, settings)


def compiled_choice(
    check: Verification, proto: Any, fallback: Engine, settings: RuntimeSettings
) -> EngineChoice:
    """The :class:`EngineChoice` of a model that compiled and verified."""
    reason = (
        f"compiled to ONNX; verified on {check.rows} rows, max |Δ| "
        f"{check.max_abs_diff:.1e} ≤ atol {settings.onnx_atol:g} + rtol "
        f"{settings.onnx_rtol:g}·|native|"
    )
    details = {"native_engine": str(fallback), "onnx_bytes": proto.ByteSize()}
    return EngineChoice(Engine.ONNX, reason, check.max_abs_diff, details)


def open_and_verify(
    proto: Any,
    native: Predictor,
    sample: Batch,
    settings: RuntimeSettings,
    build: Callable[..., OnnxPredictor] = OnnxPredictor,
) -> tuple[OnnxPredictor, Verification]:
    """Open ``proto`` as ``build(session, task=…, classes=…, label_dtype=…, has_proba=…)``,
    predict ``sample`` with it and with ``native``, and compare (see :func:`verify`)."""
    want = native.predict(sample)
    task = getattr(native, "task", Task.OTHER)
    compiled = build(
        open_session(proto.SerializeToString(), settings.inference_threads),
        task=task,
        classes=getattr(native, "classes", None),
        label_dtype=want.predictions.dtype if task is Task.CLASSIFIER else None,
        has_proba=want.probabilities is not None,
    )
    got = compiled.predict(sample)
    return compiled, verify(want, got, atol=settings.onnx_atol, rtol=settings.onnx_rtol)


# -- conversion --------------------------------------------------------------------------------
def onnx_opset() -> dict[str, int]:
    """The ``target_opset`` sibyl converts with (main domain and ``ai.onnx.ml``)."""
    return {"": _main_opset(), "ai.onnx.ml": _ML_OPSET}


def convert(model: Any, n_features: int) -> Any:
    """An ``onnx.ModelProto`` of ``model`` taking a float32 ``(n, n_features)`` input."""
    library = _booster_library(model)
    if library is not None:
        return _convert_booster(model, library, n_features)
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    from sibyl.runtime._native import sklearn_task

    register_converters()
    options = {id(model): {"zipmap": False}} if sklearn_task(model) is Task.CLASSIFIER else None
    return convert_sklearn(
        model,
        initial_types=[(_INPUT, FloatTensorType([None, n_features]))],
        options=options,
        target_opset=onnx_opset(),
    )


def _convert_booster(booster: Any, library: str, n_features: int) -> Any:
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [(_INPUT, FloatTensorType([None, n_features]))]
    if library == "xgboost":
        return onnxmltools.convert_xgboost(booster, initial_types=types)
    return onnxmltools.convert_lightgbm(booster, initial_types=types, zipmap=False)


def open_session(model_bytes: bytes, threads: int) -> Any:
    """An ORT session using exactly ``threads`` intra-op threads, sequential execution.

    ORT's default intra-op pool sizes itself from the machine, ignoring ``taskset``; spinning
    is off so an idle pool does not steal the core the event loop needs.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # lightgbm graphs declare a label shape ORT warns about per run
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


# -- verification ------------------------------------------------------------------------------
def verify(want: Prediction, got: Prediction, *, atol: float, rtol: float) -> Verification:
    """Check ONNX outputs ``got`` against native outputs ``want`` (see ``compile_onnx``).

    Probabilities (classifiers) or values (regressors) must satisfy
    ``|got - want| ≤ atol + rtol·|want|`` everywhere; labels must be identical except on rows
    whose native top-2 probability margin is within twice that tolerance (either side may move).
    """
    n = len(want)
    ref = want.probabilities if want.probabilities is not None else want.predictions
    out = got.probabilities if want.probabilities is not None else got.predictions
    if out is None or out.shape != ref.shape:
        got_shape = None if out is None else out.shape
        return Verification(
            False, n, float("inf"), f"output shape {got_shape} differs from the native {ref.shape}"
        )
    if want.probabilities is None and want.classes is not None:
        return _check_labels(want, got, None, n, 0.0)  # classifier without probabilities
    ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
    with np.errstate(invalid="ignore"):
        diff = np.where(np.isnan(ref64) & np.isnan(out64), 0.0, np.abs(out64 - ref64))
    diff[np.isnan(diff)] = np.inf  # NaN on one side only
    bound = atol + rtol * np.abs(np.nan_to_num(ref64, nan=0.0))
    worst = float(diff.max()) if diff.size else 0.0
    bad = diff > bound
    if bad.any():
        rows_bad = int(bad.reshape(n, -1).any(axis=1).sum())
        return Verification(
            False,
            n,
            worst,
            f"max |Δ| {worst:.1e} > tolerance (atol {atol:g} "
            f"+ rtol {rtol:g}·|native|) on {rows_bad} of {n} rows",
            rows_bad,
        )
    if want.classes is None:
        return Verification(True, n, worst)
    margin_tol = None if want.probabilities is None else 2 * bound.max(axis=1)
    return _check_labels(want, got, margin_tol, n, worst)


def _check_labels(
    want: Prediction, got: Prediction, margin_tol: Array | None, n: int, worst: float
) -> Verification:
    differ = np.asarray(want.predictions != got.predictions).reshape(n, -1).any(axis=1)
    if differ.any() and margin_tol is not None and want.probabilities is not None:
        top2 = np.sort(want.probabilities, axis=1)[:, -2:]
        close = (top2[:, 1] - top2[:, 0]) <= margin_tol
        differ &= ~close
    if differ.any():
        return Verification(
            False,
            n,
            worst,
            f"labels differ on {int(differ.sum())} of {n} rows "
            "where the native model is not near a tie",
            int(differ.sum()),
        )
    return Verification(True, n, worst)


# -- small helpers -----------------------------------------------------------------------------
def _import_onnx() -> None:
    import onnx  # noqa: F401
    import onnxmltools  # noqa: F401
    import onnxruntime  # noqa: F401
    import skl2onnx  # noqa: F401


def _main_opset() -> int:
    import onnx
    from skl2onnx import get_latest_tested_opset_version

    return int(min(get_latest_tested_opset_version(), onnx.defs.onnx_opset_version()))


def _booster_library(model: Any) -> str | None:
    kind = type(model)
    root = kind.__module__.split(".")[0]
    if kind.__name__ == "Booster" and root in ("xgboost", "lightgbm"):
        return root
    return None


def type_name(model: Any) -> str:
    """``"Pipeline ending in LogisticRegression"`` (the class name for a bare estimator)."""
    from sibyl.runtime._native import final_estimator

    name = type(model).__name__
    last = final_estimator(model)
    return name if last is model else f"{name} ending in {type(last).__name__}"


def short_error(exc: BaseException, limit: int = 240) -> str:
    """First line of an exception, bounded (converters put whole graphs in their messages)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__

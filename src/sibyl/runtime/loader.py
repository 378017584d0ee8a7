"""Loading one model version: MLmodel → native predictor → ONNX when it verifies → warm.

:func:`load_model` turns a local directory of downloaded MLflow artifacts into a
:class:`LoadedModel`, ready to serve; any failure becomes one :class:`~sibyl.errors.ModelLoadError`
that names the model, the step that failed and what to do. :meth:`LoadedModel.from_predictor`
wraps a plain Python predictor (rule models, toy predictors in tests) the same way.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np

from sibyl.errors import InvalidInputError, ModelLoadError
from sibyl.runtime._native import BoosterPredictor, SklearnPredictor
from sibyl.runtime._onnx import compile_onnx, onnx_precheck
from sibyl.runtime._pyfunc import PyfuncPredictor
from sibyl.runtime._torch import TORCH_PIN, TorchPredictor
from sibyl.runtime.schema import InputSchema
from sibyl.runtime.types import Batch, Engine, EngineChoice, Prediction, Predictor, Task
from sibyl.settings import RuntimeSettings

FLAVOR_ORDER = ("sklearn", "xgboost", "lightgbm", "pytorch", "python_function")
"""Flavors sibyl loads, most preferred first (native libraries beat the generic pyfunc)."""
NAN_POLICY_TAG = "sibyl.nan_policy"
_NO_TAGS: Mapping[str, str] = MappingProxyType({})
Array = np.ndarray[Any, Any]


@dataclass(slots=True)
class LoadedModel:
    """One model version, loaded, compiled when possible, warmed and ready to serve.

    ``predictor`` is what serves (ONNX Runtime or ``native``); ``engine`` says which and why.
    ``memory_bytes`` is the process RSS growth during the load (the artifact size on disk when
    that was not positive, e.g. memory freed by a concurrent eviction). ``output_names`` are the
    output column names of the signature, ``("predictions",)`` when it names none.
    A LoadedModel is itself a :class:`Predictor` delegating to ``predictor``.
    """

    name: str
    version: str
    predictor: Predictor
    native: Predictor
    schema: InputSchema
    engine: EngineChoice
    flavor: str
    task: Task
    classes: tuple[Any, ...] | None
    input_example: Batch | None
    memory_bytes: int
    load_seconds: float
    signature_text: str | None
    output_names: tuple[str, ...]

    def predict(self, batch: Batch) -> Prediction:
        """Predict with the serving predictor (same contract as :class:`Predictor`)."""
        return self.predictor.predict(batch)

    @classmethod
    def from_predictor(
        cls,
        name: str,
        version: str,
        predictor: Predictor,
        schema: InputSchema,
        *,
        task: Task = Task.OTHER,
        classes: tuple[Any, ...] | None = None,
        input_example: Batch | None = None,
    ) -> LoadedModel:
        """Wrap a plain Python predictor; it serves as is with :attr:`Engine.PYTHON`."""
        return cls(
            name=name,
            version=version,
            predictor=predictor,
            native=predictor,
            schema=schema,
            engine=EngineChoice(Engine.PYTHON, "plain Python predictor"),
            flavor="python",
            task=task,
            classes=classes,
            input_example=input_example,
            memory_bytes=0,
            load_seconds=0.0,
            signature_text=None,
            output_names=("predictions",),
        )


def load_model(
    path: Path,
    *,
    name: str,
    version: str,
    settings: RuntimeSettings,
    tags: Mapping[str, str] = _NO_TAGS,
) -> LoadedModel:
    """Load the MLflow model in the local directory ``path`` and get it ready to serve.

    Steps: read ``MLmodel``; pick the flavor (:data:`FLAVOR_ORDER`); build the input schema
    (NaN policy from the ``sibyl.nan_policy`` tag, else ``settings.nan_policy``); read the input
    example; load the native model; compile to ONNX when enabled and it verifies; run
    ``settings.warmup_rows`` rows through the chosen predictor. Raises :class:`ModelLoadError`.
    Blocking (seconds); call it from a worker thread.
    """
    started, rss_before = time.perf_counter(), _rss()
    step = _Steps(name, version)
    with step("reading its MLmodel file", _HINT_ARTIFACTS.format(path=path)):
        from mlflow.models import Model

        mlmodel = Model.load(str(path))
    with step("choosing a flavor", _HINT_FLAVOR):
        flavor = choose_flavor(mlmodel.flavors)
    with step(f"reading the '{NAN_POLICY_TAG}' tag", _HINT_NAN_TAG):
        nan_policy = _nan_policy(tags, settings)
    with step("reading its signature and sequence metadata", _HINT_RELOG):
        schema = InputSchema.from_signature(
            mlmodel.signature, nan_policy=nan_policy, sequence_metadata=_sequence_meta(mlmodel)
        )
    example = _input_example(mlmodel, path, schema)
    with _pinned_threads(settings.inference_threads):
        with step(
            f"loading the {flavor} model", _HINT_TORCH if flavor == "pytorch" else _HINT_LIBRARIES
        ):
            native, raw = _load_native(flavor, path, schema, mlmodel.signature, settings)
        with step("compiling it to ONNX", _HINT_ONNX):
            predictor, choice = _choose_engine(raw, native, schema, settings, flavor, example)
        if isinstance(predictor, TorchPredictor):
            choice.reason = f"{predictor.describe()}; {choice.reason}"
        with step(f"warming it up on {settings.warmup_rows} rows", _HINT_WARMUP):
            _warm_up(predictor, schema, example, settings.warmup_rows)
    return LoadedModel(
        name=name,
        version=version,
        predictor=predictor,
        native=native,
        schema=schema,
        engine=choice,
        flavor=flavor,
        task=getattr(native, "task", Task.OTHER),
        classes=getattr(native, "classes", None),
        input_example=example,
        memory_bytes=_memory_growth(rss_before, path),
        load_seconds=time.perf_counter() - started,
        signature_text=None if mlmodel.signature is None else str(mlmodel.signature),
        output_names=_output_names(mlmodel.signature, schema),
    )


def choose_flavor(flavors: Mapping[str, Any]) -> str:
    """The flavor sibyl loads a model with; ``ValueError`` when it has none of them."""
    for flavor in FLAVOR_ORDER:
        if flavor in flavors:
            return flavor
    raise ValueError(f"it has flavors {sorted(flavors)} and none of {list(FLAVOR_ORDER)}")


# -- steps -------------------------------------------------------------------------------------
_HINT_ARTIFACTS = (
    "check that {path} holds a complete MLflow model (an MLmodel file next to the "
    "model data); delete that directory to download the artifacts again"
)
_HINT_FLAVOR = (
    "log the model with mlflow.sklearn, mlflow.xgboost, mlflow.lightgbm, mlflow.pytorch or "
    "mlflow.pyfunc"
)
_HINT_NAN_TAG = f"set the version tag '{NAN_POLICY_TAG}' to 'reject' or 'allow'"
_HINT_RELOG = "log the model again with a valid signature (mlflow.models.infer_signature)"
_HINT_LIBRARIES = (
    "check that this environment has the libraries and versions the model was "
    "logged with (its requirements.txt); sklearn models that skops refuses load "
    "when logged with serialization_format='cloudpickle'"
)
_HINT_TORCH = (
    f"install torch in the serving environment (`pip install {TORCH_PIN}`, the CPU wheel, then "
    "`pip install 'sibyl[torch]'`); a module pickled with serialization_format='pickle' needs "
    "its class importable here"
)
_HINT_ONNX = "set runtime.onnx = false (SIBYL_RUNTIME__ONNX=false) to serve it natively"
_HINT_WARMUP = (
    "the model raised on its own input example; fix the model or its input example "
    "and register a new version"
)


class _Steps:
    """Turns any failure inside a step into one ModelLoadError naming the model and the step."""

    def __init__(self, name: str, version: str) -> None:
        self.prefix = f"Model '{name}' version {version} could not be loaded"

    @contextlib.contextmanager
    def __call__(self, what: str, hint: str) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            cause = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            cause = f"{type(exc).__name__}: {cause[:300]}" if cause else type(exc).__name__
            raise ModelLoadError(f"{self.prefix}: {what} failed ({cause}); {hint}") from exc


def _nan_policy(tags: Mapping[str, str], settings: RuntimeSettings) -> Literal["reject", "allow"]:
    value = tags.get(NAN_POLICY_TAG, settings.nan_policy)
    if value == "reject":
        return "reject"
    if value == "allow":
        return "allow"
    raise ValueError(f"'{value}' is not a NaN policy")


def _sequence_meta(mlmodel: Any) -> Any:
    """``metadata["sibyl"]["sequence"]`` of the MLmodel file, ``None`` when absent."""
    sibyl_meta = (getattr(mlmodel, "metadata", None) or {}).get("sibyl")
    return sibyl_meta.get("sequence") if isinstance(sibyl_meta, dict) else None


def _input_example(mlmodel: Any, path: Path, schema: InputSchema) -> Batch | None:
    """The logged input example as a batch; ``None`` when absent or not valid for the schema."""
    try:
        raw = mlmodel.load_input_example(str(path))
    except Exception:  # a missing or unreadable example only costs the warm-up rows
        return None
    if raw is None:
        return None
    import pandas as pd

    try:
        if isinstance(raw, pd.DataFrame):
            return schema.from_frame(raw, field="input_example")
        arr = np.asarray(raw, dtype=np.float64)
        return arr.reshape(len(arr), -1) if schema.numeric and arr.ndim >= 1 else None
    except (InvalidInputError, TypeError, ValueError):  # e.g. NaN under nan_policy=reject
        return None


def _load_native(
    flavor: str, path: Path, schema: InputSchema, signature: Any, settings: RuntimeSettings
) -> tuple[Predictor, Any]:
    threads = settings.inference_threads
    if flavor == "pytorch":
        torch_predictor = TorchPredictor.load(path, signature, schema, threads)
        return torch_predictor, torch_predictor.module
    if flavor == "python_function":
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(str(path))
        return PyfuncPredictor.from_signature(model, signature, schema), model
    model = importlib.import_module(f"mlflow.{flavor}").load_model(str(path))
    if type(model).__name__ == "Booster":
        return BoosterPredictor(model, threads=threads), model
    engine = Engine.SKLEARN if flavor == "sklearn" else Engine(flavor)
    return SklearnPredictor(model, columns=schema.names, threads=threads, engine=engine), model


def _choose_engine(
    raw: Any,
    native: Predictor,
    schema: InputSchema,
    settings: RuntimeSettings,
    flavor: str,
    example: Batch | None,
) -> tuple[Predictor, EngineChoice]:
    fallback = getattr(native, "engine", Engine.PYTHON)
    skip = onnx_precheck(settings, schema, flavor, getattr(native, "task", Task.OTHER))
    if skip is not None:
        return native, EngineChoice(fallback, skip)
    sample = verification_batch(example, schema, settings.onnx_verify_rows)
    compiled, choice = compile_onnx(raw, native, schema=schema, settings=settings, sample=sample)
    return (compiled if compiled is not None else native), choice


def _warm_up(predictor: Predictor, schema: InputSchema, example: Batch | None, rows: int) -> None:
    if rows <= 0:
        return
    if example is not None:
        batch: Batch = example[:rows]
    elif schema.numeric:
        batch = synthetic_batch(None, schema, rows)
    elif schema.sequence is not None and (record := schema.sequence.warmup_record(schema.columns)):
        batch = schema.from_records([record], "warm-up")
    else:
        return  # nothing valid to feed a non-numeric model without an example
    predictor.predict(batch)


# -- generated rows (ONNX verification, warm-up without an example) ----------------------
def verification_batch(example: Batch | None, schema: InputSchema, rows: int) -> Batch:
    """The input example followed by synthetic rows, ``max(rows, len(example))`` in all.

    A float64 array for numeric schemas (:func:`synthetic_batch`); otherwise a DataFrame built
    by ``schema`` like a request's (see :mod:`sibyl.runtime._synthetic_frame`: texts recombine
    the example's tokens with punctuation, case, unicode and empty strings).
    """
    if not schema.numeric:
        from sibyl.runtime._synthetic_frame import verification_frame

        return verification_frame(example, schema, rows, synthetic_batch)
    array = example if isinstance(example, np.ndarray) and len(example) else None
    if array is None:
        return synthetic_batch(None, schema, rows)
    extra = rows - len(array)
    if extra <= 0:
        return array
    return np.concatenate([array, synthetic_batch(array, schema, extra)], axis=0)


def synthetic_batch(example: Array | None, schema: InputSchema, rows: int, seed: int = 0) -> Array:
    """``rows`` rows: the example tiled plus Gaussian noise scaled by each column's spread.

    A column's scale is the example's standard deviation, or 1 where that is 0 (or there is no
    example: then the rows are standard normal around 0). Integer columns are rounded and bool
    columns thresholded, so the rows stay valid inputs. Seeded: the same call gives the same rows.
    """
    k = len(schema.names)
    base = example if example is not None and len(example) else np.zeros((1, k))
    with np.errstate(invalid="ignore"):
        scale = np.nan_to_num(np.nanstd(base, axis=0), nan=0.0) if len(base) > 1 else np.zeros(k)
    scale[scale == 0] = 1.0
    noise = np.random.default_rng(seed).standard_normal((rows, k)) * scale
    out = base[np.arange(rows) % len(base)] + noise
    for j, col in enumerate(schema.columns):
        if col.kind == "int":
            out[:, j] = np.round(out[:, j])
        elif col.kind == "bool":
            out[:, j] = out[:, j] > 0.5
    return np.asarray(out, dtype=np.float64)


def _output_names(signature: Any, schema: InputSchema) -> tuple[str, ...]:
    if schema.sequence is not None and schema.sequence.outputs:
        return schema.sequence.outputs
    outputs = getattr(signature, "outputs", None)
    if outputs is None or outputs.is_tensor_spec() or not outputs.has_input_names():
        return ("predictions",)
    return tuple(str(n) for n in outputs.input_names())


def _pinned_threads(threads: int) -> contextlib.AbstractContextManager[Any]:
    """OpenMP/BLAS threads of this (loading) thread, as the batcher pins its worker: unpinned
    OpenMP makes a 256-row HGB verification take seconds instead of ms on a busy machine."""
    from threadpoolctl import threadpool_limits

    limits: contextlib.AbstractContextManager[Any] = threadpool_limits(limits=threads)
    return limits


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _memory_growth(rss_before: int, path: Path) -> int:
    """RSS growth since ``rss_before``; the artifact size on disk when that is not positive."""
    grown = _rss() - rss_before
    if grown > 0:
        return grown
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())

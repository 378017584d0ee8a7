"""Running models: input schemas, predictors per flavor, ONNX compilation, loading.

``load_model(path, name=…, version=…, settings=…)`` turns downloaded MLflow artifacts into a
:class:`LoadedModel` whose ``predictor`` serves batches built by its :class:`InputSchema`:
ONNX Runtime when the model converts and verifies, the model's own library otherwise (torch
modules run as they are). :func:`onnx_function` lets a ``FunctionTransformer``'s Python function
carry its ONNX graph builder. Importing this package does not import mlflow, onnx, torch or the
model libraries.
"""

from sibyl.runtime._native import BoosterPredictor, SklearnPredictor
from sibyl.runtime._onnx import OnnxPredictor, compile_onnx, onnx_precheck
from sibyl.runtime._onnx_functions import GraphBuilder, OnnxFunction, onnx_function
from sibyl.runtime._outputs import named_prediction, oip_datatype
from sibyl.runtime._pyfunc import PyfuncPredictor
from sibyl.runtime._sequence import SequenceSpec
from sibyl.runtime._torch import TorchPredictor
from sibyl.runtime.loader import LoadedModel, choose_flavor, load_model, synthetic_batch
from sibyl.runtime.schema import ColumnSpec, InputSchema
from sibyl.runtime.types import (
    Batch,
    DescribesOutputs,
    Engine,
    EngineChoice,
    Prediction,
    Predictor,
    Task,
)

__all__ = [
    "Batch",
    "BoosterPredictor",
    "ColumnSpec",
    "DescribesOutputs",
    "Engine",
    "EngineChoice",
    "GraphBuilder",
    "InputSchema",
    "LoadedModel",
    "OnnxFunction",
    "OnnxPredictor",
    "Prediction",
    "Predictor",
    "PyfuncPredictor",
    "SequenceSpec",
    "SklearnPredictor",
    "Task",
    "TorchPredictor",
    "choose_flavor",
    "compile_onnx",
    "load_model",
    "named_prediction",
    "oip_datatype",
    "onnx_function",
    "onnx_precheck",
    "synthetic_batch",
]

"""skl2onnx converters for preprocessing steps the stock ones get wrong: ``SimpleImputer`` with
missing-value indicators and ``OneHotEncoder`` with infrequent / unknown categories.

**SimpleImputer** on float inputs, reproducing scikit-learn's ``add_indicator=True`` and its
dropping of features that were all missing in training. skl2onnx 1.20's stock converter ignores
both: with ``add_indicator`` its output has ``k``
columns where scikit-learn's has ``k + len(indicator_.features_)``, and the next step fails to
convert ("Mismatch between expected shape [None, 10] and model (., 17)"). Ours emits standard
ONNX operators — ``mask = IsNaN(x)`` (``Equal`` for a numeric ``missing_values``),
``Where(mask, statistics_, x)``, a ``Gather`` of the kept columns, and the ``Gather``-ed mask
cast to float appended — and hands every other case (integer or string inputs without those
features) to the stock converter.

**OneHotEncoder** with ``handle_unknown='infrequent_if_exist'`` (or ``'warn'``): the stock
converter refuses infrequent categories on a single input and raises on unknown categories
(ONNX ``zeros=0``) where scikit-learn maps them to the infrequent column or to zeros. Ours encodes
the frequent categories with ``zeros=1`` and appends ``1 − Σ frequent`` as the infrequent column
(1 exactly for infrequent and unknown values). Other encoders go to the stock converter.

Both are registered by :func:`sibyl.runtime._converters.register_converters`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Array = np.ndarray[Any, Any]


def register_preprocessors() -> None:
    """Register the ``SimpleImputer`` and ``OneHotEncoder`` converters and shape calculators
    (public skl2onnx API; idempotence is the caller's)."""
    from skl2onnx import update_registered_converter
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    update_registered_converter(
        SimpleImputer, "SibylSimpleImputer", _imputer_shape, _convert_simple_imputer
    )
    update_registered_converter(
        OneHotEncoder, "SibylOneHotEncoder", _one_hot_shape, _convert_one_hot
    )


def _needs_ours(raw: Any) -> bool:
    """Whether ``raw`` adds indicator columns or drops empty features (stock gets both wrong)."""
    return bool(raw.add_indicator) or bool(_kept(raw).size != _n_features(raw))


def _n_features(raw: Any) -> int:
    return int(np.asarray(raw.statistics_).shape[0])


def _kept(raw: Any) -> Array:
    """Indices of the input columns scikit-learn keeps (all-missing ones are dropped unless
    ``keep_empty_features``)."""
    stats = np.asarray(raw.statistics_)
    if stats.dtype.kind != "f" or getattr(raw, "keep_empty_features", False):
        return np.arange(stats.shape[0], dtype=np.int64)
    return np.flatnonzero(~np.isnan(stats)).astype(np.int64)


def _indicated(raw: Any) -> Array:
    """Indices of the columns the missing-value indicator reports (none without one)."""
    if not raw.add_indicator:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(raw.indicator_.features_, dtype=np.int64)


def _imputer_shape(operator: Any) -> None:
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes

    calculate_sklearn_imputer_output_shapes(operator)
    raw = operator.raw_operator
    if _needs_ours(raw):
        width = int(_kept(raw).size + _indicated(raw).size)
        operator.outputs[0].type.shape = [operator.inputs[0].get_first_dimension(), width]


def _convert_simple_imputer(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    raw = operator.raw_operator
    if not _needs_ours(raw):
        convert_sklearn_imputer(scope, operator, container)
        return
    if not isinstance(operator.inputs[0].type, (FloatTensorType, DoubleTensorType)):
        raise NotImplementedError(
            "SimpleImputer with add_indicator=True or all-missing training columns is only "
            "converted for float inputs"
        )
    _emit_float_imputer(scope, operator, container, raw)


def _emit_float_imputer(scope: Any, operator: Any, container: Any, raw: Any) -> None:
    """``concat(Where(mask, statistics_, x)[:, kept], float(mask[:, indicated]))``."""
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.common import concatenate_variables
    from skl2onnx.proto import onnx_proto

    double = isinstance(operator.inputs[0].type, DoubleTensorType)
    proto = onnx_proto.TensorProto.DOUBLE if double else onnx_proto.TensorProto.FLOAT
    dtype = np.float64 if double else np.float32
    x = concatenate_variables(scope, operator.inputs, container)
    mask = _missing_mask(scope, container, x, raw.missing_values, proto, dtype)
    stats = np.nan_to_num(np.asarray(raw.statistics_, dtype=np.float64), nan=0.0).astype(dtype)
    fill = _constant(scope, container, stats.reshape(1, -1), proto)
    filled = _node(scope, container, "Where", [mask, fill, x])
    kept = _kept(raw)
    if kept.size != _n_features(raw):
        filled = _gather(scope, container, filled, kept)
    parts = [filled]
    if raw.add_indicator:
        flags = _gather(scope, container, mask, _indicated(raw))
        parts.append(_node(scope, container, "Cast", [flags], to=proto))
    container.add_node(
        "Concat", parts, operator.outputs[0].full_name, axis=1,
        name=scope.get_unique_operator_name("Concat"),
    )  # fmt: skip


def _missing_mask(scope: Any, container: Any, x: str, missing: Any, proto: int, dtype: Any) -> str:
    if missing is None or (isinstance(missing, float) and math.isnan(missing)):
        return _node(scope, container, "IsNaN", [x])
    if not isinstance(missing, (int, float, np.number)):
        raise NotImplementedError(f"SimpleImputer(missing_values={missing!r}) on float inputs")
    value = _constant(scope, container, np.array([missing], dtype=dtype), proto)
    return _node(scope, container, "Equal", [x, value])


# -- OneHotEncoder ---------------------------------------------------------------------------------
def _needs_our_one_hot(raw: Any) -> bool:
    lenient = raw.handle_unknown in ("infrequent_if_exist", "warn")
    rare = bool(getattr(raw, "_infrequent_enabled", False))
    return (lenient or rare) and raw.drop_idx_ is None


def _one_hot_shape(operator: Any) -> None:
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType
    from skl2onnx.shape_calculators.one_hot_encoder import (
        calculate_sklearn_one_hot_encoder_output_shapes,
    )

    raw = operator.raw_operator
    if not _needs_our_one_hot(raw):
        calculate_sklearn_one_hot_encoder_output_shapes(operator)
        return
    width = len(raw.get_feature_names_out())
    kind = Int64TensorType if np.issubdtype(raw.dtype, np.signedinteger) else FloatTensorType
    operator.outputs[0].type = kind([operator.inputs[0].get_first_dimension(), width])


def _convert_one_hot(scope: Any, operator: Any, container: Any) -> None:
    from skl2onnx.operator_converters.one_hot_encoder import convert_sklearn_one_hot_encoder
    from skl2onnx.proto import onnx_proto

    raw = operator.raw_operator
    if not _needs_our_one_hot(raw):
        convert_sklearn_one_hot_encoder(scope, operator, container)
        return
    columns = _one_hot_columns(operator)
    parts = [_encode_feature(scope, container, raw, j, *columns[j]) for j in range(len(columns))]
    out = parts[0] if len(parts) == 1 else _node(scope, container, "Concat", parts, axis=1)
    to = onnx_proto.TensorProto.INT64 if np.issubdtype(raw.dtype, np.signedinteger) else None
    final = out if to is None else _node(scope, container, "Cast", [out], to=to)
    container.add_node(
        "Identity", [final], operator.outputs[0].full_name,
        name=scope.get_unique_operator_name("Identity"),
    )  # fmt: skip


def _one_hot_columns(operator: Any) -> list[tuple[str, int | None, bool]]:
    """``(input name, column or None when the input has one column, string input)`` per
    encoded feature, in order."""
    from skl2onnx.common.data_types import StringTensorType

    found: list[tuple[str, int | None, bool]] = []
    for inp in operator.inputs:
        width = inp.type.shape[1]
        if not isinstance(width, int) or width < 1:
            raise RuntimeError("OneHotEncoder inputs need a known number of columns")
        text = isinstance(inp.type, StringTensorType)
        found.extend((inp.full_name, None if width == 1 else k, text) for k in range(width))
    if len(found) != len(operator.raw_operator.categories_):
        raise RuntimeError("OneHotEncoder: input columns and categories_ differ in number")
    return found


def _encode_feature(
    scope: Any, container: Any, raw: Any, j: int, name: str, column: int | None, text: bool
) -> str:
    """The ``(n, F)`` float one-hot block of feature ``j``: its frequent categories, then the
    infrequent column when it has one (see :func:`_infrequent_column`)."""
    from skl2onnx.proto import onnx_proto

    cats = np.asarray(raw.categories_[j])
    rare = _infrequent(raw, j)
    frequent = cats[~np.isin(cats, rare)] if rare.size else cats
    if frequent.size == 0:
        raise NotImplementedError(f"OneHotEncoder feature {j} has only infrequent categories")
    encoded = np.concatenate([frequent, rare]) if rare.size else frequent
    x = name if column is None else _gather(scope, container, name, np.array([column]))
    if text:
        attrs: dict[str, Any] = {"cats_strings": [str(c).encode() for c in encoded]}
    else:
        _check_integral(encoded, j)
        attrs = {"cats_int64s": encoded.astype(np.int64).tolist()}
        x = _node(scope, container, "Cast", [x], to=onnx_proto.TensorProto.INT64)
    zeros = 0 if raw.handle_unknown == "error" else 1  # "error": ONNX Runtime raises too
    hot = _node(
        scope, container, "OneHotEncoder", [x], op_domain="ai.onnx.ml", zeros=zeros, **attrs
    )
    shape = _constant(scope, container, np.array([-1, encoded.size]), onnx_proto.TensorProto.INT64)
    block = _node(scope, container, "Reshape", [hot, shape])
    if rare.size == 0:
        return block
    return _infrequent_column(scope, container, block, frequent.size, raw.handle_unknown)


def _infrequent_column(
    scope: Any, container: Any, block: str, n_frequent: int, unknown: str
) -> str:
    """``concat(frequent part, infrequent column)`` of the one-hot ``block`` (frequent
    categories first, then the infrequent ones). The infrequent column is ``1 − Σ frequent``
    when unknown values count as infrequent (``'infrequent_if_exist'``, ``'warn'``): exactly 1
    for infrequent and unknown values; else the sum of the infrequent columns."""
    from skl2onnx.proto import onnx_proto

    axes = _constant(scope, container, np.array([1]), onnx_proto.TensorProto.INT64)
    frequent = _gather(scope, container, block, np.arange(n_frequent))
    if unknown in ("infrequent_if_exist", "warn"):
        total = _node(scope, container, "ReduceSum", [frequent, axes], keepdims=1)
        one = _constant(scope, container, np.ones(1, np.float32), onnx_proto.TensorProto.FLOAT)
        rest = _node(scope, container, "Sub", [one, total])
    else:
        rare = _node(scope, container, "Slice", [block, *_slice_from(scope, container, n_frequent)])
        rest = _node(scope, container, "ReduceSum", [rare, axes], keepdims=1)
    return _node(scope, container, "Concat", [frequent, rest], axis=1)


def _slice_from(scope: Any, container: Any, start: int) -> list[str]:
    """``starts, ends, axes`` inputs of a ``Slice`` keeping columns ``start:``."""
    from skl2onnx.proto import onnx_proto

    bounds = (np.array([start]), np.array([np.iinfo(np.int64).max]), np.array([1]))
    return [_constant(scope, container, b, onnx_proto.TensorProto.INT64) for b in bounds]


def _infrequent(raw: Any, j: int) -> Array:
    found = getattr(raw, "infrequent_categories_", None)
    if not getattr(raw, "_infrequent_enabled", False) or found is None or found[j] is None:
        return np.zeros(0)
    return np.asarray(found[j])


def _check_integral(categories: Array, j: int) -> None:
    as_int = categories.astype(np.int64)
    if categories.dtype.kind not in "iub" and not np.array_equal(as_int, categories):
        raise NotImplementedError(f"OneHotEncoder feature {j} has non-integer numeric categories")


# -- graph helpers -----------------------------------------------------------------------------
def _gather(scope: Any, container: Any, data: str, columns: Array) -> str:
    from skl2onnx.proto import onnx_proto

    index = _constant(scope, container, columns, onnx_proto.TensorProto.INT64)
    return _node(scope, container, "Gather", [data, index], axis=1)


def _constant(scope: Any, container: Any, values: Array, proto: int) -> str:
    name: str = scope.get_unique_variable_name("cst")
    container.add_initializer(name, proto, list(values.shape), values.ravel().tolist())
    return name


def _node(scope: Any, container: Any, op_type: str, inputs: list[str], **attrs: Any) -> str:
    output: str = scope.get_unique_variable_name(op_type.lower())
    name = scope.get_unique_operator_name(op_type)
    container.add_node(op_type, inputs, output, name=name, **attrs)
    return output

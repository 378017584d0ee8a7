"""ONNX graphs for the Python functions of ``FunctionTransformer`` steps, attached as data.

A ``FunctionTransformer(func)`` runs Python code, which ONNX cannot express — unless ``func``
says how: :func:`onnx_function` attaches an :class:`OnnxFunction` (a graph builder and the
output's width and type) to the function as its ``__sibyl_onnx__`` attribute. Nothing is
registered at import time; the runtime's ``FunctionTransformer`` converter (registered by
:func:`sibyl.runtime._converters.register_converters`) reads the attribute when it converts.

**The builder contract.** ``builder(graph, inputs) -> output``:

* ``graph`` is a :class:`GraphBuilder` (``graph.node(op, inputs, **attrs)``,
  ``graph.constant(array)``, ``graph.cast(name, dtype)``), adding nodes to the model being
  converted; the default ONNX domain at the conversion's opset (sibyl: ≥ 20, so
  ``StringConcat`` is there).
* ``inputs`` are the ONNX variable names of the transformer's input columns, one ``(n, 1)``
  tensor per column in the order the ``ColumnTransformer`` selects them (one name when the
  transformer takes a single numeric tensor). Element types follow the column kinds: ``str`` →
  string; ``int`` → int64; ``datetime`` → int64 nanoseconds since the epoch of the naive wall
  time (the timezone dropped, as ``.dt.hour`` reads it); ``float`` / ``bool`` → float32.
* ``output`` is the name of one tensor of shape ``(n, width)``: float32 when the
  :class:`OnnxFunction`'s ``output`` is ``"float"``, string when ``"str"``. The builder must
  compute what ``func`` computes; the runtime's verification (labels exact, probabilities
  within tolerance on the input example and generated rows) decides whether ONNX is served.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import numpy as np

ATTRIBUTE = "__sibyl_onnx__"
"""The function attribute holding its :class:`OnnxFunction`."""

F = TypeVar("F", bound=Callable[..., Any])
Builder = Callable[["GraphBuilder", Sequence[str]], str]
"""``builder(graph, inputs) -> output name`` (see the module docstring)."""

_ONNX_TYPES = {"float32": 1, "int64": 7, "str": 8, "bool": 9, "float64": 11}
"""``onnx.TensorProto`` element types by name (stable numbers of the ONNX spec)."""


@dataclass(frozen=True, slots=True)
class OnnxFunction:
    """How to express a Python function in ONNX: its builder and its output's width and type."""

    builder: Builder
    width: int
    output: Literal["float", "str"] = "float"


def onnx_function(
    builder: Builder, *, width: int, output: Literal["float", "str"] = "float"
) -> Callable[[F], F]:
    """Decorator attaching ``OnnxFunction(builder, width, output)`` to a function.

    The function itself is returned unchanged (same object, same behaviour, pickled by
    reference as before); only its ``__sibyl_onnx__`` attribute is set. Raises ``ValueError``
    for a width below 1 or an unknown output type.
    """
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    if output not in ("float", "str"):
        raise ValueError(f"output must be 'float' or 'str', got {output!r}")
    spec = OnnxFunction(builder, width, output)

    def attach(func: F) -> F:
        setattr(func, ATTRIBUTE, spec)
        return func

    return attach


def onnx_spec(func: Any) -> OnnxFunction | None:
    """The :class:`OnnxFunction` attached to ``func`` (``None``: it has none)."""
    spec = getattr(func, ATTRIBUTE, None)
    return spec if isinstance(spec, OnnxFunction) else None


def has_onnx_builder(step: Any) -> bool:
    """Whether ``step`` is a ``FunctionTransformer`` whose ``func`` has a builder."""
    return type(step).__name__ == "FunctionTransformer" and onnx_spec(step.func) is not None


class GraphBuilder:
    """Adds nodes to a model skl2onnx is converting (wraps its scope and container)."""

    def __init__(self, scope: Any, container: Any) -> None:
        self._scope = scope
        self._container = container

    def node(self, op_type: str, inputs: Sequence[str], **attrs: Any) -> str:
        """Add one ``op_type`` node of the default domain; the name of its (single) output."""
        output: str = self._scope.get_unique_variable_name(op_type.lower())
        name = self._scope.get_unique_operator_name(op_type)
        self._container.add_node(op_type, list(inputs), output, name=name, **attrs)
        return output

    def constant(self, value: Any) -> str:
        """An initializer holding ``value`` (numbers, strings, arrays; dtype kept)."""
        array = np.asarray(value)
        kind = "str" if array.dtype.kind in "OUS" else array.dtype.name
        if kind not in _ONNX_TYPES:
            raise TypeError(f"no ONNX type for a constant of dtype {array.dtype}")
        name: str = self._scope.get_unique_variable_name("const")
        values = [str(v).encode() for v in array.ravel()] if kind == "str" else array.ravel()
        self._container.add_initializer(name, _ONNX_TYPES[kind], list(array.shape), values)
        return name

    def cast(self, name: str, dtype: Literal["float32", "float64", "int64", "bool"]) -> str:
        """``name`` cast to ``dtype``."""
        return self.node("Cast", [name], to=_ONNX_TYPES[dtype])


def shape_calculator(operator: Any) -> None:
    """skl2onnx shape calculator of a ``FunctionTransformer``: ``(n, width)`` of the spec's
    type; the stock one (identity only) for ``func=None``."""
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from skl2onnx.shape_calculators.function_transformer import (
        calculate_sklearn_function_transformer_output_shapes as stock,
    )

    func = operator.raw_operator.func
    spec = onnx_spec(func)
    if func is None or spec is None:  # stock: identity, or its "not supported" error
        stock(operator)
        return
    n = operator.inputs[0].get_first_dimension()
    kind = StringTensorType if spec.output == "str" else FloatTensorType
    operator.outputs[0].type = kind([n, spec.width])


def converter(scope: Any, operator: Any, container: Any) -> None:
    """skl2onnx converter of a ``FunctionTransformer``: the spec's builder (stock for none)."""
    from skl2onnx.operator_converters.function_transformer import (
        convert_sklearn_function_transformer as stock,
    )

    spec = onnx_spec(operator.raw_operator.func)
    if spec is None:
        stock(scope, operator, container)
        return
    graph = GraphBuilder(scope, container)
    output = spec.builder(graph, [v.full_name for v in operator.inputs])
    container.add_node(
        "Identity", [output], operator.output_full_names, name=scope.get_unique_operator_name("Id")
    )


def column_transformer_parser(
    scope: Any, model: Any, inputs: list[Any], custom_parsers: Any = None
) -> list[Any]:
    """skl2onnx's ``ColumnTransformer`` parser, except that a transformer starting with a
    ``FunctionTransformer`` that has a builder gets its columns as separate inputs.

    skl2onnx concatenates the columns of such a transformer into one tensor of the first
    column's type (casting the others), which breaks a function over mixed columns (a string
    cast to int64 fails). Pass it as ``custom_parsers={ColumnTransformer: …}`` to
    ``convert_sklearn``; a ``ColumnTransformer`` without such a transformer is parsed by
    skl2onnx's own parser.
    """
    from skl2onnx._parse import _parse_sklearn_column_transformer as stock

    if not any(_first_step_has_builder(t) for _, t, _ in model.transformers_):
        return list(stock(scope, model, inputs, custom_parsers=custom_parsers))
    from skl2onnx._parse import _parse_sklearn

    outputs = []
    for name, _, columns in model.transformers_:
        transformer = model.named_transformers_[name]
        if isinstance(transformer, str) and transformer == "drop":
            continue
        selected = _selected_inputs(scope, model, inputs, columns)
        if not selected:
            continue
        if not _first_step_has_builder(transformer):
            selected = _merged(scope, selected, transformer)
        if isinstance(transformer, str):  # "passthrough"
            outputs.append(selected[0])
            continue
        outputs.append(_parse_sklearn(scope, transformer, selected, custom_parsers)[0])
    if len(outputs) == 1:
        return outputs
    concat = scope.declare_local_operator("SklearnConcat")
    concat.inputs = outputs
    kind = outputs[0].type.__class__
    concat.outputs.append(scope.declare_local_variable("transformed_column", kind([None, None])))
    return list(concat.outputs)


def _first_step_has_builder(transformer: Any) -> bool:
    steps = getattr(transformer, "steps", None)
    return has_onnx_builder(steps[0][1] if steps else transformer)


def _selected_inputs(scope: Any, model: Any, inputs: list[Any], columns: Any) -> list[Any]:
    from skl2onnx._parse import _fetch_input_slice
    from skl2onnx.common.utils import get_column_indices

    if model.transformer_weights:
        raise NotImplementedError("transformer_weights with ONNX function builders")
    if isinstance(columns, slice):
        columns = list(range(columns.start or 0, columns.stop, columns.step or 1))
    elif isinstance(columns, (int, str)):
        columns = [columns]
    names = get_column_indices(columns, inputs, multiple=True)
    selected: list[Any] = []
    for variable, indices in names.items():
        selected.extend(_fetch_input_slice(scope, [inputs[variable]], indices))
    return selected


def _merged(scope: Any, selected: list[Any], transformer: Any) -> list[Any]:
    """skl2onnx's rule: several columns become one tensor unless the (first) step encodes."""
    from skl2onnx._parse import do_not_merge_columns

    first = transformer.steps[0][1] if hasattr(transformer, "steps") else transformer
    if len(selected) < 2 or isinstance(first, do_not_merge_columns):
        return selected
    concat = scope.declare_local_operator("SklearnConcat")
    concat.inputs = selected
    merged = scope.declare_local_variable(
        "merged_columns", selected[0].type.__class__([None, None])
    )
    concat.outputs.append(merged)
    return [merged]

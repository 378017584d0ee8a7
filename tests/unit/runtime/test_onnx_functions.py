"""FunctionTransformers whose Python function carries an ONNX builder (``onnx_function``):
conversion over mixed-type columns, the native fallback without a builder or with a wrong one,
and date-time columns fed as wall-time nanoseconds."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from sibyl.runtime import ColumnSpec, Engine, GraphBuilder, InputSchema, onnx_function
from sibyl.runtime._onnx_frame import wall_nanoseconds
from sibyl.runtime._onnx_functions import onnx_spec
from sibyl.runtime._onnx_text import inspect_pipeline
from tests.unit.runtime.conftest import assert_same_prediction, compile_with_native

SCHEMA = InputSchema([ColumnSpec("color", "str"), ColumnSpec("x", "float"), ColumnSpec("n", "int")])


def _flags_graph(graph: GraphBuilder, inputs: Sequence[str]) -> str:
    color, x, n = inputs
    red = graph.cast(
        graph.node("Equal", [color, graph.constant(np.array("red", object))]), "float32"
    )
    doubled = graph.node("Mul", [x, graph.constant(np.float32(2.0))])
    return graph.node("Concat", [red, doubled, graph.cast(n, "float32")], axis=1)


def _wrong_graph(graph: GraphBuilder, inputs: Sequence[str]) -> str:
    color, x, n = inputs
    blue = graph.cast(
        graph.node("Equal", [color, graph.constant(np.array("blue", object))]), "float32"
    )
    return graph.node("Concat", [blue, x, graph.cast(n, "float32")], axis=1)


def _flags(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    return np.column_stack(
        [
            (frame["color"].astype(str).to_numpy() == "red").astype(np.float64),
            frame["x"].to_numpy(np.float64) * 2.0,
            frame["n"].to_numpy(np.float64),
        ]
    )


flags = onnx_function(_flags_graph, width=3)(_flags)


def plain_flags(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    return _flags(frame)


@onnx_function(_wrong_graph, width=3)
def wrong_flags(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    return _flags(frame)


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "color": rng.choice(["red", "green", "blue"], size=n),
            "x": rng.normal(0.0, 1.0, size=n),
            "n": rng.integers(0, 10, size=n),
        }
    )
    score = (frame["color"] == "red") * 1.5 + frame["x"] - 0.1 * frame["n"]
    return frame, (score + rng.normal(0, 0.5, size=n) > 0.3).to_numpy()


def _model(func: Any) -> Pipeline:
    features = ColumnTransformer(
        [("flags", make_pipeline(FunctionTransformer(func), StandardScaler()), ["color", "x", "n"])]
    )
    x, y = _frame(400, 0)
    return Pipeline([("features", features), ("lr", LogisticRegression())]).fit(x, y)


def test_decorated_function_converts_over_mixed_columns_and_matches() -> None:
    model = _model(flags)
    compiled, choice, native = compile_with_native(model, SCHEMA, _frame(20, 1)[0])
    assert compiled is not None, choice.reason
    assert choice.engine is Engine.ONNX
    batch = SCHEMA.from_frame(_frame(300, 2)[0])
    assert_same_prediction(compiled.predict(batch), native.predict(batch))


def test_function_without_builder_serves_natively_with_the_reason() -> None:
    compiled, choice = compile_with_native(_model(plain_flags), SCHEMA, _frame(20, 1)[0])[:2]
    assert compiled is None
    assert choice.engine is Engine.SKLEARN
    assert "FunctionTransformer(plain_flags) runs Python code, which ONNX cannot express" in (
        choice.reason
    )


def test_builder_that_computes_something_else_fails_verification() -> None:
    compiled, choice = compile_with_native(_model(wrong_flags), SCHEMA, _frame(20, 1)[0])[:2]
    assert compiled is None
    assert choice.engine is Engine.SKLEARN
    assert choice.reason.startswith("verification failed: ")


def test_only_functions_without_builders_block_conversion() -> None:
    assert inspect_pipeline(_model(flags)).blockers == []
    assert len(inspect_pipeline(_model(plain_flags)).blockers) == 1


def test_the_decorator_attaches_data_and_returns_the_same_function() -> None:
    spec = onnx_spec(flags)
    assert flags is _flags and spec is not None
    assert (spec.builder, spec.width, spec.output) == (_flags_graph, 3, "float")
    assert onnx_spec(plain_flags) is None
    with pytest.raises(ValueError, match="width must be >= 1"):
        onnx_function(_flags_graph, width=0)


# -- date-times ------------------------------------------------------------------------------
def _stamps(values: list[str]) -> pd.Series[Any]:
    return pd.to_datetime(pd.Series(values), format="ISO8601")


def test_datetimes_are_fed_as_naive_wall_time_nanoseconds() -> None:
    naive = _stamps(["1969-12-31T23:30:00", "2026-01-05T10:30:15"])
    aware = _stamps(["1969-12-31T23:30:00+02:00", "2026-01-05T10:30:15+02:00"])
    want = [[-30 * 60 * 10**9], [pd.Timestamp("2026-01-05T10:30:15").value]]
    for column in (naive, aware):
        fed = wall_nanoseconds([column])
        assert fed is not None
        assert fed[0].dtype == np.int64 and fed[0].tolist() == want
    assert aware.dt.hour.tolist() == [23, 10]  # what the native pipeline reads: the wall hour


def test_datetimes_onnx_cannot_reproduce_go_native() -> None:
    plus_two = _stamps(["2026-01-05T10:30:00+02:00"])
    plus_one = _stamps(["2026-01-05T10:30:00+01:00"])
    paris = _stamps(["2026-01-05T10:30:00"]).dt.tz_localize("Europe/Paris")
    assert wall_nanoseconds([plus_two, plus_one]) is None  # durations would shift by an hour
    assert wall_nanoseconds([_stamps(["2026-01-05T10:30:00"]), plus_two]) is None
    assert wall_nanoseconds([paris]) is None  # a named zone: DST changes the offset
    assert wall_nanoseconds([pd.Series(["2026-01-05"])]) is None
    utc = _stamps(["2026-01-05T10:30:00Z"])
    assert isinstance(utc.dt.tz, datetime.timezone)
    assert wall_nanoseconds([utc, utc]) is not None

"""InputSchema: layouts, names, types, shapes, NaN policy — errors name the field."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema

from sibyl.errors import InvalidInputError
from sibyl.runtime.schema import ColumnSpec, InputSchema

NUM = InputSchema([ColumnSpec("a", "float"), ColumnSpec("b", "int"),
                   ColumnSpec("c", "float", required=False)])


def test_records_columns_rows_build_the_same_array() -> None:
    recs = NUM.from_records([{"a": 1.5, "b": 2, "c": None}, {"a": 0, "b": 3, "c": 1.0}])
    cols = NUM.from_columns({"a": [1.5, 0], "b": [2, 3], "c": [None, 1.0]})
    rows = NUM.from_rows([[1.5, 2, None], [0, 3, 1.0]])
    reordered = NUM.from_rows([[2, None, 1.5], [3, 1.0, 0]], names=["b", "c", "a"])
    for batch in (cols, rows, reordered):
        np.testing.assert_array_equal(batch, recs)
    assert recs.dtype == np.float64 and recs.shape == (2, 3)


@pytest.mark.parametrize(("call", "needle", "field"), [
    (lambda: NUM.from_records([{"a": 1.0, "b": 2}]), "missing column(s) ['c']", "records[0]"),
    (lambda: NUM.from_records([{"a": 1.0, "b": 2, "c": 1, "d": 4}]),
     "unexpected column(s) ['d']", "records[0]"),
    (lambda: NUM.from_records([{"a": "x", "b": 2, "c": 1}]), "expected a number", "a"),
    (lambda: NUM.from_records([{"a": 1.0, "b": 2.5, "c": 1}]), "expected an integer", "b"),
    (lambda: NUM.from_records([{"a": None, "b": 2, "c": 1}]), "null/NaN is not allowed", "a"),
    (lambda: NUM.from_records([]), "is empty", "records"),
    (lambda: NUM.from_records({"a": 1}), "must be a list", "records"),
    (lambda: NUM.from_rows([[1.0, 2]]), "array of 3 values", "rows[0]"),
    (lambda: NUM.from_columns({"a": [1.0], "b": [1, 2], "c": [1.0]}), "different lengths",
     "columns"),
    (lambda: NUM.from_records([{"a": [1], "b": 2, "c": 1}]), "expected a number", "a"),
])
def test_bad_input_names_the_field(call: object, needle: str, field: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        call()  # type: ignore[operator]
    assert needle in info.value.message
    assert info.value.field == field


def test_integral_float_is_a_safe_int_cast_and_bool_is_numeric() -> None:
    batch = NUM.from_records([{"a": True, "b": 3.0, "c": 1}])
    np.testing.assert_array_equal(batch, [[1.0, 3.0, 1.0]])


def test_nan_policy_allow_passes_nulls() -> None:
    schema = InputSchema([ColumnSpec("a", "float")], nan_policy="allow")
    assert np.isnan(schema.from_records([{"a": None}])[0, 0])


def test_from_mlflow_signature_numeric_and_mixed() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0], "n": [1, 2]})
    schema = InputSchema.from_signature(infer_signature(frame))
    assert schema.numeric and schema.names == ("x", "n")
    mixed = InputSchema.from_signature(ModelSignature(Schema([ColSpec("string", "title"),
                                                              ColSpec("double", "hours")])))
    assert not mixed.numeric
    out = mixed.from_records([{"title": "standup", "hours": 1}])
    assert isinstance(out, pd.DataFrame) and out["hours"].dtype == np.float64
    with pytest.raises(InvalidInputError, match="expected a string"):
        mixed.from_records([{"title": 3, "hours": 1}])


def test_untyped_schema_accepts_any_columns() -> None:
    schema = InputSchema.from_signature(None)
    out = schema.from_records([{"anything": 1, "else": "x"}])
    assert list(out.columns) == ["anything", "else"]


def test_from_frame_and_concat() -> None:
    frame = pd.DataFrame({"c": [1.0], "b": [2], "a": [0.5]})
    batch = NUM.from_frame(frame)
    np.testing.assert_array_equal(batch, [[0.5, 2.0, 1.0]])
    assert InputSchema.concat([batch, batch]).shape == (2, 3)
    assert InputSchema.n_rows(batch) == 1


@pytest.mark.parametrize("n", [1, 8])  # both the per-value path and numpy's fast path
def test_numeric_paths_agree_and_reject_the_same(n: int) -> None:
    rows = [[0.5, 2, 1.0]] * n
    np.testing.assert_array_equal(NUM.from_rows(rows), np.array(rows, dtype=float))
    for bad, needle in (([0.5, 2, "x"], "expected a number"), ([0.5, 2.5, 1.0], "expected an integer"),
                        ([None, 2, 1.0], "null/NaN"), ([0.5, [2], 1.0], "expected an integer"),
                        ([float("nan"), 2, 1.0], "null/NaN")):
        with pytest.raises(InvalidInputError, match=needle):
            NUM.from_rows([*rows[:-1], bad])
    nulls = NUM.from_rows([*rows[:-1], [0.5, 2, None]])  # c is optional
    assert np.isnan(nulls[-1, 2])


def test_datetime_columns_take_iso_strings_and_datetime_values() -> None:
    schema = InputSchema([ColumnSpec("start", "datetime"), ColumnSpec("n", "int")])
    from_json = schema.from_records([{"start": "2026-01-05T09:30:00", "n": 1}])
    from_frame = schema.from_frame(pd.DataFrame({"start": [pd.Timestamp("2026-01-05 09:30")],
                                                 "n": [1]}))
    assert from_json["start"][0] == from_frame["start"][0] == pd.Timestamp("2026-01-05 09:30")
    with pytest.raises(InvalidInputError, match="ISO-8601"):
        schema.from_records([{"start": 5, "n": 1}])
    with pytest.raises(InvalidInputError, match="ISO-8601"):
        schema.from_records([{"start": "not a date", "n": 1}])

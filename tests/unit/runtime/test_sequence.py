"""Sequence columns (MLflow ``Array(long)``) in InputSchema: list cells and the sequence rules."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature

from sibyl.errors import InvalidInputError
from sibyl.runtime import InputSchema, SequenceSpec

META: dict[str, Any] = {
    "columns": ["exercises", "correct"],
    "min_length": 1,
    "max_length": 5,
    "truncate": False,
    "ranges": {"exercises": [0, 49], "correct": [0, 1], "query": [0, 49]},
    "outputs": ["p_correct", "mastery"],
}
FRAME = pd.DataFrame({"exercises": [[1, 2], [3]], "correct": [[1, 0], [1]], "query": [3, 4]})
SIGNATURE = infer_signature(FRAME, pd.DataFrame({"p_correct": [0.5, 0.5]}))


def _schema(meta: dict[str, Any] | None = META) -> InputSchema:
    return InputSchema.from_signature(SIGNATURE, sequence_metadata=meta)


def _rec(**changes: Any) -> dict[str, Any]:
    return {"exercises": [1, 2, 3], "correct": [1, 0, 1], "query": 7, **changes}


def _refused(schema: InputSchema, records: list[dict[str, Any]]) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as err:
        schema.from_records(records)
    return err.value


def test_array_long_columns_are_sequences_with_the_metadata_rules() -> None:
    schema = _schema()
    assert [c.kind for c in schema.columns] == ["seq", "seq", "int"]
    assert not schema.numeric and schema.sequence is not None
    assert schema.sequence.columns == ("exercises", "correct")
    assert schema.sequence.outputs == ("p_correct", "mastery")
    assert schema.describe() == [
        {"name": "exercises", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "correct", "datatype": "INT64", "shape": [-1, -1]},
        {"name": "query", "datatype": "INT64", "shape": [-1]},
    ]


def test_records_columns_and_rows_build_a_frame_with_list_cells() -> None:
    schema = _schema()
    records = [_rec(), _rec(exercises=[5], correct=[0], query=1)]
    want = pd.DataFrame(records)
    for batch in (
        schema.from_records(records),
        schema.from_columns({k: [r[k] for r in records] for k in ("query", "exercises", "correct")}),
        schema.from_rows([[r["correct"], r["exercises"], r["query"]] for r in records],
                         names=["correct", "exercises", "query"]),
    ):
        assert isinstance(batch, pd.DataFrame)
        assert batch["exercises"].tolist() == want["exercises"].tolist()
        assert batch["correct"].tolist() == want["correct"].tolist()
        assert batch["query"].dtype == np.int64 and batch["query"].tolist() == [7, 1]
    joined = InputSchema.concat([schema.from_records(records[:1]), schema.from_records(records)])
    assert joined["exercises"].tolist() == [[1, 2, 3], [1, 2, 3], [5]]


def test_frames_with_array_cells_and_json_string_cells_are_accepted() -> None:
    schema = _schema()
    frame = pd.DataFrame({"exercises": [np.array([1, 2]), "[4, 5, 6]"],
                          "correct": [(1, 0), "[0,0,1]"], "query": [1, 2]})
    batch = schema.from_frame(frame)
    assert batch["exercises"].tolist() == [[1, 2], [4, 5, 6]]
    assert batch["correct"].tolist() == [[1, 0], [0, 0, 1]]


def test_integral_floats_become_ints() -> None:
    batch = _schema().from_records([_rec(exercises=[1.0, 2.0, 3.0])])
    assert batch["exercises"].tolist() == [[1, 2, 3]]
    assert all(type(v) is int for v in batch["exercises"][0])


@pytest.mark.parametrize(("change", "field", "needle"), [
    ({"exercises": [1, 2, 57]}, "records[0].exercises[2]", "exercises id 57 is outside 0..49"),
    ({"exercises": [1, -1, 2]}, "records[0].exercises[1]", "id -1 is outside 0..49"),
    ({"correct": [1, 2, 0]}, "records[0].correct[1]", "correct id 2 is outside 0..1"),
    ({"query": 50}, "records[0].query", "50 is outside the allowed ids 0..49"),
    ({"exercises": [], "correct": []}, "records[0].exercises", "is empty"),
    ({"correct": [1, 0]}, "records[0]", "must have equal lengths in a row, got exercises: 3, "
                                        "correct: 2"),
    ({"exercises": list(range(6)), "correct": [1] * 6}, "records[0].exercises",
     "has 6 items; the maximum is 5"),
    ({"exercises": [1, True, 2]}, "records[0].exercises[1]", "got true (booleans are not ids)"),
    ({"exercises": [1, 2.5, 2]}, "records[0].exercises[1]", "float → int is not a safe cast"),
    ({"exercises": [1, "2", 3]}, "records[0].exercises[1]", "expected an integer id, got str"),
    ({"exercises": [1, None, 3]}, "records[0].exercises[1]", "got null"),
    ({"exercises": 3}, "records[0].exercises", "expected a list of integers, got int 3"),
    ({"exercises": None}, "records[0].exercises", "expected a list of integers, got null"),
    ({"exercises": "1, 2, 3"}, "records[0].exercises", "or a JSON string of one"),
    ({"exercises": {"a": 1}}, "records[0].exercises", "expected a list of integers, got dict"),
])
def test_each_bad_history_is_refused_naming_the_field(change: dict[str, Any], field: str,
                                                     needle: str) -> None:
    err = _refused(_schema(), [_rec(**change)])
    assert err.field == field
    assert f"'{field}'" in err.message and needle in err.message, err.message


def test_the_failing_row_is_named() -> None:
    err = _refused(_schema(), [_rec(), _rec(), _rec(query=99)])
    assert err.field == "records[2].query"


def test_scalar_type_errors_are_left_to_the_schema() -> None:
    err = _refused(_schema(), [_rec(query="x")])
    assert "column 'query': expected an integer" in err.message
    err = _refused(_schema(), [_rec(query=2.5)])
    assert "expected an integer" in err.message


def test_columnar_requests_are_named_by_column_then_row() -> None:
    with pytest.raises(InvalidInputError) as err:
        _schema().from_columns({"exercises": [[1], [60]], "correct": [[1], [1]], "query": [1, 2]})
    assert err.value.field == "columns.exercises[1][0]"


def test_truncation_keeps_the_most_recent_items() -> None:
    schema = _schema({**META, "truncate": True, "max_length": 3})
    batch = schema.from_records([_rec(exercises=[1, 2, 3, 4, 5], correct=[0, 0, 1, 1, 0])])
    assert batch["exercises"].tolist() == [[3, 4, 5]]
    assert batch["correct"].tolist() == [[1, 1, 0]]
    err = _refused(schema, [_rec(exercises=[60, 2, 3, 4], correct=[0, 0, 1, 1])])
    assert err.field == "records[0].exercises[0]"  # ids are checked before truncation


def test_without_metadata_every_array_column_is_a_sequence_with_defaults() -> None:
    schema = _schema(None)
    assert schema.sequence is not None and schema.sequence.max_length is None
    batch = schema.from_records([_rec(exercises=list(range(300)), correct=[1] * 300,
                                      query=1000)])
    assert len(batch["exercises"][0]) == 300
    assert "is empty" in _refused(schema, [_rec(exercises=[], correct=[])]).message
    assert "equal lengths" in _refused(schema, [_rec(correct=[1])]).message


def test_the_input_example_must_follow_the_rules_too() -> None:
    with pytest.raises(InvalidInputError) as err:
        _schema().from_frame(FRAME.assign(query=[3, 77]), field="input_example")
    assert err.value.field == "input_example[1].query"


@pytest.mark.parametrize(("meta", "needle"), [
    ({**META, "columns": ["exercises"]}, "must name exactly the signature's Array(long)"),
    ({**META, "columns": ["exercises", "correct", "query"]}, "must name exactly"),
    ({**META, "window": 3}, "unknown key(s) ['window']"),
    ({**META, "ranges": {"exercises": [5, 1]}}, "must be [low, high]"),
    ({**META, "ranges": {"exercises": [0, 1.5]}}, "must be [low, high]"),
    ({**META, "ranges": {"nope": [0, 1]}}, "not an integer or Array(long) column"),
    ({**META, "max_length": 0}, "below min_length"),
    ({**META, "min_length": -1}, "non-negative integer"),
    ({**META, "truncate": "yes"}, "true or false"),
    ({**META, "outputs": "p_correct"}, "list of column names"),
    ("not a mapping", "must be a mapping"),
])
def test_metadata_that_contradicts_the_signature_is_refused(meta: Any, needle: str) -> None:
    with pytest.raises(ValueError) as err:
        _schema(meta)
    assert needle in str(err.value)


def test_metadata_without_sequence_columns_is_refused() -> None:
    names, kinds = ["a", "b"], ["float", "int"]
    with pytest.raises(ValueError, match="Array"):
        SequenceSpec.from_metadata({"columns": ["a"]}, names, kinds)
    assert SequenceSpec.from_metadata(None, names, kinds) is None


def test_numeric_schemas_have_no_sequence_rules() -> None:
    x = pd.DataFrame({"a": [1.0, 2.0], "b": [1, 2]})
    schema = InputSchema.from_signature(infer_signature(x))
    assert schema.numeric and schema.sequence is None
    assert isinstance(schema.from_records([{"a": 1.0, "b": 2}]), np.ndarray)


def test_warmup_record_is_valid() -> None:
    schema = _schema()
    assert schema.sequence is not None
    record = schema.sequence.warmup_record(schema.columns)
    assert record == {"exercises": [0], "correct": [0], "query": 0}
    assert len(schema.from_records([record])) == 1

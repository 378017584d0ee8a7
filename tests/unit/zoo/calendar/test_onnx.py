"""The calendar classifier on ONNX Runtime: its functions' graphs give the native numbers, and
the registered model loads from a real MLflow registry serving ``onnxruntime`` with the native
labels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from sibyl.runtime import ColumnSpec, Engine, InputSchema, load_model
from sibyl.runtime._onnx import onnx_opset
from sibyl.runtime._onnx_frame import convert_frame, wall_nanoseconds
from sibyl.settings import RuntimeSettings
from sibyl.zoo.calendar import train
from sibyl.zoo.calendar.data import generate_events, time_features
from tests.unit.runtime.conftest import download_version

SCHEMA = InputSchema(
    [
        ColumnSpec("title", "str"),
        ColumnSpec("description", "str"),
        ColumnSpec("start", "datetime"),
        ColumnSpec("end", "datetime"),
        ColumnSpec("attendees", "int"),
        ColumnSpec("recurrence", "bool"),
        ColumnSpec("location_type", "str"),
    ]
)
TIME_COLUMNS = ["start", "end", "attendees", "recurrence", "location_type"]


def _edge_events() -> pd.DataFrame:
    """Generated events plus what the generator never draws: dates before 1970, seconds,
    minutes off the 5-minute grid, negative durations, midnight and 23:59, every weekday."""
    events = train.serving_frame(generate_events(60, 7))
    starts = pd.to_datetime(
        [
            "1969-12-31T23:59:59",
            "1960-02-29T00:00:00",
            "2026-01-10T13:07:41",
            "2026-01-11T23:59:00",
            "2031-06-15T06:01:02",
        ],
        format="ISO8601",
    )
    ends = pd.to_datetime(
        [
            "1970-01-01T00:00:01",
            "1960-02-28T22:00:00",
            "2026-01-10T13:08:00.5",
            "2026-01-12T01:00:00",
            "2031-06-15T06:01:02",
        ],
        format="ISO8601",
    )
    edges = events.head(5).copy()
    edges["start"], edges["end"] = starts.to_numpy(), ends.to_numpy()
    return pd.concat([events, edges], ignore_index=True)


def _run(model: Any, frame: pd.DataFrame, columns: list[str]) -> np.ndarray[Any, Any]:
    import onnxruntime as ort

    schema = InputSchema([c for c in SCHEMA.columns if c.name in columns])
    proto = convert_frame(model, schema, onnx_opset())[0]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    stamps = [c for c in columns if c in ("start", "end")]
    fed = dict(zip(stamps, wall_nanoseconds([frame[c] for c in stamps]) or [], strict=True))
    for column in columns:
        if column not in fed:
            kind = {"attendees": np.int64, "recurrence": np.float32}.get(column, object)
            fed[column] = frame[[column]].to_numpy().astype(kind)
    out: np.ndarray[Any, Any] = session.run(None, fed)[0]
    return out


def _features(func: Any, columns: list[str]) -> Pipeline:
    step = ColumnTransformer([("f", FunctionTransformer(func), columns)])
    return Pipeline([("features", step)]).fit(_edge_events()[columns])


@pytest.mark.parametrize("offset", [None, "+05:30"])
def test_time_features_graph_gives_the_native_numbers(offset: str | None) -> None:
    frame = _edge_events()
    if offset is not None:  # as ISO strings with one offset parse: the wall time is kept
        for column in ("start", "end"):
            frame[column] = frame[column].dt.tz_localize(offset)
    got = _run(_features(time_features, TIME_COLUMNS), frame, TIME_COLUMNS)
    want = time_features(frame).to_numpy(np.float64).astype(np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape == (len(frame), 11)
    np.testing.assert_array_equal(got, want)


def test_hour_slots_and_event_text_graphs_give_the_native_values() -> None:
    frame = _edge_events()
    got = _run(_features(train.hour_slots, ["start"]), frame, ["start"])
    np.testing.assert_array_equal(got, train.hour_slots(frame).astype(np.float32))
    columns = ["title", "description"]
    joined = Pipeline([("f", FunctionTransformer(train.event_text))]).fit(frame[columns])
    text = _run(joined, frame, columns)
    assert text.ravel().tolist() == train.event_text(frame).tolist()


def test_registered_calendar_model_serves_onnx_with_the_native_labels(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    version = train.register(uri, (tmp_path / "artifacts").as_uri(), n=1500, seed=0)
    path = download_version(uri, train.MODEL_NAME, version, tmp_path / "model")
    loaded = load_model(path, name=train.MODEL_NAME, version=version, settings=RuntimeSettings())
    assert loaded.engine.engine is Engine.ONNX, loaded.engine.reason
    assert loaded.engine.details["native_engine"] == "sklearn"
    held_out = train.serving_frame(generate_events(500, seed=1))
    records = held_out.assign(
        start=held_out["start"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
        end=held_out["end"].dt.strftime("%Y-%m-%dT%H:%M:%S"),
    ).to_dict("records")
    batch = loaded.schema.from_records(records)
    got, want = loaded.predict(batch), loaded.native.predict(batch)
    assert got.predictions.tolist() == want.predictions.tolist()
    assert got.probabilities is not None and want.probabilities is not None
    max_diff = float(np.abs(got.probabilities - want.probabilities).max())
    print(f"calendar ONNX vs sklearn on 500 held-out events: max |Δ| {max_diff:.2g}")
    assert max_diff < 1e-4


def test_verification_rows_vary_hours_minutes_weekdays_and_durations() -> None:
    from sibyl.runtime.loader import verification_batch

    example = SCHEMA.from_frame(train.serving_frame(generate_events(5, 0)))
    batch = verification_batch(example, SCHEMA, 256)
    assert isinstance(batch, pd.DataFrame) and len(batch) == 256
    start = batch["start"]
    assert start.dt.hour.nunique() >= 20 and start.dt.minute.nunique() >= 50
    assert set(start.dt.weekday) == set(range(7))
    durations = (batch["end"] - start).dt.total_seconds()
    assert durations.nunique() >= 200 and (durations % 60 != 0).any()

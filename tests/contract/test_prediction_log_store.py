"""The prediction-log part of the ``Store`` contract on every backend: SQLite (a file under
tmp_path) and the REAL PostgreSQL on 127.0.0.1:5432 (a fresh database, dropped at the end)."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sibyl.errors import BackendUnavailableError, InvalidInputError
from sibyl.store import PredictionLogRecord, SQLStore
from tests.helpers import free_port

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def model() -> str:
    return f"m-{uuid.uuid4().hex[:8]}"


def rec(name: str, i: int = 0, **kw: Any) -> PredictionLogRecord:
    fields: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "request_id": f"r{i}",
        "ts": T0 + timedelta(seconds=i),
        "model": name,
        "version": "1",
        "n_rows": 1,
        "latency_ms": 1.5,
        "status": "ok",
        "inputs": {"columns": ["a", "b"], "rows": [[float(i), 2.0]]},
        "outputs": {"predictions": [i % 2], "probabilities": [[0.25, 0.75]], "classes": [0, 1]},
    }
    fields.update(kw)
    return PredictionLogRecord(**fields)


def test_rows_round_trip_with_every_field(store: SQLStore) -> None:
    name = model()
    full = rec(name, 1, experiment_id=7, variant="candidate", routing_key="user-1",
               error="timeout", cached_rows=1, fallback="version 2")  # fmt: skip
    assert store.write_prediction_log([full, rec(name, 2, inputs=None)]) == 2
    got = store.query_prediction_log(name, with_inputs=True)
    assert [r.request_id for r in got] == ["r2", "r1"]  # newest first
    assert got[1] == full
    assert got[0].inputs is None


def test_inputs_are_left_out_unless_asked(store: SQLStore) -> None:
    name = model()
    store.write_prediction_log([rec(name)])
    (row,) = store.query_prediction_log(name)
    assert row.inputs is None and row.outputs is not None


def test_a_batch_written_twice_stores_each_row_once(store: SQLStore) -> None:
    name = model()
    batch = [rec(name, i) for i in range(5)]
    assert store.write_prediction_log(batch) == 5
    assert store.write_prediction_log([*batch[2:], rec(name, 9)]) == 4  # a replayed batch
    assert store.count_prediction_log(name) == 6


def test_numpy_values_and_non_finite_numbers_are_stored_as_json(store: SQLStore) -> None:
    name = model()
    outputs = {
        "predictions": np.array([1.0, np.nan, np.inf]),
        "probabilities": np.array([[0.1, 0.9]] * 3, dtype=np.float32),
        "classes": [np.int64(0), np.int64(1)],
    }
    inputs = {"columns": ["a", "s"], "rows": [[np.float64(1.5), "x"], [math.nan, np.str_("y")]]}
    store.write_prediction_log([rec(name, inputs=inputs, outputs=outputs)])
    (row,) = store.query_prediction_log(name, with_inputs=True)
    assert row.outputs is not None and row.inputs is not None
    assert row.outputs["predictions"] == [1.0, None, None]
    assert row.outputs["classes"] == [0, 1]
    assert np.allclose(row.outputs["probabilities"], [[0.1, 0.9]] * 3)
    assert row.inputs["rows"] == [[1.5, "x"], [None, "y"]]


def test_filters_combine(store: SQLStore) -> None:
    name = model()
    store.write_prediction_log([
        rec(name, 0), rec(name, 1, version="2"), rec(name, 2, status="error", outputs=None),
        rec(name, 3, inputs=None), rec(name, 4, request_id="wanted"), rec(model(), 5),
    ])  # fmt: skip
    q = store.query_prediction_log
    assert len(q(name)) == 5
    assert [r.request_id for r in q(name, version="2")] == ["r1"]
    assert [r.request_id for r in q(name, status="error")] == ["r2"]
    assert [r.request_id for r in q(name, has_inputs=False)] == ["r3"]
    assert [r.request_id for r in q(name, request_id="wanted")] == ["wanted"]
    since, until = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
    assert [r.request_id for r in q(name, since=since, until=until)] == ["r2", "r1"]
    assert len(q(name, limit=2)) == 2
    assert store.count_prediction_log(name, has_inputs=True, status="ok") == 3
    assert store.count_prediction_log(name, since=since) == 4


def test_retention_by_age_and_by_rows_per_model(store: SQLStore) -> None:
    a, b = model(), model()
    store.write_prediction_log([rec(a, i) for i in range(10)] + [rec(b, i) for i in range(4)])
    gone = store.delete_prediction_log(older_than=T0 + timedelta(seconds=2), model=a)
    assert gone == 2 and store.count_prediction_log(a) == 8
    assert store.delete_prediction_log(keep_rows=3) >= 5 + 1  # every model: a loses 5, b 1
    assert [r.request_id for r in store.query_prediction_log(a)] == ["r9", "r8", "r7"]
    assert store.count_prediction_log(b) == 3
    assert store.delete_prediction_log(keep_rows=3, model=a) == 0  # idempotent
    assert store.delete_prediction_log(keep_rows=0, model=b) == 3


def test_rows_with_the_same_time_are_kept_by_id_order(store: SQLStore) -> None:
    name = model()
    rows = [rec(name, 0, id=f"{i:032x}") for i in range(5)]  # one timestamp
    store.write_prediction_log(rows)
    store.delete_prediction_log(keep_rows=2, model=name)
    assert [r.id for r in store.query_prediction_log(name)] == [f"{i:032x}" for i in (4, 3)]


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"id": "short"}, "id"),
        ({"ts": datetime(2025, 1, 1)}, "ts"),
        ({"n_rows": -1}, "n_rows"),
        ({"latency_ms": math.nan}, "latency_ms"),
        ({"routing_key": "k" * 300}, "routing_key"),
    ],
)
def test_malformed_records_are_refused_and_nothing_is_stored(
    store: SQLStore, bad: dict[str, Any], field: str
) -> None:
    name = model()
    with pytest.raises(InvalidInputError) as err:
        store.write_prediction_log([rec(name, 0), rec(name, 1, **bad)])
    assert err.value.field == field
    assert store.count_prediction_log(name) == 0


def test_limits_are_checked(store: SQLStore) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        store.query_prediction_log("m", limit=100_001)
    with pytest.raises(InvalidInputError, match="keep_rows"):
        store.delete_prediction_log(keep_rows=-1)


def test_an_unreachable_database_is_backend_unavailable(tmp_path: Path) -> None:
    down = SQLStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nothing")
    with pytest.raises(BackendUnavailableError):
        down.write_prediction_log([rec("m")])
    no_schema = SQLStore(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(BackendUnavailableError, match="migrations"):
        no_schema.write_prediction_log([rec("m")])

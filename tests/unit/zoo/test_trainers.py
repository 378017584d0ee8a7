"""Zoo trainers: bars on held-out data, then register → download → load with sibyl's runtime
→ predict from JSON-like records, and the reference profile next to the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from sibyl.runtime.loader import load_model
from sibyl.settings import RuntimeSettings
from sibyl.zoo import calendar, threat
from sibyl.zoo._registering import PROFILE_ARTIFACT, reference_profile
from sibyl.zoo.calendar import train as calendar_train
from sibyl.zoo.threat import train as threat_train

N = 2000

CALENDAR_RECORDS: list[dict[str, Any]] = [
    {
        "title": "Weekly sync roadmap",
        "description": "Agenda: review and next steps",
        "start": "2026-03-03T11:00:00",
        "end": "2026-03-03T11:45:00",
        "attendees": 7,
        "recurrence": True,
        "location_type": "video",
    },
    {
        "title": "Flight to Berlin",
        "description": "",
        "start": "2026-03-06T07:30:00",
        "end": "2026-03-06T10:00:00",
        "attendees": 1,
        "recurrence": False,
        "location_type": "transit",
    },
]
THREAT_RECORDS: list[dict[str, Any]] = [
    {"text": "Multiple failed SSH logins for user admin from 10.2.3.4"},
    {"text": "Query string contains ' OR 1=1 -- on /login"},
]


@pytest.fixture(scope="module")
def calendar_result() -> Any:
    return calendar_train.train(n=N, seed=0)


@pytest.fixture(scope="module")
def threat_result() -> Any:
    return threat_train.train(n=N, seed=0)


def test_calendar_meets_the_bar(calendar_result: Any) -> None:
    accuracy = calendar_result.metrics["accuracy"]
    print(f"calendar n={N}: {calendar_result.metrics}")
    assert 0.90 <= accuracy <= 0.96
    assert calendar_result.metrics["macro_f1"] > 0.88


def test_threat_meets_the_bar(threat_result: Any) -> None:
    print(f"threat n={N}: {threat_result.metrics}")
    assert threat_result.metrics["macro_f1"] >= 0.8


def test_reference_profile_is_json_and_complete() -> None:
    profile = reference_profile(calendar_train.serving_frame(calendar.generate_events(300, 1)))
    json.dumps(profile)  # serialisable
    cols = profile["columns"]
    assert profile["n_rows"] == 300
    assert cols["attendees"]["kind"] == "numeric"
    assert set(cols["attendees"]["quantiles"]) == {
        "0.01",
        "0.05",
        "0.25",
        "0.5",
        "0.75",
        "0.95",
        "0.99",
    }
    assert len(cols["attendees"]["histogram"]["counts"]) == 10
    assert len(cols["attendees"]["histogram"]["edges"]) == 11
    assert cols["location_type"]["kind"] == "categorical"
    assert cols["recurrence"]["kind"] == "categorical"
    assert cols["title"]["kind"] == "text" and "tokens" in cols["title"]
    assert cols["start"]["kind"] == "datetime"
    assert len(cols["title"]["top_values"]) <= 20


def _check_served(
    tmp_path: Path,
    module: Any,
    records: list[dict[str, Any]],
    classes: tuple[str, ...],
    profile_columns: set[str],
) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    artifacts = (tmp_path / "artifacts").as_uri()
    before = mlflow.get_tracking_uri()
    version = module.register(uri, artifacts, n=N, seed=0)
    assert version == "1"
    assert mlflow.get_tracking_uri() == before  # global URI restored

    client = mlflow.MlflowClient(uri)
    mv = client.get_model_version(module.MODEL_NAME, version)
    run_files = {f.path for f in client.list_artifacts(mv.run_id)}
    assert PROFILE_ARTIFACT in run_files
    profile = json.loads(
        Path(client.download_artifacts(mv.run_id, PROFILE_ARTIFACT, str(tmp_path))).read_text()
    )
    assert set(profile["columns"]) == profile_columns
    assert profile["n_rows"] == int(N * 0.75)

    mlflow.set_tracking_uri(uri)
    try:
        path = mlflow.artifacts.download_artifacts(
            f"models:/{module.MODEL_NAME}/{version}", dst_path=str(tmp_path / "model")
        )
    finally:
        mlflow.set_tracking_uri(before)
    loaded = load_model(
        Path(path), name=module.MODEL_NAME, version=version, settings=RuntimeSettings()
    )
    print(
        f"{module.MODEL_NAME}: engine={loaded.engine.engine} reason={loaded.engine.reason!r} "
        f"flavor={loaded.flavor} example={'yes' if loaded.input_example is not None else 'no'} "
        f"schema={[(c.name, c.kind) for c in loaded.schema.columns]}"
    )
    assert loaded.input_example is not None  # logged example (datetimes too) loads → warm-up ran
    batch = loaded.schema.from_records(records)
    prediction = loaded.predictor.predict(batch)
    labels = [str(v) for v in np.asarray(prediction.predictions)]
    assert len(labels) == len(records)
    assert set(labels) <= set(classes)
    assert prediction.probabilities is not None
    np.testing.assert_allclose(np.asarray(prediction.probabilities).sum(axis=1), 1.0, atol=1e-6)
    assert set(map(str, loaded.classes or ())) == set(classes)


def test_calendar_registers_and_serves(tmp_path: Path) -> None:
    _check_served(
        tmp_path,
        calendar_train,
        CALENDAR_RECORDS,
        calendar.CLASSES,
        set(calendar_train.FEATURES),
    )


def test_threat_registers_and_serves(tmp_path: Path) -> None:
    _check_served(tmp_path, threat_train, THREAT_RECORDS, threat.CLASSES, {"text"})

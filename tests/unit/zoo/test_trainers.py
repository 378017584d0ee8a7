"""Zoo trainers: bars on held-out data, then ``register_all`` of each use case into a real
SQLite MLflow → download → load with sibyl's runtime → predict from JSON-like records, and the
reference profile and metrics next to the model."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest

from sibyl.monitoring.drift import ColumnKind, OutputKind, ReferenceProfile, build_profile
from sibyl.registry import PROFILE_TAG, load_profile
from sibyl.runtime.loader import load_model
from sibyl.settings import RuntimeSettings
from sibyl.zoo import calendar, churn, threat
from sibyl.zoo._registering import Registered, reference_outputs
from sibyl.zoo.calendar import train as calendar_train
from sibyl.zoo.churn import telco
from sibyl.zoo.churn import train as churn_train
from sibyl.zoo.threat import train as threat_train
from tests.unit.zoo.threat._corpus import datasets_dir

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


def test_reference_profile_covers_inputs_and_outputs(calendar_result: Any) -> None:
    frame = calendar_train.serving_frame(calendar.generate_events(300, 1))
    model = calendar_result.model
    profile = build_profile(frame, reference_outputs(model.predict, frame, model))
    assert ReferenceProfile.from_json(profile.to_json()) == profile  # what the registry stores
    kinds = {c.name: c.kind for c in profile.features}
    assert kinds["attendees"] is ColumnKind.NUMERIC and profile.rows == 300
    assert kinds["location_type"] is kinds["recurrence"] is ColumnKind.CATEGORICAL
    assert kinds["title"] is ColumnKind.CATEGORICAL  # free text: its top values + other
    assert "start" in profile.skipped  # datetimes are not profiled
    assert profile.output_kind is OutputKind.PROBABILITIES
    assert set(map(str, profile.classes or ())) == set(calendar.CLASSES)
    assert reference_outputs(lambda f: np.zeros((len(f), 2)), frame) is None  # not one per row


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """One SQLite MLflow for the module (creating its tables costs seconds)."""
    root = tmp_path_factory.mktemp("registry")
    return f"sqlite:///{root}/mlflow.db", (root / "artifacts").as_uri()


def _check_served(
    tmp_path: Path,
    uri: str,
    registered: Registered,
    records: list[dict[str, Any]],
    classes: tuple[str, ...],
    profile_columns: set[str],
) -> Any:
    """Profile next to the model; download → load with sibyl's runtime → predict ``records``.
    Returns the loaded model."""
    client = mlflow.MlflowClient(uri)
    mv = client.get_model_version(registered.name, registered.version)
    assert {k: v for k, v in client.get_run(mv.run_id).data.metrics.items()} == pytest.approx(
        registered.metrics
    )
    assert mv.tags[PROFILE_TAG].startswith(f"runs:/{mv.run_id}/")  # stored with the version
    profile = load_profile(client, registered.name, registered.version)
    assert set(profile.feature_names) | set(profile.skipped) == profile_columns
    assert profile.rows == registered.metrics["n_train"] and profile.source == "training"
    assert profile.output_kind is OutputKind.PROBABILITIES
    assert set(map(str, profile.classes or ())) == set(classes)

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        path = mlflow.artifacts.download_artifacts(
            f"models:/{registered.name}/{registered.version}",
            dst_path=str(tmp_path / registered.name),
        )
    finally:
        mlflow.set_tracking_uri(before)
    loaded = load_model(
        Path(path),
        name=registered.name,
        version=registered.version,
        settings=RuntimeSettings(),
        tags=mv.tags,
    )
    print(
        f"{registered.name}: engine={loaded.engine.engine} reason={loaded.engine.reason!r} "
        f"flavor={loaded.flavor} example={'yes' if loaded.input_example is not None else 'no'} "
        f"schema={[(c.name, c.kind) for c in loaded.schema.columns]}"
    )
    assert loaded.input_example is not None  # logged example (datetimes too) loads → warm-up ran
    # text / mixed pipelines compile to ONNX only with the newer runtime converters
    assert loaded.engine.engine in {registered.engine_hint, "sklearn"}
    batch = loaded.schema.from_records(records)
    prediction = loaded.predictor.predict(batch)
    labels = [str(v) for v in np.asarray(prediction.predictions)]
    assert len(labels) == len(records)
    assert set(labels) <= set(classes)
    assert prediction.probabilities is not None
    np.testing.assert_allclose(np.asarray(prediction.probabilities).sum(axis=1), 1.0, atol=1e-6)
    native = loaded.native.predict(batch)
    np.testing.assert_allclose(prediction.probabilities, native.probabilities, atol=1e-4)
    assert set(map(str, loaded.classes or ())) == set(classes)
    return loaded


def _only(registered: list[Registered], name: str) -> Registered:
    (found,) = [r for r in registered if r.name == name]
    return found


def test_calendar_registers_and_serves(tmp_path: Path, registry: tuple[str, str]) -> None:
    uri, artifacts = registry
    before = mlflow.get_tracking_uri()
    registered = calendar.register_all(uri, artifacts, full=False, seed=0)
    assert mlflow.get_tracking_uri() == before  # global URI restored
    assert [(r.name, r.version, r.stage) for r in registered] == [
        (calendar.MODEL_NAME, "1", "production")
    ]
    assert registered[0].metrics["accuracy"] >= 0.90
    assert registered[0].metrics["n_train"] == 0.75 * calendar_train.DEMO_N
    _check_served(
        tmp_path,
        uri,
        registered[0],
        CALENDAR_RECORDS,
        calendar.CLASSES,
        set(calendar_train.FEATURES),
    )


def test_threat_registers_and_serves(tmp_path: Path, registry: tuple[str, str]) -> None:
    uri, artifacts = registry
    where = datasets_dir()
    steps: list[str] = []
    registered = threat.register_all(
        uri, artifacts, full=False, seed=0, progress=steps.append, datasets_dir=where
    )
    (model,) = registered
    assert model.name == threat.MODEL_NAME and model.metrics["macro_f1"] >= 0.8
    assert ("spamassassin_f1" in model.metrics) == threat.corpus_available(where)
    if threat.corpus_available(where):
        assert model.metrics["spamassassin_f1"] >= 0.97
    else:
        assert any("fetch-datasets.sh" in step for step in steps)
    _check_served(tmp_path, uri, model, THREAT_RECORDS, threat.CLASSES, {"text"})


def test_threat_without_the_corpus_registers_without_its_metrics(
    tmp_path: Path, registry: tuple[str, str]
) -> None:
    uri, artifacts = registry
    steps: list[str] = []
    (model,) = threat.register_all(
        uri, artifacts, progress=steps.append, datasets_dir=tmp_path / "empty"
    )
    assert not [k for k in model.metrics if k.startswith("spamassassin")]
    assert any("scripts/fetch-datasets.sh" in step for step in steps)
    run = mlflow.MlflowClient(uri).get_model_version(model.name, model.version).run_id
    assert mlflow.MlflowClient(uri).get_run(run).data.params["spamassassin"] == "not cached"


def _churn_records(n: int) -> list[dict[str, Any]]:
    """Features of ``n`` simulated users as the streaming feature store computes them."""
    sim = churn.simulate(n_users=n, n_months=1, start=dt.date(2025, 1, 1), seed=11)
    online = churn.OnlineFeatures()
    for user, ts, kind in sim.events.itertuples(index=False):
        online.update(user, ts, kind)
    as_of = sim.month_starts[-1]
    return [online.features(user, as_of) for user in range(n)]


def test_churn_registers_and_serves_both_models(tmp_path: Path, registry: tuple[str, str]) -> None:
    uri, artifacts = registry
    steps: list[str] = []
    registered = churn.register_all(uri, artifacts, full=False, seed=0, progress=steps.append)
    assert [r.name for r in registered] == [churn.MODEL_NAME, churn.TELCO_MODEL_NAME]
    assert len(steps) == 4
    model = _only(registered, churn.MODEL_NAME)
    assert model.engine_hint == "onnxruntime"
    assert model.metrics["roc_auc"] > 0.57 and model.metrics["oracle_auc"] > 0.8
    loaded = _check_served(
        tmp_path, uri, model, _churn_records(6), ("0", "1"), set(churn_train.FEATURES)
    )
    assert [c.kind for c in loaded.schema.columns] == ["float"] * len(churn_train.FEATURES)

    telco_model = _only(registered, churn.TELCO_MODEL_NAME)
    assert telco_model.metrics["roc_auc"] >= 0.83
    records = churn.load_telco().head(3)[list(telco.FEATURES)].to_dict("records")  # ints too
    records[0]["tenure"], records[0]["total_charges"] = 0, None  # not billed yet
    _check_served(tmp_path, uri, telco_model, records, telco.CLASSES, set(telco.FEATURES))

"""End to end: ``sibyl demo --no-serve`` trains and registers the demo models and all five use
cases into a fresh registry, then a real ``sibyl serve`` answers every production model through
the native API, MLflow's ``/invocations`` and the Open Inference Protocol V2, with each model's
own logged input example as the request, and reports which engine serves it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import ROOT, Server, run_server

pytestmark = pytest.mark.slow

EXPECTED_ENGINES = {
    "demo-classifier": "onnxruntime",
    "demo-regressor": "onnxruntime",
    "churn": "onnxruntime",
    "churn-telco": "onnxruntime",
    "threat-text-classifier": "onnxruntime",
    "calendar-event-classifier": "onnxruntime",
    "struggle": "pyfunc",
    "struggle-rules": "pyfunc",
    "struggle-mathplacement": "onnxruntime",
    "dkt": "pytorch",
    "dkt-transformer": "pytorch",
}
"""Engines the zoo's models must be served with (the others: whatever verifies, reported)."""


def _env(tmp: Path) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
        "SIBYL_DATA_DIR": str(tmp / ".sibyl"),
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0",
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path, float]]:
    tmp = tmp_path_factory.mktemp("zoo-demo")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **_env(tmp)}
    # the SpamAssassin corpus is fetched at set-up time (scripts/fetch-datasets.sh) into the
    # repository's data dir; point the demo at it
    env.setdefault("SIBYL_DATASETS_DIR", str(ROOT / ".sibyl" / "datasets"))
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "sibyl.cli", "demo", "--no-serve"],
        env=env, cwd=tmp, capture_output=True, text=True, timeout=900,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 0, done.stdout + done.stderr
    assert "failed" not in done.stderr, done.stderr
    with run_server({**_env(tmp), "SIBYL_DATASETS_DIR": env["SIBYL_DATASETS_DIR"]}, tmp,
                    ready_timeout=300) as server:
        yield server, tmp, seconds


def _production_models(uri: str) -> dict[str, str]:
    import mlflow

    client = mlflow.MlflowClient(uri)
    return {m.name: str(m.aliases["production"]) for m in client.search_registered_models()
            if "production" in m.aliases}


def _example_records(uri: str, name: str, version: str) -> list[dict[str, Any]]:
    """The version's logged input example as JSON records (ISO datetimes, lists as lists)."""
    from mlflow.models import Model

    from sibyl.registry import ModelRegistry

    path = str(ModelRegistry(uri).download(name, version, Path(uri[len("sqlite:///"):]).parent
                                           / "examples"))
    frame = Model.load(path).load_input_example(path)
    records: list[dict[str, Any]] = json.loads(frame.to_json(orient="records", date_format="iso"))
    return records


def test_the_demo_registers_every_use_case_in_production(
        demo: tuple[Server, Path, float]) -> None:
    from sibyl.zoo.catalog import USE_CASES

    _, tmp, seconds = demo
    production = _production_models(f"sqlite:///{tmp / 'mlflow.db'}")
    wanted = {"demo-classifier", "demo-regressor"} | {m for c in USE_CASES.values()
                                                      for m in c.models}
    assert wanted <= set(production), sorted(wanted - set(production))
    print(f"sibyl demo --no-serve took {seconds:.0f} s")  # the bar (≤ 3 min) is read in docs


def test_every_model_answers_natively_with_its_input_example(
        demo: tuple[Server, Path, float]) -> None:
    server, tmp, _ = demo
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for name, version in _production_models(uri).items():
            records = _example_records(uri, name, version)
            r = c.post(f"/v1/models/{name}/predict", json={"records": records})
            assert r.status_code == 200, (name, r.text)
            body = r.json()
            assert body["version"] == version and len(body["predictions"]) == len(records)
            info = c.get(f"/v1/models/{name}").json()
            expected = EXPECTED_ENGINES.get(name)
            engine = body["engine"]
            assert expected is None or engine == expected, (name, engine, info)


def test_every_model_answers_mlflow_invocations(demo: tuple[Server, Path, float]) -> None:
    server, tmp, _ = demo
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for name, version in _production_models(uri).items():
            records = _example_records(uri, name, version)
            r = c.post(f"/v1/models/{name}/invocations", json={"dataframe_records": records})
            assert r.status_code == 200, (name, r.text)
            assert len(r.json()["predictions"]) == len(records)


def _v2_inputs(meta: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One V2 input per column (``content_type: pd``), typed as the model metadata says; a
    sequence column (shape ``[-1, -1]``) goes as BYTES, one JSON list per row (any lengths)."""
    inputs = []
    for spec in meta["inputs"]:
        values = [r[spec["name"]] for r in records]
        datatype = spec["datatype"]
        if len(spec["shape"]) > 1:
            values, datatype = [json.dumps(v) for v in values], "BYTES"
        inputs.append({"name": spec["name"], "datatype": datatype,
                       "shape": [len(values)], "data": values})
    return inputs


def test_every_model_answers_open_inference_v2(demo: tuple[Server, Path, float]) -> None:
    server, tmp, _ = demo
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for name, version in _production_models(uri).items():
            meta = c.get(f"/v2/models/{name}").json()
            records = _example_records(uri, name, version)
            body = {"parameters": {"content_type": "pd"}, "inputs": _v2_inputs(meta, records)}
            r = c.post(f"/v2/models/{name}/infer", json=body)
            assert r.status_code == 200, (name, r.text)
            out = r.json()
            assert out["model_version"] == version
            described = {o["name"] for o in meta["outputs"]}
            for tensor in out["outputs"]:
                assert tensor["shape"][0] == len(records) and tensor["name"] in described
                if tensor["datatype"] == "BYTES":  # V2: BYTES elements are strings
                    assert all(isinstance(v, str) for v in tensor["data"]), (name, tensor)


@pytest.mark.parametrize(("record", "field", "says"), [
    ({"exercises": [0, 1, 77], "correct": [1, 0, 1], "query": 4},
     "records[0].exercises[2]", "outside 0..49"),
    ({"exercises": [], "correct": [], "query": 4}, "records[0].exercises", "empty"),
    ({"exercises": [0, 1], "correct": [1], "query": 4}, "records[0]", "equal lengths"),
    ({"exercises": list(range(50)) * 5, "correct": [1] * 250, "query": 4},
     "records[0].exercises", "maximum is 200"),
    ({"exercises": [0, 1], "correct": [1, 0], "query": 50}, "records[0].query", "0..49"),
])
def test_the_real_dkt_refuses_bad_histories(demo: tuple[Server, Path, float],
                                            record: dict[str, Any], field: str,
                                            says: str) -> None:
    server, _, _ = demo
    for name in ("dkt", "dkt-transformer"):
        r = httpx.post(f"{server.url}/v1/models/{name}/predict", json={"records": [record]},
                       timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["field"] == field and says in r.json()["error"], r.text

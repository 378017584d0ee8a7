"""Control plane, metrics, health, the Python client and the CLI against a real server."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from sibyl.client import AsyncClient, Client, SibylHTTPError
from tests.helpers import ROOT
from tests.integration.conftest import Env

REQUIRED_METRICS = ["ml_prediction_requests_total", "ml_prediction_duration_seconds_bucket",
                    "ml_model_load_duration_seconds_bucket", "ml_active_models",
                    "ml_memory_usage_bytes", "ml_errors_total", "ml_batch_size_bucket",
                    "ml_queue_depth"]


def test_health_readiness_docs_and_metrics(live: Env) -> None:
    with live.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["ready"] is True
        assert c.get("/docs").status_code == 200
        paths = c.get("/openapi.json").json()["paths"]
        for p in ("/v1/models/{name}/predict", "/invocations", "/v2/models/{name}/infer"):
            assert p in paths
        c.post("/v1/models/clf/predict", json={"rows": [live.x.iloc[0].tolist()]})
        text = c.get("/metrics").text
    for name in REQUIRED_METRICS:
        assert name in text, name
    assert 'ml_prediction_requests_total{model="clf",status="success",version="1"}' in text
    assert 'model="_process"' in text


def test_unknown_models_do_not_grow_metric_labels(live: Env) -> None:
    with live.client() as c:
        for i in range(5):
            c.post(f"/v1/models/ghost-{i}/predict", json={"rows": [[1]]})
        text = c.get("/metrics").text
    assert "ghost-" not in text
    assert 'model="_unknown"' in text


def test_models_versions_compare_stage_and_gate(live: Env) -> None:
    with Client(live.server.url) as c:
        names = {m["name"] for m in c.models()["models"]}
        assert {"clf", "reg", "echo", "swap", "gated"} <= names
        versions = c.versions("gated")["versions"]
        assert {v["version"] for v in versions} == {"1", "2"}
        cmp = c.compare("gated", 1, 2)
        assert cmp["metrics"]["accuracy"] == [0.8, 0.7]
        with pytest.raises(SibylHTTPError) as info:
            c.promote("gated", 2, metric="accuracy", tolerance=0.05)
        assert info.value.status == 409 and "accuracy" in info.value.message
        staged = c.set_stage("gated", 2, "staging")["result"]
        assert staged["stage"] == "staging"
        out = c.predict("gated", rows=[live.x.iloc[0].tolist()], alias="staging")
        assert out["version"] == "2"
        assert c.model("gated")["serving_version"] == "1"


def test_load_and_unload(live: Env) -> None:
    with Client(live.server.url) as c:
        loaded = c.load("clf", version=1)["loaded"]
        assert loaded["version"] == "1" and loaded["engine"]
        assert c.unload("clf", 1)["unloaded"] is True
        assert c.model("clf")["loaded"] == []
        # reloads on demand
        assert c.predict("clf", rows=[live.x.iloc[0].tolist()])["version"] == "1"


def test_async_client_predicts_concurrently(live: Env) -> None:
    rows = live.x.head(10).values.tolist()

    async def go() -> list[dict[str, object]]:
        async with AsyncClient(live.server.url) as c:
            return await asyncio.gather(*(c.predict("clf", rows=[r]) for r in rows))

    outs = asyncio.run(go())
    assert [o["predictions"][0] for o in outs] == live.clf.predict(live.x.head(10)).tolist()


def test_client_v2_and_invocations(live: Env) -> None:
    x = live.x.head(2)
    with Client(live.server.url) as c:
        out = c.infer("clf", [{"name": "x", "shape": [2, 20], "datatype": "FP64",
                               "data": x.values.ravel().tolist()}], outputs=["predict"])
        assert out["outputs"][0]["data"] == live.clf.predict(x).tolist()
        inv = c.invocations({"dataframe_records": x.to_dict(orient="records")})
        assert inv["predictions"] == live.clf.predict(x).tolist()


def _cli(live: Env, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **live.env, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "sibyl.cli", *args], env=env, cwd=live.tmp,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_models_and_predict(live: Env) -> None:
    listed = _cli(live, "models", "list")
    assert listed.returncode == 0, listed.stderr
    assert "clf" in listed.stdout and "production" in listed.stdout
    versions = _cli(live, "models", "versions", "gated")
    assert versions.returncode == 0 and "accuracy" not in versions.stderr
    refused = _cli(live, "models", "promote", "gated", "2", "--metric", "accuracy")
    assert refused.returncode == 1 and "accuracy" in refused.stderr
    body = live.tmp / "rows.json"
    body.write_text(json.dumps(live.x.head(2).to_dict(orient="records")))
    local = _cli(live, "predict", "clf", str(body))
    assert local.returncode == 0, local.stderr
    assert json.loads(local.stdout)["predictions"] == live.clf.predict(live.x.head(2)).tolist()
    remote = _cli(live, "predict", "clf", str(body), "--url", live.server.url)
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["version"] == "1"
    csv = live.tmp / "rows.csv"
    live.x.head(2).to_csv(csv, index=False)
    assert _cli(live, "predict", "clf", str(csv)).returncode == 0
    unknown = _cli(live, "predict", "nope", str(body))
    assert unknown.returncode == 1 and "nope" in unknown.stderr

"""The prediction routes behind FastAPI (``server.fast_path`` off) answer exactly like the raw-ASGI
fast path: each request goes to both real servers on the same registry and the answers are
compared. Also ``/readyz`` of a server whose required preload cannot load."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.helpers import Server, run_server
from tests.integration.conftest import FEATURES, Env, server_env

ROW = {f: 0.5 for f in FEATURES}
COMPARED_HEADERS = ("content-type", "x-request-id", "x-model-name", "x-model-version",
                    "x-model-engine", "retry-after")


@pytest.fixture(scope="module")
def routed(registry_env: tuple[Path, str, pd.DataFrame, Any]) -> Iterator[Server]:
    tmp, uri, _, _ = registry_env
    env = {
        **server_env(tmp, uri),
        "SIBYL_SERVER__FAST_PATH": "false",
        "SIBYL_RUNTIME__PRELOAD_ALL_PRODUCTION": "false",
        "SIBYL_RUNTIME__PRELOAD": '["clf"]',
    }
    with run_server(env, tmp) as server:
        yield server


def both(live: Env, routed: Server, path: str, **kw: Any) -> tuple[httpx.Response, httpx.Response]:
    """POST the same request to the fast-path server and to the FastAPI-routed one."""
    with httpx.Client(timeout=30) as c:
        fast = c.post(live.server.url + path, **kw)
        slow = c.post(routed.url + path, **kw)
    return fast, slow


def assert_same(fast: httpx.Response, slow: httpx.Response) -> None:
    assert slow.status_code == fast.status_code, (fast.text, slow.text)
    assert slow.json() == fast.json()
    for name in COMPARED_HEADERS:
        assert slow.headers.get(name) == fast.headers.get(name), name


def same(live: Env, routed: Server, path: str, rid: str, **kw: Any) -> httpx.Response:
    """Both servers answer ``path`` identically; returns the FastAPI-routed answer."""
    headers = {"X-Request-ID": rid, **kw.pop("headers", {})}
    fast, slow = both(live, routed, path, headers=headers, **kw)
    assert_same(fast, slow)
    assert slow.headers["x-request-id"] == rid
    return slow


def test_native_predict_is_the_same_on_both_paths(live: Env, routed: Server) -> None:
    x = live.x.head(4)
    bodies = [
        {"records": x.to_dict(orient="records")},
        {"columns": x.to_dict(orient="list")},
        {"rows": x.values.tolist(), "version": 1},
        {"rows": x[FEATURES[::-1]].values.tolist(), "names": FEATURES[::-1],
         "alias": "production"},
    ]
    for i, body in enumerate(bodies):
        r = same(live, routed, "/v1/models/clf/predict", f"native-{i}", json=body)
        assert r.status_code == 200
        out = r.json()
        assert out["request_id"] == f"native-{i}" and out["version"] == "1"
        assert r.headers["x-model-version"] == "1" and r.headers["x-model-name"] == "clf"
        assert out["predictions"] == live.clf.predict(x).tolist()
    r = same(live, routed, "/v1/models/echo/predict", "native-echo",
             json={"records": [{"a": 1.5, "b": 2.0}]})  # loaded on demand (not preloaded)
    assert r.status_code == 200 and r.json()["predictions"] == [3.5]


def test_invocations_json_and_csv_are_the_same_on_both_paths(live: Env, routed: Server) -> None:
    x = live.x.head(3)
    labels = live.clf.predict(x).tolist()
    r = same(live, routed, "/invocations", "inv-split",
             json={"dataframe_split": {"columns": FEATURES, "data": x.values.tolist()}})
    assert r.status_code == 200 and r.json() == {"predictions": labels}
    assert r.headers["x-model-version"] == "1"
    r = same(live, routed, "/invocations", "inv-records",
             json={"dataframe_records": x.to_dict(orient="records")})
    assert r.json() == {"predictions": labels}
    r = same(live, routed, "/invocations", "inv-csv", content=x.to_csv(index=False).encode(),
             headers={"content-type": "text/csv"})
    assert r.status_code == 200 and r.json() == {"predictions": labels}
    r = same(live, routed, "/v1/models/reg/invocations", "inv-reg",
             json={"instances": [[0, 0, 0, 0, 0]]})
    assert r.status_code == 200 and len(r.json()["predictions"]) == 1


def test_v2_infer_is_the_same_on_both_paths(live: Env, routed: Server) -> None:
    x = live.x.head(2)
    body = {"id": "v2-req", "inputs": [{"name": "x", "shape": [2, 20], "datatype": "FP64",
                                        "data": x.values.ravel().tolist()}]}
    for path in ("/v2/models/clf/infer", "/v2/models/clf/versions/1/infer"):
        r = same(live, routed, path, "v2-rid", json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["id"] == "v2-req" and out["model_name"] == "clf"
        assert out["model_version"] == "1" and r.headers["x-model-version"] == "1"


BAD = [
    ("native", "/v1/models/clf/predict", {"records": [{**ROW, "f3": "high"}]}, 400,
     "column 'f3': expected a number"),
    ("v2", "/v2/models/clf/infer", {"inputs": [{"name": "x", "shape": [1, 20],
                                                "datatype": "FLOAT", "data": [0.1] * 20}]},
     400, "is not one of"),
    ("mlflow", "/invocations", {"data": [[1]]}, 400, "exactly one of the keys"),
    ("native-404", "/v1/models/nope/predict", {"records": [ROW]}, 404, "nope"),
    ("v2-404", "/v2/models/clf/versions/42/infer", {"inputs": [
        {"name": "x", "shape": [1, 20], "datatype": "FP32", "data": [0.1] * 20}]}, 404, "42"),
    ("mlflow-404", "/v1/models/nope/invocations", {"instances": [ROW]}, 404, "nope"),
]


@pytest.mark.parametrize(("case", "path", "body", "status", "needle"), BAD,
                         ids=[b[0] for b in BAD])
def test_errors_have_each_protocols_shape_on_both_paths(
    live: Env, routed: Server, case: str, path: str, body: Any, status: int, needle: str
) -> None:
    r = same(live, routed, path, f"bad-{case}", json=body)
    assert r.status_code == status
    out = r.json()
    if case.startswith("native"):
        assert needle in out["error"] and out["request_id"] == f"bad-{case}" and out["code"]
    elif case.startswith("v2"):
        assert set(out) == {"error"} and needle in out["error"]
    else:
        assert set(out) == {"error_code", "message"} and needle in out["message"]
        assert out["error_code"] == ("BAD_REQUEST" if status == 400 else "NOT_FOUND")


def test_a_body_over_the_limit_is_413_on_both_paths(live: Env, routed: Server) -> None:
    big = b'{"records": [' + b"1," * 150_000 + b"1]}"
    for path, key in (("/v1/models/clf/predict", "error"), ("/v2/models/clf/infer", "error"),
                      ("/invocations", "message")):
        r = same(live, routed, path, "too-big", content=big,
                 headers={"content-type": "application/json"})
        assert r.status_code == 413 and "over the limit" in r.json()[key], path


def test_a_generated_request_id_is_the_same_in_header_and_body(routed: Server) -> None:
    with httpx.Client(base_url=routed.url, timeout=30) as c:
        for body in ({"records": [ROW]}, {"records": [{**ROW, "f0": "x"}]}):
            r = c.post("/v1/models/clf/predict", json=body)
            assert r.headers["x-request-id"] == r.json()["request_id"], r.status_code


def test_request_id_and_model_headers_on_the_routed_path(routed: Server) -> None:
    with httpx.Client(base_url=routed.url, timeout=30) as c:
        r = c.post("/v1/models/clf/predict", json={"records": [ROW]},
                   headers={"X-Request-ID": "mine-1"})
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "mine-1" and r.json()["request_id"] == "mine-1"
        assert r.headers["x-model-version"] == "1" and r.headers["x-model-name"] == "clf"
        r = c.post("/v1/models/clf/predict", json={"records": [ROW]})
        assert len(r.headers["x-request-id"]) >= 16
        assert c.get("/healthz").headers["x-request-id"]  # control routes get one too
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json()["required"] == ["clf"]


def test_readyz_is_503_naming_the_error_when_a_required_preload_cannot_load(
    registry_env: tuple[Path, str, pd.DataFrame, Any],
) -> None:
    tmp, uri, _, _ = registry_env
    env = {
        **server_env(tmp, uri),
        "SIBYL_RUNTIME__PRELOAD_ALL_PRODUCTION": "false",
        "SIBYL_RUNTIME__PRELOAD": json.dumps(["broken:2"]),
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0",
    }
    with run_server(env, tmp, wait_for="/healthz") as server, httpx.Client(base_url=server.url, timeout=30) as c:
        assert c.get("/healthz").status_code == 200
        assert c.get("/v2/health/live").status_code == 200
        r = c.get("/readyz")
        assert r.status_code == 503, r.text
        state = r.json()
        assert state["ready"] is False and state["started"] is True
        assert state["required"] == ["broken"] and state["loaded"] == []
        error = state["errors"]["broken"]
        assert error["version"] == "2"
        assert "Model 'broken' version 2 could not be loaded" in error["error"]
        assert "this model cannot be loaded" in error["error"]
        assert c.get("/v2/health/ready").status_code == 503
        r = c.post("/v1/models/echo/predict", json={"records": [{"a": 1.0, "b": 2.0}]})
        assert r.status_code == 200  # not ready, yet other models still serve

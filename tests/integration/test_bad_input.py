"""Every kind of bad input gets a 4xx naming the problem, in the protocol's own error shape."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import FEATURES, Env

ROW = {f: 0.5 for f in FEATURES}
NATIVE = "/v1/models/clf/predict"
V2 = "/v2/models/clf/infer"
MLFLOW = "/invocations"


def _row(**changes: Any) -> dict[str, Any]:
    out = {**ROW, **changes}
    return {k: v for k, v in out.items() if v is not ...}


NATIVE_CASES = [
    ("wrong field name", {"records": [_row(f0=..., wrong=1.0)]}, 400, "missing column(s) ['f0']"),
    ("extra column", {"records": [_row(extra=1.0)]}, 400, "unexpected column(s) ['extra']"),
    ("wrong type", {"records": [_row(f3="high")]}, 400, "column 'f3': expected a number"),
    ("wrong shape", {"rows": [[0.1] * 19]}, 400, "array of 20 values"),
    ("NaN not allowed", {"records": [_row(f5=None)]}, 400, "null/NaN is not allowed"),
    ("empty input", {"records": []}, 400, "is empty"),
    ("no layout", {"data": [[1]]}, 400, "exactly one of 'records'"),
    ("unknown version", {"rows": [[0.1] * 20], "version": 99}, 404, "version"),
    ("unknown alias", {"rows": [[0.1] * 20], "alias": "nope"}, 404, "alias"),
    ("bad version", {"rows": [[0.1] * 20], "version": "x"}, 400, "'version' must be"),
    ("bad priority", {"rows": [[0.1] * 20], "priority": "urgent"}, 400, "priority must be"),
    ("bad timeout", {"rows": [[0.1] * 20], "timeout_ms": -5}, 400, "timeout_ms"),
]


@pytest.mark.parametrize(("case", "body", "status", "needle"), NATIVE_CASES,
                         ids=[c[0] for c in NATIVE_CASES])
def test_native_bad_input(live: Env, case: str, body: dict[str, Any], status: int,
                          needle: str) -> None:
    with live.client() as c:
        r = c.post(NATIVE, json=body)
    assert r.status_code == status, r.text
    out = r.json()
    assert needle in out["error"], out
    assert out["code"] and out["request_id"]


def test_native_invalid_json_and_unknown_model(live: Env) -> None:
    with live.client() as c:
        r = c.post(NATIVE, content=b'{"records": [', headers={"content-type": "application/json"})
        assert r.status_code == 400 and "not valid JSON" in r.json()["error"]
        r = c.post(NATIVE, content=b"")
        assert r.status_code == 400 and "empty" in r.json()["error"]
        r = c.post("/v1/models/nope/predict", json={"records": [ROW]})
        assert r.status_code == 404 and "nope" in r.json()["error"]
        r = c.post(NATIVE, content=b"[1, 2]")
        assert r.status_code == 400 and "JSON object" in r.json()["error"]


def test_body_over_the_limit_is_413_in_every_protocol(live: Env) -> None:
    big = b'{"records": [' + b"1," * 150_000 + b"1]}"
    with live.client() as c:
        for path, key in ((NATIVE, "error"), (V2, "error"), (MLFLOW, "message")):
            r = c.post(path, content=big, headers={"content-type": "application/json"})
            assert r.status_code == 413, (path, r.text)
            assert "over the limit" in r.json()[key]


V2_CASES = [
    ("no inputs", {"inputs": []}, 400, "'inputs' must be a non-empty list"),
    ("missing keys", {"inputs": [{"name": "x", "data": [1]}]}, 400, "missing ['shape', 'datatype']"),
    ("bad datatype", {"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FLOAT",
                                  "data": [0.1] * 20}]}, 400, "is not one of"),
    ("shape/data mismatch", {"inputs": [{"name": "x", "shape": [2, 20], "datatype": "FP32",
                                         "data": [0.1] * 20}]}, 400, "needs 40 values"),
    ("wrong width", {"inputs": [{"name": "x", "shape": [1, 19], "datatype": "FP32",
                                 "data": [0.1] * 19}]}, 400, "array of 20 values"),
    ("wrong column name", {"parameters": {"content_type": "pd"},
                           "inputs": [{"name": f"g{i}", "shape": [1], "datatype": "FP64",
                                       "data": [0.1]} for i in range(20)]}, 400, "missing column"),
    ("wrong type", {"inputs": [{"name": "x", "shape": [1, 20], "datatype": "BYTES",
                                "data": ["a"] * 20}]}, 400, "expected a number"),
    ("unknown output", {"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP32",
                                    "data": [0.1] * 20}], "outputs": [{"name": "logits"}]},
     400, "Unknown output"),
    ("bad timeout", {"parameters": {"timeout": "soon"}, "inputs": [
        {"name": "x", "shape": [1, 20], "datatype": "FP32", "data": [0.1] * 20}]}, 400,
     "parameters.timeout"),
]


@pytest.mark.parametrize(("case", "body", "status", "needle"), V2_CASES,
                         ids=[c[0] for c in V2_CASES])
def test_v2_bad_input(live: Env, case: str, body: dict[str, Any], status: int,
                      needle: str) -> None:
    with live.client() as c:
        r = c.post(V2, json=body)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and needle in r.json()["error"], r.json()


def test_v2_unknown_model_and_version_are_404(live: Env) -> None:
    body = {"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP32", "data": [0.1] * 20}]}
    with live.client() as c:
        assert c.post("/v2/models/nope/infer", json=body).status_code == 404
        r = c.post("/v2/models/clf/versions/42/infer", json=body)
        assert r.status_code == 404 and "error" in r.json()
        r = c.get("/v2/models/nope")
        assert r.status_code == 404 and set(r.json()) == {"error"}


MLFLOW_CASES = [
    ("zero keys", {"data": [[1]]}, 400, "exactly one of the keys"),
    ("two keys", {"instances": [ROW], "inputs": {"f0": [1]}}, 400, "exactly one of the keys"),
    ("top-level list", [ROW], 400, "top-level list"),
    ("wrong columns", {"dataframe_split": {"columns": ["a"], "data": [[1]]}}, 400, "missing"),
    ("float to int not allowed?", {"dataframe_records": [_row(f1="x")]}, 400, "expected a number"),
    ("empty", {"dataframe_records": []}, 400, "is empty"),
]


@pytest.mark.parametrize(("case", "body", "status", "needle"), MLFLOW_CASES,
                         ids=[c[0] for c in MLFLOW_CASES])
def test_mlflow_bad_input(live: Env, case: str, body: Any, status: int, needle: str) -> None:
    with live.client() as c:
        r = c.post(MLFLOW, json=body)
    assert r.status_code == status, r.text
    out = r.json()
    assert out["error_code"] == "BAD_REQUEST" and needle in out["message"], out


def test_mlflow_content_types(live: Env) -> None:
    with live.client() as c:
        r = c.post(MLFLOW, content=b"x", headers={"content-type": "text/plain"})
        assert r.status_code == 415 and r.json()["error_code"] == "BAD_REQUEST"
        r = c.post(MLFLOW, content=b"{}", headers={"content-type":
                                                    "application/json; charset=latin-1"})
        assert r.status_code == 415
        r = c.post(MLFLOW, content=b"", headers={"content-type": "text/csv"})
        assert r.status_code == 400
        r = c.post("/v1/models/nope/invocations", json={"instances": [ROW]})
        assert r.status_code == 404 and r.json()["error_code"] == "NOT_FOUND"


def test_control_plane_validation_is_400_not_422(live: Env) -> None:
    with live.client() as c:
        r = c.post("/v1/models/clf/versions/1/stage", json={"stage": "heaven"})
        assert r.status_code == 400 and "stage" in r.json()["error"]
        r = c.post("/v1/models/nope/load", json={})
        assert r.status_code == 404

"""The three protocols against a real server: same model, same answers."""

from __future__ import annotations

import numpy as np

from tests.integration.conftest import FEATURES, Env


def test_native_records_columns_rows_agree_with_the_model(live: Env) -> None:
    x = live.x.head(5)
    expected = live.clf.predict_proba(x)
    with live.client() as c:
        bodies = [
            {"records": x.to_dict(orient="records")},
            {"columns": x.to_dict(orient="list")},
            {"rows": x.values.tolist()},
            {"rows": x[FEATURES[::-1]].values.tolist(), "names": FEATURES[::-1]},
        ]
        for body in bodies:
            r = c.post("/v1/models/clf/predict", json=body, headers={"X-Request-ID": "abc-1"})
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["model"] == "clf" and out["version"] == "1"
            assert out["request_id"] == "abc-1" and r.headers["x-request-id"] == "abc-1"
            assert r.headers["x-model-version"] == "1"
            assert out["engine"] in ("onnxruntime", "sklearn")
            assert out["classes"] == [0, 1]
            np.testing.assert_allclose(out["probabilities"], expected, atol=1e-4)
            assert out["predictions"] == live.clf.predict(x).tolist()


def test_request_id_is_generated_when_absent(live: Env) -> None:
    with live.client() as c:
        r = c.post("/v1/models/reg/predict", json={"rows": [[0, 1, 2, 3, 4]]})
    assert r.status_code == 200
    assert len(r.headers["x-request-id"]) >= 16 and r.json()["request_id"] == r.headers[
        "x-request-id"]
    assert "probabilities" not in r.json()


def test_pinned_version_and_alias(live: Env) -> None:
    with live.client() as c:
        r = c.post("/v1/models/clf/predict", json={"rows": [live.x.iloc[0].tolist()],
                                                   "version": 1})
        assert r.json()["version"] == "1"
        r = c.post("/v1/models/clf/predict", json={"rows": [live.x.iloc[0].tolist()],
                                                   "alias": "production"})
        assert r.json()["version"] == "1"


def test_v2_tensor_and_per_column_inputs(live: Env) -> None:
    x = live.x.head(4)
    expected = live.clf.predict_proba(x)
    tensor = {"id": "req-7", "inputs": [{"name": "input-0", "shape": [4, 20],
                                         "datatype": "FP64", "data": x.values.ravel().tolist()}]}
    columns = {"parameters": {"content_type": "pd"},
               "inputs": [{"name": n, "shape": [4], "datatype": "FP64",
                           "data": x[n].tolist()} for n in FEATURES]}
    nested = {"inputs": [{"name": "x", "shape": [4, 20], "datatype": "FP32",
                          "data": x.values.tolist()}],
              "outputs": [{"name": "predict_proba"}]}
    with live.client() as c:
        for body in (tensor, columns, nested):
            r = c.post("/v2/models/clf/infer", json=body)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["model_name"] == "clf" and out["model_version"] == "1"
            by_name = {o["name"]: o for o in out["outputs"]}
            proba = by_name["predict_proba"]
            assert proba["shape"] == [4, 2] and proba["datatype"] in ("FP32", "FP64")
            np.testing.assert_allclose(np.reshape(proba["data"], (4, 2)), expected, atol=1e-4)
        assert c.post("/v2/models/clf/infer", json=tensor).json()["id"] == "req-7"
        assert [o["name"] for o in c.post("/v2/models/clf/infer", json=nested).json()[
            "outputs"]] == ["predict_proba"]
        r = c.post("/v2/models/clf/versions/1/infer", json=tensor)
        assert r.status_code == 200 and r.json()["model_version"] == "1"


def test_v2_metadata_health_and_readiness(live: Env) -> None:
    with live.client() as c:
        assert c.get("/v2/health/live").status_code == 200
        assert c.get("/v2/health/ready").status_code == 200
        meta = c.get("/v2").json()
        assert meta["name"] == "sibyl" and "extensions" in meta
        model = c.get("/v2/models/clf").json()
        assert model["name"] == "clf" and "1" in model["versions"]
        assert [i["name"] for i in model["inputs"]] == FEATURES
        assert all(i["shape"] == [-1] for i in model["inputs"])
        assert {o["name"] for o in model["outputs"]} == {"predict", "predict_proba"}
        assert c.get("/v2/models/clf/ready").status_code == 200
        assert c.get("/v2/models/clf/versions/1/ready").status_code == 200
        assert c.get("/v2/models/nope/ready").status_code == 404
        index = c.post("/v2/repository/index").json()
        assert any(m["name"] == "clf" and m["state"] == "READY" for m in index)


def test_mlflow_invocations_all_layouts_and_csv(live: Env) -> None:
    x = live.x.head(3)
    labels = live.clf.predict(x).tolist()
    bodies = [
        {"dataframe_split": {"columns": FEATURES, "data": x.values.tolist()}},
        {"dataframe_split": x.to_dict(orient="split")},
        {"dataframe_records": x.to_dict(orient="records")},
        {"instances": x.to_dict(orient="records")},
        {"instances": x.values.tolist()},
        {"inputs": x.to_dict(orient="list")},
    ]
    with live.client() as c:
        for body in bodies:
            r = c.post("/invocations", json=body)
            assert r.status_code == 200, (body, r.text)
            assert r.json() == {"predictions": labels}
        for ctype in ("text/csv", "application/csv", "text/csv; charset=utf-8"):
            r = c.post("/invocations", content=x.to_csv(index=False).encode(),
                       headers={"content-type": ctype})
            assert r.status_code == 200, r.text
            assert r.json() == {"predictions": labels}
        r = c.post("/v1/models/reg/invocations", json={"instances": [[0, 0, 0, 0, 0]]})
        assert r.status_code == 200 and len(r.json()["predictions"]) == 1
        assert c.get("/ping").status_code == 200
        assert c.get("/health").status_code == 200
        assert c.get("/version").status_code == 200


def test_pyfunc_fallback_serves_a_python_model(live: Env) -> None:
    with live.client() as c:
        r = c.post("/v1/models/echo/predict", json={"records": [{"a": 1.5, "b": 2.0}]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [3.5] and r.json()["engine"] == "pyfunc"
        status = c.get("/v1/models/clf").json()
        engine = status["loaded"][0]
        assert engine["engine"] in ("onnxruntime", "sklearn") and engine["engine_reason"]

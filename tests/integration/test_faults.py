"""Faults degrade gracefully: a model raising, a version that cannot load, overload, deadlines."""

from __future__ import annotations

import concurrent.futures as cf
import time

import httpx

from tests.helpers import set_alias
from tests.integration.conftest import Env
from tests.toys import FAIL_MARKER


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_a_model_raising_fails_that_request_only_and_is_counted(live: Env) -> None:
    with live.client() as c:
        before = _metric(c.get("/metrics").text, "ml_prediction_requests_total", model="echo",
                         status="error")
        bad = c.post("/v1/models/echo/predict", json={"records": [{"a": FAIL_MARKER, "b": 1}]})
        good = c.post("/v1/models/echo/predict", json={"records": [{"a": 1.0, "b": 1}]})
        after = _metric(c.get("/metrics").text, "ml_prediction_requests_total", model="echo",
                        status="error")
    assert bad.status_code == 500 and "raised while predicting" in bad.json()["error"]
    assert good.status_code == 200 and good.json()["predictions"] == [2.0]
    assert after == before + 1


def test_a_version_that_fails_to_load_leaves_the_previous_serving(live: Env) -> None:
    with live.client() as c:
        assert c.post("/v1/models/broken/predict", json={"rows": [[1, 2]]}).json()["version"] == "1"
        set_alias("broken", "production", "2")  # a plain MLflow client, as anyone could
        deadline = time.monotonic() + 60
        status = c.get("/v1/models/broken").json()
        while status["last_error"] is None and time.monotonic() < deadline:
            time.sleep(0.2)
            status = c.get("/v1/models/broken").json()
        assert status["last_error"]["version"] == "2"
        assert "could not be loaded" in status["last_error"]["error"]
        assert status["serving_version"] == "1"
        r = c.post("/v1/models/broken/predict", json={"rows": [[1, 2]]})
        assert r.status_code == 200 and r.json()["version"] == "1"
        metrics = c.get("/metrics").text
        assert _metric(metrics, "ml_errors_total", model="broken", kind="load") >= 1
    assert "model_load_failed" in live.server.logs()


def test_overload_is_shed_as_429_with_retry_after(live: Env) -> None:
    # "slow" sleeps 0.3 s a call, batches 1 row and queues at most 2 rows per lane
    body = {"records": [{"a": 1.0, "b": 2.0}]}

    def call(_: int) -> httpx.Response:
        with live.client() as c:
            return c.post("/v1/models/slow/predict", json=body)

    with cf.ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(call, range(8)))
    codes = sorted(r.status_code for r in responses)
    assert 200 in codes and 429 in codes, codes
    shed = next(r for r in responses if r.status_code == 429)
    assert int(shed.headers["retry-after"]) >= 1
    assert "queue is full" in shed.json()["error"]


def test_deadline_gives_504_in_each_protocol(live: Env) -> None:
    with live.client() as c:
        r = c.post("/v1/models/slow/predict", json={"records": [{"a": 1, "b": 2}],
                                                    "timeout_ms": 50})
        assert r.status_code == 504 and "deadline" in r.json()["error"]
        r = c.post("/v1/models/slow/predict", json={"records": [{"a": 1, "b": 2}]},
                   headers={"X-Request-Timeout-Ms": "50"})
        assert r.status_code == 504
        body = {"parameters": {"timeout": 50_000},
                "inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": [1.0]},
                           {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
        r = c.post("/v2/models/slow/infer", json=body)
        assert r.status_code == 504 and set(r.json()) == {"error"}
        r = c.post("/v1/models/slow/invocations", json={"instances": [{"a": 1, "b": 2}]},
                   headers={"X-Request-Timeout-Ms": "50"})
        assert r.status_code == 504 and r.json()["error_code"] == "DEADLINE_EXCEEDED"
        time.sleep(0.5)  # let the slow model finish its queue

"""Canary rollouts end to end on a real ``sibyl serve`` and a real MLflow registry: under a
steady load, a good candidate walks 10 → 50 → 100 % and is promoted (the production alias moves
in MLflow, answers switch to it, no request fails); a candidate that raises is rolled back at the
first step and production keeps answering. Started over HTTP and through the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest

from tests.helpers import ROOT, log_pyfunc, run_server, set_alias, setup_mlflow
from tests.toys import EchoModel

EXAMPLE = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
GRACE_S = 0.5
"""The router swaps its snapshot a few ms after the stop is stored (and shown): answers sent
this long after the status said "stopped" must all come from production."""


class PickyModel(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Echo on its input example (so it loads and warms), raises on live traffic (a ≥ 100)."""

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        x = np.asarray(model_input, dtype=np.float64)
        if (x >= 100).any():
            raise RuntimeError("candidate bug")
        return x.sum(axis=1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, str]]:
    """Models ``good`` and ``bad``: v1 in production, v2 the candidate (``bad`` v2 raises)."""
    tmp = tmp_path_factory.mktemp("canary")
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    try:  # the session registry of conftest.py is the global one: restore it afterwards
        uri = setup_mlflow(tmp)
        for name, candidate in (("good", EchoModel()), ("bad", PickyModel())):
            set_alias(name, "production", log_pyfunc(EchoModel(), name, EXAMPLE))
            log_pyfunc(candidate, name, EXAMPLE)
    finally:
        mlflow.set_tracking_uri(previous)
        if previous is not None and mlflow.get_experiment_by_name("tests") is not None:
            mlflow.set_experiment("tests")
    env = {
        "MLFLOW_TRACKING_URI": uri,
        "SIBYL_DATA_DIR": str(tmp / ".sibyl"),
        "SIBYL_CANARY__INTERVAL_S": "0.2",
        "SIBYL_STORE__FLUSH_INTERVAL_S": "0.1",
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0.5",
        "SIBYL_CACHE__ENABLED": "false",  # every request reaches a model
    }
    with (
        run_server(env, tmp) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as client,
    ):
        yield client, uri


@dataclass
class Load:
    """A steady stream of unpinned predictions from a thread: (status, version, sent at)."""

    url: str
    model: str
    answers: list[tuple[int, str | None, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            i = 0
            while not self.stop.is_set():
                i += 1
                sent = time.monotonic()
                r = c.post(f"/v1/models/{self.model}/predict",
                           json={"records": [{"a": 100.0 + i, "b": 1.0}]})  # fmt: skip
                version = r.json().get("version") if r.status_code == 200 else None
                self.answers.append((r.status_code, version, sent))


def with_load(client: httpx.Client, model: str) -> tuple[Load, threading.Thread]:
    load = Load(str(client.base_url), model)
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    return load, thread


def until(check: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def canary_over(client: httpx.Client, name: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        state = client.get(f"/v1/experiments/{name}/canary").json()
        over = state["phase"] in ("promoted", "rolled_back") and state["status"] == "stopped"
        return state if over else None

    return check


def production(uri: str, model: str) -> str:
    return str(mlflow.MlflowClient(uri).get_model_version_by_alias(model, "production").version)


def test_a_good_candidate_is_promoted_under_load_without_a_failed_request(
    server: tuple[httpx.Client, str],
) -> None:
    client, uri = server
    body = {"version": "2", "steps": [10, 50, 100], "dwell": "1s", "max_wait": "60s",
            "min_requests": 20, "error_rate_margin": 0.05, "latency_margin": 1.0}  # fmt: skip
    load, thread = with_load(client, "good")
    try:
        until(lambda: len(load.answers) > 50)  # the baseline is warm and answering
        r = client.post("/v1/models/good/canary", json=body)
        assert r.status_code == 201, r.text
        started = r.json()
        assert (started["name"], started["phase"], started["weights"]) == (
            "good-canary-v2", "running", {"baseline": 90.0, "candidate": 10.0}
        )  # fmt: skip
        final = until(canary_over(client, "good-canary-v2"))
        promoted_at = time.monotonic() + GRACE_S
        until(lambda: sum(1 for *_, t in load.answers if t > promoted_at) > 100)
    finally:
        load.stop.set()
        thread.join(timeout=30)
    assert final["phase"] == "promoted" and final["status"] == "stopped", final
    assert [(h["percent"], h["action"]) for h in final["history"]] == [
        (10.0, "advance"), (50.0, "advance"), (100.0, "promote")
    ]  # fmt: skip
    assert production(uri, "good") == "2"  # the alias moved in MLflow
    assert [a for a in load.answers if a[0] != 200] == []  # not one failed request
    versions = [v for _, v, _ in load.answers]
    assert {"1", "2"} <= set(versions)  # both answered during the canary …
    assert {v for _, v, t in load.answers if t > promoted_at} == {"2"}  # … then only the new one
    served = client.get("/v1/models/good").json()
    assert served["serving_version"] == "2", served
    metrics = client.get("/metrics").text
    assert 'ml_canary_decisions_total{action="promote",model="good"} 1.0' in metrics
    assert 'ml_canary_step{experiment="good-canary-v2",model="good"} 100.0' in metrics
    shown = cli(str(client.base_url), "status", "good-canary-v2")
    assert shown.returncode == 0, shown.stderr
    assert "promoted" in shown.stdout and "advance" in shown.stdout


def test_a_raising_candidate_is_rolled_back_and_production_keeps_answering(
    server: tuple[httpx.Client, str],
) -> None:
    client, uri = server
    load, thread = with_load(client, "bad")
    try:
        until(lambda: len(load.answers) > 50)
        started = cli(str(client.base_url), "start", "bad", "2", "--steps", "10,50,100",
                      "--dwell", "1s", "--min-requests", "20", "--latency-margin", "off")  # fmt: skip
        assert started.returncode == 0, started.stderr
        assert "bad-canary-v2" in started.stdout
        final = until(canary_over(client, "bad-canary-v2"))
        over_at = time.monotonic() + GRACE_S
        until(lambda: sum(1 for *_, t in load.answers if t > over_at) > 100)
    finally:
        load.stop.set()
        thread.join(timeout=30)
    assert final["phase"] == "rolled_back" and final["step"] == 0, final
    assert final["reason"].startswith("error_rate is worse than the baseline")
    assert final["weights"] == {"baseline": 100.0, "candidate": 0.0}
    assert production(uri, "bad") == "1"
    failed = [a for a in load.answers if a[0] != 200]
    assert failed and all(status >= 500 for status, *_ in failed)  # the candidate's answers
    after = [a for a in load.answers if a[2] > over_at]
    assert all(status == 200 and version == "1" for status, version, _ in after)
    again = client.post("/v1/experiments/bad-canary-v2/canary/rollback")
    assert again.status_code == 409 and "over already" in again.json()["error"]


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``sibyl canary …`` in a fresh interpreter, against ``url``."""
    return subprocess.run(
        [sys.executable, "-m", "sibyl.cli", "canary", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
    )


def test_a_canary_created_as_an_experiment_and_aborted_by_hand(
    server: tuple[httpx.Client, str],
) -> None:
    client, uri = server
    prod = production(uri, "good")
    other = "1" if prod == "2" else "2"
    body: dict[str, Any] = {
        "name": "good-by-hand",
        "model": "good",
        "kind": "canary",
        "variants": [
            {"name": "baseline", "version": prod, "weight": 75, "control": True},
            {"name": "candidate", "version": other, "weight": 25},
        ],
        "config": {"steps": [25, 100], "dwell": "1h"},
    }
    bad_steps = client.post("/v1/experiments", json={**body, "config": {"steps": [25, 60]}})
    assert bad_steps.status_code == 400 and bad_steps.json()["field"] == "config.steps"
    bad_weights = client.post("/v1/experiments", json={**body, "config": {"steps": [10, 100]}})
    assert bad_weights.status_code == 400 and bad_weights.json()["field"] == "variants"
    assert "weight 90" in bad_weights.json()["error"]
    assert client.post("/v1/experiments", json=body).status_code == 201
    assert client.post("/v1/experiments/good-by-hand/start").status_code == 200
    running = until(
        lambda: (
            (s := client.get("/v1/experiments/good-by-hand/canary").json())["phase"] == "running"
            and s
        )
    )
    assert running["steps"] == [25.0, 100.0] and running["percent"] == 25.0
    assert running["config"]["dwell_s"] == 3600.0 and running["verdict"] is not None
    r = client.post("/v1/experiments/good-by-hand/canary/rollback", json={"reason": "by hand"})
    assert r.status_code == 200, r.text
    assert (r.json()["phase"], r.json()["status"], r.json()["reason"]) == (
        "rolled_back", "stopped", "by hand"
    )  # fmt: skip
    answer = client.post("/v1/models/good/predict", json={"records": [{"a": 1.0, "b": 1.0}]})
    assert answer.status_code == 200 and answer.json()["version"] == prod
    assert "experiment" not in answer.json()
    missing = client.get("/v1/experiments/nope/canary")
    assert missing.status_code == 404

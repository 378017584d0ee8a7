"""Drift and alerts in a real ``sibyl serve`` on a real MLflow registry and its SQLite store.

* ``dm`` is registered through the zoo's shared registration (with its reference profile):
  in-distribution traffic is judged ``ok``; traffic with one feature shifted makes exactly that
  feature drift in ``GET …/drift`` and in ``ml_drift_score`` on ``/metrics``.
* ``np`` is registered without a profile: it is not watched until one is uploaded with
  ``sibyl monitoring profile``; then its traffic is judged.
* Alert rules: CRUD over HTTP and the CLI; a rule on ``drift_score_max`` fires (short ``for``
  and evaluation interval) and a real local HTTP receiver gets the Alertmanager v4 payload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.helpers import ROOT, log_sklearn, run_server, set_alias, setup_mlflow

T = TypeVar("T")
FEATURES = [f"f{i}" for i in range(4)]
WINDOW = 600


def rows(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """``n`` rows of 4 standard normal features; ``shift`` is added to ``f1`` only."""
    frame = pd.DataFrame(np.random.default_rng(seed).normal(size=(n, 4)), columns=FEATURES)
    frame["f1"] += shift
    return frame


class Receiver:
    """A real HTTP server on a free port recording every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.received = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                receiver.received.set()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    import mlflow

    from sibyl.zoo._registering import log_and_register

    tmp = tmp_path_factory.mktemp("drift")
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    try:
        uri = setup_mlflow(tmp)
        x = rows(3000, seed=0)
        y = (x["f0"] + x["f1"] > 0).astype(int)
        version = log_and_register(
            LogisticRegression().fit(x, y), "dm", x, {"accuracy": 0.97}, {"C": 1.0},
            "drift test model", uri, (tmp / "artifacts").as_uri(),
        )  # fmt: skip
        set_alias("dm", "production", version)
        set_alias("np", "production", log_sklearn(LogisticRegression().fit(x, y), "np", x))
    finally:
        mlflow.set_tracking_uri(previous)
        if previous is not None and mlflow.get_experiment_by_name("tests") is not None:
            mlflow.set_experiment("tests")  # setup_mlflow made another registry's active
    return tmp, uri


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def server(
    registry: tuple[Path, str], receiver: Receiver
) -> Iterator[tuple[httpx.Client, dict[str, str], Path]]:
    tmp, uri = registry
    env = {
        "MLFLOW_TRACKING_URI": uri,
        "SIBYL_DATA_DIR": str(tmp / ".sibyl"),
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0.3",
        "SIBYL_DRIFT__WINDOW_ROWS": str(WINDOW),
        "SIBYL_DRIFT__MIN_ROWS": "400",
        "SIBYL_DRIFT__REPORT_INTERVAL_S": "0.2",
        "SIBYL_ALERTS__EVALUATION_INTERVAL_S": "0.2",
        "SIBYL_ALERTS__GROUPING__GROUP_WAIT_S": "0",
        "SIBYL_ALERTS__CHANNELS__WEBHOOKS": json.dumps([{"url": receiver.url}]),
    }
    with (
        run_server(env, tmp) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as client,
    ):
        yield client, env, tmp


def wait_for(check: Callable[[], T | None], what: str, timeout: float = 60.0) -> T:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def cli(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env}
    return subprocess.run(
        [sys.executable, "-m", "sibyl.cli", *args],
        env=full, cwd=cwd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def metric(client: httpx.Client, name: str, **labels: str) -> float | None:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def send(client: httpx.Client, model: str, frame: pd.DataFrame, batch: int = 50) -> None:
    for start in range(0, len(frame), batch):
        chunk = frame.iloc[start : start + batch]
        body = {"rows": chunk.to_numpy().tolist(), "names": list(chunk.columns)}
        r = client.post(f"/v1/models/{model}/predict", json=body)
        assert r.status_code == 200, r.text


def judged(client: httpx.Client, model: str, seen: int) -> dict[str, Any] | None:
    """The drift report once the window holds every row sent so far (``seen``)."""
    r = client.get(f"/v1/monitoring/models/{model}/drift")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body if body["observed"]["observed_rows"] >= seen else None


# ---- drift ----------------------------------------------------------------------------------


def test_one_shifted_feature_drifts_in_the_report_and_on_metrics(
    server: tuple[httpx.Client, dict[str, str], Path],
) -> None:
    client, _, _ = server
    send(client, "dm", rows(WINDOW, seed=1))
    ok = wait_for(lambda: judged(client, "dm", WINDOW), "the in-distribution window")
    assert ok["version"] == "1" and ok["profile"]["source"] == "training"
    assert ok["status"] == "ok" and ok["drifted_features"] == [], ok["drifted_features"]
    assert {c["name"] for c in ok["features"]} == set(FEATURES)
    assert {c["name"] for c in ok["predictions"]} == {"proba", "prediction"}
    assert ok["estimated_performance"]["enough_data"]  # CBPE of the classifier
    send(client, "dm", rows(WINDOW, seed=2, shift=1.0))
    shifted = wait_for(lambda: judged(client, "dm", 2 * WINDOW), "the shifted window")
    assert shifted["status"] == "drift" and "f1" in shifted["drifted_features"]
    # f1 is the one column past the PSI threshold; an unshifted one may still be flagged by a
    # p-value method at about the false-alarm rate (BH is more lenient beside a true signal)
    psi = {c["name"]: c["drift_score"] for c in shifted["features"]}
    assert psi["f1"] > 0.2 > max(psi["f0"], psi["f2"], psi["f3"]), psi
    f1 = next(c for c in shifted["features"] if c["name"] == "f1")
    assert f1["methods"]["ks"]["drifted"] and f1["methods"]["mean_z"]["drifted"]
    assert wait_for(lambda: (metric(client, "ml_drift_score", model="dm", feature="f1",
                                    method="psi") or 0) > 0.2, "ml_drift_score of f1")  # fmt: skip
    f0 = metric(client, "ml_drift_score", model="dm", feature="f0", method="psi")
    assert f0 is not None and f0 < 0.2
    assert metric(client, "ml_model_estimated_accuracy", model="dm", version="1") is not None


def test_a_profile_uploaded_with_the_cli_starts_watching_a_served_version(
    server: tuple[httpx.Client, dict[str, str], Path],
) -> None:
    client, env, tmp = server
    unwatched = client.get("/v1/monitoring/models/np/drift").json()  # a classifier: CBPE only
    assert unwatched["status"] == "unknown" and "sibyl monitoring profile" in unwatched["reason"]
    assert unwatched["estimated_performance"] is not None
    assert client.get("/v1/monitoring/models/nobody/drift").status_code == 404
    bad = client.put("/v1/monitoring/models/np/versions/1/profile",
                     json={"columns": {"x": [1.0, 2.0]}})  # fmt: skip
    assert bad.status_code == 400 and bad.json()["field"] == "columns"
    data = tmp / "reference.csv"
    rows(2000, seed=5).to_csv(data, index=False)
    done = cli(env, tmp, "monitoring", "profile", "np", "1", "--data", str(data),
               "--url", str(client.base_url))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "profile of 2000 rows stored (watched now)" in done.stdout
    stored = client.get("/v1/monitoring/models/np/versions/1/profile").json()
    assert stored["source"] == "upload" and [c["name"] for c in stored["features"]] == FEATURES
    send(client, "np", rows(WINDOW, seed=6))
    report = wait_for(lambda: judged(client, "np", WINDOW), "np's window")
    assert report["status"] == "ok" and report["profile"]["source"] == "upload"
    shown = cli(env, tmp, "monitoring", "drift", "np", "--url", str(client.base_url))
    assert shown.returncode == 0 and "np v1: ok" in shown.stdout, shown.stdout + shown.stderr


# ---- alerts ---------------------------------------------------------------------------------

RULE = {
    "name": "dm:drift-fast", "metric": "drift_score_max", "condition": ">", "threshold": 0.15,
    "window": "1m", "for": "0.5s", "severity": "critical", "labels": {"model": "dm"},
    "message": "Drift of {model} is {value:.2f}",
}  # fmt: skip


def test_rules_crud_over_http(server: tuple[httpx.Client, dict[str, str], Path]) -> None:
    client, _, _ = server
    rule = {**RULE, "name": "dm:crud", "threshold": 5.0}
    assert client.post("/v1/alerts/rules", json=rule).status_code == 201
    again = client.post("/v1/alerts/rules", json=rule)
    assert again.status_code == 409 and "PUT /v1/alerts/rules/dm:crud" in again.json()["error"]
    assert client.get("/v1/alerts/rules/dm:crud").json()["threshold"] == 5.0
    replaced = client.put("/v1/alerts/rules/dm:crud", json={**rule, "threshold": 6.0})
    assert replaced.status_code == 200 and replaced.json()["threshold"] == 6.0
    names = {r["name"] for r in client.get("/v1/alerts/rules").json()["rules"]}
    assert {"dm:crud", "dm:drift", "dm:success_rate", "np:latency_p95"} <= names  # defaults
    unknown = client.post("/v1/alerts/rules", json={**rule, "name": "x", "metric": "nope"})
    assert unknown.status_code == 400 and unknown.json()["field"] == "metric"
    assert client.delete("/v1/alerts/rules/dm:crud").json() == {"deleted": "dm:crud"}
    assert client.get("/v1/alerts/rules/dm:crud").status_code == 404
    bad_state = client.get("/v1/alerts", params={"state": "asleep"})
    assert bad_state.status_code == 400 and bad_state.json()["field"] == "state"


def test_rules_crud_with_the_cli(server: tuple[httpx.Client, dict[str, str], Path]) -> None:
    client, env, tmp = server
    url = str(client.base_url)
    path = tmp / "rules.json"
    path.write_text(json.dumps([{**RULE, "name": "np:cli", "labels": {"model": "np"},
                                 "threshold": 9.0}]))  # fmt: skip
    created = cli(env, tmp, "alerts", "rules", "create", "--file", str(path), "--url", url)
    assert created.returncode == 0 and "np:cli" in created.stdout, created.stderr
    listed = cli(env, tmp, "alerts", "rules", "list", "--url", url)
    assert "np:cli" in listed.stdout and "drift_score_max > 9" in listed.stdout
    shown = cli(env, tmp, "alerts", "rules", "show", "np:cli", "--url", url)
    assert json.loads(shown.stdout)["threshold"] == 9.0
    deleted = cli(env, tmp, "alerts", "rules", "delete", "np:cli", "--url", url)
    assert deleted.returncode == 0 and "deleted np:cli" in deleted.stdout
    missing = cli(env, tmp, "alerts", "rules", "show", "np:cli", "--url", url)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_a_drift_rule_fires_and_the_webhook_receives_the_alertmanager_payload(
    server: tuple[httpx.Client, dict[str, str], Path], receiver: Receiver
) -> None:
    client, env, tmp = server
    assert client.post("/v1/alerts/rules", json=RULE).status_code == 201
    send(client, "dm", rows(WINDOW, seed=7, shift=1.0))  # the window drifts (whatever ran before)
    assert receiver.received.wait(60), "no notification reached the receiver"
    body = next(b for b in receiver.bodies if b["groupLabels"]["alertname"] == "dm:drift-fast")
    assert (body["version"], body["status"], body["receiver"]) == ("4", "firing", "sibyl")
    alert = body["alerts"][0]
    assert alert["labels"] == {"alertname": "dm:drift-fast", "model": "dm",
                               "severity": "critical"}  # fmt: skip
    assert alert["annotations"]["summary"].startswith("Drift of dm is ")
    firing = client.get("/v1/alerts", params={"model": "dm", "state": "firing"}).json()["alerts"]
    assert [a["rule"] for a in firing] == ["dm:drift-fast"] and firing[0]["value"] > 0.15
    assert (metric(client, "ml_alerts", state="firing", severity="critical") or 0) >= 1
    sent = wait_for(lambda: metric(client, "ml_alert_notifications_total",
                                   channel="webhook-1", outcome="sent"), "the sent count")  # fmt: skip
    assert sent >= 1
    listed = cli(env, tmp, "alerts", "list", "--model", "dm", "--url", str(client.base_url))
    assert "dm:drift-fast" in listed.stdout and "firing" in listed.stdout

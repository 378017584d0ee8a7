"""Live quality end to end on a real ``sibyl serve`` over the real registry: predictions over
HTTP are logged by the server's prediction-log writer, labels are posted (by request id, request
id + row, routing key + event time, bulk), and the quality and dashboard endpoints, the
``ml_model_*`` gauges on ``/metrics``, ``/v1/stats`` and the CLI reflect them. Every wait polls
the API until the writer has flushed (no fixed sleeps)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn import metrics as skm
from sklearn.ensemble import HistGradientBoostingClassifier
from typer.testing import CliRunner

from tests.helpers import run_server
from tests.integration.conftest import server_env

WAIT_S = 60.0


@dataclass
class Quality:
    client: httpx.Client
    url: str
    x: pd.DataFrame


@pytest.fixture(scope="module")
def server(
    registry_env: tuple[Path, str, pd.DataFrame, HistGradientBoostingClassifier],
) -> Iterator[Quality]:
    """Its own server and data directory (its own ``sibyl.db``): only this module's traffic
    and feedback are in its prediction log."""
    tmp, uri, x, _ = registry_env
    env = {
        **server_env(tmp, uri),
        "SIBYL_DATA_DIR": str(tmp / "quality-sibyl"),
        "SIBYL_RUNTIME__PRELOAD_ALL_PRODUCTION": "false",
        "SIBYL_RUNTIME__PRELOAD": '["clf", "reg"]',
        "SIBYL_QUALITY__INTERVAL_S": "0.3",
        "SIBYL_QUALITY__WINDOWS": '["1h", "24h"]',
        "SIBYL_PREDICTION_LOG__FLUSH_INTERVAL_S": "0.2",
    }
    with run_server(env, tmp) as srv, httpx.Client(base_url=srv.url, timeout=30) as client:
        yield Quality(client, srv.url, x)


def until(what: str, probe: Callable[[], Any]) -> Any:
    """Poll ``probe`` until it returns something truthy (the log writer flushes every 0.2 s)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def gauge(client: httpx.Client, name: str, **labels: str) -> float | None:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return None


@dataclass
class Sent:
    """What the classifier answered and the truth posted for each labelled row."""

    truth: list[int] = field(default_factory=list)
    predicted: list[int] = field(default_factory=list)
    proba: list[list[float]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0
    rows: int = 0


def predict(q: Quality, start: int, n: int, rid: str, **body: Any) -> dict[str, Any]:
    records = q.x.iloc[start : start + n].to_dict("records")
    r = q.client.post("/v1/models/clf/predict", json={"records": records, **body},
                      headers={"x-request-id": rid})  # fmt: skip
    assert r.status_code == 200, r.text
    return dict(r.json())


def truth_of(predicted: int, k: int) -> int:
    return 1 - predicted if k % 4 == 3 else predicted  # every fourth labelled row is wrong


def send_classifier_traffic(q: Quality) -> Sent:
    sent = Sent()

    def label(answer: dict[str, Any], row: int) -> int:
        p = int(answer["predictions"][row])
        t = truth_of(p, len(sent.truth))
        sent.truth.append(t)
        sent.predicted.append(p)
        sent.proba.append(answer["probabilities"][row])
        return t

    for i in range(20):  # one row each, labelled by request id (a few as numeric values)
        answer = predict(q, i, 1, f"single-{i}")
        key = "value" if i % 5 == 0 else "label"
        sent.items.append({"request_id": f"single-{i}", "model": "clf", key: label(answer, 0)})
    for i in range(6):  # four rows each, labelled row by row
        answer = predict(q, 20 + 4 * i, 4, f"multi-{i}")
        for row in range(4):
            sent.items.append({"request_id": f"multi-{i}", "model": "clf", "row": row,
                               "label": str(label(answer, row))})  # fmt: skip
    for i in range(5):  # by routing key and the time the outcome happened
        answer = predict(q, 50 + i, 1, f"keyed-{i}", routing_key=f"user-{i}")
        sent.items.append({"routing_key": f"user-{i}", "model": "clf", "label": label(answer, 0),
                           "event_at": datetime.now(UTC).isoformat()})  # fmt: skip
    for i in range(4):  # predicted, never labelled: coverage < 1
        predict(q, 60 + 2 * i, 2, f"unlabelled-{i}")
    sent.requests, sent.rows = 20 + 6 + 5 + 4, 20 + 24 + 5 + 8
    bad = q.client.post("/v1/models/clf/predict", json={"records": [{"nope": 1}]})
    assert bad.status_code == 400  # a client error: logged, not against the success rate
    return sent


@pytest.fixture(scope="module")
def labelled(server: Quality) -> Sent:
    sent = send_classifier_traffic(server)
    r = server.client.post("/v1/feedback", json={"items": sent.items})  # one bulk, all or none
    assert r.status_code == 200 and r.json() == {"stored": len(sent.items)}, r.text
    return sent


def clf_quality(q: Quality, rows: int) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = q.client.get("/v1/monitoring/models/clf/quality", params={"window": "1h"}).json()
        v1 = next((v for v in body["versions"] if v["version"] == "1"), None)
        return v1 if v1 and v1["labelled_rows"] == rows else None

    return dict(until(f"{rows} labelled rows", probe))


def test_quality_endpoint_matches_sklearn_on_the_posted_labels(
    server: Quality, labelled: Sent
) -> None:
    v1 = clf_quality(server, len(labelled.truth))
    y, p = np.array(labelled.truth), np.array(labelled.predicted)
    proba = np.array(labelled.proba)
    m = v1["metrics"]
    assert v1["task"] == "classifier" and v1["predicted_rows"] == labelled.rows
    assert v1["coverage"] == pytest.approx(len(y) / labelled.rows)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p))
    assert m["accuracy"] == pytest.approx(1 - (len(y) // 4) / len(y))
    assert m["precision"] == pytest.approx(skm.precision_score(y, p))
    assert m["recall"] == pytest.approx(skm.recall_score(y, p))
    assert m["f1"] == pytest.approx(skm.f1_score(y, p))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=[0, 1]))
    assert m["mae"] is None and m["rmse"] is None
    one = server.client.get("/v1/monitoring/models/clf/quality",
                            params={"window": "24h", "version": "1"}).json()  # fmt: skip
    assert one["production_version"] == "1" and [v["version"] for v in one["versions"]] == ["1"]


def test_gauges_on_metrics_reflect_the_labels(server: Quality, labelled: Sent) -> None:
    v1 = clf_quality(server, len(labelled.truth))
    labels = {"model": "clf", "version": "1", "window": "1h"}
    until("the accuracy gauge", lambda: gauge(server.client, "ml_model_labelled_rows", **labels)
          == len(labelled.truth))  # fmt: skip
    assert gauge(server.client, "ml_model_accuracy", **labels) == pytest.approx(
        v1["metrics"]["accuracy"])  # fmt: skip
    assert gauge(server.client, "ml_model_auc", **labels) == pytest.approx(v1["metrics"]["auc"])
    assert gauge(server.client, "ml_model_f1", **{**labels, "window": "24h"}) == pytest.approx(
        v1["metrics"]["f1"])  # fmt: skip
    assert gauge(server.client, "ml_model_mae", **labels) is None  # a classifier has none


def test_dashboard_reflects_traffic_and_labels(server: Quality, labelled: Sent) -> None:
    v1 = clf_quality(server, len(labelled.truth))

    def probe() -> dict[str, Any] | None:
        body = server.client.get("/v1/monitoring/models/clf/dashboard").json()
        return body if body["statistics"]["total_predictions"] == labelled.requests + 1 else None

    board = until("every request in the log", probe)
    stats = board["statistics"]
    assert board["version"] == "1" and stats["window"] == "1h"
    assert stats["by_status"] == {"ok": labelled.requests, "invalid": 1}
    assert stats["success_rate"] == 1.0 and stats["errors"] == 0
    assert stats["rows"] == labelled.rows
    assert stats["latency_p95_method"] == "exact" and stats["latency_p95_rows"] == labelled.requests
    assert 0 < stats["latency_mean_ms"] <= stats["latency_p95_ms"] * 1.5
    assert stats["accuracy"] == pytest.approx(v1["metrics"]["accuracy"])
    trend = board["trend"]
    assert len(trend) == 24 and trend[-1]["hour"] <= board["generated_at"]
    assert sum(h["requests"] for h in trend) == labelled.requests + 1
    assert sum(h["labelled_rows"] for h in trend) == len(labelled.truth)
    health = board["health"]
    assert health["status"] in ("ok", "degraded")  # degraded only by a slow machine's latency
    assert all("latency" in reason or "alert" in reason for reason in health["reasons"])
    assert isinstance(board["alerts"], list) and "status" in board["drift"]


def test_stats_show_models_memory_cache_and_writers(server: Quality) -> None:
    body = server.client.get("/v1/stats").json()
    models = {m["name"]: m for m in body["models"]}
    (clf,) = models["clf"]["versions"]
    assert models["clf"]["production_version"] == "1" and clf["task"] == "classifier"
    assert clf["memory_bytes"] >= 0 and set(clf["queued_rows"]) == {"high", "normal", "low"}
    assert body["memory"]["process_rss_bytes"] > 0 and body["loaded_versions"] >= 2
    assert body["cache"]["backend"] and "hit" in body["cache"]["counts"]
    assert body["writers"]["experiments"] == {"pending": 0}
    assert "pending" in body["writers"]["prediction_log"]


def test_regressor_quality_from_numeric_values(server: Quality) -> None:
    rng = np.random.default_rng(5)
    truth: list[float] = []
    predicted: list[float] = []
    items = []
    for i in range(3):
        rows = [{f"r{j}": float(v) for j, v in enumerate(rng.normal(size=5))} for _ in range(2)]
        r = server.client.post("/v1/models/reg/predict", json={"records": rows},
                               headers={"x-request-id": f"reg-{i}"})  # fmt: skip
        assert r.status_code == 200, r.text
        for row, value in enumerate(r.json()["predictions"]):
            truth.append(float(value) + (row + 1) * (i + 1))
            predicted.append(float(value))
            items.append({"request_id": f"reg-{i}", "model": "reg", "row": row,
                          "value": truth[-1]})  # fmt: skip
    assert server.client.post("/v1/feedback", json={"items": items}).status_code == 200

    def probe() -> dict[str, Any] | None:
        body = server.client.get("/v1/monitoring/models/reg/quality?window=1h").json()
        v = body["versions"][0] if body["versions"] else None
        return v if v and v["labelled_rows"] == 6 else None

    v1 = until("6 labelled regressor rows", probe)
    assert v1["task"] == "regressor" and v1["metrics"]["accuracy"] is None
    assert v1["metrics"]["mae"] == pytest.approx(skm.mean_absolute_error(truth, predicted))
    assert v1["metrics"]["rmse"] == pytest.approx(
        np.sqrt(skm.mean_squared_error(truth, predicted)))  # fmt: skip


def test_bad_ground_truth_is_a_400_naming_the_item(server: Quality, labelled: Sent) -> None:
    clf_quality(server, len(labelled.truth))  # multi-0 is in the log now
    ok = {"request_id": "multi-0", "model": "clf", "label": "1", "row": 3}
    cases = [
        ({"items": [ok, {**ok, "row": 4}]}, "items[1].row"),  # the request had 4 rows
        ({"items": [ok, {**ok, "row": -1}]}, "items[1].row"),
        ({"items": [ok, {"routing_key": "u", "model": "clf", "label": "1",
                         "event_at": "2025-01-01T10:00:00"}]}, "items[1].event_at"),  # no offset
        ({**ok, "label": [1]}, "label"),
        ({"items": [ok] * 10_001}, "items"),
    ]  # fmt: skip
    for body, where in cases:
        r = server.client.post("/v1/feedback", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["field"] == where, r.json()
    assert server.client.get("/v1/monitoring/models/nope/quality").status_code == 404
    assert server.client.get("/v1/monitoring/models/clf/quality?window=soon").status_code == 400


def test_cli_prints_quality_and_dashboard(server: Quality, labelled: Sent) -> None:
    from sibyl.cli import app

    clf_quality(server, len(labelled.truth))
    runner = CliRunner(env={"COLUMNS": "160"})
    shown = runner.invoke(app, ["monitoring", "quality", "clf", "--window", "1h",
                                "--url", server.url])  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert "classifier" in shown.output and str(len(labelled.truth)) in shown.output
    board = runner.invoke(app, ["monitoring", "dashboard", "clf", "--url", server.url])
    assert board.exit_code == 0, board.output
    assert "clf v1" in board.output and "success rate" in board.output
    stats = runner.invoke(app, ["monitoring", "stats", "--url", server.url])
    assert stats.exit_code == 0 and "clf" in stats.output

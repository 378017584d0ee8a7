"""A/B/n experiments end to end on a real ``sibyl serve``: create and start over the API, split
traffic by routing key, feedback, results with a decision, pause, bad input, persistence across
a restart (SQLite) — and the same flow on this machine's real PostgreSQL."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from tests.helpers import ROOT, log_sklearn, run_server, set_alias, setup_mlflow

FEATURES = [f"f{i}" for i in range(4)]
ROW = {f: 0.25 for f in FEATURES}
PREDICT = "/v1/models/ab/predict"
WEIGHTS = {"control": 0.7, "candidate": 0.3}
SUCCESS_P = {"control": 0.5, "candidate": 0.8}  # the candidate is clearly better
REQUESTS = 2000


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Model ``ab``: v1 (production) and v2, two small logistic regressions."""
    import mlflow

    tmp = tmp_path_factory.mktemp("experiments")
    # the session registry of conftest.py is the global one for the other modules: restore it
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    try:
        uri = setup_mlflow(tmp)
        x_arr, y = make_classification(
            n_samples=300, n_features=4, n_informative=3, n_redundant=0, random_state=1
        )
        x = pd.DataFrame(x_arr, columns=FEATURES)
        set_alias("ab", "production", log_sklearn(LogisticRegression().fit(x, y), "ab", x))
        log_sklearn(LogisticRegression(C=0.01).fit(x, y), "ab", x)
    finally:
        mlflow.set_tracking_uri(previous)
        if previous is not None and mlflow.get_experiment_by_name("tests") is not None:
            mlflow.set_experiment("tests")  # setup_mlflow made another registry's active
    return tmp, uri


def env_for(tmp: Path, uri: str, **extra: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": uri,
        "SIBYL_DATA_DIR": str(tmp / ".sibyl"),
        "SIBYL_STORE__FLUSH_INTERVAL_S": "0.2",
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0",
        **extra,
    }


@pytest.fixture(scope="module")
def sqlite_server(registry: tuple[Path, str]) -> Iterator[tuple[httpx.Client, Path, str]]:
    tmp, uri = registry
    with (
        run_server(env_for(tmp, uri), tmp) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client, tmp, uri


def create_body(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": "ab",
        "variants": [
            {"name": "control", "alias": "production", "weight": 70, "control": True},
            {"name": "candidate", "version": "2", "weight": 30},
        ],
        "success_metrics": [
            "success_rate >= 0.4 weight 1.0 mde 0.1",
            "error_rate <= 0.05 weight 0.5",
        ],
    }


def predict(client: httpx.Client, **kwargs: Any) -> httpx.Response:
    body = {"records": [ROW], **kwargs.pop("body", {})}
    return client.post(PREDICT, json=body, **kwargs)


def run_flow(client: httpx.Client, name: str) -> None:
    """Create → start → split → stickiness → override → feedback → results → pause."""
    r = client.post("/v1/experiments", json=create_body(name))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "draft" and r.json()["control"] == "control"
    assert client.post(f"/v1/experiments/{name}/start").json()["status"] == "running"

    got = split_traffic(client)
    counts = Counter(variant for _, variant in got.values())
    for variant, weight in WEIGHTS.items():
        assert abs(counts[variant] / REQUESTS - weight) < 0.04, counts
    check_sticky_and_override(client, got)
    send_feedback(client, got)
    check_results(client, name)

    assert client.post(f"/v1/experiments/{name}/pause").json()["status"] == "paused"
    r = predict(client, headers={"x-routing-key": "key-1"})
    assert r.status_code == 200 and r.json()["version"] == "1"
    assert "experiment" not in r.json() and "x-experiment" not in r.headers


def split_traffic(client: httpx.Client) -> dict[str, tuple[str, str]]:
    """``REQUESTS`` predictions with distinct keys; request id → (key, variant)."""
    got: dict[str, tuple[str, str]] = {}
    for i in range(REQUESTS):
        key = f"key-{i}"
        # half send the key in the body (native), half in the header (every protocol)
        kw: dict[str, Any] = (
            {"body": {"routing_key": key}} if i % 2 else {"headers": {"x-routing-key": key}}
        )
        r = predict(client, **kw)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["experiment"] == r.headers["x-experiment"]
        assert out["variant"] == r.headers["x-variant"]
        assert out["version"] == ("1" if out["variant"] == "control" else "2")
        got[out["request_id"]] = (key, out["variant"])
    return got


def check_sticky_and_override(client: httpx.Client, got: dict[str, tuple[str, str]]) -> None:
    by_key = {key: variant for key, variant in got.values()}
    for key in ("key-3", "key-10", "key-1999"):
        answers = {
            predict(client, headers={"x-routing-key": key}).headers["x-variant"] for _ in range(4)
        }
        v2 = client.post(
            "/v2/models/ab/infer",
            headers={"x-routing-key": key},
            json={
                "inputs": [
                    {"name": f, "shape": [1], "datatype": "FP64", "data": [0.25]} for f in FEATURES
                ]
            },
        )
        assert v2.status_code == 200, v2.text
        assert answers == {by_key[key]} == {v2.headers["x-variant"]}
    control_key = next(k for k, v in by_key.items() if v == "control")
    r = predict(client, headers={"x-routing-key": control_key, "x-variant": "candidate"})
    assert r.json()["variant"] == "candidate" and r.json()["version"] == "2"
    r = predict(client, headers={"x-variant": "nope"})
    assert r.status_code == 400
    err = r.json()
    assert (
        err["field"] == "X-Variant"
        and "'control'" in err["error"]
        and "'candidate'" in err["error"]
    )
    pinned = predict(client, body={"version": 2}, headers={"x-variant": "control"})
    assert pinned.json()["version"] == "2" and "x-experiment" not in pinned.headers


def send_feedback(client: httpx.Client, got: dict[str, tuple[str, str]]) -> None:
    rng = random.Random(3)
    items = [
        {"request_id": rid, "model": "ab", "success": rng.random() < SUCCESS_P[variant]}
        for rid, (_, variant) in got.items()
    ]
    for start in range(0, len(items), 1000):
        r = client.post("/v1/feedback", json={"items": items[start : start + 1000]})
        assert r.status_code == 200, r.text
        assert r.json() == {"stored": len(items[start : start + 1000])}
    one = client.post(
        "/v1/feedback", json={"routing_key": "key-5", "experiment": "x-none", "value": 1.0}
    )
    assert one.status_code == 404  # unknown experiment, named
    assert "x-none" in one.json()["error"]


def check_results(client: httpx.Client, name: str) -> None:
    deadline = time.monotonic() + 60
    while True:  # the buffered writer flushes every 0.2 s here; assignments go one transaction each
        res = client.get(f"/v1/experiments/{name}/results").json()
        done = (
            sum(v["n"] for v in res["variants"]) >= REQUESTS + 15
            and sum(v["assigned"] for v in res["variants"]) >= REQUESTS
        )
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    variants = {v["name"]: v for v in res["variants"]}
    # + the stickiness checks (3 keys × 5 requests); QA overrides and pinned requests not counted
    assert sum(v["n"] for v in variants.values()) == REQUESTS + 15
    assert sum(v["assigned"] for v in variants.values()) == REQUESTS
    for variant, p in SUCCESS_P.items():
        row = variants[variant]
        assert row["errors"] == 0 and row["latency_ms"]["p50"] > 0
        assert row["feedback_n"] == row["assigned"]  # one feedback per split request
        assert abs(row["metrics"]["success_rate"]["mean"] - p) < 0.07
    comp = next(c for c in res["comparisons"] if c["metric"] == "success_rate")["comparison"]
    assert comp["difference_ci"]["low"] > 0 and comp["p_value"] < 1e-6
    assert comp["confidence_sequence"]["low"] > 0 and comp["relative_lift"] > 0.3
    power = next(c for c in res["comparisons"] if c["metric"] == "success_rate")["power"]
    assert power["required_n_per_variant"] > 0 and power["achieved_power"] > 0.8
    assert res["srm"]["mismatch"] is False and res["srm"]["p_value"] > 0.001
    assert res["decision"]["verdict"] == "ship" and res["decision"]["variant"] == "candidate"


def test_experiment_flow_and_persistence_on_sqlite(
    sqlite_server: tuple[httpx.Client, Path, str],
) -> None:
    client, tmp, uri = sqlite_server
    run_flow(client, "sqlite-ab")
    before = client.get("/v1/experiments/sqlite-ab/results").json()
    with run_server(env_for(tmp, uri), tmp) as again, httpx.Client(base_url=again.url) as c2:
        shown = c2.get("/v1/experiments/sqlite-ab").json()
        assert shown["status"] == "paused" and shown["variants"][1]["version"] == "2"
        after = c2.get("/v1/experiments/sqlite-ab/results").json()
        assert [v["n"] for v in after["variants"]] == [v["n"] for v in before["variants"]]
        assert after["decision"]["verdict"] == "ship"
        assert c2.post("/v1/experiments/sqlite-ab/start").json()["status"] == "running"
        assert predict(c2, headers={"x-routing-key": "key-7"}).headers["x-experiment"] == (
            "sqlite-ab"
        )
        assert c2.post("/v1/experiments/sqlite-ab/stop").json()["status"] == "stopped"
        check_cli(again.url)


def cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``sibyl experiments …`` in a fresh interpreter, against ``url``."""
    return subprocess.run(
        [sys.executable, "-m", "sibyl.cli", "experiments", *args, "--url", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
    )


def check_cli(url: str) -> None:
    results = cli(url, "results", "sqlite-ab")
    assert results.returncode == 0, results.stderr
    assert "decision: ship candidate" in results.stdout
    assert "success_rate" in results.stdout and "control (control)" in results.stdout
    assert "sample ratio: ok" in results.stdout
    made = cli(
        url,
        "create",
        "cli-ab",
        "--model",
        "ab",
        "--variant",
        "old=production@50",
        "--variant",
        "new=2@50",
        "--metric",
        "success_rate >= 0.5",
    )
    assert made.returncode == 0, made.stderr
    assert "cli-ab" in made.stdout and "draft" in made.stdout
    assert "running" in cli(url, "start", "cli-ab").stdout
    listed = cli(url, "list", "--status", "running")
    assert "cli-ab" in listed.stdout and "sqlite-ab" not in listed.stdout
    assert "paused" in cli(url, "pause", "cli-ab").stdout
    assert "stopped" in cli(url, "stop", "cli-ab").stdout
    shown = cli(url, "show", "cli-ab")
    assert "success_rate >= 0.5" in shown.stdout and "@production" in shown.stdout
    bad = cli(url, "create", "x", "--model", "ab", "--variant", "nonsense")
    assert bad.returncode == 1 and "NAME=VERSION|ALIAS" in bad.stderr
    conflict = cli(url, "create", "cli-ab", "--model", "ab", "--variant", "a=1", "--variant", "b=2")
    assert conflict.returncode == 1 and "cli-ab" in conflict.stderr


BAD_CREATE = [
    ({"success_metrics": ["success_rate >>> 3"]}, "success_metrics"),
    ({"variants": [{"name": "a", "alias": "production"}]}, "variants"),
    (
        {
            "variants": [
                {"name": "a", "version": "1", "alias": "production"},
                {"name": "b", "version": "2"},
            ]
        },
        "variants",
    ),
    (
        {"variants": [{"name": "a", "version": "1", "weight": -1}, {"name": "b", "version": "2"}]},
        "variants.0.weight",
    ),
    ({"name": ""}, "name"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("change", "field"), BAD_CREATE)
def test_bad_experiment_is_a_400_naming_the_field(
    sqlite_server: tuple[httpx.Client, Path, str], change: dict[str, Any], field: str
) -> None:
    client = sqlite_server[0]
    r = client.post("/v1/experiments", json={**create_body("bad"), **change})
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field, r.json()


BAD_FEEDBACK = [
    ({"model": "ab", "success": True}, "request_id"),
    ({"request_id": "r1", "model": "ab"}, "value"),
    ({"request_id": "r1", "success": True}, "model"),
    ({"request_id": "r1", "model": "ab", "success": True, "value": 2.0}, "value"),
    ({"request_id": "r1", "model": "ab", "value": "high"}, "value"),
    (
        {
            "items": [
                {"request_id": "r1", "model": "ab", "value": 1.0},
                {"request_id": "r2", "model": "ab"},
            ]
        },
        "items[1].value",
    ),
    ({"items": []}, "items"),
]


@pytest.mark.parametrize(("body", "field"), BAD_FEEDBACK)
def test_bad_feedback_is_a_400_naming_the_field(
    sqlite_server: tuple[httpx.Client, Path, str], body: dict[str, Any], field: str
) -> None:
    r = sqlite_server[0].post("/v1/feedback", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field, r.json()


def test_bad_routing_key_and_unknown_experiment(
    sqlite_server: tuple[httpx.Client, Path, str],
) -> None:
    client = sqlite_server[0]
    r = predict(client, body={"routing_key": 42})
    assert r.status_code == 400 and r.json()["field"] == "routing_key"
    assert client.get("/v1/experiments/none-such").status_code == 404
    assert client.post("/v1/experiments/none-such/start").status_code == 404


@pytest.mark.postgres
def test_experiment_flow_on_postgres(registry: tuple[Path, str]) -> None:
    from tests.contract.store_support import fresh_postgres_database, postgres_or_skip

    postgres_or_skip()
    tmp, uri = registry
    with fresh_postgres_database() as url:
        env = env_for(
            tmp,
            uri,
            SIBYL_STORE__URL=url,
            SIBYL_DATA_DIR=str(tmp / ".sibyl-pg"),
            SIBYL_STORE__REFRESH_INTERVAL_S="0.3",
        )
        with run_server(env, tmp) as server, httpx.Client(base_url=server.url, timeout=30) as c:
            run_flow(c, "pg-ab")
            listed = c.get("/v1/experiments", params={"status": "paused"}).json()
            assert [e["name"] for e in listed["experiments"]] == ["pg-ab"]
            with run_server(env, tmp) as other, httpx.Client(base_url=other.url) as replica:
                check_replicas_agree(c, replica)
            c.post("/v1/experiments/pg-ab/stop")


def check_replicas_agree(c: httpx.Client, replica: httpx.Client) -> None:
    """A change made on one server reaches the other through the shared store."""
    keys = [f"key-{i}" for i in range(30)]

    def variants(client: httpx.Client) -> list[str | None]:
        return [
            predict(client, headers={"x-routing-key": k}).headers.get("x-variant") for k in keys
        ]

    assert set(variants(replica)) == {None}  # paused
    assert c.post("/v1/experiments/pg-ab/start").json()["status"] == "running"
    on_c = variants(c)
    assert None not in on_c
    deadline = time.monotonic() + 10
    while variants(replica) != on_c:
        assert time.monotonic() < deadline, "the replica never picked up the running experiment"
        time.sleep(0.2)
    assert c.post("/v1/experiments/pg-ab/pause").json()["status"] == "paused"
    while set(variants(replica)) != {None}:
        assert time.monotonic() < deadline + 10, "the replica kept routing a paused experiment"
        time.sleep(0.2)

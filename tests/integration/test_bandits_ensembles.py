"""Bandit routing and ensembles end to end on a real ``sibyl serve`` over a real MLflow registry:
feedback moves a bandit's traffic to the better arm while the worse keeps its floor; an ensemble
answers the weighted mean of its members over the native, V2 and MLflow protocols, skips and
reports a failing member, and fails clearly when none answers."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

from tests.helpers import ROOT, log_sklearn, run_server, set_alias, setup_mlflow
from tests.integration._flaky import FlakyClassifier
from tests.toys import FAIL_MARKER

FEATURES = [f"f{i}" for i in range(4)]
FLOOR = 0.1
SUCCESS_P = {"A": 0.3, "B": 0.7}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, pd.DataFrame]:
    """``arms`` v1/v2 (bandit arms); ``ens`` v1/v2 (logistic regressions) and v3/v4 (flaky
    classifiers); ``ensreg`` v1 (a regressor)."""
    import mlflow

    tmp = tmp_path_factory.mktemp("bandits-ensembles")
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    try:
        uri = setup_mlflow(tmp)
        x_arr, y = make_classification(
            n_samples=300, n_features=4, n_informative=3, n_redundant=0, random_state=2
        )
        x = pd.DataFrame(x_arr, columns=FEATURES)
        set_alias("arms", "production", log_sklearn(LogisticRegression().fit(x, y), "arms", x))
        log_sklearn(LogisticRegression(C=0.01).fit(x, y), "arms", x)
        set_alias("ens", "production", log_sklearn(LogisticRegression().fit(x, y), "ens", x))
        log_sklearn(LogisticRegression(C=0.05).fit(x, y), "ens", x)
        log_sklearn(FlakyClassifier(C=0.5).fit(x, y), "ens", x)
        log_sklearn(FlakyClassifier(C=2.0).fit(x, y), "ens", x)
        xr, yr = make_regression(n_samples=100, n_features=4, random_state=0)
        xr_df = pd.DataFrame(xr, columns=FEATURES)
        log_sklearn(LinearRegression().fit(xr_df, yr), "ensreg", xr_df)
    finally:
        mlflow.set_tracking_uri(previous)
        if previous is not None and mlflow.get_experiment_by_name("tests") is not None:
            mlflow.set_experiment("tests")  # setup_mlflow made another registry's active
    return tmp, uri, x


@pytest.fixture(scope="module")
def server(registry: tuple[Path, str, pd.DataFrame]) -> Iterator[tuple[httpx.Client, str]]:
    tmp, uri, _ = registry
    env = {
        "MLFLOW_TRACKING_URI": uri,
        "SIBYL_DATA_DIR": str(tmp / ".sibyl"),
        "SIBYL_STORE__FLUSH_INTERVAL_S": "0.1",
        "SIBYL_STORE__REFRESH_INTERVAL_S": "0.25",
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0",
    }
    with (
        run_server(env, tmp) as srv,
        httpx.Client(base_url=srv.url, timeout=30) as client,
    ):
        yield client, srv.url


@pytest.fixture(scope="module")
def rows(registry: tuple[Path, str, pd.DataFrame]) -> pd.DataFrame:
    return registry[2].head(5)


# ---- bandit -------------------------------------------------------------------------------


def serve_round(client: httpx.Client, n: int) -> list[tuple[str, str]]:
    """``n`` unpinned predictions of ``arms``: (request id, arm) each."""
    out = []
    for _ in range(n):
        r = client.post("/v1/models/arms/predict", json={"records": [{f: 0.1 for f in FEATURES}]})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["version"] == ("1" if body["variant"] == "A" else "2")
        out.append((body["request_id"], body["variant"]))
    return out


def test_bandit_moves_traffic_to_the_better_arm_and_keeps_the_floor(
    server: tuple[httpx.Client, str],
) -> None:
    client, _ = server
    body = {
        "name": "arms-bandit",
        "model": "arms",
        "kind": "bandit",
        "variants": [{"name": "A", "version": "1"}, {"name": "B", "version": "2"}],
        "config": {"floor": FLOOR},
    }
    r = client.post("/v1/experiments", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["routing"] == {"floor": FLOOR, "reward": "success", "prior": [1.0, 1.0]}
    bad = client.post("/v1/experiments", json={**body, "name": "x", "config": {"floor": 0.7}})
    assert bad.status_code == 400 and bad.json()["field"] == "config.floor"
    assert client.post("/v1/experiments/arms-bandit/start").json()["status"] == "running"

    rng = random.Random(5)
    shares = []
    for _ in range(15):  # each round feeds back outcomes, then the next round shows the shift
        served = serve_round(client, 100)
        shares.append(sum(arm == "B" for _, arm in served) / len(served))
        items = [
            {"request_id": rid, "model": "arms", "success": rng.random() < SUCCESS_P[arm]}
            for rid, arm in served
        ]
        fed = client.post("/v1/feedback", json={"items": items})
        assert fed.status_code == 200 and fed.json()["stored"] == 100, fed.text
        if len(shares) >= 3 and shares[-1] >= 0.8:
            break
    assert shares[-1] >= 0.8, shares  # within a few refreshes most traffic goes to B

    final = Counter(arm for _, arm in serve_round(client, 600))
    share_a = final["A"] / 600
    # A keeps its floor (0.1 expected once B is surely best; 3.5 sd of 600 draws below it)
    assert FLOOR - 0.043 <= share_a <= 0.2, final

    results = client.get("/v1/experiments/arms-bandit/results").json()
    arms = {a["name"]: a for a in results["bandit"]["arms"]}
    assert arms["B"]["p_best"] > 0.99 and arms["B"]["posterior_mean"] > 0.6
    assert arms["A"]["posterior_mean"] < 0.45
    assert arms["A"]["traffic_share"] >= FLOOR
    assert arms["A"]["successes"] + arms["A"]["failures"] > 0
    forced = client.post(
        "/v1/models/arms/predict",
        headers={"x-variant": "A"},
        json={"records": [{f: 0.1 for f in FEATURES}]},
    )
    assert forced.json()["variant"] == "A"  # the QA override wins over the bandit
    assert client.post("/v1/experiments/arms-bandit/stop").json()["status"] == "stopped"


# ---- ensembles ----------------------------------------------------------------------------


def create_ensemble(client: httpx.Client, name: str, *members: tuple[str, float]) -> None:
    body = {
        "name": name,
        "members": [{"model": "ens", "version": v, "weight": w} for v, w in members],
    }
    r = client.post("/v1/ensembles", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "running" and r.json()["task"] == "classifier"


def pinned_proba(client: httpx.Client, x: pd.DataFrame, version: str) -> np.ndarray[Any, Any]:
    body = {"records": x.to_dict(orient="records"), "version": version}
    out = client.post("/v1/models/ens/predict", json=body).json()
    assert out["classes"] == [0, 1]
    return np.asarray(out["probabilities"])


def test_ensemble_is_the_weighted_mean_over_every_protocol(
    server: tuple[httpx.Client, str], rows: pd.DataFrame
) -> None:
    client, _ = server
    create_ensemble(client, "ens-blend", ("1", 0.7), ("2", 0.3))
    expected = 0.7 * pinned_proba(client, rows, "1") + 0.3 * pinned_proba(client, rows, "2")

    r = client.post("/v1/models/ens-blend/predict", json={"records": rows.to_dict("records")})
    assert r.status_code == 200, r.text
    out = r.json()
    np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=1e-12)
    assert out["predictions"] == expected.argmax(axis=1).tolist()
    assert (out["model"], out["version"], out["engine"]) == ("ens-blend", "ens:1+ens:2", "ensemble")
    assert r.headers["x-ensemble-members"] == "2/2"
    assert [(m["name"], m["status"], m["share"]) for m in out["members"]] == [
        ("ens:1", "ok", 0.7),
        ("ens:2", "ok", 0.3),
    ]

    v2 = client.post(
        "/v2/models/ens-blend/infer",
        json={
            "parameters": {"content_type": "pd"},
            "inputs": [
                {"name": f, "shape": [len(rows)], "datatype": "FP64", "data": rows[f].tolist()}
                for f in FEATURES
            ],
        },
    )
    assert v2.status_code == 200, v2.text
    assert set(v2.json()) == {"model_name", "model_version", "id", "outputs", "parameters"}
    assert v2.headers["x-ensemble-members"] == "2/2"
    outputs = {o["name"]: o for o in v2.json()["outputs"]}
    np.testing.assert_allclose(
        np.reshape(outputs["predict_proba"]["data"], expected.shape), expected, atol=1e-12
    )

    meta = client.get("/v2/models/ens-blend")  # V2 clients read metadata and readiness first
    assert meta.status_code == 200, meta.text
    assert meta.json()["platform"] == "sibyl-ensemble"
    assert [i["name"] for i in meta.json()["inputs"]] == FEATURES
    assert [m["model"] for m in meta.json()["parameters"]["members"]] == ["ens", "ens"]
    assert client.get("/v2/models/ens-blend/ready").status_code == 200

    mlflow = client.post(
        "/v1/models/ens-blend/invocations", json={"dataframe_records": rows.to_dict("records")}
    )
    assert mlflow.status_code == 200, mlflow.text
    assert mlflow.json() == {"predictions": expected.argmax(axis=1).tolist()}
    assert mlflow.headers["x-ensemble-members"] == "2/2"


def failures_metric(client: httpx.Client) -> dict[tuple[str, str], float]:
    text = client.get("/metrics").text
    return {
        (s.labels["ensemble"], s.labels["member"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "ml_ensemble_member_failures_total"
    }


def test_a_failing_member_is_skipped_and_reported(
    server: tuple[httpx.Client, str], rows: pd.DataFrame
) -> None:
    client, _ = server
    create_ensemble(client, "ens-flaky", ("1", 1.0), ("3", 1.0))
    bad = rows.head(2).copy()
    bad.loc[:, "f0"] = FAIL_MARKER  # the flaky member raises on it
    r = client.post("/v1/models/ens-flaky/predict", json={"records": bad.to_dict("records")})
    assert r.status_code == 200, r.text
    assert r.headers["x-ensemble-members"] == "1/2"
    ok, failed = r.json()["members"]
    assert (ok["status"], ok["share"], ok["version"]) == ("ok", 1.0, "1")
    assert failed["status"] == "failed" and failed["share"] == 0.0
    assert "flaky classifier failure" in failed["error"]
    np.testing.assert_allclose(r.json()["probabilities"], pinned_proba(client, bad, "1"))
    assert failures_metric(client)[("ens-flaky", "ens:3")] == 1.0
    good = client.post("/v1/models/ens-flaky/predict", json={"records": rows.to_dict("records")})
    assert good.headers["x-ensemble-members"] == "2/2"


def test_all_members_failing_is_a_clear_error_naming_each(
    server: tuple[httpx.Client, str], rows: pd.DataFrame
) -> None:
    client, _ = server
    create_ensemble(client, "ens-down", ("3", 1.0), ("4", 1.0))
    bad = rows.head(1).copy()
    bad.loc[:, "f0"] = FAIL_MARKER
    records = bad.to_dict("records")
    r = client.post("/v1/models/ens-down/predict", json={"records": records})
    assert r.status_code == 503, r.text
    msg = r.json()["error"]
    assert "0 of 2 members answered" in msg
    assert "member 'ens:3' (ens version 3)" in msg and "member 'ens:4' (ens version 4)" in msg
    assert msg.count("flaky classifier failure") == 2
    mlflow = client.post("/v1/models/ens-down/invocations", json={"dataframe_records": records})
    assert mlflow.status_code == 503
    assert mlflow.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
    v2 = client.post(
        "/v2/models/ens-down/infer",
        json={
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 4],
                    "datatype": "FP64",
                    "data": bad.values.ravel().tolist(),
                }
            ]
        },
    )
    assert v2.status_code == 503 and "0 of 2 members answered" in v2.json()["error"]


def test_ensemble_validation_and_life_cycle_over_http_and_cli(
    server: tuple[httpx.Client, str], rows: pd.DataFrame
) -> None:
    client, url = server
    mixed = {
        "name": "ens-mixed",
        "members": [{"model": "ens", "version": "1"}, {"model": "ensreg", "version": "1"}],
    }
    r = client.post("/v1/ensembles", json=mixed)
    assert r.status_code == 400 and "classifiers" in r.json()["error"], r.text
    taken = {
        "name": "ens",
        "members": [{"model": "ens", "version": "1"}, {"model": "ens", "version": "2"}],
    }
    assert client.post("/v1/ensembles", json=taken).status_code == 409

    def cli(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "sibyl.cli", "ensembles", *args, "--url", url],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "ens-cli" in cli(
        "create", "ens-cli", "--member", "ens:1,2", "--member", "ens@production"
    )
    shown = client.get("/v1/ensembles/ens-cli").json()
    assert [(m["version"], m["alias"], m["weight"]) for m in shown["members"]] == [
        ("1", None, 2.0),
        (None, "production", 1.0),
    ]
    assert "ens-cli" in cli("list")
    predicted = client.post("/v1/models/ens-cli/predict", json={"records": rows.to_dict("records")})
    assert predicted.status_code == 200 and predicted.headers["x-ensemble-members"] == "2/2"
    assert "stopped" in cli("stop", "ens-cli")
    gone = client.post("/v1/models/ens-cli/predict", json={"records": rows.to_dict("records")})
    assert gone.status_code == 404
    names = {e["name"] for e in client.get("/v1/ensembles").json()["ensembles"]}
    assert {"ens-cli", "ens-blend"} <= names

"""Shadow traffic and the shadow promotion gate end to end: a real ``sibyl serve`` on a real
MLflow registry and its SQLite store.

* Shadow never changes the primary's answer: with candidates that answer differently, raise
  and are slow, every response is byte-identical to the one without a shadow, and the caller
  never waits for the slow one; the report shows agreement, errors and latency.
* The gate rolls back a production alias moved by a plain ``MlflowClient`` to a version without
  a passing shadow period (the server never answers with it), lets a move to a version with one
  stand, and sibyl's own promotions (API and CLI) are refused with 409 naming the criteria.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tests.helpers import ROOT, log_pyfunc, log_sklearn, run_server, set_alias, setup_mlflow
from tests.shadow_toys import OffsetModel, RaisingModel

T = TypeVar("T")
FEATURES = [f"f{i}" for i in range(4)]
GATES = {"gt": {"min_requests": 30, "min_agreement": 0.95, "max_error_rate": 0.01}}
SLOW_S = 1.0


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``sh``: v1 row sum (production), v2 row sum + 1, v3 raises, v4 row sum but slow, v5 row
    sum. ``gt``: v1 a logistic regression (production), v2 the same fit to flipped labels, v3
    identical to v1."""
    import mlflow

    tmp = tmp_path_factory.mktemp("shadow")
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    try:
        uri = setup_mlflow(tmp)
        ab = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
        for toy in (OffsetModel(), OffsetModel(1.0), RaisingModel(), OffsetModel(delay=SLOW_S),
                    OffsetModel()):  # fmt: skip
            log_pyfunc(toy, "sh", ab)
        set_alias("sh", "production", "1")
        rng = np.random.default_rng(0)
        x = pd.DataFrame(rng.normal(size=(300, 4)), columns=FEATURES)
        y = (x["f0"] + x["f1"] > 0).astype(int)
        log_sklearn(LogisticRegression().fit(x, y), "gt", x)
        log_sklearn(LogisticRegression().fit(x, 1 - y), "gt", x)
        log_sklearn(LogisticRegression().fit(x, y), "gt", x)
        set_alias("gt", "production", "1")
    finally:
        mlflow.set_tracking_uri(previous)
        if previous is not None and mlflow.get_experiment_by_name("tests") is not None:
            mlflow.set_experiment("tests")  # setup_mlflow made another registry's active
    return tmp, uri


def env_for(tmp: Path, uri: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": uri,
        "SIBYL_DATA_DIR": str(tmp / ".sibyl"),
        "SIBYL_STORE__FLUSH_INTERVAL_S": "0.2",
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0.3",
        "SIBYL_PROMOTION_GATES": json.dumps(GATES),
    }


@pytest.fixture(scope="module")
def server(registry: tuple[Path, str]) -> Iterator[tuple[httpx.Client, dict[str, str], Path]]:
    tmp, uri = registry
    env = env_for(tmp, uri)
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


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"{name}{{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ---- shadow never changes the primary's answer -----------------------------------------------

REQUESTS = [
    {"rows": [[100.0 + i, 200.0 + j] for j in range(1 + i % 3)], "names": ["a", "b"]}
    for i in range(24)
]


def answers(client: httpx.Client) -> list[httpx.Response]:
    out = []
    for i, body in enumerate(REQUESTS):
        r = client.post("/v1/models/sh/predict", json=body, headers={"x-request-id": f"req-{i}"})
        assert r.status_code == 200, r.text
        out.append(r)
    return out


def shadow_body() -> dict[str, Any]:
    return {
        "name": "sh-shadow",
        "model": "sh",
        "kind": "shadow",
        "variants": [
            {"name": "primary", "alias": "production", "control": True},
            {"name": "differs", "version": "2"},
            {"name": "raises", "version": "3"},
            {"name": "slow", "version": "4"},
            {"name": "same", "version": "5"},
        ],
        "config": {"share": 1.0, "timeout_ms": 10_000, "max_concurrent": 200},
    }


def test_shadow_never_changes_the_primarys_answer(
    server: tuple[httpx.Client, dict[str, str], Path],
) -> None:
    client, _, _ = server
    before = answers(client)
    assert client.post("/v1/experiments", json=shadow_body()).status_code == 201
    assert client.post("/v1/experiments/sh-shadow/start").json()["status"] == "running"
    wait_for(lambda: all(client.post("/v1/models/sh/load", json={"version": v}).status_code == 200
                         for v in "2345"), "the candidates to load")  # fmt: skip
    started = time.monotonic()
    after = answers(client)
    elapsed = time.monotonic() - started
    for a, b in zip(before, after, strict=True):
        assert a.content == b.content  # byte-identical, request id included (the same one)
        for header in ("x-model-name", "x-model-version", "x-model-engine", "content-type"):
            assert a.headers[header] == b.headers[header]
        assert "x-experiment" not in b.headers
    # a caller waiting for the slow candidate would have spent ≥ 24 s here
    assert elapsed < len(REQUESTS) * SLOW_S / 2

    def complete() -> dict[str, Any] | None:
        report = client.get("/v1/experiments/sh-shadow/shadow").json()
        by = {c["variant"]: c for c in report["candidates"]}
        return by if all(c["mirrored"] == len(REQUESTS) for c in by.values()) else None

    by = wait_for(complete, "every mirror to be recorded")
    n_rows = sum(len(r["rows"]) for r in REQUESTS)
    assert (by["differs"]["agreement"]["rate"], by["differs"]["rows"]) == (0.0, n_rows)
    assert by["differs"]["errors"] == 0
    assert by["raises"]["errors"] == len(REQUESTS) and by["raises"]["agreement"] is None
    assert by["raises"]["error_rate"] == 1.0
    assert by["slow"]["agreement"]["rate"] == 1.0
    assert by["slow"]["latency_ms"]["difference"]["p50"] > SLOW_S * 1e3 / 2
    assert by["same"]["agreement"]["rate"] == 1.0 and by["same"]["errors"] == 0
    assert by["same"]["gate"]["passed"] is False  # the default criteria want 500 requests
    for result, n in (("agree", 48), ("disagree", 24), ("error", 24)):
        assert metric(client, "ml_shadow_requests_total", model="sh", result=result) == n
    assert client.post("/v1/experiments/sh-shadow/stop").json()["status"] == "stopped"
    assert answers(client)[0].content == before[0].content


def test_shadow_input_errors_name_the_field(
    server: tuple[httpx.Client, dict[str, str], Path],
) -> None:
    client, _, _ = server
    body = {**shadow_body(), "name": "bad", "config": {"share": 2}}
    r = client.post("/v1/experiments", json=body)
    assert r.status_code == 400 and r.json()["field"] == "config.share"
    r = client.get("/v1/experiments/nope/shadow")
    assert r.status_code == 404


# ---- the promotion gate ------------------------------------------------------------------


def predict_gt(client: httpx.Client, i: int) -> httpx.Response:
    row = {f: float(np.sin(i * (k + 1))) for k, f in enumerate(FEATURES)}
    r = client.post("/v1/models/gt/predict", json={"records": [row]})
    assert r.status_code == 200, r.text
    return r


def production_alias(uri: str) -> str:
    import mlflow

    return str(mlflow.MlflowClient(uri).get_model_version_by_alias("gt", "production").version)


def test_the_gate_rolls_back_unvetted_moves_and_refuses_sibyl_promotions(
    server: tuple[httpx.Client, dict[str, str], Path], registry: tuple[Path, str]
) -> None:
    import mlflow

    client, env, tmp = server
    _, uri = registry
    started = cli(
        env, tmp, "shadow", "start", "gt", "3", "--share", "1", "--url", str(client.base_url)
    )
    assert started.returncode == 0, started.stderr
    assert "gt-shadow-3: running" in started.stdout
    wait_for(lambda: client.post("/v1/models/gt/load", json={"version": "3"}).status_code == 200,
             "the candidate to load")  # fmt: skip
    for i in range(40):
        assert predict_gt(client, i).json()["version"] == "1"
    wait_for(lambda: client.get("/v1/experiments/gt-shadow-3/shadow").json()["passed"],
             "a passing shadow period")  # fmt: skip
    shown = cli(env, tmp, "shadow", "report", "gt-shadow-3", "--url", str(client.base_url))
    assert shown.returncode == 0 and "passes the promotion gate" in shown.stdout, shown.stdout

    # sibyl's own promotions of a version without a shadow period: 409, nothing moves
    r = client.post("/v1/models/gt/versions/2/stage", json={"stage": "production"})
    assert r.status_code == 409 and "no shadow experiment" in r.json()["error"], r.text
    refused = cli(env, tmp, "models", "promote", "gt", "2")
    assert refused.returncode != 0 and "no passing shadow period" in refused.stdout + refused.stderr
    assert production_alias(uri) == "1"

    # a plain MLflow client moves production to v2: rolled back, never served
    plain = mlflow.MlflowClient(uri)
    plain.set_registered_model_alias("gt", "production", "2")
    i = 0

    def rolled_back() -> bool:
        nonlocal i
        i += 1
        assert predict_gt(client, i).json()["version"] == "1"
        return production_alias(uri) == "1"

    wait_for(rolled_back, "the gate to move production back to v1")
    assert metric(client, "ml_promotion_gate_total", model="gt", result="rollback") == 1
    assert "no shadow experiment" in plain.get_model_version("gt", "2").tags["sibyl.promotion_gate"]

    # to v3, which has a passing shadow period: it stands and is served
    plain.set_registered_model_alias("gt", "production", "3")
    wait_for(lambda: predict_gt(client, 0).json()["version"] == "3", "v3 to serve")
    assert production_alias(uri) == "3"
    assert metric(client, "ml_promotion_gate_total", model="gt", result="pass") >= 1
    stopped = cli(env, tmp, "shadow", "stop", "gt-shadow-3", "--url", str(client.base_url))
    assert stopped.returncode == 0 and "stopped" in stopped.stdout

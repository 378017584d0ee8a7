"""The jobs API on a real server (uvicorn, in-process job workers): ``/v1/jobs`` and the batch
shape ``/v1/batch/...``, bad input naming the field, cancellation, a queued job surviving a
server restart, and online predictions answered while a batch job runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Server, run_server
from tests.jobs_registry import N, scorer_data
from tests.jobs_support import jobs_registry, wait_until


def server_env(data_dir: Path, uri: str, workers: int = 1) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": uri,
        "SIBYL_DATA_DIR": str(data_dir),
        "SIBYL_JOBS__WORKERS": str(workers),
        "SIBYL_JOBS__MODULES": '["tests.jobs_toys"]',
        "SIBYL_JOBS__HEARTBEAT_S": "0.2",
        "SIBYL_JOBS__POLL_S": "0.1",
        "SIBYL_JOBS__NICE": "0",  # a busy test machine would starve niced job threads
        "SIBYL_JOBS__CHUNK_ROWS": "300",
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0",
    }


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return jobs_registry(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, uri: str) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("jobs-api")
    with run_server(server_env(tmp / ".sibyl", uri), tmp) as s:
        yield s


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def ended(http: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    def state() -> dict[str, Any] | None:
        job: dict[str, Any] = http.get(f"/v1/jobs/{job_id}").json()
        return job if job["state"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(state, timeout, f"job {job_id}")


def test_batch_submit_status_results(http: httpx.Client, tmp_path: Path) -> None:
    x, model = scorer_data()
    path = tmp_path / "users.csv"
    x.assign(user=[f"u{i}" for i in range(N)]).to_csv(path, index=False)
    r = http.post("/v1/batch/submit", json={
        "model": "scorer", "input": str(path), "output": str(tmp_path / "out"),
        "passthrough": ["user"], "priority": "low"})  # fmt: skip
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["job_id"] == job["id"] and job["state"] == "queued" and job["priority"] == "low"
    done = ended(http, job["id"])
    assert done["state"] == "succeeded", done["error"]
    status = http.get(f"/v1/batch/{job['id']}/status").json()
    assert status["progress"] == 1.0 and status["chunks"] == {"total": 4, "done": 4}
    page = http.get(f"/v1/batch/{job['id']}/results", params={"offset": 10, "limit": 3}).json()
    assert page["result"]["rows"] == N and page["result"]["version"] == "1"
    assert [row["row_index"] for row in page["rows"]] == [10, 11, 12]
    assert [row["user"] for row in page["rows"]] == ["u10", "u11", "u12"]
    expected = model.predict_proba(x.iloc[10:13])[:, 1]
    assert [round(row["proba_1"], 4) for row in page["rows"]] == [round(p, 4) for p in expected]
    assert {row["model"] for row in page["rows"]} == {"scorer"}


def test_jobs_life_cycle_and_cancellation(http: httpx.Client) -> None:
    kinds = {k["name"] for k in http.get("/v1/jobs/kinds").json()["kinds"]}
    assert {"batch_score", "sleepy"} <= kinds
    r = http.post("/v1/jobs", json={"kind": "sleepy", "params": {"seconds": 60}})
    assert r.status_code == 201
    jid = r.json()["id"]
    wait_until(lambda: http.get(f"/v1/jobs/{jid}").json()["state"] == "running", 30, "running")
    early = http.get(f"/v1/jobs/{jid}/results")
    assert early.status_code == 409 and "running" in early.json()["error"]
    assert jid in [j["id"] for j in http.get("/v1/jobs", params={"state": "running"}).json()["jobs"]]
    assert http.post(f"/v1/jobs/{jid}/cancel").json()["cancel_requested"] is True
    assert ended(http, jid, 15)["state"] == "cancelled"
    again = http.post(f"/v1/jobs/{jid}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["error"]
    quick = http.post("/v1/jobs", json={"kind": "sleepy", "params": {"label": "q"}}).json()
    assert ended(http, quick["id"])["state"] == "succeeded"
    assert http.get(f"/v1/jobs/{quick['id']}/results").json()["result"]["label"] == "q"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/jobs", {"kind": "nope"}, "kind"),
    ("/v1/jobs", {"kind": "sleepy", "params": {"seconds": "soon"}}, "params.seconds"),
    ("/v1/jobs", {"kind": "sleepy", "params": {"colour": 1}}, "params.colour"),
    ("/v1/jobs", {"kind": "sleepy", "priority": "urgent"}, "priority"),
    ("/v1/jobs", {"kind": "sleepy", "max_attempts": 0}, "max_attempts"),
    ("/v1/jobs", {"kind": "batch_score", "params": {"model": "nope", "input": "/x.csv",
                                                    "output": "/o"}}, "params.model"),
    ("/v1/batch/submit", {"model": "nope", "input": "/x.csv", "output": "/o"}, "model"),
    ("/v1/batch/submit", {"model": "scorer", "input": "/no/such.csv", "output": "/o"},
     "input"),
    ("/v1/batch/submit", {"model": "scorer", "version": "42", "input": "/x.csv",
                          "output": "/o"}, "version"),
    ("/v1/batch/submit", {"model": "scorer", "input": "ftp://h/x.csv", "output": "/o"},
     "input"),
    ("/v1/batch/submit", {"model": "scorer", "output": "/o"}, "input"),
])  # fmt: skip
def test_bad_input_is_a_400_naming_the_field(
    http: httpx.Client, path: str, body: dict[str, Any], field: str
) -> None:
    r = http.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and r.json()["code"] == "INVALID_INPUT"


def test_unknown_jobs_and_filters(http: httpx.Client) -> None:
    assert http.get("/v1/jobs/" + "0" * 32).status_code == 404
    assert http.get(f"/v1/batch/{'0' * 32}/results").status_code == 404
    r = http.get("/v1/jobs", params={"state": "sleeping"})
    assert r.status_code == 400 and r.json()["field"] == "state"


def test_online_predictions_are_served_while_a_batch_job_runs(
    http: httpx.Client, tmp_path: Path
) -> None:
    x, _ = scorer_data()
    path = tmp_path / "big.csv"
    x.sample(20_000, replace=True, random_state=0).to_csv(path, index=False)
    job = http.post("/v1/batch/submit", json={
        "model": "scorer", "input": str(path), "output": str(tmp_path / "out")}).json()  # fmt: skip
    wait_until(lambda: http.get(f"/v1/jobs/{job['id']}").json()["state"] == "running", 30)
    answered = 0
    row = x.iloc[0].to_dict()
    while http.get(f"/v1/jobs/{job['id']}").json()["state"] == "running" and answered < 200:
        r = http.post("/v1/models/scorer/predict", json={"records": [row]})
        assert r.status_code == 200, r.text
        answered += 1
    assert answered > 0
    assert ended(http, job["id"], 120)["state"] == "succeeded"


@pytest.mark.slow
def test_a_queued_job_survives_a_server_restart(tmp_path: Path, uri: str) -> None:
    data_dir = tmp_path / ".sibyl"
    with run_server(server_env(data_dir, uri, workers=0), tmp_path) as s:
        r = httpx.post(f"{s.url}/v1/jobs", json={"kind": "sleepy", "params": {"label": "kept"}})
        jid = r.json()["id"]
        time.sleep(0.5)  # a server without workers never starts it
        assert httpx.get(f"{s.url}/v1/jobs/{jid}").json()["state"] == "queued"
    with run_server(server_env(data_dir, uri, workers=1), tmp_path) as s, httpx.Client(
        base_url=s.url, timeout=30
    ) as http:
        done = ended(http, jid)
        assert done["state"] == "succeeded" and done["result"]["label"] == "kept"

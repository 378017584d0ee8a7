"""Batch scoring jobs end to end in one process: a real MLflow registry, real files (CSV,
Parquet, JSONL), the real embedded queue and store, and S3 through moto's real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest
from sklearn.linear_model import LogisticRegression

from sibyl.errors import InvalidInputError
from sibyl.jobs import JobRequest, JobState, JobSystem, LocalModels
from sibyl.jobs.batch._results import read_page
from tests.helpers import free_port
from tests.jobs_registry import N, scorer_data
from tests.jobs_support import finished, job_system, jobs_registry


@dataclass
class Registry:
    uri: str
    x: pd.DataFrame
    model: LogisticRegression


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    uri = jobs_registry(tmp_path_factory.getbasetemp())
    x, model = scorer_data()
    return Registry(uri, x, model)


@pytest.fixture
def system(tmp_path: Path, registry: Registry) -> Iterator[JobSystem]:
    s = job_system(tmp_path / "sibyl", {"registry": {"tracking_uri": registry.uri}},
                   chunk_rows=300, read_rows=128)
    yield s
    s.stop()


def _input(registry: Registry, path: Path, fmt: str) -> None:
    frame = registry.x.assign(user_id=[f"u{i}" for i in range(N)])
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "parquet":
        frame.to_parquet(path, row_group_size=170)
    else:
        path.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n")


def _check_output(out: str, fmt: str, registry: Registry, job_id: str) -> pd.DataFrame:
    got = ds.dataset(out, format=fmt).to_table().to_pandas().sort_values("row_index")
    assert got["row_index"].tolist() == list(range(N))  # every row once, none twice
    assert got["user_id"].tolist() == [f"u{i}" for i in range(N)]
    expected = registry.model.predict_proba(registry.x)[:, 1]
    assert np.allclose(got["proba_1"].to_numpy(), expected, atol=1e-4)
    assert (got["prediction"].to_numpy() == registry.model.predict(registry.x)).mean() > 0.99
    assert set(got["model"]) == {"scorer"} and set(got["model_version"].astype(str)) == {"1"}
    assert set(got["job_id"]) == {job_id} and got["scored_at"].notna().all()
    return got


@pytest.mark.parametrize(("src", "dst"), [("csv", "parquet"), ("parquet", "csv"),
                                          ("jsonl", "parquet")])
def test_batch_scores_every_row_with_provenance(system: JobSystem, registry: Registry,
                                                tmp_path: Path, src: str, dst: str) -> None:
    path = tmp_path / f"users.{src}"
    _input(registry, path, src)
    out = tmp_path / "scores"
    job = system.service.submit(JobRequest("batch_score", {
        "model": "scorer", "input": str(path), "output": str(out), "output_format": dst,
        "passthrough": ["user_id"]}))
    system.start_workers(LocalModels(system.settings), 2)
    done = finished(system, job.id, timeout=120)
    assert done.state is JobState.SUCCEEDED, done.error
    assert done.result is not None and done.result["rows"] == N and done.result["files"] == 4
    assert done.chunks_total == 4
    _check_output(str(out), dst, registry, job.id)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["rows"] == N and manifest["version"] == "1"
    assert not (out / "_tmp").exists()
    page = read_page(done.result, offset=998, limit=10, s3_endpoint=None)
    assert [r["row_index"] for r in page] == [998, 999]


def test_bad_submissions_name_the_field(system: JobSystem, registry: Registry,
                                        tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    _input(registry, path, "csv")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "old.parquet").write_text("x")
    base = {"model": "scorer", "input": str(path), "output": str(tmp_path / "o")}
    cases = [
        ({"model": "nope"}, "model"),
        ({"version": "9"}, "version"),
        ({"version": "champion"}, "version"),
        ({"input": str(tmp_path / "missing.csv")}, "input"),
        ({"input": "gs://bucket/in.csv"}, "input"),
        ({"output": str(taken)}, "output"),
        ({"output_format": "xlsx"}, "output_format"),
        ({"passthrough": ["prediction"]}, "passthrough"),
        ({"chunk_rows": 0}, "chunk_rows"),
    ]
    for change, field in cases:
        with pytest.raises(InvalidInputError) as err:
            system.service.submit(JobRequest("batch_score", {**base, **change}))
        assert err.value.field == f"params.{field}", change
    with pytest.raises(InvalidInputError) as err:
        system.service.submit(JobRequest("batch_score", base | {"model": "nope"}),
                              field_prefix="")
    assert err.value.field == "model" and "nope" in err.value.message


def test_an_input_without_the_model_columns_fails_the_job(system: JobSystem, registry: Registry,
                                                          tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    registry.x.drop(columns=["f2"]).to_csv(path, index=False)
    job = system.service.submit(JobRequest("batch_score", {
        "model": "scorer", "input": str(path), "output": str(tmp_path / "o")}, max_attempts=3))
    system.start_workers(LocalModels(system.settings), 1)
    done = finished(system, job.id, timeout=60)
    assert done.state is JobState.FAILED and done.attempts == 1
    assert "'f2'" in (done.error or "")


def test_bad_values_fail_the_job_naming_row_and_column(system: JobSystem, registry: Registry,
                                                       tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    bad = registry.x.copy()
    bad.loc[700, "f1"] = np.nan
    bad.to_csv(path, index=False)
    job = system.service.submit(JobRequest("batch_score", {
        "model": "scorer", "input": str(path), "output": str(tmp_path / "o")}))
    system.start_workers(LocalModels(system.settings), 1)
    done = finished(system, job.id, timeout=60)
    assert done.state is JobState.FAILED
    assert "f1" in (done.error or "") and "input row 700 column 'f1'" in (done.error or "")


# ---- S3 through moto's server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_DEFAULT_REGION", "AWS_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                      AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_s3_input_and_output(s3: str, registry: Registry, tmp_path: Path) -> None:
    import boto3

    client = boto3.client("s3", endpoint_url=s3, region_name="us-east-1")
    client.create_bucket(Bucket="batch")
    local = tmp_path / "users.parquet"
    _input(registry, local, "parquet")
    client.upload_file(str(local), "batch", "in/users.parquet")
    system = job_system(tmp_path / "sibyl", {"registry": {"tracking_uri": registry.uri}},
                        chunk_rows=400, read_rows=200, s3_endpoint_url=s3)
    try:
        job = system.service.submit(JobRequest("batch_score", {
            "model": "scorer", "input": "s3://batch/in/", "output": "s3://batch/out/scores",
            "passthrough": ["user_id"]}))
        with pytest.raises(InvalidInputError) as err:
            system.service.submit(JobRequest("batch_score", {
                "model": "scorer", "input": "s3://batch/nothing.csv", "output": "s3://batch/o"}))
        assert err.value.field == "params.input"
        system.start_workers(LocalModels(system.settings), 2)
        done = finished(system, job.id, timeout=120)
        assert done.state is JobState.SUCCEEDED, done.error
        keys = sorted(o["Key"] for o in client.list_objects_v2(
            Bucket="batch", Prefix="out/scores/")["Contents"] if not o["Key"].endswith("/"))
        assert keys == ["out/scores/_manifest.json", "out/scores/part-00000.parquet",
                        "out/scores/part-00001.parquet", "out/scores/part-00002.parquet"]
        (tmp_path / "got").mkdir()
        for key in keys[1:]:
            client.download_file("batch", key, str(tmp_path / "got" / Path(key).name))
        _check_output(str(tmp_path / "got"), "parquet", registry, job.id)
        assert done.result is not None
        assert len(read_page(done.result, 0, 5, s3_endpoint=s3)) == 5
    finally:
        system.stop()

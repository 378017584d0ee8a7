"""The prediction cache on the serving path of a real ``sibyl serve`` over a real MLflow registry.

A second identical request is answered from the cache (``ml_cache_operations_total`` says so);
a new production version never answers with the old one's rows; the purge endpoint empties the
cache; and with the cache in a private ``redis-server`` that the test kills mid-run, every
request still answers 200 while ``unavailable`` is counted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from sibyl import Client
from tests.contract.cache_support import PrivateRedis, redis_server_or_skip
from tests.helpers import Server, run_server, set_alias

FEATURES = ["x0", "x1", "x2", "x3"]


@dataclass
class CacheEnv:
    tmp: Path
    uri: str
    models: dict[str, Any]  # "v1" / "v2": the fitted models of "moving"
    x: pd.DataFrame

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "MLFLOW_TRACKING_URI": self.uri,
            "SIBYL_DATA_DIR": str(self.tmp / f".sibyl-{len(extra)}"),
            "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0.3",
            **extra,
        }


def _log(model: Any, name: str, x: pd.DataFrame, experiment_id: str) -> str:
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            signature=infer_signature(x, model.predict(x)),
            input_example=x.head(3),
            registered_model_name=name,
            pip_requirements=["scikit-learn"],
        )
    return str(info.registered_model_version)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> CacheEnv:
    """A registry of its own: ``cached`` (one version) and ``moving`` (two versions that answer
    differently; production on v1). The global tracking URI is restored."""
    import mlflow

    tmp = tmp_path_factory.mktemp("cache")
    x_arr, y = make_classification(
        n_samples=300, n_features=4, n_informative=3, n_redundant=0, random_state=1
    )
    x = pd.DataFrame(x_arr, columns=FEATURES)
    v1 = LogisticRegression(max_iter=200).fit(x, y)
    v2 = LogisticRegression(max_iter=200).fit(x, 1 - y)  # the opposite answers
    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        exp = mlflow.create_experiment("cache", artifact_location=(tmp / "art").as_uri())
        set_alias("cached", "production", _log(v1, "cached", x, exp))
        set_alias("moving", "production", _log(v1, "moving", x, exp))
        _log(v2, "moving", x, exp)
    finally:
        mlflow.set_tracking_uri(previous)
    return CacheEnv(tmp, uri, {"v1": v1, "v2": v2}, x)


@pytest.fixture(scope="module")
def server(registry: CacheEnv) -> Iterator[Server]:
    """The default cache: in-process."""
    with run_server(registry.env(), registry.tmp) as s:
        yield s


def counts(c: httpx.Client) -> dict[str, float]:
    text = c.get("/metrics").text
    return {
        m[0]: float(m[1])
        for m in re.findall(r'^ml_cache_operations_total\{result="(\w+)"\} (\S+)$', text, re.M)
    }


def rows(env: CacheEnv, start: int, stop: int) -> list[list[float]]:
    return env.x.iloc[start:stop].to_numpy().tolist()


def predict(c: httpx.Client, model: str, body_rows: list[list[float]]) -> dict[str, Any]:
    r = c.post(f"/v1/models/{model}/predict", json={"rows": body_rows})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_the_second_identical_request_is_a_cache_hit(registry: CacheEnv, server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        before = counts(c)
        assert set(before) == {"hit", "miss", "coalesced", "set", "error", "unavailable", "purge"}
        first = predict(c, "cached", rows(registry, 0, 4))
        mid = counts(c)
        assert mid["miss"] - before["miss"] == 4 and mid["set"] - before["set"] == 4
        second = predict(c, "cached", rows(registry, 0, 4))
        after = counts(c)
        assert after["hit"] - mid["hit"] == 4 and after["miss"] == mid["miss"]
        assert second == {**first, "request_id": second["request_id"]}
        want = registry.models["v1"].predict_proba(registry.x.iloc[0:4])
        np.testing.assert_allclose(second["probabilities"], want, atol=1e-5)
        # a request with one cached row and one new one: one hit, one miss
        predict(c, "cached", [rows(registry, 0, 1)[0], rows(registry, 50, 51)[0]])
        last = counts(c)
        assert last["hit"] - after["hit"] == 1 and last["miss"] - after["miss"] == 1


def test_a_new_production_version_never_answers_with_old_rows(
    registry: CacheEnv, server: Server
) -> None:
    body = rows(registry, 10, 18)
    with httpx.Client(base_url=server.url, timeout=30) as c:
        old = predict(c, "moving", body)
        assert old["version"] == "1"
        assert predict(c, "moving", body)["predictions"] == old["predictions"]  # cached now
        set_alias_in(registry, "moving", "production", "2")  # moved outside sibyl
        deadline = time.monotonic() + 60
        new = predict(c, "moving", body)
        while new["version"] != "2" and time.monotonic() < deadline:
            time.sleep(0.2)
            new = predict(c, "moving", body)
        assert new["version"] == "2"
        want = registry.models["v2"].predict_proba(registry.x.iloc[10:18])
        np.testing.assert_allclose(new["probabilities"], want, atol=1e-5)
        assert new["predictions"] == [1 - p for p in old["predictions"]]


def set_alias_in(env: CacheEnv, name: str, alias: str, version: str) -> None:
    import mlflow

    mlflow.MlflowClient(env.uri).set_registered_model_alias(name, alias, version)


def test_the_purge_endpoint_empties_the_cache(registry: CacheEnv, server: Server) -> None:
    body = rows(registry, 100, 103)
    with httpx.Client(base_url=server.url, timeout=30) as c, Client(server.url) as client:
        predict(c, "cached", body)
        predict(c, "cached", body)  # cached now
        r = c.delete("/v1/models/cached/cache", params={"version": "1"})
        assert r.status_code == 200 and r.json()["purged"] >= 3, r.text
        before = counts(c)
        predict(c, "cached", body)
        after = counts(c)
        assert after["miss"] - before["miss"] == 3 and after["hit"] == before["hit"]
        assert client.purge_cache("cached")["purged"] >= 3  # every version
        assert client.purge_cache("cached", 1)["purged"] == 0  # nothing left
        assert counts(c)["purge"] - before["purge"] == 2
        missing = c.delete("/v1/models/no-such-model/cache")
        assert missing.status_code == 404
        assert missing.json()["code"] == "NOT_FOUND" and "no-such-model" in missing.json()["error"]
        spec = c.get("/openapi.json").json()["paths"]["/v1/models/{name}/cache"]["delete"]
        assert spec["summary"] and "404" in spec["responses"]


def test_redis_killed_mid_run_serves_uncached_and_counts_it(
    registry: CacheEnv, tmp_path: Path
) -> None:
    redis = PrivateRedis(redis_server_or_skip(), tmp_path)
    redis.start()
    url = redis.url + "?timeout_s=0.1&backoff_s=0.2&max_backoff_s=0.5"
    try:
        with (
            run_server(registry.env(SIBYL_CACHE__URL=url), registry.tmp) as srv,
            httpx.Client(base_url=srv.url, timeout=30) as c,
        ):
            body = rows(registry, 200, 204)
            first = predict(c, "cached", body)
            predict(c, "cached", body)
            up = counts(c)
            assert up["hit"] >= 4 and up["unavailable"] == 0, up  # Redis answers
            redis.kill()
            answers = [
                predict(c, "cached", rows(registry, 200 + i % 8, 204 + i % 8)) for i in range(30)
            ]  # every call asserts 200
            down = counts(c)
            assert down["unavailable"] > up["unavailable"], down
            assert answers[0]["predictions"] == first["predictions"]
            assert c.get("/readyz").status_code == 200
    finally:
        redis.kill()

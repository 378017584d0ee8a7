"""One real registry (embedded MLflow) with real models, and one real server on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression

from tests.helpers import Server, log_pyfunc, log_sklearn, run_server, set_alias, setup_mlflow
from tests.toys import BrokenModel, EchoModel

FEATURES = [f"f{i}" for i in range(20)]


@dataclass
class Env:
    tmp: Path
    uri: str
    x: pd.DataFrame
    clf: HistGradientBoostingClassifier
    server: Server
    env: dict[str, str]

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30)


def _register(tmp: Path) -> tuple[str, pd.DataFrame, HistGradientBoostingClassifier]:
    uri = setup_mlflow(tmp)
    x_arr, y = make_classification(n_samples=600, n_features=20, random_state=0)
    x = pd.DataFrame(x_arr, columns=FEATURES)
    clf = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(x, y)
    set_alias("clf", "production", log_sklearn(clf, "clf", x, {"accuracy": 0.9}))
    xr, yr = make_regression(n_samples=200, n_features=5, random_state=0)
    xr_df = pd.DataFrame(xr, columns=[f"r{i}" for i in range(5)])
    set_alias("reg", "production", log_sklearn(LinearRegression().fit(xr_df, yr), "reg", xr_df))
    ab = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    set_alias("echo", "production", log_pyfunc(EchoModel(), "echo", ab))
    set_alias("slow", "production", log_pyfunc(EchoModel(delay=0.3), "slow", ab))
    set_alias("broken", "production", log_pyfunc(EchoModel(), "broken", ab))
    log_pyfunc(BrokenModel(), "broken", ab)  # v2: fails to load
    lr = LogisticRegression(max_iter=200)
    set_alias("swap", "production", log_sklearn(lr.fit(x, y), "swap", x, {"accuracy": 0.80}))
    log_sklearn(LogisticRegression(C=0.1, max_iter=200).fit(x, y), "swap", x, {"accuracy": 0.70})
    set_alias("gated", "production", log_sklearn(lr.fit(x, y), "gated", x, {"accuracy": 0.80}))
    log_sklearn(LogisticRegression(C=0.1, max_iter=200).fit(x, y), "gated", x, {"accuracy": 0.70})
    return uri, x, clf


def server_env(tmp: Path, uri: str) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": uri,
        "SIBYL_DATA_DIR": str(tmp / ".sibyl"),
        "SIBYL_SERVER__DEFAULT_MODEL": "clf",
        "SIBYL_SERVER__MAX_BODY_BYTES": "200000",
        "SIBYL_REGISTRY__WATCH_INTERVAL_S": "0.3",
        # the fault tests send the same row again and need the model to run each time
        "SIBYL_CACHE_OVERRIDES": json.dumps({"slow": {"enabled": False}}),
        "SIBYL_BATCHING_OVERRIDES": json.dumps({"slow": {"max_batch_size": 1,
                                                         "max_queue_rows": 2}}),
    }


@pytest.fixture(scope="session")
def registry_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, pd.DataFrame,
                                                                    HistGradientBoostingClassifier]:
    tmp = tmp_path_factory.mktemp("integration")
    uri, x, clf = _register(tmp)
    return tmp, uri, x, clf


@pytest.fixture(scope="session")
def live(registry_env: tuple[Path, str, pd.DataFrame, HistGradientBoostingClassifier]
         ) -> Iterator[Env]:
    tmp, uri, x, clf = registry_env
    env = server_env(tmp, uri)
    with run_server(env, tmp) as server:
        yield Env(tmp, uri, x, clf, server, env)

"""The prediction log through a real server: on the embedded SQLite store (browse, replay,
CLI, metrics), and on a private PostgreSQL stopped in the middle of a load and started again —
every request arrives exactly once and no request fails."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.ensemble import HistGradientBoostingClassifier
from typer.testing import CliRunner

from sibyl.cli._app import app as cli
from sibyl.store import SQLStore
from tests.helpers import Server, run_server
from tests.integration.conftest import server_env
from tests.integration.private_postgres import private_postgres

RegistryEnv = tuple[Path, str, pd.DataFrame, HistGradientBoostingClassifier]
LOG_ENV = {
    "SIBYL_PREDICTION_LOG__INPUTS": "all",
    "SIBYL_PREDICTION_LOG__FLUSH_INTERVAL_S": "0.1",
    "SIBYL_PREDICTION_LOG__RETRY_MAX_S": "1",
    "SIBYL_CACHE__ENABLED": "false",
}


def metric(server: Server, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (0 when absent)."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(want)}\}})? (\S+)$" if want else (
        rf"^{re.escape(name)} (\S+)$")  # fmt: skip
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@dataclass
class LogServer:
    server: Server
    data_dir: Path
    x: pd.DataFrame

    def predict(self, c: httpx.Client, model: str, i: int, **headers: str) -> httpx.Response:
        rows = self.x.iloc[[i % len(self.x)]].to_dict("records")
        # pinned: other modules move the shared registry's production alias of 'swap'
        return c.post(f"/v1/models/{model}/predict", json={"records": rows, "version": "1"},
                      headers={"X-Request-Id": f"req-{model}-{i}", **headers})  # fmt: skip


@pytest.fixture(scope="module")
def sqlite_server(registry_env: RegistryEnv, tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[LogServer]:  # fmt: skip
    tmp, uri, x, _ = registry_env
    own = tmp_path_factory.mktemp("predlog-sqlite")
    env = {**server_env(tmp, uri), **LOG_ENV, "SIBYL_DATA_DIR": str(own / ".sibyl")}
    with run_server(env, own) as server:
        yield LogServer(server, own / ".sibyl", x)


def test_every_request_is_logged_on_the_default_sqlite_store(sqlite_server: LogServer) -> None:
    s = sqlite_server
    with httpx.Client(base_url=s.server.url, timeout=30) as c:
        for i in range(30):
            assert s.predict(c, "swap", i, **{"X-Routing-Key": f"user-{i}"}).status_code == 200
        bad = c.post("/v1/models/swap/predict", json={"records": [{"f0": 1.0}]},
                     headers={"X-Request-Id": "req-swap-bad"})  # fmt: skip
        assert bad.status_code == 400
        wait_for(
            lambda: (
                c.get("/v1/monitoring/models/swap/predictions", params={"limit": 100}).json()[
                    "count"
                ]
                == 31
            ),
            "31 logged rows",
        )
        page = c.get("/v1/monitoring/models/swap/predictions",
                     params={"limit": 100, "inputs": "true"}).json()  # fmt: skip
        failed = c.get("/v1/monitoring/models/swap/predictions", params={"status": "invalid"})
        missing = c.get("/v1/monitoring/models/nope/predictions")
    rows = {r["request_id"]: r for r in page["predictions"]}
    assert set(rows) == {f"req-swap-{i}" for i in range(30)} | {"req-swap-bad"}
    first = rows["req-swap-0"]
    assert (first["status"], first["version"], first["n_rows"]) == ("ok", "1", 1)
    assert first["routing_key"] == "user-0" and first["latency_ms"] > 0
    assert first["inputs"]["columns"] == list(s.x.columns)
    assert first["inputs"]["rows"][0] == pytest.approx(list(s.x.iloc[0]))
    assert len(first["outputs"]["probabilities"][0]) == 2 and first["outputs"]["classes"]
    assert [r["request_id"] for r in failed.json()["predictions"]] == ["req-swap-bad"]
    assert missing.status_code == 404
    store = SQLStore(f"sqlite:///{s.data_dir / 'sibyl.db'}")
    try:
        assert store.count_prediction_log("swap") == 31
    finally:
        store.close()
    assert metric(s.server, "ml_prediction_log_rows_total", result="written") >= 31
    assert metric(s.server, "ml_prediction_log_backlog") == 0


def test_replay_against_another_version(sqlite_server: LogServer) -> None:
    s = sqlite_server
    with httpx.Client(base_url=s.server.url, timeout=60) as c:
        for i in range(100, 160):
            assert s.predict(c, "swap", i).status_code == 200
        wait_for(
            lambda: (
                c.get("/v1/monitoring/models/swap/predictions", params={"limit": 1000}).json()[
                    "count"
                ]
                >= 90
            ),
            "the new rows",
        )
        other = c.post("/v1/monitoring/models/swap/replay",
                       json={"version": "2", "source_version": "1", "limit": 10_000,
                             "max_disagreements": 5}).json()  # fmt: skip
        same = c.post("/v1/monitoring/models/swap/replay", json={"version": "1"}).json()
        too_many = c.post("/v1/monitoring/models/swap/replay",
                          json={"version": "2", "limit": 10_001})  # fmt: skip
        unknown = c.post("/v1/monitoring/models/swap/replay", json={"version": "77"})
    assert other["requests"] >= 90 and other["failed"] == 0 and other["skipped"] == 0
    assert other["rows"] == other["requests"]
    assert 0.5 < other["agreement"] <= 1.0
    assert other["mean_abs_prob_diff"] > 1e-4  # C=0.1 vs C=1: other probabilities
    assert len(other["disagreements"]) == min(5, other["rows"] - other["agreeing_rows"])
    assert same["agreement"] == 1.0 and same["mean_abs_prob_diff"] < 1e-6
    assert too_many.status_code == 400 and too_many.json()["field"] == "limit"
    assert unknown.status_code == 404


def test_the_cli_browses_and_replays(sqlite_server: LogServer) -> None:
    url = sqlite_server.server.url
    runner = CliRunner()
    shown = runner.invoke(cli, ["monitoring", "log", "swap", "--limit", "3", "--url", url])
    assert shown.exit_code == 0, shown.output
    assert "req-swap-" in shown.output and "3 logged request(s) of swap" in shown.output
    replayed = runner.invoke(cli, ["monitoring", "replay", "swap", "2", "--url", url])
    assert replayed.exit_code == 0, replayed.output
    assert "re-scored with version 2" in replayed.output and "agreement" in replayed.output


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_stopped_mid_load_loses_and_duplicates_no_row(
    registry_env: RegistryEnv, tmp_path: Path
) -> None:
    tmp, uri, x, _ = registry_env
    total = 3000
    with private_postgres() as pg:
        env = {**server_env(tmp, uri), **LOG_ENV, "SIBYL_PREDICTION_LOG__INPUTS": "none",
               "SIBYL_STORE__URL": pg.url, "SIBYL_DATA_DIR": str(tmp_path / ".sibyl")}  # fmt: skip
        with run_server(env, tmp_path) as server:
            s = LogServer(server, tmp_path / ".sibyl", x)
            sent: list[int] = []
            statuses: list[int] = []
            lock = threading.Lock()

            def load(worker: int) -> None:
                with httpx.Client(base_url=server.url, timeout=30) as c:
                    for i in range(worker, total, 4):
                        code = s.predict(c, "clf", i).status_code
                        with lock:
                            sent.append(i)
                            statuses.append(code)

            with ThreadPoolExecutor(4) as pool:
                running = [pool.submit(load, w) for w in range(4)]
                wait_for(lambda: len(sent) >= total // 3, "a third of the load")
                pg.stop()  # mid-load
                wait_for(lambda: metric(server, "ml_prediction_log_rows_total",
                                        result="spooled") > 0, "rows spooled")  # fmt: skip
                assert metric(server, "ml_prediction_log_store_up") == 0
                wait_for(lambda: len(sent) >= 2 * total // 3, "two thirds of the load")
                pg.start()
                for f in running:
                    f.result()
            assert sorted(sent) == list(range(total))
            assert set(statuses) == {200}, "a request failed while the store was down"
            engine = sa.create_engine(pg.url.replace("postgresql://", "postgresql+psycopg://"))

            def logged() -> tuple[int, int]:
                with engine.connect() as conn:
                    row = conn.execute(sa.text(
                        "SELECT count(*), count(DISTINCT request_id) FROM prediction_log "
                        "WHERE model = 'clf' AND request_id LIKE 'req-clf-%'")).one()  # fmt: skip
                return int(row[0]), int(row[1])

            wait_for(lambda: logged()[1] == total, "every row in PostgreSQL", timeout=90)
            assert logged() == (total, total)  # every request once, none twice
            with engine.connect() as conn:
                ids = set(
                    conn.execute(
                        sa.text("SELECT request_id FROM prediction_log WHERE model = 'clf'")
                    ).scalars()
                )
            engine.dispose()
            assert ids == {f"req-clf-{i}" for i in range(total)}
            assert metric(server, "ml_prediction_log_rows_total", result="replayed") > 0
            assert metric(server, "ml_prediction_log_rows_total", result="dropped") == 0
            wait_for(lambda: metric(server, "ml_prediction_log_backlog") == 0, "an empty backlog")
            assert metric(server, "ml_prediction_log_store_up") == 1

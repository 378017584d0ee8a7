"""Registry test support: tiny real models logged to an MLflow backend, and a real
``mlflow server`` on this machine's PostgreSQL. Used by ``tests/unit/registry`` and
``tests/contract/test_registry_backends.py``."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

PG_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
MLFLOW_BIN = Path(sys.executable).with_name("mlflow")

# label → (accuracy, log_loss, C, n_features): "better" beats "base"; "wide" differs in signature
MODELS: dict[str, tuple[float, float, float, int]] = {
    "base": (0.80, 0.50, 1.0, 3),
    "better": (0.90, 0.30, 0.5, 3),
    "wide": (0.85, 0.45, 1.0, 4),
}


@dataclass
class LoggedModels:
    """Models logged once per backend; register them under fresh names in each test."""

    tracking_uri: str
    uris: dict[str, str] = field(default_factory=dict)  # label → models:/m-… URI
    run_ids: dict[str, str] = field(default_factory=dict)


def new_name(prefix: str = "m") -> str:
    """A registered-model name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def log_models(tracking_uri: str, artifact_location: str | None) -> LoggedModels:
    """Log one tiny LogisticRegression per entry of :data:`MODELS` (with params, metrics,
    signature and input example) to ``tracking_uri``; the global MLflow URI is restored."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(new_name("exp"), artifact_location=artifact_location)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        out = LoggedModels(tracking_uri)
        for label, spec in MODELS.items():
            out.uris[label], out.run_ids[label] = _log_one(experiment_id, *spec)
        return out
    finally:
        mlflow.set_tracking_uri(previous)


def _log_one(experiment_id: str, accuracy: float, log_loss: float, c: float,
             n_features: int) -> tuple[str, str]:
    import mlflow
    import mlflow.sklearn
    import numpy as np
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.random((30, n_features))
    y = (x[:, 0] > 0.5).astype(int)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({"C": c, "n_features": n_features, "solver": "lbfgs"})
        mlflow.log_metrics({"accuracy": accuracy, "log_loss": log_loss})
        info = mlflow.sklearn.log_model(
            LogisticRegression(C=c).fit(x, y), name="model", serialization_format="cloudpickle",
            input_example=x[:2], signature=infer_signature(x, y),
            pip_requirements=["scikit-learn"])  # skips requirement inference (~6 s)
    return info.model_uri, run.info.run_id


# ---- a real MLflow tracking server on PostgreSQL ---------------------------------------------


def postgres_or_skip() -> None:
    """Skip when PostgreSQL does not answer; fail instead when ``CI=true``."""
    import psycopg

    try:
        psycopg.connect(PG_ADMIN_DSN, connect_timeout=3).close()
    except psycopg.Error as exc:
        reason = f"PostgreSQL on 127.0.0.1:5432 does not answer ({exc}); start it to run this"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@contextmanager
def fresh_database(prefix: str = "sibyl_reg", scheme: str = "postgresql+psycopg") -> Iterator[str]:
    """A new empty PostgreSQL database named ``<prefix>_<random>`` (dropped afterwards); yields
    its URI with ``scheme``."""
    import psycopg

    db = f"{prefix}_{secrets.token_hex(6)}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {db}")
    try:
        yield f"{scheme}://postgres@127.0.0.1:5432/{db}"
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


@contextmanager
def mlflow_server(backend_uri: str, artifacts: Path, log: Path,
                  ready_timeout: float = 90.0) -> Iterator[str]:
    """``mlflow server`` (1 uvicorn worker) on a free port; yields its URL once /health is OK.

    It runs in its own process group (mlflow spawns uvicorn as a child) which is terminated
    on exit.
    """
    port = free_port()
    cmd = [str(MLFLOW_BIN), "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts),
           "--workers", "1"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    with log.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                cwd=artifacts.parent, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, url, log, ready_timeout)
        yield url
    finally:
        _stop_group(proc)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited with {proc.returncode}:\n"
                               f"{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"mlflow server not healthy after {timeout}s:\n"
                       f"{log.read_text(errors='replace')[-3000:]}")


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the server's process group, wait until every member is gone, SIGKILL leftovers."""
    _signal_group(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader so it stops counting as alive
        if not _signal_group(proc.pid, 0):
            break
        time.sleep(0.1)
    _signal_group(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True

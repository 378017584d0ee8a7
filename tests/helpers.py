"""Shared test helpers: free ports, a real sibyl server in a subprocess, model registration."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def run_server(env: Mapping[str, str], tmp: Path, *, ready_timeout: float = 120.0,
               args: tuple[str, ...] = (), wait_for: str = "/readyz") -> Iterator[Server]:
    """Start ``sibyl serve`` (uvicorn) on a free port; yield once ``wait_for`` answers 200
    (``/readyz``: models warm; ``/healthz``: the process is up, ready or not)."""
    port = free_port()
    log = tmp / f"server-{port}.log"
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **env}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sibyl.cli", "serve", "--host", "127.0.0.1", "--port",
             str(port), *args], env=full_env, stdout=fh, stderr=subprocess.STDOUT, cwd=tmp)
    server = Server(f"http://127.0.0.1:{port}", proc, log)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.logs()}")
            try:
                if httpx.get(f"{server.url}{wait_for}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {ready_timeout}s:\n{server.logs()}")
            time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def setup_mlflow(tmp: Path) -> str:
    """An embedded MLflow (SQLite + local artifacts) in ``tmp``; returns the tracking URI."""
    import mlflow

    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name("tests") is None:
        mlflow.create_experiment("tests", artifact_location=(tmp / "artifacts").as_uri())
    mlflow.set_experiment("tests")
    return uri


def log_sklearn(model: Any, name: str, x: Any, metrics: Mapping[str, float] | None = None) -> str:
    """Log + register an sklearn model; returns the version."""
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run():
        if metrics:
            mlflow.log_metrics(dict(metrics))
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="cloudpickle",
                                        signature=infer_signature(x, model.predict(x)),
                                        input_example=x.head(3), registered_model_name=name,
                                        pip_requirements=["scikit-learn"])
    return str(info.registered_model_version)


def log_pyfunc(python_model: Any, name: str, x: Any) -> str:
    """Log + register a pyfunc toy; returns the version."""
    import mlflow
    from mlflow.models import infer_signature

    with mlflow.start_run():
        info = mlflow.pyfunc.log_model(name="model", python_model=python_model,
                                       signature=infer_signature(x), input_example=x.head(2),
                                       registered_model_name=name, pip_requirements=["mlflow"])
    return str(info.registered_model_version)


def set_alias(name: str, alias: str, version: str) -> None:
    """Move an alias with a plain MLflow client (as someone outside sibyl would)."""
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(name, alias, version)

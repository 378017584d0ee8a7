"""Service-layer fixtures: one embedded MLflow registry per session with toy pyfunc models,
registered under fresh names by each test, and helpers to run the manager on real objects."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sibyl.monitoring import Metrics
from sibyl.registry import ModelRegistry
from sibyl.runtime.loader import LoadedModel
from sibyl.runtime.schema import ColumnSpec, InputSchema
from sibyl.runtime.types import Predictor
from sibyl.service import Inputs, ModelManager, PredictionService, PredictRequest
from sibyl.settings import RegistrySettings, RuntimeSettings, ServerSettings, Settings
from tests.toys import BrokenModel, EchoModel
from tests.unit.service._models import ProbeModel

SCHEMA = InputSchema([ColumnSpec("a", "float"), ColumnSpec("b", "float")])
"""Two float columns: the schema of every toy here (logged and in-process)."""
TOYS: dict[str, Any] = {
    "echo": EchoModel(),
    "slow": EchoModel(delay=1.0),
    "broken": BrokenModel(),
    "probe": ProbeModel("probe"),
    "gated": ProbeModel("gated"),
}


def run(fn: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(fn())


def new_name(prefix: str = "m") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rows(*sums: float) -> Inputs:
    """One row ``[s, 0]`` per value: the echo toys predict ``s``."""
    return Inputs("rows", [[s, 0.0] for s in sums])


def request(model: str, *sums: float, ref: str | None = None, **kw: Any) -> PredictRequest:
    return PredictRequest(model, rows(*sums or (1.0,)), ref=ref, **kw)


def toy(name: str, version: str, predictor: Predictor, memory_bytes: int = 0) -> LoadedModel:
    loaded = LoadedModel.from_predictor(name, version, predictor, SCHEMA)
    loaded.memory_bytes = memory_bytes
    return loaded


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric family, read from the Prometheus text ``Metrics.render()`` gives."""
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def version_series(metrics: Metrics, model: str) -> list[str]:
    """Names of every rendered sample of ``model`` that carries a ``version`` label."""
    text = metrics.render().decode()
    return [s.name for f in text_string_to_metric_families(text) for s in f.samples
            if s.labels.get("model") == model and "version" in s.labels]


def requests_by(metrics: Metrics) -> dict[tuple[str, str, str], float]:
    """Non-zero ``ml_prediction_requests_total`` as ``{(model, version, status): count}``."""
    return {
        (d["model"], d["version"], d["status"]): v
        for key, v in samples(metrics, "ml_prediction_requests_total").items()
        for d in [dict(key)]
        if v
    }


class CountingRegistry(ModelRegistry):
    """The real registry, recording every call the manager makes (thread-safe appends)."""

    def __init__(self, tracking_uri: str) -> None:
        super().__init__(tracking_uri)
        self.calls: list[str] = []

    def resolve(self, name: str, ref: str | None = None) -> Any:
        self.calls.append("resolve")
        return super().resolve(name, ref)

    def get_version(self, name: str, version: str | int) -> Any:
        self.calls.append("get_version")
        return super().get_version(name, version)

    def download(self, name: str, version: str | int, dst_dir: str | Path) -> Path:
        self.calls.append("download")
        return super().download(name, version, dst_dir)

    def aliases(self) -> dict[str, dict[str, str]]:
        self.calls.append("aliases")
        return super().aliases()


@dataclass
class Logged:
    """The toys logged once: label → ``models:/…`` URI."""

    tracking_uri: str
    uris: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Logged:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    tmp = tmp_path_factory.mktemp("service-registry")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    exp = MlflowClient(uri).create_experiment("toys", artifact_location=(tmp / "art").as_uri())
    ab = pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    out = Logged(uri)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(uri)  # restored below: other suites use the global URI
    try:
        for label, model in TOYS.items():
            with mlflow.start_run(experiment_id=exp):
                info = mlflow.pyfunc.log_model(
                    name="model", python_model=model, signature=infer_signature(ab),
                    input_example=ab, pip_requirements=["mlflow"])
            out.uris[label] = info.model_uri
    finally:
        mlflow.set_tracking_uri(previous)
    return out


@pytest.fixture
def registry(logged: Logged) -> CountingRegistry:
    return CountingRegistry(logged.tracking_uri)


@dataclass
class Env:
    """What a manager test needs: the registry, the logged toys and a settings factory."""

    registry: CountingRegistry
    logged: Logged
    tmp: Path

    def register(self, name: str, *labels: str, **aliases: str) -> None:
        """Register ``labels`` as versions 1, 2, … of ``name``; then set ``alias=version``."""
        for label in labels:
            self.registry.register_model(name, self.logged.uris[label])
        for alias, version in aliases.items():
            self.registry.client.set_registered_model_alias(name, alias, version)

    def settings(self, *, default_model: str | None = None, **runtime: Any) -> Settings:
        runtime.setdefault("preload_all_production", False)
        runtime.setdefault("warmup_rows", 2)
        return Settings(
            data_dir=self.tmp,
            registry=RegistrySettings(tracking_uri=self.logged.tracking_uri, watch_interval_s=0),
            runtime=RuntimeSettings(**runtime),
            server=ServerSettings(default_model=default_model),
        )

    def manager(self, **runtime: Any) -> ModelManager:
        return ModelManager(self.registry, self.settings(**runtime), Metrics())

    def service(self, manager: ModelManager, default_model: str | None = None
                ) -> PredictionService:
        return PredictionService(manager, manager.metrics, self.settings(
            default_model=default_model))


@pytest.fixture
def env(registry: CountingRegistry, logged: Logged, tmp_path: Path) -> Env:
    return Env(registry, logged, tmp_path)

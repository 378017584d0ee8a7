"""One embedded MLflow (SQLite + local artifacts) per session with three tiny real models;
each test registers them under a model name of its own."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sibyl.registry import ModelRegistry
from tests.contract.registry_support import LoggedModels, log_models, new_name


@pytest.fixture(scope="session")
def logged(tmp_path_factory: pytest.TempPathFactory) -> LoggedModels:
    tmp = tmp_path_factory.mktemp("registry")
    return log_models(f"sqlite:///{tmp / 'mlflow.db'}", (tmp / "artifacts").as_uri())


@pytest.fixture
def registry(logged: LoggedModels) -> ModelRegistry:
    return ModelRegistry(logged.tracking_uri)


@dataclass
class Registered:
    """A fresh model with versions 1 = base (accuracy .80), 2 = better (.90), 3 = wide (.85)."""

    name: str
    registry: ModelRegistry
    logged: LoggedModels

    def add(self, label: str) -> str:
        return self.registry.register_model(self.name, self.logged.uris[label]).version


@pytest.fixture
def model(registry: ModelRegistry, logged: LoggedModels) -> Registered:
    reg = Registered(new_name(), registry, logged)
    for label in ("base", "better", "wide"):
        reg.add(label)
    return reg


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    return tmp_path / "models"

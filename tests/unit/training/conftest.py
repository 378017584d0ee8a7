"""Training tests: one embedded MLflow (SQLite + local artifacts) per module, small seeded data
sets, and a check that nothing leaves MLflow's global tracking URI changed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@dataclass(frozen=True)
class Mlflow:
    """Where a test registers: tracking URI and artifact root."""

    uri: str
    artifacts: str


@pytest.fixture(scope="module")
def mlflow_target(tmp_path_factory: pytest.TempPathFactory) -> Mlflow:
    """A fresh embedded MLflow; its database is created up front (not inside a timed call)."""
    from sibyl.registry import ModelRegistry

    tmp = tmp_path_factory.mktemp("mlflow")
    target = Mlflow(f"sqlite:///{tmp / 'mlflow.db'}", (tmp / "artifacts").as_uri())
    ModelRegistry(target.uri).list_models()
    return target


@pytest.fixture(autouse=True)
def global_uri_untouched() -> Iterator[None]:
    """Training talks to the registry it is given: the global tracking URI stays as it was."""
    import mlflow

    before = mlflow.get_tracking_uri()
    yield
    assert mlflow.get_tracking_uri() == before


def new_name(prefix: str = "m") -> str:
    """A registered-model name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def binary_frame(n: int = 600, seed: int = 0, noise: float = 0.6) -> pd.DataFrame:
    """Numeric features a–d, a categorical ``city`` and a 0/1 target ``y``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4))
    logit = 1.5 * x[:, 0] + x[:, 1] - 0.5 * x[:, 2]
    y = (logit + rng.normal(scale=noise * 2, size=n) > 0).astype(int)
    frame = pd.DataFrame(x, columns=list("abcd"))
    frame["city"] = rng.choice(["paris", "lyon", "nice"], n)
    frame["y"] = y
    return frame


@pytest.fixture
def csv_path(tmp_path: Path) -> Path:
    """:func:`binary_frame` written to a CSV file."""
    path = tmp_path / "data.csv"
    binary_frame().to_csv(path, index=False)
    return path

"""Comparing versions and downloading their files from an embedded MLflow registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sibyl.errors import InvalidInputError
from sibyl.registry import ModelRegistry
from sibyl.registry._artifacts import COMPLETE_MARKER
from tests.helpers import free_port
from tests.unit.registry.conftest import Registered


def test_compare_same_signature(model: Registered) -> None:
    model.registry.promote(model.name, "1")
    result = model.registry.compare(model.name, "production", "2")
    assert (result.a.version, result.b.version) == ("1", "2")
    assert result.params == {"C": ("1.0", "0.5")}
    assert result.metrics == {"accuracy": (0.80, 0.90), "log_loss": (0.50, 0.30)}
    assert result.signature_equal
    assert result.signature_a is not None
    assert json.loads(result.signature_a)["inputs"]
    assert all(size is not None for size in result.size_bytes)
    assert min(s for s in result.size_bytes if s is not None) > 500
    assert result.flavors == (("python_function", "sklearn"), ("python_function", "sklearn"))
    assert result.a.flavors == ("python_function", "sklearn")


def test_compare_different_signature_and_all_params(model: Registered) -> None:
    result = model.registry.compare(model.name, 1, 3, only_differences=False)
    assert not result.signature_equal
    assert result.params["n_features"] == ("3", "4")
    assert result.params["solver"] == ("lbfgs", "lbfgs")
    assert not result.only_differences


def test_download_writes_a_marked_copy_and_reuses_it(model: Registered,
                                                     downloads: Path) -> None:
    import mlflow.sklearn

    path = model.registry.download(model.name, "1", downloads)
    assert path == (downloads / model.name / "1").resolve()
    assert (path / "MLmodel").is_file()
    assert (path / COMPLETE_MARKER).is_file()
    estimator = mlflow.sklearn.load_model(str(path))
    assert estimator.predict(np.zeros((2, 3))).shape == (2,)
    assert [p.name for p in path.parent.iterdir()] == ["1"]  # no staging leftovers
    # a complete copy is reused without asking the backend at all (nothing listens there)
    offline = ModelRegistry(f"http://127.0.0.1:{free_port()}")
    assert offline.download(model.name, "1", downloads) == path


def test_download_replaces_an_incomplete_copy(model: Registered, downloads: Path) -> None:
    partial = downloads / model.name / "2"
    partial.mkdir(parents=True)
    (partial / "half-written.pkl").write_bytes(b"\0")
    path = model.registry.download(model.name, 2, downloads)
    assert sorted(p.name for p in path.iterdir()) >= [COMPLETE_MARKER, "MLmodel"]
    assert not (path / "half-written.pkl").exists()


@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_download_refuses_names_that_escape(registry: ModelRegistry, downloads: Path,
                                            name: str) -> None:
    with pytest.raises(InvalidInputError, match="cannot be used as a directory"):
        registry.download(name, "1", downloads)

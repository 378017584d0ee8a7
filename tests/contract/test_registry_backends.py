"""The registry contract on every MLflow backend: embedded SQLite, and a real ``mlflow server``
on this machine's PostgreSQL (artifacts proxied by the server)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow import MlflowClient

from sibyl.errors import NotFoundError, PromotionRefusedError
from sibyl.registry import AliasChange, Gate, ModelRegistry, RegistryWatcher, Stage
from tests.contract.registry_support import (
    LoggedModels,
    fresh_database,
    log_models,
    mlflow_server,
    new_name,
    postgres_or_skip,
)


@dataclass
class Backend:
    kind: str
    registry: ModelRegistry
    logged: LoggedModels

    def fresh_model(self) -> str:
        """A new model with versions 1 = base (accuracy .80), 2 = better (.90), 3 = wide (.85)."""
        name = new_name()
        for label in ("base", "better", "wide"):
            self.registry.register_model(name, self.logged.uris[label])
        return name

    def plain_client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.logged.tracking_uri)


def _sqlite(tmp: Path) -> Iterator[Backend]:
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    logged = log_models(uri, (tmp / "artifacts").as_uri())
    yield Backend("sqlite", ModelRegistry(uri), logged)


def _server(tmp: Path) -> Iterator[Backend]:
    postgres_or_skip()
    (tmp / "artifacts").mkdir()
    with fresh_database() as db, mlflow_server(db, tmp / "artifacts", tmp / "server.log") as url:
        logged = log_models(url, None)  # default root: mlflow-artifacts:/ via the server
        yield Backend("server", ModelRegistry(url), logged)


_SERVER = pytest.param("server", marks=[pytest.mark.postgres, pytest.mark.slow])  # start-up 13-30 s


@pytest.fixture(scope="module", params=["sqlite", _SERVER])
def backend(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    tmp = tmp_path_factory.mktemp(f"registry-{request.param}")
    factory = _sqlite if request.param == "sqlite" else _server
    yield from factory(tmp)


def test_register_and_resolve(backend: Backend) -> None:
    reg = backend.registry
    name = backend.fresh_model()
    versions = reg.list_versions(name)
    assert [v.version for v in versions] == ["3", "2", "1"]
    assert all(v.stage is Stage.DRAFT and v.aliases == () for v in versions)
    assert versions[0].run_id == backend.logged.run_ids["wide"]
    assert reg.resolve(name, "latest").version == "3"
    assert reg.resolve(name, "2").run_id == backend.logged.run_ids["better"]
    with pytest.raises(NotFoundError, match=f"promote one with `sibyl models promote {name}"):
        reg.resolve(name)


def test_promote_keeps_one_production_and_archives_the_previous(backend: Backend) -> None:
    reg = backend.registry
    name = backend.fresh_model()
    reg.set_stage(name, "3", Stage.STAGING)
    assert reg.promote(name, "1").previous is None
    result = reg.promote(name, "2", gate=Gate("accuracy"))
    assert (result.previous, result.gate and result.gate.passed) == ("1", True)
    stages = {v.version: v.stage for v in reg.list_versions(name)}
    assert stages == {"3": Stage.STAGING, "2": Stage.PRODUCTION, "1": Stage.ARCHIVED}
    production = reg.resolve(name)
    assert (production.version, production.stage, production.aliases) == (
        "2", Stage.PRODUCTION, ("production",))
    assert reg.get_version(name, "1").stage is Stage.ARCHIVED
    assert reg.resolve(name, "@staging").version == "3"
    listed = next(m for m in reg.list_models() if m.name == name)
    assert (listed.latest_version, listed.aliases) == ("3", {"production": "2", "staging": "3"})
    assert reg.previous_production(name) == "1"
    with pytest.raises(PromotionRefusedError, match="accuracy"):
        reg.promote(name, "3", gate=Gate("accuracy"))
    assert reg.aliases()[name] == {"production": "2", "staging": "3"}


def test_watcher_sees_changes_from_a_plain_client(backend: Backend) -> None:
    name = backend.fresh_model()
    watcher = RegistryWatcher(backend.registry, 60, lambda change: None)
    watcher.poll_once()
    client = backend.plain_client()
    client.set_registered_model_alias(name, "production", "1")
    client.set_registered_model_alias(name, "canary", "2")
    changes = [c for c in watcher.poll_once() if c.name == name]
    assert changes == [AliasChange(name, "canary", None, "2"),
                       AliasChange(name, "production", None, "1")]
    client.set_registered_model_alias(name, "production", "3")
    client.delete_registered_model_alias(name, "canary")
    changes = [c for c in watcher.poll_once() if c.name == name]
    assert changes == [AliasChange(name, "canary", "2", None),
                       AliasChange(name, "production", "1", "3")]


def test_download_and_compare(backend: Backend, tmp_path: Path) -> None:
    reg = backend.registry
    name = backend.fresh_model()
    path = reg.download(name, "1", tmp_path)
    assert (path / "MLmodel").is_file()
    assert reg.download(name, "1", tmp_path) == path
    result = reg.compare(name, "1", "3")
    assert result.params == {"n_features": ("3", "4")}
    assert result.metrics["accuracy"] == (0.80, 0.85)
    assert not result.signature_equal
    assert [size is not None and size > 500 for size in result.size_bytes] == [True, True]
    assert result.flavors[0] == ("python_function", "sklearn")

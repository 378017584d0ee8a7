"""Settings: env (nested with __), TOML, MLFLOW_TRACKING_URI, documented everywhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from sibyl.settings import Settings, describe_settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_live_under_dot_sibyl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    s = Settings()
    assert s.tracking_uri() == f"sqlite:///{(Path('.sibyl').resolve() / 'mlflow.db')}"
    assert s.artifact_root().endswith("/.sibyl/mlartifacts")
    assert s.download_dir() == Path(".sibyl/models")


def test_env_nested_with_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIBYL_SERVER__PORT", "9123")
    monkeypatch.setenv("SIBYL_BATCHING__MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("SIBYL_RUNTIME__PRELOAD", '["a", "b@staging"]')
    monkeypatch.setenv("SIBYL_BATCHING_OVERRIDES", '{"churn": {"max_batch_size": 3}}')
    s = load_settings()
    assert s.server.port == 9123
    assert s.batching.max_batch_size == 7
    assert s.runtime.preload == ["a", "b@staging"]
    assert s.batching_for("churn").max_batch_size == 3
    assert s.batching_for("other").max_batch_size == 7


def test_toml_file_and_env_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "conf.toml"
    toml.write_text('[server]\nport = 9000\ndefault_model = "m"\n[batching]\nmax_wait_ms = 5\n')
    monkeypatch.setenv("SIBYL_CONFIG", str(toml))
    monkeypatch.setenv("SIBYL_SERVER__PORT", "9001")
    s = load_settings()
    assert s.server.port == 9001  # env beats the file
    assert s.server.default_model == "m"
    assert s.batching.max_wait_ms == 5


def test_mlflow_tracking_uri_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert Settings().tracking_uri() == "http://mlflow.example:5000"
    monkeypatch.setenv("SIBYL_REGISTRY__TRACKING_URI", "sqlite:///x.db")
    assert load_settings().tracking_uri() == "sqlite:///x.db"


def test_every_setting_is_documented_here_and_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    for env, _, _, doc in describe_settings(Settings()):
        assert doc, f"{env} has no docstring"
        assert f"`{env}`" in readme, f"{env} is missing from README's configuration table"

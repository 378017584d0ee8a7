"""The registry watcher: sees alias changes made by anyone, survives failures, stops fast."""

from __future__ import annotations

import threading
import time

import pytest
from mlflow import MlflowClient

from sibyl.errors import BackendUnavailableError, InvalidInputError
from sibyl.registry import AliasChange, RegistryWatcher
from tests.unit.registry.conftest import Registered


def _mine(changes: list[AliasChange], name: str) -> list[AliasChange]:
    return [c for c in changes if c.name == name]


def test_poll_once_sees_changes_made_by_a_plain_client(model: Registered) -> None:
    seen: list[AliasChange] = []
    watcher = RegistryWatcher(model.registry, 60, seen.append)
    assert watcher.poll_once() == []  # baseline
    other = MlflowClient(tracking_uri=model.logged.tracking_uri)
    name = model.name
    other.set_registered_model_alias(name, "production", "1")
    assert _mine(watcher.poll_once(), name) == [AliasChange(name, "production", None, "1")]
    other.set_registered_model_alias(name, "production", "2")
    other.set_registered_model_alias(name, "canary", "3")
    assert _mine(watcher.poll_once(), name) == [
        AliasChange(name, "canary", None, "3"), AliasChange(name, "production", "1", "2")]
    other.delete_registered_model_alias(name, "canary")
    assert _mine(watcher.poll_once(), name) == [AliasChange(name, "canary", "3", None)]
    assert watcher.poll_once() == []
    assert _mine(seen, name) == [
        AliasChange(name, "production", None, "1"), AliasChange(name, "canary", None, "3"),
        AliasChange(name, "production", "1", "2"), AliasChange(name, "canary", "3", None)]


def test_thread_notices_a_promotion_and_stops_quickly(model: Registered) -> None:
    got = threading.Event()
    seen: list[AliasChange] = []

    def on_change(change: AliasChange) -> None:
        seen.append(change)
        got.set()

    watcher = RegistryWatcher(model.registry, 0.05, on_change)
    watcher.start()
    try:
        assert watcher.running
        MlflowClient(tracking_uri=model.logged.tracking_uri).set_registered_model_alias(
            model.name, "production", "2")
        assert got.wait(10), "the watcher did not report the alias change"
    finally:
        started = time.monotonic()
        watcher.stop()
    assert time.monotonic() - started < 2
    assert not watcher.running
    assert _mine(seen, model.name) == [AliasChange(model.name, "production", None, "2")]


class FlakyRegistry:
    """Fails on the calls listed in ``failures``; otherwise serves ``snapshots`` in turn."""

    def __init__(self, snapshots: list[dict[str, dict[str, str]]], failures: set[int]) -> None:
        self.snapshots = snapshots
        self.failures = failures
        self.calls = 0

    def aliases(self) -> dict[str, dict[str, str]]:
        self.calls += 1
        if self.calls in self.failures:
            raise BackendUnavailableError("MLflow registry http://x cannot be reached")
        return self.snapshots[min(len(self.snapshots) - 1, self.calls - 1)]


def test_thread_survives_backend_and_callback_errors() -> None:
    snapshots = [{}, {}, {}, {"m": {"production": "1"}}, {"m": {"production": "2"}}]
    source = FlakyRegistry(snapshots, failures={1, 2, 3})  # even the baseline fails at first
    seen: list[AliasChange] = []
    done = threading.Event()

    def on_change(change: AliasChange) -> None:
        seen.append(change)
        if change.new_version == "2":
            done.set()
        raise RuntimeError("a broken callback must not stop the watcher")

    watcher = RegistryWatcher(source, 0.01, on_change)
    watcher.start()
    try:
        assert done.wait(10), f"watcher stopped early after {source.calls} calls"
    finally:
        watcher.stop()
    assert seen == [AliasChange("m", "production", "1", "2")]


def test_poll_once_propagates_backend_errors_and_keeps_the_last_snapshot() -> None:
    source = FlakyRegistry([{"m": {}}, {"m": {}}, {"m": {"production": "4"}}], failures={2})
    watcher = RegistryWatcher(source, 1, lambda change: None)
    assert watcher.poll_once() == []
    with pytest.raises(BackendUnavailableError):
        watcher.poll_once()
    assert watcher.poll_once() == [AliasChange("m", "production", None, "4")]


def test_interval_must_be_positive() -> None:
    with pytest.raises(InvalidInputError, match="interval must be > 0"):
        RegistryWatcher(FlakyRegistry([{}], set()), 0, lambda change: None)

"""Torch training jobs: a killed DKT run resumes from its checkpoint and ends where an
uninterrupted run ends; int8 dynamic quantization shrinks the LSTM and keeps its AUC."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from sibyl.registry import ModelRegistry
from sibyl.training import Cancelled, compress_model, train_knowledge_tracing
from sibyl.training._torch import fit_knowledge_tracer
from tests.helpers import ROOT
from tests.unit.training.conftest import Mlflow, new_name

SETTINGS: dict[str, Any] = {
    "n_students": 300,
    "hyper": {"hidden": 16, "embedding": 8, "dropout": 0.1},
    "training": {"max_epochs": 6, "patience": 6, "lr": 1e-2, "batch_size": 32},
    "seed": 1,
}


def _kill_after(checkpoint: Path, epochs: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.unit.training._kt_worker", str(checkpoint)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.strip() == f"epoch {epochs}":
                proc.kill()  # SIGKILL: no cleanup, the checkpoint is whatever was on disk
                break
        else:
            pytest.fail("the worker finished before it could be killed")
    finally:
        proc.wait(timeout=60)


def test_killed_training_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "dkt.pt"
    _kill_after(checkpoint, epochs=2)
    saved = torch.load(checkpoint, weights_only=True)
    assert saved["epoch"] >= 2
    epochs: list[str] = []
    resumed, _ = fit_knowledge_tracer(
        "lstm", checkpoint=checkpoint, progress=lambda _f, m: epochs.append(m), **SETTINGS
    )
    first_epoch = int(epochs[1].split(":")[0].split()[1])  # epochs[0] is the data step
    assert first_epoch == saved["epoch"] + 1, "resumed after the last checkpointed epoch"
    straight, _ = fit_knowledge_tracer("lstm", **SETTINGS)
    assert resumed.fit.epochs == straight.fit.epochs == 6
    assert resumed.auc == pytest.approx(straight.auc, abs=1e-6)
    for key, value in straight.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[key], value)


def test_cancel_leaves_a_checkpoint_to_resume(tmp_path: Path) -> None:
    checkpoint = tmp_path / "dkt.pt"
    seen: list[str] = []

    def stop() -> bool:
        return any(m.startswith("epoch 3") for m in seen)

    with pytest.raises(Cancelled):
        fit_knowledge_tracer(
            "lstm",
            checkpoint=checkpoint,
            should_stop=stop,
            progress=lambda _f, m: seen.append(m),
            **SETTINGS,
        )
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 3


def test_quantization_shrinks_an_lstm_and_keeps_auc(mlflow_target: Mlflow) -> None:
    name = new_name("dkt")
    trained = train_knowledge_tracing(
        "lstm",
        tracking_uri=mlflow_target.uri,
        artifact_location=mlflow_target.artifacts,
        name=name,
        n_students=400,
        hyper={"hidden": 64, "embedding": 32},
        training={"max_epochs": 4, "patience": 4, "lr": 1e-2, "batch_size": 32},
    )
    assert trained.stage == "staging" and trained.metrics["auc"] > 0.65
    outcome = compress_model(
        name,
        trained.version,
        tracking_uri=mlflow_target.uri,
        artifact_location=mlflow_target.artifacts,
        tolerance=0.01,
    )
    report = outcome.report
    assert report.method == "dynamic_int8"
    assert report.metric_before == pytest.approx(trained.metrics["auc"], abs=1e-6)
    assert report.metric_after is not None and report.metric_before is not None
    assert abs(report.metric_after - report.metric_before) <= 0.01
    assert report.size_after < 0.6 * report.size_before
    registry = ModelRegistry(mlflow_target.uri)
    info = registry.get_version(name, outcome.version or "")
    assert info.tags["sibyl.training.compressed_from"] == trained.version
    path = registry.download(
        name, info.version, mlflow_target.artifacts.removeprefix("file://") + "-dl"
    )
    import mlflow.pytorch

    loaded = mlflow.pytorch.load_model(str(path))
    assert type(loaded.lstm).__module__.startswith("torch.ao.nn.quantized")

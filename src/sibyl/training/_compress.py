"""Compression of a registered model version into a new, smaller version.

* scikit-learn flavor holding a tree ensemble (or a pipeline ending in one) → tree pruning
  (:mod:`sibyl.training._prune`) on validation data: ``data``/``target`` when given, else the
  holdout the training run logged (``sibyl/holdout.parquet``, target from the version's tag
  ``sibyl.training.target``). The metric (default: the task's) stays within ``tolerance`` of
  the original's on that set.
* pytorch flavor → dynamic int8 quantization (:mod:`sibyl.training._quantize`). The zoo's
  knowledge-tracing models are scored (AUC) on Simulated-5 regenerated from their run's
  ``n_students`` and ``seed``; a quantized model worse than ``tolerance`` is not registered.

The report gives size, p99 latency and metric before and after, all measured here on the same
data. The compressed model is registered as a new version of the same model (stage
``staging`` by default) with tags ``sibyl.training.compressed_from`` (the source version) and
``sibyl.training.compression`` (what was done), the source's reference profile copied over.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import InvalidInputError, NotFoundError
from sibyl.training._control import Progress, StopCheck, check_stop, never_stop, no_progress
from sibyl.training._data import Task, load_dataset
from sibyl.training._metrics import check_metric, default_metric, latency_p99_ms, score, size_bytes
from sibyl.training._tracking import (
    TAG_PREFIX,
    load_holdout,
    log_sklearn_model,
    log_torch_model,
    log_values,
    register_version,
    training_run,
    training_tags,
)
from sibyl.training._train import _check_stage, open_registry

if TYPE_CHECKING:
    from sibyl.registry import ModelRegistry


@dataclass(frozen=True)
class CompressionReport:
    """What compression did and its effect, measured on the same data before and after."""

    method: str
    metric: str | None
    tolerance: float
    metric_before: float | None
    metric_after: float | None
    size_before: int
    size_after: int
    latency_p99_ms_before: float
    latency_p99_ms_after: float
    detail: str

    @property
    def size_ratio(self) -> float:
        """size after / size before."""
        return self.size_after / max(self.size_before, 1)


@dataclass(frozen=True)
class CompressionOutcome:
    """The source version, the new version (None when not registered) and the report."""

    name: str
    source_version: str
    version: str | None
    stage: str | None
    report: CompressionReport

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (a job's result)."""
        return asdict(self)


def compress_model(
    name: str,
    version: str | int,
    *,
    tracking_uri: str,
    artifact_location: str | None = None,
    tolerance: float = 0.01,
    metric: str | None = None,
    data: Any = None,
    target: str | None = None,
    register: bool = True,
    stage: str = "staging",
    progress: Progress = no_progress,
    should_stop: StopCheck = never_stop,
) -> CompressionOutcome:
    """Compress version ``version`` of ``name`` (see the module docstring) and register the
    result as a new version in ``stage``."""
    if tolerance < 0:
        raise InvalidInputError(f"tolerance must be >= 0, got {tolerance}", field="tolerance")
    _check_stage(stage)
    registry = open_registry(tracking_uri, artifact_location)
    number = registry.get_version(name, version).version
    progress(0.05, f"loading {name} v{number}")
    flavor, model = _load(registry, name, number)
    check_stop(should_stop, f"compression of {name} v{number}")
    example = None
    if flavor == "sklearn":
        report, compressed, example = _prune(
            registry, name, number, model, tolerance, metric, data, target, progress
        )
    else:
        report, compressed = _quantize(registry, name, number, model, tolerance, progress)
    check_stop(should_stop, f"compression of {name} v{number}")
    if not register:
        return CompressionOutcome(name, number, None, None, report)
    progress(0.85, f"registering the compressed {name}")
    new = _register(registry, name, number, compressed, report, stage, example)
    progress(1.0, f"registered {name} v{new} ({report.size_ratio:.0%} of the size)")
    return CompressionOutcome(name, number, new, stage, report)


def _load(registry: ModelRegistry, name: str, version: str) -> tuple[str, Any]:
    import mlflow.pytorch
    import mlflow.sklearn
    import yaml

    with tempfile.TemporaryDirectory(prefix="sibyl-compress-") as tmp:
        path = registry.download(name, version, tmp)
        flavors = yaml.safe_load((Path(path) / "MLmodel").read_text()).get("flavors", {})
        if "sklearn" in flavors:
            return "sklearn", mlflow.sklearn.load_model(str(path))
        if "pytorch" in flavors:
            return "pytorch", mlflow.pytorch.load_model(str(path), map_location="cpu")
    raise InvalidInputError(
        f"Model '{name}' version {version} has flavors {sorted(flavors)}; sibyl compresses "
        "scikit-learn tree ensembles and torch models",
        field="model",
    )


def _prune(
    registry: ModelRegistry,
    name: str,
    version: str,
    model: Any,
    tolerance: float,
    metric: str | None,
    data: Any,
    target: str | None,
    progress: Progress,
) -> tuple[CompressionReport, Any, Any]:
    from threadpoolctl import threadpool_limits

    from sibyl.training._prune import prune_trees

    x, y, task = _validation(registry, name, version, data, target)
    goal = check_metric(metric or default_metric(task), task)
    progress(0.2, f"pruning trees on {len(x)} validation rows")
    with threadpool_limits(1):  # comparable, stable latencies (OpenMP pools spin when busy)
        pruned = prune_trees(model, x, y, task, goal, tolerance)
        before, after = score(model, x, y, task, goal), score(pruned.model, x, y, task, goal)
        report = CompressionReport(
            "tree_pruning",
            goal,
            tolerance,
            before,
            after,
            size_bytes(model),
            size_bytes(pruned.model),
            latency_p99_ms(model.predict, x, max_seconds=2.0),
            latency_p99_ms(pruned.model.predict, x, max_seconds=2.0),
            pruned.method,
        )
    return report, pruned.model, x


def _validation(
    registry: ModelRegistry, name: str, version: str, data: Any, target: str | None
) -> tuple[Any, Any, Task]:
    tags = training_tags(registry, name, version)
    column = target or tags.get("target")
    if data is None:
        data = load_holdout(registry, name, version)
        if data is None:
            raise NotFoundError(
                f"Model '{name}' version {version} has no logged holdout; pass validation data "
                "(data=<csv/parquet>, target=<column>)"
            )
    if not column:
        raise InvalidInputError("Name the target column of the validation data", field="target")
    dataset = load_dataset(data, column, task=tags.get("task", "auto"))
    return dataset.x, dataset.y, dataset.task


def _quantize(
    registry: ModelRegistry,
    name: str,
    version: str,
    model: Any,
    tolerance: float,
    progress: Progress,
) -> tuple[CompressionReport, Any]:
    from sibyl.training._quantize import (
        is_knowledge_tracer,
        kt_evaluator,
        quantize_dynamic,
        torch_bytes,
    )

    progress(0.2, "quantizing Linear/LSTM weights to int8")
    quantized = quantize_dynamic(model)
    if not is_knowledge_tracer(model):
        report = CompressionReport(
            "dynamic_int8",
            None,
            tolerance,
            None,
            None,
            torch_bytes(model),
            torch_bytes(quantized),
            float("nan"),
            float("nan"),
            "no evaluator for this torch model",
        )
        return report, quantized
    params = registry.client.get_run(_run_id(registry, name, version)).data.params
    score_fn, latency_fn = kt_evaluator(
        int(params.get("n_students", 4000)), int(params.get("seed", 0))
    )
    progress(0.4, "scoring before and after on Simulated-5")
    before, after = score_fn(model), score_fn(quantized)
    report = CompressionReport(
        "dynamic_int8",
        "auc",
        tolerance,
        before,
        after,
        torch_bytes(model),
        torch_bytes(quantized),
        latency_fn(model),
        latency_fn(quantized),
        "int8 weights for nn.Linear and nn.LSTM (dynamic quantization)",
    )
    if after < before - tolerance:
        raise InvalidInputError(
            f"Quantization costs {before - after:.4f} AUC, more than the tolerance "
            f"{tolerance}; keep the float model or raise the tolerance",
            field="tolerance",
        )
    return report, quantized


def _register(
    registry: ModelRegistry,
    name: str,
    source: str,
    model: Any,
    report: CompressionReport,
    stage: str,
    example: Any,
) -> str:
    """Log ``model`` (scikit-learn when ``example`` — its input rows — is given, else torch)
    and register it as a new version of ``name``."""
    from sibyl.registry import load_profile

    tags = {
        **training_tags(registry, name, source),
        "compressed_from": source,
        "compression": report.method,
    }
    metrics = {
        k: v for k, v in asdict(report).items() if isinstance(v, int | float) and k != "tolerance"
    }
    with training_run(registry, f"{name}-compression", f"{name} v{source} {report.method}") as run:
        log_values(
            registry.client,
            run,
            {
                "method": report.method,
                "tolerance": report.tolerance,
                "source_version": source,
                "detail": report.detail,
            },
            metrics,
        )
        if example is not None:
            uri = log_sklearn_model(registry.client, run, model, example)
        else:
            uri = log_torch_model(
                registry.client, run, model, **_torch_args(registry, name, source, model)
            )
    try:
        profile = load_profile(registry, name, source)
    except NotFoundError:
        profile = None
    description = (
        f"v{source} compressed ({report.method}: {report.detail}); size "
        f"{report.size_before} → {report.size_after} bytes"
    )
    tags = {k.removeprefix(TAG_PREFIX): v for k, v in tags.items()}
    return register_version(
        registry, name, uri, run, description=description, tags=tags, stage=stage, profile=profile
    ).version


def _torch_args(registry: ModelRegistry, name: str, version: str, model: Any) -> dict[str, Any]:
    from sibyl.training._quantize import is_knowledge_tracer

    if not is_knowledge_tracer(model):
        return {"serialization_format": "pickle"}
    from sibyl.zoo.knowledge_tracing.data import simulate_5
    from sibyl.zoo.knowledge_tracing.publish import request_frame, sequence_metadata, signature

    params = registry.client.get_run(_run_id(registry, name, version)).data.params
    seed = int(params.get("seed", 0))
    requests = request_frame(
        simulate_5(int(params.get("n_students", 4000)), seed=seed).train(), seed
    )
    return {
        "serialization_format": "pickle",
        "signature": signature(),
        "input_example": requests.head(5),
        "metadata": sequence_metadata(model),
    }


def _run_id(registry: ModelRegistry, name: str, version: str) -> str:
    run_id = registry.client.get_model_version(name, version).run_id
    if not run_id:
        raise NotFoundError(f"Model '{name}' version {version} has no training run to read")
    return str(run_id)

"""MLflow logging of training runs and registration of their models — through explicit
``MlflowClient`` calls only, never MLflow's global tracking URI or active run, so jobs in
threads of one process (and tuning trials in parallel) never step on each other.

A training run holds: params, metrics, the model under ``model/`` (MLmodel with signature and
input example, cloudpickled scikit-learn flavor), ``reference_profile.json`` (drift reference:
:func:`sibyl.monitoring.drift.build_profile` of the training inputs and the model's outputs on
them) and ``sibyl/holdout.parquet`` (the held-out rows with the target column — what promotion
gates and compression re-score on). The registered version carries the tags
``sibyl.training.*`` (task, target, estimator, source …), the profile (``save_profile``) and the
NaN policy ``allow`` (the pipeline imputes missing values).
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.training._control import Cancelled

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from sibyl.monitoring.drift import ReferenceProfile
    from sibyl.registry import ModelRegistry

HOLDOUT_ARTIFACT = "sibyl/holdout.parquet"
TAG_PREFIX = "sibyl.training."
PARENT_RUN_TAG = "mlflow.parentRunId"
_MAX_PARAM = 500


@dataclass(frozen=True, slots=True)
class RegisteredVersion:
    """A model version a training call registered: name, version, its run and stage."""

    name: str
    version: str
    run_id: str
    stage: str


@contextmanager
def training_run(
    registry: ModelRegistry,
    experiment: str,
    run_name: str,
    *,
    parent_run_id: str | None = None,
    tags: dict[str, str] | None = None,
) -> Iterator[str]:
    """A new run in ``experiment`` (created under the registry's artifact location if absent),
    child of ``parent_run_id`` when given; yields its id. Ends FINISHED, KILLED on
    :class:`Cancelled`, FAILED on any other error."""
    client = registry.client
    all_tags = dict(tags or {})
    if parent_run_id:
        all_tags[PARENT_RUN_TAG] = parent_run_id
    run = client.create_run(registry.experiment_id(experiment), run_name=run_name, tags=all_tags)
    run_id = str(run.info.run_id)
    status = "FAILED"
    try:
        yield run_id
        status = "FINISHED"
    except Cancelled:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(run_id, status)


def log_values(
    client: MlflowClient,
    run_id: str,
    params: dict[str, Any] | None = None,
    metrics: dict[str, float] | None = None,
) -> None:
    """Log ``params`` (values as text, cut to 500 characters) and the finite ``metrics``."""
    import time

    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    param_list = [Param(str(k), _text(v)) for k, v in (params or {}).items()]
    metric_list = [
        Metric(str(k), float(v), now, 0)
        for k, v in (metrics or {}).items()
        if v is not None and math.isfinite(float(v))
    ]
    client.log_batch(run_id, metrics=metric_list, params=param_list)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_PARAM]


def log_holdout(
    client: MlflowClient, run_id: str, x: pd.DataFrame, y: pd.Series[Any], target: str
) -> None:
    """Log the held-out rows and their target as ``sibyl/holdout.parquet``."""
    frame = x.copy()
    frame[target] = y.to_numpy()
    with tempfile.TemporaryDirectory(prefix="sibyl-holdout-") as tmp:
        path = Path(tmp) / "holdout.parquet"
        frame.reset_index(drop=True).to_parquet(path, index=False)
        client.log_artifact(run_id, str(path), "sibyl")


def load_holdout(registry: ModelRegistry, name: str, version: str) -> pd.DataFrame | None:
    """The held-out rows logged with version ``version``'s run, or None when it has none."""
    import pandas as pd

    run_id = registry.client.get_model_version(name, version).run_id
    if not run_id:
        return None
    with tempfile.TemporaryDirectory(prefix="sibyl-holdout-") as tmp:
        try:
            local = registry.client.download_artifacts(run_id, HOLDOUT_ARTIFACT, tmp)
        except Exception:
            return None
        return pd.read_parquet(local)


def training_tags(registry: ModelRegistry, name: str, version: str) -> dict[str, str]:
    """The ``sibyl.training.*`` tags of a version, without the prefix."""
    tags = registry.client.get_model_version(name, version).tags or {}
    return {k.removeprefix(TAG_PREFIX): v for k, v in tags.items() if k.startswith(TAG_PREFIX)}


def log_sklearn_model(
    client: MlflowClient, run_id: str, model: Any, x_example: pd.DataFrame
) -> str:
    """Save ``model`` (scikit-learn flavor, cloudpickle) with a signature inferred from the
    first 200 rows of ``x_example`` and its 5 first rows as input example, log it under
    ``model/`` of the run; returns the concrete artifact URI to register."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    head = x_example.head(200)
    with tempfile.TemporaryDirectory(prefix="sibyl-model-") as tmp:
        path = Path(tmp) / "model"
        mlflow.sklearn.save_model(
            model,
            str(path),
            serialization_format="cloudpickle",
            signature=infer_signature(head, model.predict(head)),
            input_example=x_example.head(5),
            pip_requirements=requirements(model),
        )
        client.log_artifacts(run_id, str(path), "model")
    return f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/model"


def log_torch_model(client: MlflowClient, run_id: str, model: Any, **save_args: Any) -> str:
    """Save a torch module (``mlflow.pytorch`` flavor) under ``model/`` of the run; returns the
    artifact URI to register."""
    import mlflow.pytorch
    import torch

    with tempfile.TemporaryDirectory(prefix="sibyl-model-") as tmp:
        path = Path(tmp) / "model"
        mlflow.pytorch.save_model(
            model, str(path), pip_requirements=[f"torch=={torch.__version__}"], **save_args
        )
        client.log_artifacts(run_id, str(path), "model")
    return f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/model"


def requirements(model: Any) -> list[str]:
    """Pinned requirements: scikit-learn, plus xgboost / lightgbm when the model uses them."""
    import sklearn

    pins = [f"scikit-learn=={sklearn.__version__}"]
    text = repr(getattr(model, "steps", model))
    for package in ("xgboost", "lightgbm"):
        if package in text.lower():
            module = __import__(package)
            pins.append(f"{package}=={module.__version__}")
    return pins


def register_version(
    registry: ModelRegistry,
    name: str,
    source: str,
    run_id: str,
    *,
    description: str,
    tags: dict[str, str],
    stage: str,
    profile: ReferenceProfile | None = None,
) -> RegisteredVersion:
    """Register ``source`` (an artifact URI of run ``run_id``) as a new version of ``name``
    with ``tags`` (keys prefixed ``sibyl.training.``), put it in ``stage`` (``draft`` leaves
    it without one) and store its reference ``profile``."""
    from sibyl.registry import save_profile
    from sibyl.runtime.loader import NAN_POLICY_TAG

    client = registry.client
    _ensure_model(client, name)
    mv = client.create_model_version(
        name,
        source,
        run_id=run_id,
        tags={f"{TAG_PREFIX}{k}": str(v)[:_MAX_PARAM] for k, v in tags.items()},
        description=description,
        await_creation_for=300,
    )
    version = str(mv.version)
    if profile is not None:
        save_profile(registry, name, version, profile)
        client.set_model_version_tag(name, version, NAN_POLICY_TAG, "allow")
    if stage != "draft":
        registry.set_stage(name, version, stage)
    return RegisteredVersion(name, version, run_id, stage)


def _ensure_model(client: MlflowClient, name: str) -> None:
    """Create registered model ``name`` unless it exists (another process may race us)."""
    try:
        client.create_registered_model(name)
    except Exception:
        client.get_registered_model(name)  # raises when the model really is missing


def frame_profile(model: Any, x: pd.DataFrame) -> ReferenceProfile:
    """The drift reference profile of ``x`` with ``model``'s outputs on it."""
    from sibyl.monitoring.drift import build_profile
    from sibyl.zoo._registering import reference_outputs

    return build_profile(x, reference_outputs(model.predict, x, model), source="training")

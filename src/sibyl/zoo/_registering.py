"""Shared registration of zoo models: one call that logs a model (signature, input example,
metrics, params) and registers it with its drift reference profile —
:func:`log_and_register_model` for any MLflow flavor, with :func:`log_and_register` (sklearn)
and :func:`log_and_register_pyfunc` (``PythonModel``) on top.

The profile (:func:`sibyl.monitoring.drift.build_profile` of the training inputs and the
model's outputs on them, stored with the version by :func:`sibyl.registry.save_profile`) is what
the server's drift monitor compares live traffic against: per column reference-quantile bins
and moments for numeric columns, top-value frequencies for categorical ones (see docs/drift.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.pyfunc.model import PythonModel

Progress = Callable[[str], None]
"""Called with a short description before each step of a long job (the CLI shows a bar)."""


def no_progress(_: str) -> None:
    """The default :data:`Progress`: says nothing."""


@dataclass(frozen=True, slots=True)
class Registered:
    """One model version a zoo use case registered, with its held-out metrics.

    Every use case exposes ``register_all(tracking_uri, artifact_location, *, full=False,
    seed=0, progress=no_progress) -> list[Registered]``: ``full=False`` is the small, fast
    configuration ``sibyl demo`` uses, ``full=True`` the full-size one of ``sibyl train``.
    ``stage`` is the stage the caller should give it (``production`` unless said otherwise).
    """

    name: str
    version: str
    metrics: dict[str, float] = field(default_factory=dict)
    stage: str = "production"
    engine_hint: str = ""
    """What the use case expects to serve it (e.g. ``onnxruntime``, ``pytorch``), for reports."""


def reference_outputs(predict: Callable[[Any], Any], frame: pd.DataFrame, model: Any = None) -> Any:
    """The model's outputs on ``frame`` shaped as the serving path's predictions are, for the
    prediction-drift columns of the reference profile: ``{"predictions", "probabilities",
    "classes"}`` for a classifier with ``predict_proba`` and ``classes_``, ``{"predictions"}``
    for one value per row, ``None`` when a row's prediction is not one value (several named
    outputs: the profile then covers the inputs only)."""
    predictions = np.asarray(predict(frame))
    if predictions.ndim != 1 or (
        predictions.dtype == object
        and any(not isinstance(v, str | int | float | bool) for v in predictions[:50])
    ):
        return None
    outputs: dict[str, Any] = {"predictions": predictions}
    proba, classes = getattr(model, "predict_proba", None), getattr(model, "classes_", None)
    if callable(proba) and classes is not None:
        outputs["probabilities"] = np.asarray(proba(frame), dtype=np.float64)
        outputs["classes"] = [c.item() if isinstance(c, np.generic) else c for c in classes]
    return outputs


def store_profile(
    client: Any, name: str, version: str, profiled: pd.DataFrame, outputs: Any = None
) -> None:
    """Build the drift reference profile of ``profiled`` (the training inputs) and the model's
    ``outputs`` on them, and store it with version ``version`` of ``name``
    (:func:`sibyl.registry.save_profile`: an artifact of the version's run plus the version
    tag ``sibyl.reference_profile``)."""
    from sibyl.monitoring.drift import build_profile
    from sibyl.registry import save_profile

    save_profile(client, name, version, build_profile(profiled, outputs, source="training"))


@contextmanager
def model_run(name: str, tracking_uri: str, artifact_location: str) -> Iterator[Any]:
    """A block with an active MLflow run named ``name`` in experiment ``name`` (created with
    ``artifact_location`` if missing); yields an ``MlflowClient`` for ``tracking_uri``.

    The global MLflow tracking URI is ``tracking_uri`` only within the block and restored
    afterwards (also on error).
    """
    import mlflow

    was_set = bool(mlflow.is_tracking_uri_set())  # type: ignore[no-untyped-call]
    previous = mlflow.get_tracking_uri() if was_set else None
    mlflow.set_tracking_uri(tracking_uri)
    try:
        client = mlflow.MlflowClient(tracking_uri)
        experiment = client.get_experiment_by_name(name)
        experiment_id = (
            experiment.experiment_id
            if experiment is not None
            else client.create_experiment(name, artifact_location=artifact_location)
        )
        with mlflow.start_run(run_name=name, experiment_id=experiment_id):
            yield client
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None unsets it


def log_run_data(params: dict[str, Any], metrics: dict[str, float]) -> None:
    """Log ``params`` and ``metrics`` into the active run."""
    import mlflow

    mlflow.log_params(params)
    mlflow.log_metrics(metrics)


def log_and_register_model(
    log_model: Callable[..., Any],
    name: str,
    *,
    profiled: pd.DataFrame,
    metrics: dict[str, float],
    params: dict[str, Any],
    description: str,
    tracking_uri: str,
    artifact_location: str,
    outputs: Any = None,
    **log_args: Any,
) -> str:
    """The registration every zoo model shares, whatever its flavor; returns the new version.

    Within :func:`model_run` (experiment and run ``name``): :func:`log_run_data` (``params``,
    ``metrics``), then ``log_model(name="model", registered_model_name=name, **log_args)`` — an
    MLflow flavor's ``log_model`` — the new version's ``description`` and its drift reference
    profile (:func:`store_profile` of ``profiled`` and the model's ``outputs`` on it, see
    :func:`reference_outputs`; ``None``: inputs only).
    """
    with model_run(name, tracking_uri, artifact_location) as client:
        log_run_data(params, metrics)
        info = log_model(name="model", registered_model_name=name, **log_args)
        version = str(info.registered_model_version)
        client.update_model_version(name, version, description)
        store_profile(client, name, version, profiled, outputs)
    return version


def log_and_register(
    model: Any,
    name: str,
    x_example: pd.DataFrame,
    metrics: dict[str, float],
    params: dict[str, Any],
    description: str,
    tracking_uri: str,
    artifact_location: str,
) -> str:
    """Log ``model`` (sklearn, cloudpickle) into experiment ``name`` and register it as ``name``.

    ``x_example`` is the training input (same columns the model takes): the signature is
    inferred from it and the model's predictions, its first 5 rows are the input example, and
    the whole frame with the model's outputs on it is the version's reference profile. The
    global MLflow tracking URI is set only for the call and restored afterwards. Returns the
    new version.
    """
    import mlflow.sklearn
    import sklearn

    return _log_and_register_frame_model(
        (mlflow.sklearn.log_model, model.predict),
        (name, x_example, metrics, params, description, tracking_uri, artifact_location),
        outputs=reference_outputs(model.predict, x_example, model),
        sk_model=model,
        serialization_format="cloudpickle",
        # explicit requirements: inferring them costs MLflow ≈ 6 s a model
        pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
    )


def log_and_register_pyfunc(
    python_model: PythonModel,
    name: str,
    x_example: pd.DataFrame,
    metrics: dict[str, float],
    params: dict[str, Any],
    description: str,
    tracking_uri: str,
    artifact_location: str,
) -> str:
    """:func:`log_and_register` for an ``mlflow.pyfunc.PythonModel`` (cloudpickled).

    Same run contents (params, metrics, 5-row input example) and reference profile of
    ``x_example`` (with the outputs when they are one value per row); the output signature is
    inferred from ``python_model.predict(None, head)``, so DataFrame outputs get named columns.
    Requirements pinned: scikit-learn and pandas (sibyl itself must be importable where the
    model loads). Returns the new version.
    """
    import mlflow.pyfunc
    import pandas as pd
    import sklearn

    def predict(frame: pd.DataFrame) -> Any:
        return python_model.predict(None, frame)  # type: ignore[arg-type]

    return _log_and_register_frame_model(
        (mlflow.pyfunc.log_model, predict),
        (name, x_example, metrics, params, description, tracking_uri, artifact_location),
        outputs=reference_outputs(predict, x_example),
        python_model=python_model,
        # explicit requirements: inferring them costs MLflow seconds a model
        pip_requirements=[f"scikit-learn=={sklearn.__version__}", f"pandas=={pd.__version__}"],
    )


_FrameModelArgs = tuple[str, "pd.DataFrame", dict[str, float], dict[str, Any], str, str, str]
"""The arguments of :func:`log_and_register`, in order, from ``name`` on."""


def _log_and_register_frame_model(
    flavor: tuple[Callable[..., Any], Callable[[pd.DataFrame], Any]],
    args: _FrameModelArgs,
    **log_args: Any,
) -> str:
    """:func:`log_and_register_model` for a model that takes ``x_example``'s columns:
    ``flavor`` is its (``log_model``, ``predict``); signature inferred from the first 200 rows
    and their predictions, the first 5 rows the input example, the whole frame profiled."""
    from mlflow.models import infer_signature

    log_model, predict = flavor
    name, x_example, metrics, params, description, uri, artifacts = args
    head = x_example.head(200)
    return log_and_register_model(
        log_model,
        name,
        profiled=x_example,
        metrics=metrics,
        params=params,
        description=description,
        tracking_uri=uri,
        artifact_location=artifacts,
        signature=infer_signature(head, predict(head)),
        input_example=x_example.head(5),
        **log_args,
    )


def allow_missing_values(tracking_uri: str, name: str, version: str) -> None:
    """Tag version ``version`` of ``name`` so sibyl hands missing values (NaN / null) to the
    model — which imputes them — instead of refusing the row."""
    import mlflow

    from sibyl.runtime.loader import NAN_POLICY_TAG

    mlflow.MlflowClient(tracking_uri).set_model_version_tag(name, version, NAN_POLICY_TAG, "allow")

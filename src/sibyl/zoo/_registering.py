"""Shared registration of zoo models: a reference profile of the training inputs and one call
that logs a model (signature, input example, metrics, params, profile) and registers it —
:func:`log_and_register_model` for any MLflow flavor, with :func:`log_and_register` (sklearn)
and :func:`log_and_register_pyfunc` (``PythonModel``) on top.

The profile (``reference_profile.json`` in the model's run) is what drift checks compare live
traffic against: per column a numeric summary (quantiles, 10-bin histogram), value frequencies
for categorical columns, plus token-count summaries for free-text columns.
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


PROFILE_ARTIFACT = "reference_profile.json"
"""File name of the reference profile in the run's artifacts."""

QUANTILES: tuple[float, ...] = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 10
TOP_VALUES = 20
TEXT_MEAN_TOKENS = 2.0
"""A string column whose values average at least this many whitespace tokens is free text."""


def reference_profile(frame: pd.DataFrame) -> dict[str, Any]:
    """A JSON-serialisable summary of every column of ``frame``.

    ``{"n_rows": n, "columns": {name: summary}}``. Numeric columns (not bool) get ``kind
    "numeric"``, count, mean, std, min, max, ``quantiles`` (keys "0.01" … "0.99") and a
    ``histogram`` (``edges``: 11 values, ``counts``: 10). Datetime columns get ``kind
    "datetime"``, count, ISO min / max and the numeric summary of the hour of day. Everything
    else (bool, category, strings) gets ``kind "categorical"`` — or ``"text"`` when the values
    average ≥ ``TEXT_MEAN_TOKENS`` tokens — with count, n_unique, the ``TOP_VALUES`` most
    frequent values as ``top_values`` ({value: share}) and, for text, a ``tokens`` numeric
    summary of the token counts.
    """
    import pandas as pd

    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_bool_dtype(series) or not (
            pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series)
        ):
            columns[str(name)] = _categorical_summary(series)
        elif pd.api.types.is_datetime64_any_dtype(series):
            columns[str(name)] = _datetime_summary(series)
        else:
            columns[str(name)] = {"kind": "numeric", **_numeric_summary(series)}
    return {"n_rows": len(frame), "columns": columns}


def _numeric_summary(series: pd.Series[Any]) -> dict[str, Any]:
    values = series.dropna().to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return {"count": 0}
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    return {
        "count": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "quantiles": {
            str(q): float(v) for q, v in zip(QUANTILES, np.quantile(values, QUANTILES), strict=True)
        },
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def _datetime_summary(series: pd.Series[Any]) -> dict[str, Any]:
    import pandas as pd

    stamps = pd.to_datetime(series).dropna()
    if stamps.empty:
        return {"kind": "datetime", "count": 0}
    hours = (stamps.dt.hour + stamps.dt.minute / 60.0).astype("float64")
    return {
        "kind": "datetime",
        "count": len(stamps),
        "min": stamps.min().isoformat(),
        "max": stamps.max().isoformat(),
        "hour": _numeric_summary(hours),
    }


def _categorical_summary(series: pd.Series[Any]) -> dict[str, Any]:
    values = series.dropna().astype(str)
    shares = values.value_counts(normalize=True).head(TOP_VALUES)
    out: dict[str, Any] = {
        "kind": "categorical",
        "count": len(values),
        "n_unique": int(values.nunique()),
        "top_values": {str(k): float(v) for k, v in shares.items()},
    }
    if len(values) and not (series.dtype == bool or str(series.dtype) == "category"):
        tokens = values.map(lambda v: float(len(v.split())))
        if float(tokens.mean()) >= TEXT_MEAN_TOKENS:
            out["kind"] = "text"
            out["tokens"] = _numeric_summary(tokens)
    return out


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


def log_run_data(params: dict[str, Any], metrics: dict[str, float], profiled: pd.DataFrame) -> None:
    """Log ``params``, ``metrics`` and the reference profile of ``profiled`` into the active
    run (``reference_profile.json``)."""
    import mlflow

    mlflow.log_params(params)
    mlflow.log_metrics(metrics)
    mlflow.log_dict(reference_profile(profiled), PROFILE_ARTIFACT)


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
    **log_args: Any,
) -> str:
    """The registration every zoo model shares, whatever its flavor; returns the new version.

    Within :func:`model_run` (experiment and run ``name``): :func:`log_run_data` (``params``,
    ``metrics``, the reference profile of ``profiled``), then ``log_model(name="model",
    registered_model_name=name, **log_args)`` — an MLflow flavor's ``log_model`` — and the new
    version's ``description``.
    """
    with model_run(name, tracking_uri, artifact_location) as client:
        log_run_data(params, metrics, profiled)
        info = log_model(name="model", registered_model_name=name, **log_args)
        version = str(info.registered_model_version)
        client.update_model_version(name, version, description)
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
    inferred from it and the model's predictions, its first 5 rows are the input example and the
    whole frame is profiled into ``reference_profile.json`` in the same run. The global MLflow
    tracking URI is set only for the call and restored afterwards. Returns the new version.
    """
    import mlflow.sklearn
    import sklearn

    return _log_and_register_frame_model(
        (mlflow.sklearn.log_model, model.predict),
        (name, x_example, metrics, params, description, tracking_uri, artifact_location),
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

    Same run contents (params, metrics, ``reference_profile.json`` of ``x_example``, 5-row input
    example); the output signature is inferred from ``python_model.predict(None, head)``, so
    DataFrame outputs get named columns. Requirements pinned: scikit-learn and pandas (sibyl
    itself must be importable where the model loads). Returns the new version.
    """
    import mlflow.pyfunc
    import pandas as pd
    import sklearn

    return _log_and_register_frame_model(
        (mlflow.pyfunc.log_model, lambda head: python_model.predict(None, head)),
        (name, x_example, metrics, params, description, tracking_uri, artifact_location),
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

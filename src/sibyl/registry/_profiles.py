"""Reference profiles (drift) stored with MLflow model versions.

A profile is a JSON artifact of the version's run, at
``sibyl/<model>/v<version>/reference_profile.json``, and the version's tag
``sibyl.reference_profile`` points at it (``runs:/<run_id>/<path>``). A version registered
without a run gets a run of its own in the experiment ``sibyl-reference-profiles`` (created
under the façade's ``artifact_location``; with a bare ``MlflowClient``, under MLflow's default
artifact root). Saving again replaces the profile (e.g. after reference data was uploaded).

:func:`load_profile` follows the tag; without one it falls back to ``reference_profile.json`` at
the root of the version's run — what a training job logs before the version exists
(:func:`log_profile`). Every call goes to the registry given (never MLflow's global URI) and
blocks: call it from a worker thread in async code.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sibyl.errors import NotFoundError
from sibyl.registry import _mlflow
from sibyl.registry._types import PROFILE_TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from sibyl.monitoring.drift import ReferenceProfile
    from sibyl.registry._facade import ModelRegistry

PROFILE_ARTIFACT = "reference_profile.json"
PROFILE_EXPERIMENT = "sibyl-reference-profiles"


def save_profile(
    registry: ModelRegistry | MlflowClient, name: str, version: str | int, profile: ReferenceProfile
) -> str:
    """Store ``profile`` with version ``version`` of ``name``; returns its ``runs:/`` URI.

    NotFoundError for an unknown model or version; BackendUnavailableError when the registry
    or its artifact store cannot be reached.
    """
    client, uri = _client(registry)
    number = _mlflow.version_number(version)
    with _mlflow.backend_errors(uri):
        mv = _version(client, uri, name, number)
        run_id = mv.run_id or _own_run(registry, client, name, number)
        path = f"sibyl/{_safe(name)}/v{number}/{PROFILE_ARTIFACT}"
        client.log_text(run_id, profile.to_json(), path)
        location = f"runs:/{run_id}/{path}"
        client.set_model_version_tag(name, number, PROFILE_TAG, location)
    return location


def load_profile(
    registry: ModelRegistry | MlflowClient, name: str, version: str | int
) -> ReferenceProfile:
    """The reference profile of a version (see the module docstring for where it is looked
    up). NotFoundError when it has none, saying how to create one; InvalidInputError when the
    stored JSON is not a valid profile."""
    client, uri = _client(registry)
    number = _mlflow.version_number(version)
    with _mlflow.backend_errors(uri):
        mv = _version(client, uri, name, number)
        tagged = (mv.tags or {}).get(PROFILE_TAG)
        if tagged and tagged.startswith("runs:/"):
            run_id, _, path = tagged.removeprefix("runs:/").partition("/")
            text = _read(client, run_id, path)
        elif mv.run_id:
            text = _read(client, mv.run_id, PROFILE_ARTIFACT)
        else:
            text = None
    if text is None:
        raise NotFoundError(
            f"Model '{name}' version {number} has no reference profile in registry {uri}; "
            "build one with sibyl.monitoring.drift.build_profile(training_data, outputs) and "
            "store it with save_profile, or upload reference data"
        )
    from sibyl.monitoring.drift import ReferenceProfile  # registry does not need it imported

    return ReferenceProfile.from_json(text)


def log_profile(client: MlflowClient, run_id: str, profile: ReferenceProfile) -> None:
    """Log ``profile`` as ``reference_profile.json`` of a training run (before registering)."""
    client.log_text(run_id, profile.to_json(), PROFILE_ARTIFACT)


def _client(registry: Any) -> tuple[MlflowClient, str]:
    if hasattr(registry, "client") and hasattr(registry, "uri"):
        return registry.client, str(registry.uri)
    uri = getattr(registry, "_registry_uri", None) or getattr(registry, "tracking_uri", "")
    return registry, _mlflow.redact(str(uri))


def _version(client: MlflowClient, uri: str, name: str, number: str) -> Any:
    try:
        return client.get_model_version(name, number)
    except Exception as exc:
        if _mlflow.is_not_found(exc):
            raise NotFoundError(
                f"Model '{name}' has no version {number} in registry {uri}; list its versions "
                f"with `sibyl models versions {name}`"
            ) from None
        raise


def _own_run(registry: Any, client: MlflowClient, name: str, number: str) -> str:
    """A run to hold the profile of a version registered without one."""
    if hasattr(registry, "experiment_id"):
        experiment = registry.experiment_id(PROFILE_EXPERIMENT)
    else:
        found = client.get_experiment_by_name(PROFILE_EXPERIMENT)
        experiment = (
            found.experiment_id
            if found is not None
            else client.create_experiment(PROFILE_EXPERIMENT)
        )
    run = client.create_run(
        experiment,
        run_name=f"{name} v{number} reference profile",
        tags={"sibyl.model": name, "sibyl.version": number},
    )
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def _read(client: MlflowClient, run_id: str, path: str) -> str | None:
    with tempfile.TemporaryDirectory(prefix="sibyl-profile-") as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except Exception as exc:
            if _mlflow.is_not_found(exc) or isinstance(exc, FileNotFoundError | OSError):
                return None
            raise
        return Path(local).read_text(encoding="utf-8")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name) or "_"

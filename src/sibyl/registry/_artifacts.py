"""Where a version's files live, how big they are, what its MLmodel says, and downloading them.

MLflow's ``models:/`` artifact repository reads the *global* tracking URI, so this module
resolves a version to its concrete location (``file://``, ``mlflow-artifacts:/``, ``s3://`` …)
with the façade's own client and opens that location with the façade's URIs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sibyl.errors import InvalidInputError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repo import ArtifactRepository

COMPLETE_MARKER = ".sibyl-complete"
"""Written last into a downloaded version's directory; its presence means the copy is whole."""


@dataclass(frozen=True, slots=True)
class ModelFileInfo:
    """What a version's ``MLmodel`` file says (``signature`` as JSON, ``None`` when absent)."""

    flavors: tuple[str, ...]
    signature: str | None


def resolve_source(client: MlflowClient, uri: str) -> tuple[str, str | None, str | None]:
    """``(source, run_id, model_id)`` to register for ``uri``.

    ``models:/m-…`` (what ``log_model`` returns) names a logged model and its run;
    ``runs:/<run>/<path>`` names the logged model the run logged under ``path`` (MLflow 3
    stores models outside the run's artifacts) or, for older runs, the run's own files. A
    logged model is registered by its concrete artifact location: MLflow's SQL registry
    would look ``models:/m-…`` up through the *global* tracking URI. Other URIs pass as given.
    """
    if uri.startswith("models:/m-"):
        return _logged_model_source(client, uri.removeprefix("models:/").strip("/"))
    if uri.startswith("runs:/"):
        run_id, _, path = uri.removeprefix("runs:/").partition("/")
        logged = _logged_model_of_run(client, run_id, path.strip("/"))
        if logged is not None:
            return _logged_model_source(client, logged)
        return uri, run_id, None
    return uri, None, None


def _logged_model_source(client: MlflowClient, model_id: str) -> tuple[str, str | None, str]:
    logged = client.get_logged_model(model_id)
    return logged.artifact_location, logged.source_run_id or None, model_id


def _logged_model_of_run(client: MlflowClient, run_id: str, path: str) -> str | None:
    run = client.get_run(run_id)
    outputs = run.outputs.model_outputs if run.outputs else []
    for output in outputs:
        if client.get_logged_model(output.model_id).name == path:
            return output.model_id
    return None


def artifact_location(client: MlflowClient, name: str, version: str) -> str:
    """The concrete URI of the files of ``version`` of ``name``."""
    uri = client.get_model_version_download_uri(name, version)
    if uri.startswith("runs:/"):
        source, run_id, model_id = resolve_source(client, uri)
        if model_id is None:
            return f"{client.get_run(str(run_id)).info.artifact_uri}/{uri.split('/', 2)[2]}"
        uri = source
    if uri.startswith("models:/m-"):
        return client.get_logged_model(uri.removeprefix("models:/").strip("/")).artifact_location
    return uri


def open_repository(
    location: str, tracking_uri: str, registry_uri: str | None
) -> ArtifactRepository:
    """A repository for ``location`` that talks to the façade's server, not the global one."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(location, tracking_uri=tracking_uri, registry_uri=registry_uri)


def total_size(repo: ArtifactRepository, path: str | None = None) -> int:
    """Bytes of every file under ``path`` (recursive listing, nothing downloaded)."""
    size = 0
    for item in repo.list_artifacts(path):
        size += total_size(repo, item.path) if item.is_dir else int(item.file_size or 0)
    return size


def read_model_file(repo: ArtifactRepository) -> ModelFileInfo:
    """Flavors and signature from the ``MLmodel`` file (downloads that one small file)."""
    from mlflow.models import Model

    with tempfile.TemporaryDirectory(prefix="sibyl-mlmodel-") as tmp:
        local = _fetch(repo, "MLmodel", tmp)
        model = Model.load(local)
    signature = model.signature
    text = json.dumps(signature.to_dict(), sort_keys=True) if signature is not None else None
    return ModelFileInfo(tuple(sorted(model.flavors)), text)


def download_version(repo: ArtifactRepository, target: Path) -> Path:
    """Download every file of ``repo`` into ``target``; reuse ``target`` when already complete.

    Files land in a sibling temporary directory which is renamed into place with the marker
    inside, so a crash never leaves a directory that looks complete, and concurrent
    downloaders of the same version end with one whole copy.
    """
    if (target / COMPLETE_MARKER).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.partial-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        _fetch(repo, "", str(staging))
        (staging / COMPLETE_MARKER).write_text("ok\n")
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _fetch(repo: ArtifactRepository, path: str, dst: str) -> str:
    local: str = repo.download_artifacts(path, dst_path=dst)  # type: ignore[no-untyped-call]
    return local


def _move_into_place(staging: Path, target: Path) -> None:
    if target.exists() and not (target / COMPLETE_MARKER).is_file():
        shutil.rmtree(target, ignore_errors=True)  # an old incomplete copy
    try:
        staging.rename(target)
    except OSError:
        if not (target / COMPLETE_MARKER).is_file():  # lost a race to a whole copy: fine
            raise


def safe_target(dst_dir: Path, name: str, version: str) -> Path:
    """``dst_dir/<name>/<version>``, refusing names that would escape ``dst_dir``."""
    root = dst_dir.resolve()
    target = (root / name / version).resolve()
    if root not in target.parents or target.parent.parent != root:
        raise InvalidInputError(
            f"Model name '{name}' / version '{version}' cannot be used as a directory under "
            f"{root}; rename the model without path separators or '..'",
            field="name",
        )
    return target

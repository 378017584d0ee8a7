"""Open Inference Protocol V2: server and model metadata, readiness, repository extension."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

import sibyl
from sibyl.api.routes._deps import blocking, container
from sibyl.errors import NotReadyError
from sibyl.runtime.types import DescribesOutputs
from sibyl.service import Ensemble, ServedVersion

router = APIRouter(prefix="/v2", tags=["v2"])
EXTENSIONS = ["model_repository"]


@router.get("", summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    """Name, version and extensions."""
    return {"name": "sibyl", "version": sibyl.__version__, "extensions": EXTENSIONS}


@router.get("/health/live", summary="Server liveness")
async def live() -> dict[str, bool]:
    """200 while the process runs."""
    return {"live": True}


@router.get("/health/ready", summary="Server readiness")
async def ready(request: Request) -> Response:
    """200 when preloaded models are warm, 503 otherwise."""
    ok = container(request).manager.ready
    return Response(status_code=200 if ok else 503)


async def _served(request: Request, name: str, version: str | None) -> ServedVersion:
    return await container(request).manager.get(name, version)


def _metadata(sv: ServedVersion, versions: list[str]) -> dict[str, Any]:
    m = sv.loaded
    outputs = [
        {
            "name": "predict",
            "datatype": "BYTES" if m.task.value == "other" else "FP64",
            "shape": [-1],
        }
    ]
    if isinstance(m.predictor, DescribesOutputs):  # named outputs (torch modules)
        outputs = m.predictor.describe_outputs()
    elif m.task.value == "classifier":
        outputs[0]["datatype"] = "BYTES"
        outputs.append(
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(m.classes or ())]}
        )
    return {
        "name": m.name,
        "versions": versions,
        "platform": f"sibyl-{m.engine.engine.value}",
        "inputs": m.schema.describe(),
        "outputs": outputs,
        "parameters": {"serving_version": m.version, "flavor": m.flavor},
    }


def _ensemble(request: Request, name: str) -> Ensemble | None:
    book = container(request).ensembles
    return None if book is None else book.endpoints.get(name)


async def _ensemble_metadata(request: Request, ens: Ensemble) -> dict[str, Any]:
    """An ensemble endpoint as a V2 model: its first member's inputs and outputs (every member
    validates the request against its own signature), platform ``sibyl-ensemble``."""
    first = ens.members[0]
    meta = _metadata(await _served(request, first.model, first.ref), ["ensemble"])
    members = [{"name": m.name, "model": m.model, "ref": m.ref} for m in ens.members]
    return meta | {
        "name": ens.endpoint,
        "platform": "sibyl-ensemble",
        "parameters": {"ensemble": ens.name, "members": members},
    }


@router.get("/models/{name}", summary="Model metadata (production version)")
async def model_metadata(name: str, request: Request) -> dict[str, Any]:
    """Inputs (one per column, ``-1`` = variable rows), outputs, platform. An ensemble endpoint
    answers with its first member's inputs and outputs and platform ``sibyl-ensemble``."""
    ens = _ensemble(request, name)
    if ens is not None:
        return await _ensemble_metadata(request, ens)
    sv = await _served(request, name, None)
    versions = await blocking(container(request).registry.list_versions, name)
    return _metadata(sv, [v.version for v in versions])


@router.get("/models/{name}/versions/{version}", summary="Model metadata of a version")
async def version_metadata(name: str, version: str, request: Request) -> dict[str, Any]:
    """As above for a pinned version."""
    sv = await _served(request, name, version)
    return _metadata(sv, [version])


def _is_ready(request: Request, name: str, version: str | None) -> bool:
    return container(request).manager.lookup(name, version) is not None


@router.get("/models/{name}/ready", summary="Model readiness")
async def model_ready(name: str, request: Request) -> Response:
    """200 when the production version is loaded and warm, else 503. An ensemble endpoint is
    ready when enough members (its ``min_members``) are loaded."""
    ens = _ensemble(request, name)
    if ens is not None:
        loaded = sum(_is_ready(request, m.model, m.ref) for m in ens.members)
        if loaded < ens.config.min_members:
            raise NotReadyError(
                f"Ensemble '{ens.name}' has {loaded} of {len(ens.members)} members loaded; it "
                f"needs {ens.config.min_members}"
            )
        return Response(status_code=200)
    if not _is_ready(request, name, None):
        await blocking(container(request).registry.resolve, name, None)  # 404 if unknown
        raise NotReadyError(f"Model '{name}' is not loaded yet")
    return Response(status_code=200)


@router.get("/models/{name}/versions/{version}/ready", summary="Version readiness")
async def version_ready(name: str, version: str, request: Request) -> Response:
    """200 when that version is loaded and warm, else 503."""
    if not _is_ready(request, name, version):
        await blocking(container(request).registry.resolve, name, version)
        raise NotReadyError(f"Model '{name}' version {version} is not loaded")
    return Response(status_code=200)


@router.post("/repository/index", summary="Repository index")
async def repository_index(request: Request) -> list[dict[str, Any]]:
    """Every registered model, with the loaded version's state."""
    c = container(request)
    models = await blocking(c.registry.list_models)
    out = []
    for m in models:
        prod = c.manager.production(m.name)
        out.append(
            {
                "name": m.name,
                "version": prod.version if prod else m.latest_version,
                "state": "READY" if prod else "UNAVAILABLE",
                "reason": "",
            }
        )
    return out


@router.post("/repository/models/{name}/load", summary="Load a model")
async def repository_load(name: str, request: Request) -> Response:
    """Load and warm the production version."""
    await container(request).manager.load(name, None)
    return Response(status_code=200)


@router.post("/repository/models/{name}/unload", summary="Unload a model")
async def repository_unload(name: str, request: Request) -> Response:
    """Unload the production version (reloaded on the next request)."""
    c = container(request)
    prod = c.manager.production(name)
    if prod is not None:
        await c.manager.unload(name, prod.version)
    return Response(status_code=200)

"""Model control plane: list, versions, stage changes (promote with an optional gate),
load/unload, compare."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from sibyl.api.routes._deps import blocking, container
from sibyl.errors import InvalidInputError
from sibyl.registry import AliasChange, Gate, Stage
from sibyl.service import reset_circuits

router = APIRouter(prefix="/v1/models", tags=["models"])


class GateBody(BaseModel):
    """Refuse the promotion when the candidate's metric is worse than production's."""

    metric: str = Field(description="Run metric to compare, e.g. 'accuracy'.")
    higher_is_better: bool = True
    tolerance: float = Field(0.0, ge=0, description="Allowed worsening (absolute).")


class StageBody(BaseModel):
    """A stage change."""

    stage: Stage = Field(description="draft, staging, production or archived.")
    gate: GateBody | None = None


class LoadBody(BaseModel):
    """Which version to load: a number or an alias (default: production)."""

    version: str | None = None
    alias: str | None = None


class UnloadBody(BaseModel):
    """Which loaded version to unload."""

    version: str


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(obj).items()}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return obj


@router.get("", summary="Registered models and what this server is serving")
async def list_models(request: Request) -> dict[str, Any]:
    """Every registered model with its aliases and serving version."""
    c = container(request)
    models = await blocking(c.registry.list_models)
    out = []
    for m in models:
        prod = c.manager.production(m.name)
        out.append({**_plain(m), "serving_version": prod.version if prod else None})
    return {"models": out}


@router.get("/{name}", summary="One model: aliases, loaded versions, engines, last load error")
async def get_model(name: str, request: Request) -> dict[str, Any]:
    """Serving status of one model (404 when it is not registered)."""
    c = container(request)
    await blocking(c.registry.list_versions, name)  # 404 for an unknown model
    return {**c.manager.status(name), "fallback": c.service.fallbacks.describe(name)}


@router.get("/{name}/versions", summary="Versions of a model with stages and semver")
async def list_versions(name: str, request: Request) -> dict[str, Any]:
    """All versions, newest first."""
    versions = await blocking(container(request).registry.list_versions, name)
    return {"name": name, "versions": _plain(versions)}


@router.post("/{name}/versions/{version}/stage", summary="Change a version's stage (promote)")
async def set_stage(name: str, version: str, body: StageBody, request: Request) -> dict[str, Any]:
    """Move a version to a stage; to production optionally through a metric gate, and through
    the model's shadow promotion gate when ``promotion_gates`` names it (409 naming the failed
    criteria when refused). A production change is hot-swapped at once (the watcher would see
    it too)."""
    c = container(request)
    gate = Gate(**body.gate.model_dump()) if body.gate else None
    if body.stage is Stage.PRODUCTION:
        result = await blocking(c.registry.promote, name, version, body.stage, gate)
        await c.manager.apply_change(AliasChange(name, "production", result.previous, version))
        return {"result": _plain(result), "serving": c.manager.status(name)["serving_version"]}
    if gate is not None:
        raise InvalidInputError("'gate' applies to promotions to production only", field="gate")
    info = await blocking(c.registry.set_stage, name, version, body.stage)
    await c.manager.refresh_aliases()
    return {"result": _plain(info)}


@router.post("/{name}/load", summary="Load and warm a version")
async def load(name: str, body: LoadBody, request: Request) -> dict[str, Any]:
    """Load a version by number or alias (production by default)."""
    if body.version and body.alias:
        raise InvalidInputError("Give 'version' or 'alias', not both", field="version")
    sv = await container(request).manager.load(name, body.version or body.alias)
    return {"loaded": sv.describe(), "name": name}


@router.post("/{name}/unload", summary="Drain and unload a version")
async def unload(name: str, body: UnloadBody, request: Request) -> dict[str, Any]:
    """Unload a loaded version (it reloads on demand)."""
    removed = await container(request).manager.unload(name, body.version)
    return {"name": name, "version": body.version, "unloaded": removed}


@router.post("/{name}/circuit/reset", summary="Close the circuit breakers of a model's versions")
async def reset_circuit(name: str, request: Request, version: str | None = None) -> dict[str, Any]:
    """Close the circuit of every loaded version of ``name`` (of ``version`` only, when given)
    with an empty window, e.g. after fixing what made it open; 404 for an unknown model."""
    c = container(request)
    await blocking(c.registry.list_versions, name)  # 404 for an unknown model
    reset = reset_circuits(c.manager.pool.versions(name), version)
    return {"name": name, "reset": reset}


class PurgeResult(BaseModel):
    """What a cache purge deleted."""

    name: str
    version: str | None = Field(description="The version purged; null: every version.")
    purged: int = Field(
        description="Rows deleted from the cache (0 when caching is off or the cache store "
        "cannot be reached)."
    )


@router.delete(
    "/{name}/cache",
    summary="Purge a model's cached predictions",
    response_model=PurgeResult,
    responses={404: {"description": "The model is not registered."}},
)
async def purge_cache(name: str, request: Request, version: str | None = None) -> PurgeResult:
    """Drop the cached predictions of model ``name`` — of one ``version`` when given, else of every
    version — in the cache every replica shares (Redis) or in this server's own. New versions never
    read older versions' entries, so purging is for answers that must change without a new
    version (a fixed feature pipeline, a data correction). 404 when the model is not registered."""
    c = container(request)
    await blocking(c.registry.list_versions, name)  # 404 for an unknown model
    cache = c.manager.cache
    purged = 0 if cache is None else await blocking(cache.purge, name, version)
    return PurgeResult(name=name, version=version, purged=purged)


@router.get("/{name}/compare", summary="Compare two versions")
async def compare(name: str, a: str, b: str, request: Request) -> dict[str, Any]:
    """Params, metrics, signature, size and flavor of versions ``a`` and ``b``."""
    result = await blocking(container(request).registry.compare, name, a, b)
    return _plain(result)  # type: ignore[no-any-return]

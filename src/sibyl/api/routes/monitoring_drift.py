"""Drift of a served model and its reference profiles (docs/monitoring.md, "Drift in the
server").

* ``GET /v1/monitoring/models/{name}/drift[?version=&window_s=]`` — the drift report of the
  version (default: the one answering unpinned traffic) with the label-free accuracy estimate,
  beside the realised quality from labelled feedback over ``window_s`` when this server keeps it.
* ``PUT /v1/monitoring/models/{name}/versions/{version}/profile`` — build a reference profile
  from uploaded data (JSON or CSV, :mod:`sibyl.api.codecs.reference`) and store it with the
  version; a served version is watched against it at once.
* ``GET /v1/monitoring/models/{name}/versions/{version}/profile`` — the stored profile.

Thin: the work is :class:`~sibyl.service._drift.DriftService`, the drift library and the
registry's profile store; blocking calls run in the thread pool.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from sibyl.api.codecs import reference
from sibyl.api.routes._deps import blocking, container
from sibyl.api.routes.experiments import ErrorBody
from sibyl.errors import InvalidInputError, NotFoundError
from sibyl.monitoring.drift import ReferenceProfile, build_profile
from sibyl.registry import load_profile, save_profile
from sibyl.service import Container

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad input; `field` names it."},
    404: {"model": ErrorBody, "description": "Unknown model or version, or nothing watched."},
    503: {"model": ErrorBody, "description": "The registry is unreachable."},
}
router = APIRouter(prefix="/v1/monitoring/models", tags=["monitoring"], responses=_ERRORS)
Columns = Annotated[list[str] | None, Query()]


@router.get("/{name}/drift", summary="Drift report and label-free accuracy estimate")
async def get_drift(
    name: str,
    request: Request,
    version: str | None = None,
    window_s: Annotated[float, Query(gt=0)] = 3600.0,
) -> dict[str, Any]:
    """Per column and method: score, effect size, p-values, verdict; the CBPE estimate for
    classifiers beside realised quality over the last ``window_s`` seconds (when known)."""
    c = container(request)
    if c.drift is None:
        raise NotFoundError("Drift is off on this server; set drift.enabled (SIBYL_DRIFT__ENABLED)")
    realised = await blocking(realised_quality, c, name, window_s)
    return await blocking(c.drift.drift_report, name, version, realised)


@router.put(
    "/{name}/versions/{version}/profile",
    summary="Set a version's reference profile from uploaded data",
)
async def put_profile(
    name: str,
    version: str,
    request: Request,
    numeric: Columns = None,
    categorical: Columns = None,
    exclude: Columns = None,
) -> dict[str, Any]:
    """Body: JSON ``records`` | ``columns`` | ``rows`` + ``names`` (optional ``outputs``) or
    CSV. ``numeric`` / ``categorical`` force a column's kind, ``exclude`` leaves one out."""
    c = container(request)
    data = reference.decode(await request.body(), request.headers.get("content-type", ""))
    ignored = _check_columns(c, name, version, data.frame)
    profile = await blocking(
        build_profile, data.frame, data.outputs, numeric=numeric or (),
        categorical=categorical or (), exclude=exclude or (), source="upload",
    )  # fmt: skip
    location = await blocking(save_profile, c.registry, name, version, profile)
    watching = c.drift is not None and c.drift.set_profile(name, str(int(version)), profile)
    return {**_summary(name, version, profile), "location": location,
            "ignored_columns": ignored, "watching": watching}  # fmt: skip


@router.get("/{name}/versions/{version}/profile", summary="A version's reference profile")
async def get_profile(name: str, version: str, request: Request) -> dict[str, Any]:
    """The stored profile (format ``sibyl.drift.profile``)."""
    profile = await blocking(load_profile, container(request).registry, name, version)
    return profile.to_dict()


def realised_quality(c: Container, model: str, window_s: float) -> dict[str, Any] | None:
    """Live quality from labelled feedback (``container.quality.current``), when this server
    keeps it; anything it cannot give is ``None``."""
    current = getattr(getattr(c, "quality", None), "current", None)
    if current is None:
        return None
    window = current(model, window_s)
    if window is None:
        return None
    if hasattr(window, "to_dict"):
        window = window.to_dict()
    return dict(window) if isinstance(window, Mapping) else None


def _check_columns(c: Container, name: str, version: str, frame: Any) -> list[str]:
    """Columns of the upload the served version does not take (refused when none fits)."""
    if not version.isdigit():
        raise InvalidInputError(f"'{version}' is not a version number", field="version")
    served = c.manager.pool.get(name, str(int(version)))
    names = served.loaded.schema.names if served is not None else ()
    if not names:
        return []
    columns = [str(col) for col in frame.columns]
    ignored = [col for col in columns if col not in names]
    if len(ignored) == len(columns):
        raise InvalidInputError(
            f"None of the uploaded columns {columns[:10]} is an input of model '{name}' "
            f"version {version}; it takes {list(names)[:20]}",
            field="columns",
        )
    return ignored


def _summary(name: str, version: str, profile: ReferenceProfile) -> dict[str, Any]:
    return {
        "model": name,
        "version": str(int(version)),
        "rows": profile.rows,
        "source": profile.source,
        "features": list(profile.feature_names),
        "outputs": [col.name for col in profile.outputs],
        "skipped": list(profile.skipped),
    }

"""Side-by-side comparison of two model versions (runs, MLmodel files, artifact sizes)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import structlog

from sibyl.registry._artifacts import (
    ModelFileInfo,
    artifact_location,
    open_repository,
    read_model_file,
    total_size,
)
from sibyl.registry._mlflow import is_not_found
from sibyl.registry._types import VersionComparison, VersionInfo

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Side:
    params: dict[str, str]
    metrics: dict[str, float]
    model_file: ModelFileInfo | None
    size: int | None


def compare_versions(
    client: MlflowClient,
    tracking_uri: str,
    registry_uri: str | None,
    a: VersionInfo,
    b: VersionInfo,
    only_differences: bool,
) -> VersionComparison:
    """Compare ``a`` and ``b`` (same model). Unreadable artifacts give ``None`` sizes and
    signatures (logged as warnings) rather than failing the whole comparison."""
    side_a = _read_side(client, tracking_uri, registry_uri, a)
    side_b = _read_side(client, tracking_uri, registry_uri, b)
    sig_a = side_a.model_file.signature if side_a.model_file else None
    sig_b = side_b.model_file.signature if side_b.model_file else None
    flavors_a = side_a.model_file.flavors if side_a.model_file else ()
    flavors_b = side_b.model_file.flavors if side_b.model_file else ()
    return VersionComparison(
        name=a.name,
        a=_with_flavors(a, flavors_a),
        b=_with_flavors(b, flavors_b),
        params=_pair_params(side_a.params, side_b.params, only_differences),
        metrics=_pair_metrics(side_a.metrics, side_b.metrics),
        signature_a=sig_a,
        signature_b=sig_b,
        signature_equal=sig_a == sig_b,
        size_bytes=(side_a.size, side_b.size),
        flavors=(flavors_a, flavors_b),
        only_differences=only_differences,
    )


def run_data(client: MlflowClient, run_id: str | None) -> tuple[dict[str, str], dict[str, float]]:
    """``(params, metrics)`` of ``run_id``; empty when the version has no (or a deleted) run."""
    if not run_id:
        return {}, {}
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        if is_not_found(exc):
            return {}, {}
        raise
    return dict(run.data.params), {k: float(v) for k, v in run.data.metrics.items()}


def _read_side(
    client: MlflowClient, tracking_uri: str, registry_uri: str | None, info: VersionInfo
) -> _Side:
    params, metrics = run_data(client, info.run_id)
    try:
        location = artifact_location(client, info.name, info.version)
        repo = open_repository(location, tracking_uri, registry_uri)
        return _Side(params, metrics, read_model_file(repo), total_size(repo))
    except Exception as exc:  # descriptive fields only: report what can be read
        log.warning(
            "registry_artifacts_unreadable", model=info.name, version=info.version, error=repr(exc)
        )
        return _Side(params, metrics, None, None)


def _with_flavors(info: VersionInfo, flavors: tuple[str, ...]) -> VersionInfo:
    return replace(info, flavors=flavors)


def _pair_params(
    a: dict[str, str], b: dict[str, str], only_differences: bool
) -> dict[str, tuple[str | None, str | None]]:
    keys = sorted(a.keys() | b.keys())
    pairs = {k: (a.get(k), b.get(k)) for k in keys}
    if only_differences:
        return {k: pair for k, pair in pairs.items() if pair[0] != pair[1]}
    return pairs


def _pair_metrics(
    a: dict[str, float], b: dict[str, float]
) -> dict[str, tuple[float | None, float | None]]:
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys())}

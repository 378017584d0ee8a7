"""MLflow entities → sibyl values, and MLflow failures → the :mod:`sibyl.errors` tree.

MLflow is imported lazily (≈ 3 s) so that importing :mod:`sibyl.registry` stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from sibyl.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    SibylError,
)
from sibyl.registry._types import (
    PREVIOUS_PRODUCTION_TAG,
    RESERVED_TAGS,
    SEMVER_TAG,
    STAGE_TAG,
    ModelInfo,
    Stage,
    VersionInfo,
)

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

_NOT_FOUND = {"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"}
_EXISTS = {"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"}
_INVALID = {"INVALID_PARAMETER_VALUE", "BAD_REQUEST", "INVALID_STATE"}
_UNAVAILABLE = {"TEMPORARILY_UNAVAILABLE", "SERVICE_UNDER_MAINTENANCE", "REQUEST_LIMIT_EXCEEDED"}


def redact(uri: str) -> str:
    """``uri`` without its password (``postgresql://u:***@host/db``), for messages and logs."""
    parts = urlsplit(uri)
    if not parts.password:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


@contextmanager
def backend_errors(uri: str) -> Iterator[None]:
    """Re-raise MLflow and driver failures inside the block as :class:`SibylError` subclasses.

    Unreachable servers and databases become :class:`BackendUnavailableError` naming ``uri``;
    MLflow's own error codes map to NotFound / Conflict / InvalidInput.
    """
    try:
        yield
    except SibylError:
        raise
    except Exception as exc:
        raise translate(exc, uri) from exc


def translate(exc: BaseException, uri: str) -> SibylError:
    """The :class:`SibylError` that tells a caller what ``exc`` (raised by MLflow) means."""
    where = redact(uri)
    if is_unreachable(exc):
        return BackendUnavailableError(
            f"MLflow registry {where} cannot be reached ({_first_line(exc)}); check that the "
            "tracking server or database is running and the registry URI is right"
        )
    code = getattr(exc, "error_code", None)
    text = f"{_first_line(exc)} (registry {where})"
    if code in _NOT_FOUND:
        return NotFoundError(f"{text}; list what exists with `sibyl models list`")
    if code in _EXISTS:
        return ConflictError(text)
    if code in _INVALID:
        return InvalidInputError(text)
    return SibylError(f"MLflow registry {where} failed: {_first_line(exc)}")


def is_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the backend could not be reached at all."""
    import requests
    import sqlalchemy.exc

    unreachable = (
        requests.ConnectionError,
        requests.Timeout,
        sqlalchemy.exc.OperationalError,
        sqlalchemy.exc.InterfaceError,
        ConnectionError,
        TimeoutError,
    )
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, unreachable):
            return True
        if getattr(seen, "error_code", None) in _UNAVAILABLE:
            return True
        if str(seen).startswith("API request to") and "failed with exception" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def error_code(exc: BaseException) -> str | None:
    """MLflow's error code of ``exc`` (``RESOURCE_DOES_NOT_EXIST`` …), ``None`` for others."""
    code = getattr(exc, "error_code", None)
    return code if isinstance(code, str) else None


def is_not_found(exc: BaseException) -> bool:
    """Whether MLflow said the thing does not exist."""
    return error_code(exc) in _NOT_FOUND


def is_already_exists(exc: BaseException) -> bool:
    """Whether MLflow said the thing exists already."""
    return error_code(exc) in _EXISTS


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line[:300]


def stage_of(aliases: tuple[str, ...] | list[str], tag: str | None) -> Stage:
    """A version's stage: its stage alias first, then its ``sibyl.stage`` tag, else DRAFT.

    The alias is the truth (anyone can move it with a plain MLflow client); a tag saying
    production or staging without the alias is stale and reads as ARCHIVED or DRAFT.
    """
    if Stage.PRODUCTION.value in aliases:
        return Stage.PRODUCTION
    if Stage.STAGING.value in aliases:
        return Stage.STAGING
    try:
        tagged = Stage(tag) if tag else Stage.DRAFT
    except ValueError:
        return Stage.DRAFT
    if tagged is Stage.PRODUCTION:
        return Stage.ARCHIVED
    return Stage.DRAFT if tagged is Stage.STAGING else tagged


def to_version_info(
    mv: ModelVersion, model_aliases: Mapping[str, str] | None = None
) -> VersionInfo:
    """A :class:`VersionInfo` from MLflow's ``ModelVersion`` (no extra backend call).

    Pass the model's alias map when ``mv`` comes from a search: MLflow's SQL store leaves
    ``aliases`` empty in search results.
    """
    tags: dict[str, str] = {str(k): str(v) for k, v in (mv.tags or {}).items()}
    if model_aliases is None:
        aliases = tuple(sorted(str(a) for a in (mv.aliases or [])))
    else:
        aliases = tuple(sorted(a for a, v in model_aliases.items() if v == str(mv.version)))
    return VersionInfo(
        name=mv.name,
        version=str(mv.version),
        stage=stage_of(aliases, tags.get(STAGE_TAG)),
        aliases=aliases,
        semver=tags.get(SEMVER_TAG),
        description=mv.description or "",
        tags={k: v for k, v in tags.items() if k not in (STAGE_TAG, SEMVER_TAG)},
        run_id=mv.run_id or None,
        source=mv.source or "",
        created_at=_from_millis(mv.creation_timestamp),
    )


def to_model_info(rm: RegisteredModel) -> ModelInfo:
    """A :class:`ModelInfo` from MLflow's ``RegisteredModel``."""
    versions = [int(v.version) for v in (rm.latest_versions or [])]
    return ModelInfo(
        name=rm.name,
        description=rm.description or "",
        latest_version=str(max(versions)) if versions else None,
        aliases=alias_map(rm.aliases),
        tags={str(k): str(v) for k, v in (rm.tags or {}).items()},
    )


def alias_map(aliases: Mapping[str, Any] | None) -> dict[str, str]:
    """Alias → version as strings (the SQL store gives ints, the REST store strings)."""
    return {str(alias): str(version) for alias, version in (aliases or {}).items()}


def previous_production(rm: RegisteredModel) -> str | None:
    """The version recorded as production before the current one, if any."""
    value = (rm.tags or {}).get(PREVIOUS_PRODUCTION_TAG)
    return str(value) if value else None


def _from_millis(ms: int | None) -> datetime:
    return datetime.fromtimestamp((ms or 0) / 1000, tz=UTC)


def version_number(version: str | int) -> str:
    """A version as its canonical number string, or a 400 naming what is expected."""
    text = str(version).strip()
    if not text.isdigit():
        raise InvalidInputError(
            f"'{version}' is not a version number; use a number such as 3 (resolve aliases "
            "such as 'production' with ModelRegistry.resolve)",
            field="version",
        )
    return str(int(text))


def check_user_tags(tags: dict[str, str]) -> None:
    """Refuse tags the façade owns."""
    reserved = sorted(RESERVED_TAGS & tags.keys())
    if reserved:
        raise InvalidInputError(
            f"Tags {reserved} are managed by sibyl; use set_stage / set_semver / save_profile "
            "instead",
            field="tags",
        )

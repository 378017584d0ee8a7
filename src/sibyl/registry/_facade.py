"""``ModelRegistry``: sibyl's view of an MLflow registry (stages, semver, gates, downloads)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from sibyl.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    NotReadyError,
    PromotionRefusedError,
    SibylError,
)
from sibyl.registry import _artifacts, _mlflow
from sibyl.registry._compare import compare_versions, run_data
from sibyl.registry._stages import apply_stage, evaluate_gate
from sibyl.registry._types import (
    SEMVER_TAG,
    Gate,
    GateResult,
    ModelInfo,
    PromotionResult,
    Stage,
    VersionComparison,
    VersionInfo,
    parse_stage,
    validate_semver,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion, RegisteredModel

PromotionCheck = Callable[[str, str, str | None], None]
"""``check(name, version, current)``: raise to refuse making ``version`` production in place of
``current`` (``None``: no production version yet); see :meth:`ModelRegistry.add_promotion_check`."""

_PAGE = 1000  # the largest page MLflow's REST API accepts for registered-model searches


class ModelRegistry:
    """Model versions, stages, semver, comparisons and downloads over one MLflow registry.

    Stages are MLflow aliases plus the version tag ``sibyl.stage`` (see :class:`Stage`).
    Every method is a few blocking MLflow calls: call it from a worker thread in async code.
    Instances are safe to share between threads (no state beyond the MLflow client); changes
    are not transactional, so two promotions of one model at once race (the last alias wins).

    Failures: an unknown model, version or alias raises :class:`NotFoundError` saying how to
    list or create one; an unreachable tracking server or database raises
    :class:`BackendUnavailableError` naming the URI (after MLflow's own retries); bad
    arguments raise :class:`InvalidInputError`.

    Creating one opens the store: a SQL URI creates or migrates MLflow's schema (seconds on
    first use), an unreachable database raises BackendUnavailableError here.
    """

    def __init__(
        self,
        tracking_uri: str,
        registry_uri: str | None = None,
        artifact_location: str | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.registry_uri = registry_uri
        self.artifact_location = artifact_location
        """Artifact root of experiments :meth:`experiment_id` creates (None: MLflow's default)."""
        self._promotion_checks: list[PromotionCheck] = []
        try:
            self._client: MlflowClient = MlflowClient(
                tracking_uri=tracking_uri, registry_uri=registry_uri
            )
        except OSError as exc:  # e.g. the SQLite file cannot be created
            raise BackendUnavailableError(
                f"MLflow registry {self.uri} cannot be opened ({exc}); check the URI and "
                "that its directory is writable"
            ) from exc
        except Exception as exc:
            raise _mlflow.translate(exc, self.registry_uri or tracking_uri) from exc

    def add_promotion_check(self, check: PromotionCheck) -> None:
        """Run ``check(name, version, current production version or None)`` before any move
        to production made through this instance (:meth:`promote` and :meth:`set_stage`);
        whatever it raises (e.g. :class:`PromotionRefusedError`) refuses the move before
        anything changes. Re-promoting the production version is not checked."""
        self._promotion_checks.append(check)

    @property
    def uri(self) -> str:
        """The registry URI in force, without password (for messages)."""
        return _mlflow.redact(self.registry_uri or self.tracking_uri)

    @property
    def client(self) -> MlflowClient:
        """The underlying MLflow client (for what the façade does not cover)."""
        return self._client

    def __repr__(self) -> str:
        return f"ModelRegistry({self.uri!r})"

    # ---- reading -----------------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        """Every registered model, by name."""
        return sorted(
            (_mlflow.to_model_info(rm) for rm in self._all_models()), key=lambda m: m.name
        )

    def list_versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, newest first; NotFoundError for an unknown model."""
        with self._errors():
            aliases = _mlflow.alias_map(self._model(name).aliases)
            versions = self._search_versions(name)
        infos = [_mlflow.to_version_info(mv, aliases) for mv in versions]
        return sorted(infos, key=lambda v: int(v.version), reverse=True)

    def get_version(self, name: str, version: str | int) -> VersionInfo:
        """Version ``version`` (a number) of ``name``."""
        return _mlflow.to_version_info(self._model_version(name, _mlflow.version_number(version)))

    def resolve(self, name: str, ref: str | None = None) -> VersionInfo:
        """The version ``ref`` designates.

        ``None`` or ``"production"`` → the production alias; ``"staging"`` or any alias, with
        or without a leading ``@``; a number such as ``"3"``; ``"latest"`` → the highest
        version number. Raises :class:`NotFoundError` saying how to fix it.
        """
        text = (ref or Stage.PRODUCTION.value).strip()
        if text == "latest":
            return self._latest(name)
        if text.isdigit():
            return self.get_version(name, text)
        alias = text.removeprefix("@")
        if not alias:
            raise InvalidInputError(f"Empty version reference for model '{name}'", field="ref")
        aliases = self._aliases_of(name)
        if alias not in aliases:
            raise NotFoundError(self._alias_missing(name, alias, aliases))
        return self.get_version(name, aliases[alias])

    def aliases(self) -> dict[str, dict[str, str]]:
        """Snapshot of every model's aliases: ``{model: {alias: version}}`` (models without
        aliases included with ``{}``). One paginated search, cheap enough to poll."""
        return {rm.name: _mlflow.alias_map(rm.aliases) for rm in self._all_models()}

    def previous_production(self, name: str) -> str | None:
        """The version that was in production before the current one (the fallback), if any."""
        with self._errors():
            return _mlflow.previous_production(self._model(name))

    def model_uri(self, name: str, version: str | int) -> str:
        """``models:/<name>/<version>``, the URI MLflow's loaders accept."""
        return f"models:/{name}/{_mlflow.version_number(version)}"

    # ---- stages -------------------------------------------------------------------------

    def set_stage(self, name: str, version: str | int, stage: Stage | str) -> VersionInfo:
        """Put a version in ``stage`` without a gate (see :meth:`promote` for the rules)."""
        return self._move(name, _mlflow.version_number(version), parse_stage(stage))[0]

    def promote(
        self,
        name: str,
        version: str | int,
        stage: Stage | str = Stage.PRODUCTION,
        gate: Gate | None = None,
    ) -> PromotionResult:
        """Move a version to ``stage`` (production by default), through ``gate`` if given.

        Production moves the ``production`` alias; the version it leaves is ARCHIVED (aliases
        removed) and recorded in the model tag ``sibyl.previous_production``. Staging moves the
        ``staging`` alias (the previous staging version becomes DRAFT). ARCHIVED removes every
        alias of the version. The gate compares ``gate.metric`` of the candidate's run with the
        current production version's run; :class:`PromotionRefusedError` when it is worse by
        more than ``gate.tolerance`` (no production version yet: passes). Promotion checks
        (:meth:`add_promotion_check`, e.g. the shadow gate) run before any move to production.
        """
        number, target = _mlflow.version_number(version), parse_stage(stage)
        result = self._check_gate(name, number, gate) if gate is not None else None
        _info, previous = self._move(name, number, target)
        return PromotionResult(name, number, target, previous, result)

    def check_gate(self, name: str, version: str | int, gate: Gate) -> GateResult:
        """What ``gate`` says about promoting ``version`` now, without promoting or raising."""
        number = _mlflow.version_number(version)
        candidate = self._model_version(name, number)
        production = self._aliases_of(name).get(Stage.PRODUCTION.value)
        with self._errors():
            cand = run_data(self._client, candidate.run_id)[1].get(gate.metric)
            prod = None
            if production is not None:
                prod_run = self._client.get_model_version(name, production).run_id
                prod = run_data(self._client, prod_run)[1].get(gate.metric)
        return evaluate_gate(gate, cand, prod, production)

    # ---- metadata -----------------------------------------------------------------------

    def set_semver(self, name: str, version: str | int, semver: str) -> VersionInfo:
        """Tag a version with its semantic version ``MAJOR.MINOR.PATCH`` (tag ``sibyl.semver``)."""
        text = validate_semver(semver)
        number = _mlflow.version_number(version)
        self._model_version(name, number)
        with self._errors():
            self._client.set_model_version_tag(name, number, SEMVER_TAG, text)
        return self.get_version(name, number)

    def set_description(self, name: str, version: str | int, text: str) -> VersionInfo:
        """Replace a version's description."""
        number = _mlflow.version_number(version)
        self._model_version(name, number)
        with self._errors():
            self._client.update_model_version(name, number, description=text)
        return self.get_version(name, number)

    def set_tags(self, name: str, version: str | int, tags: dict[str, str]) -> VersionInfo:
        """Set (add or overwrite) tags on a version; the ``sibyl.*`` tags the façade owns are
        refused — use :meth:`set_stage` / :meth:`set_semver`."""
        _mlflow.check_user_tags(tags)
        number = _mlflow.version_number(version)
        self._model_version(name, number)
        with self._errors():
            for key, value in tags.items():
                self._client.set_model_version_tag(name, number, key, str(value))
        return self.get_version(name, number)

    # ---- artifacts ----------------------------------------------------------------------

    def compare(
        self, name: str, a: str | int, b: str | int, *, only_differences: bool = True
    ) -> VersionComparison:
        """Compare versions ``a`` and ``b`` (any :meth:`resolve` reference): run params (only
        the differing ones unless ``only_differences=False``) and metrics, MLmodel signature
        and flavors, artifact size. Downloads only the two small ``MLmodel`` files."""
        va, vb = self.resolve(name, str(a)), self.resolve(name, str(b))
        with self._errors():
            return compare_versions(
                self._client, self.tracking_uri, self.registry_uri, va, vb, only_differences
            )

    def download(self, name: str, version: str | int, dst_dir: str | Path) -> Path:
        """Download a version's files to ``dst_dir/<name>/<version>`` and return that path.

        A complete earlier download is reused (a marker file is written last); partial ones
        are replaced. Safe to call from several threads or processes at once.
        """
        number = _mlflow.version_number(version)
        target = _artifacts.safe_target(Path(dst_dir), name, number)
        if (target / _artifacts.COMPLETE_MARKER).is_file():
            return target
        self._model_version(name, number)
        with self._errors():
            location = _artifacts.artifact_location(self._client, name, number)
            repo = _artifacts.open_repository(location, self.tracking_uri, self.registry_uri)
            return _artifacts.download_version(repo, target)

    # ---- writing ------------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        model_uri: str,
        description: str | None = None,
        tags: dict[str, str] | None = None,
        semver: str | None = None,
        *,
        await_s: int = 300,
    ) -> VersionInfo:
        """Register ``model_uri`` as a new DRAFT version of ``name`` (created if absent).

        ``model_uri`` is what ``mlflow.<flavor>.log_model`` returned (``models:/m-…``) or
        ``runs:/<run_id>/<name>``; the version records the run, so gates and comparisons see
        its params and metrics. Waits up to ``await_s`` seconds for the version to be READY
        (:class:`NotReadyError` after that).
        """
        version_tags = dict(tags or {})
        _mlflow.check_user_tags(version_tags)
        if semver is not None:
            version_tags[SEMVER_TAG] = validate_semver(semver)
        with self._errors():
            self._ensure_model(name)
            source, run_id, model_id = _artifacts.resolve_source(self._client, model_uri)
            mv = self._client.create_model_version(
                name,
                source,
                run_id=run_id,
                tags=version_tags or None,
                description=description,
                await_creation_for=await_s,
                model_id=model_id,
            )
        return self._ready(name, str(mv.version))

    def experiment_id(self, name: str) -> str:
        """Id of the MLflow experiment ``name``, created (under ``artifact_location``) if absent;
        when another process creates it at the same moment, that one is used."""
        with self._errors():
            found = self._client.get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
        try:
            with self._errors():
                return self._client.create_experiment(
                    name, artifact_location=self.artifact_location
                )
        except ConflictError:  # lost the race: it exists now
            with self._errors():
                again = self._client.get_experiment_by_name(name)
            if again is None:
                raise
            return str(again.experiment_id)

    # ---- internals ----------------------------------------------------------------------

    def _errors(self) -> AbstractContextManager[None]:
        return _mlflow.backend_errors(self.registry_uri or self.tracking_uri)

    def _all_models(self) -> list[RegisteredModel]:
        models: list[RegisteredModel] = []
        token: str | None = None
        with self._errors():
            while True:
                page = self._client.search_registered_models(max_results=_PAGE, page_token=token)
                models.extend(page)
                token = page.token
                if not token:
                    return models

    def _search_versions(self, name: str) -> list[ModelVersion]:
        quoted = f'"{name}"' if "'" in name else f"'{name}'"
        versions: list[ModelVersion] = []
        token: str | None = None
        while True:
            page = self._client.search_model_versions(f"name={quoted}", page_token=token)
            versions.extend(page)
            token = page.token
            if not token:
                return versions

    def _model(self, name: str) -> RegisteredModel:
        try:
            return self._client.get_registered_model(name)
        except Exception as exc:
            if _mlflow.is_not_found(exc):
                raise NotFoundError(
                    f"Model '{name}' is not registered in registry {self.uri}; list the "
                    "registered models with `sibyl models list`"
                ) from None
            raise

    def _aliases_of(self, name: str) -> dict[str, str]:
        with self._errors():
            return _mlflow.alias_map(self._model(name).aliases)

    def _model_version(self, name: str, number: str) -> ModelVersion:
        with self._errors():
            try:
                return self._client.get_model_version(name, number)
            except Exception as exc:
                if not _mlflow.is_not_found(exc):
                    raise
            self._model(name)  # NotFound for the model when that is what is missing
        raise NotFoundError(
            f"Model '{name}' has no version {number} in registry {self.uri}; list its versions "
            f"with `sibyl models versions {name}`"
        )

    def _latest(self, name: str) -> VersionInfo:
        versions = self.list_versions(name)
        if not versions:
            raise NotFoundError(
                f"Model '{name}' has no versions in registry {self.uri}; register one first"
            )
        return versions[0]

    def _alias_missing(self, name: str, alias: str, aliases: dict[str, str]) -> str:
        head = f"Model '{name}' has no version with alias '{alias}' in registry {self.uri}"
        if alias in (Stage.PRODUCTION.value, Stage.STAGING.value):
            return f"{head}; promote one with `sibyl models promote {name} <version> {alias}`"
        known = ", ".join(f"@{a}→{v}" for a, v in sorted(aliases.items())) or "none"
        return (
            f"{head} (its aliases: {known}); set one with MLflow's "
            "set_registered_model_alias or use a version number"
        )

    def _move(self, name: str, number: str, stage: Stage) -> tuple[VersionInfo, str | None]:
        self._model_version(name, number)
        aliases = self._aliases_of(name)
        current = aliases.get(Stage.PRODUCTION.value)
        if stage is Stage.PRODUCTION and current != number:
            for check in self._promotion_checks:
                check(name, number, current)  # raises to refuse: nothing has moved yet
        with self._errors():
            previous = apply_stage(self._client, name, number, stage, aliases)
        return self.get_version(name, number), previous

    def _check_gate(self, name: str, number: str, gate: Gate) -> GateResult:
        result = self.check_gate(name, number, gate)
        if not result.passed:
            raise PromotionRefusedError(
                f"Promotion of model '{name}' version {number} refused by the "
                f"'{gate.metric}' gate: {result.message}"
            )
        return result

    def _ensure_model(self, name: str) -> None:
        try:
            self._client.create_registered_model(name)
        except Exception as exc:
            if not _mlflow.is_already_exists(exc):
                raise

    def _ready(self, name: str, number: str) -> VersionInfo:
        mv = self._model_version(name, number)
        status = str(mv.status)
        if status == "READY":
            return _mlflow.to_version_info(mv)
        if status == "PENDING_REGISTRATION":
            raise NotReadyError(
                f"Model '{name}' version {number} is still being registered "
                f"in {self.uri}; check again in a moment"
            )
        raise SibylError(
            f"Registering model '{name}' version {number} failed in {self.uri}: "
            f"{mv.status_message or status}; check the model URI and retry"
        )

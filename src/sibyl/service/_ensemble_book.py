"""EnsembleBook: the running ensembles by endpoint name, their validation and control plane.

* :meth:`EnsembleBook.validate` is the validator of kind ``ensemble``: every member must exist
  and load (it is loaded now, so the first request is warm), members share a task (classifier
  or regressor) and, for classifiers, the same class labels; the endpoint name must not be a
  registered model (``ConflictError``: callers of that model would silently get the ensemble).
* :meth:`EnsembleBook.on_refresh` (an ``ExperimentService`` refresh listener) rebuilds
  :attr:`EnsembleBook.endpoints` from the running ensembles and warms the members of new ones
  in the background.
* :meth:`create` / :meth:`list` / :meth:`get` / :meth:`stop` are the ``/v1/ensembles`` and
  ``sibyl ensembles`` operations: an ensemble is created and started in one call, and stopping
  it ends it for good.

The prediction path reads :attr:`endpoints` (one dict lookup per request); see
:mod:`sibyl.service._ensembles` for what a request does. Event-loop only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry

from sibyl.errors import (
    ConflictError,
    InvalidInputError,
    ModelLoadError,
    NotFoundError,
    SibylError,
)
from sibyl.runtime.loader import LoadedModel
from sibyl.runtime.types import Task
from sibyl.service._ensembles import Ensemble, EnsembleConfig, Member, member_failures
from sibyl.service._experiments import ExperimentService, NewExperiment
from sibyl.service._manager import ModelManager
from sibyl.service._predict import PredictionService
from sibyl.store import Experiment, ExperimentKind, ExperimentStatus, Variant

log = structlog.get_logger("sibyl.ensembles")


@dataclass(frozen=True, slots=True)
class NewEnsemble:
    """What creating an ensemble takes (members: variants naming their model)."""

    name: str
    members: Sequence[Variant]
    endpoint: str | None = None
    """The name callers predict with (default: ``name``)."""
    config: Mapping[str, Any] | None = None
    """``combine``, ``min_members``, ``member_timeout_ms`` (see :mod:`sibyl.service._ensembles`)."""
    description: str | None = None


class EnsembleBook:
    """Running ensembles by endpoint; validation and control plane of kind ``ensemble``."""

    def __init__(
        self,
        experiments: ExperimentService,
        manager: ModelManager,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.experiments = experiments
        self.manager = manager
        self.endpoints: Mapping[str, Ensemble] = {}
        """Endpoint name → its running ensemble, replaced as a whole."""
        self._failures = member_failures(registry or CollectorRegistry())
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # ---- validation ---------------------------------------------------------------------

    async def validate(self, spec: NewExperiment) -> dict[str, Any]:
        """The validator of kind ``ensemble`` (see the module docstring); returns the routing
        JSON to store (the resolved combination, task and settings)."""
        members = [_member(v, i, spec.model) for i, v in enumerate(spec.variants)]
        config = EnsembleConfig.parse(dict(spec.config), len(members))
        await self._check_endpoint(spec.model)
        loaded = await asyncio.gather(*(self._load(m, i) for i, m in enumerate(members)))
        return config.resolved(_common_task(members, loaded)).to_json()

    async def _check_endpoint(self, endpoint: str) -> None:
        registered = self.manager.known(endpoint)
        if not registered:
            aliases = await asyncio.to_thread(self.manager.registry.aliases)
            registered = endpoint in aliases
        if registered:
            raise ConflictError(
                f"'{endpoint}' is a registered model; an ensemble endpoint must be a new name "
                f"(its callers would silently get the ensemble). Use e.g. '{endpoint}-ensemble'"
            )

    async def _load(self, member: Member, index: int) -> LoadedModel:
        try:
            return (await self.manager.get(member.model, member.ref)).loaded
        except (NotFoundError, ModelLoadError) as exc:
            raise InvalidInputError(
                f"member '{member.name}': {exc.message}", field=f"variants[{index}]"
            ) from None

    # ---- refresh ------------------------------------------------------------------------

    def on_refresh(self, running: Sequence[Experiment]) -> None:
        """Serve the running ensembles (the earliest started wins an endpoint); keep the
        objects of unchanged ones, warm the members of new ones."""
        ensembles = sorted(
            (e for e in running if e.kind is ExperimentKind.ENSEMBLE),
            key=lambda e: (e.started_at or e.created_at, e.id),
        )
        endpoints: dict[str, Ensemble] = {}
        for exp in ensembles:
            if exp.model in endpoints:
                continue
            old = self.endpoints.get(exp.model)
            if old is not None and old.id == exp.id:
                endpoints[exp.model] = old
                continue
            try:
                endpoints[exp.model] = ensemble = Ensemble(exp, self._failures)
            except (KeyError, ValueError) as exc:  # written around the validator
                log.error("ensemble_config_invalid", ensemble=exp.name, error=repr(exc))
                continue
            self._spawn(self._warm(ensemble))
        self.endpoints = endpoints

    async def _warm(self, ensemble: Ensemble) -> None:
        for m in ensemble.members:
            try:
                await self.manager.get(m.model, m.ref)
            except SibylError as exc:  # reported per request; the other members still serve
                log.warning("ensemble_member_unavailable", ensemble=ensemble.name,
                            member=m.name, error=exc.message)  # fmt: skip

    def _spawn(self, coro: Any) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Cancel member warm-ups still running (and start no more)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---- control plane ------------------------------------------------------------------

    async def create(self, spec: NewEnsemble) -> Experiment:
        """Create and start an ensemble. ``ConflictError`` when the name is taken or another
        ensemble already serves the endpoint; ``InvalidInputError`` naming the field."""
        endpoint = spec.endpoint or spec.name
        busy = await self.experiments.list(model=endpoint, status=ExperimentStatus.RUNNING)
        clash = [e.name for e in busy if e.kind is ExperimentKind.ENSEMBLE]
        if clash:
            raise ConflictError(
                f"Ensemble '{clash[0]}' already serves endpoint '{endpoint}'; stop it first "
                f"(`sibyl ensembles stop {clash[0]}`) or pick another endpoint"
            )
        await self.experiments.create(
            NewExperiment(
                spec.name,
                endpoint,
                list(spec.members),
                description=spec.description,
                kind=ExperimentKind.ENSEMBLE,
                config=dict(spec.config or {}),
            )
        )
        try:
            return await self.experiments.start_experiment(spec.name)
        except SibylError:
            await self.experiments.stop_experiment(spec.name)  # do not leave a draft behind
            raise

    async def list(self, *, status: ExperimentStatus | None = None) -> list[Experiment]:
        """Ensembles, oldest first, optionally in one status."""
        found = await self.experiments.list(status=status)
        return [e for e in found if e.kind is ExperimentKind.ENSEMBLE]

    async def get(self, name: str) -> Experiment:
        """The ensemble ``name`` (``NotFoundError`` when unknown or of another kind)."""
        exp = await self.experiments.get(name)
        if exp.kind is not ExperimentKind.ENSEMBLE:
            raise NotFoundError(
                f"'{name}' is an experiment of kind '{exp.kind}', not an ensemble; see "
                f"/v1/experiments/{name}"
            )
        return exp

    async def stop(self, name: str) -> Experiment:
        """Stop the ensemble for good: its endpoint stops answering at once."""
        await self.get(name)
        return await self.experiments.stop_experiment(name)


def wire_ensembles(
    experiments: ExperimentService,
    service: PredictionService,
    manager: ModelManager,
    registry: CollectorRegistry | None = None,
) -> EnsembleBook:
    """Enable kind ``ensemble``: its validator, the endpoints rebuilt with the experiments and
    the ensemble branch of the prediction path (member failures counted in ``registry``)."""
    book = EnsembleBook(experiments, manager, registry=registry)
    experiments.register_kind(ExperimentKind.ENSEMBLE, book.validate)
    experiments.on_refresh(book.on_refresh)
    service.ensembles = book
    return book


def _member(v: Variant, index: int, endpoint: str) -> Member:
    where = f"variants[{index}]"
    if not v.model:
        raise InvalidInputError(
            f"member '{v.name}' must name its model (a registered model; the experiment's "
            f"model '{endpoint}' is the ensemble's endpoint)",
            field=f"{where}.model",
        )
    if (v.version is None) == (v.alias is None):
        raise InvalidInputError(
            f"member '{v.name}' must name exactly one of version or alias", field=where
        )
    if not v.weight > 0:
        raise InvalidInputError(
            f"member '{v.name}' has weight {v.weight}; weights must be > 0 (only ratios matter)",
            field=f"{where}.weight",
        )
    ref = v.version if v.version is not None else v.alias
    assert ref is not None
    return Member(v.name, v.model, ref, v.weight)


def _common_task(members: Sequence[Member], loaded: Sequence[LoadedModel]) -> Task:
    """The task every member shares; for classifiers, the same class labels."""
    described = [f"'{m.name}' ({lm.name} v{lm.version}: {lm.task})"
                 for m, lm in zip(members, loaded, strict=True)]  # fmt: skip
    tasks = {lm.task for lm in loaded}
    if len(tasks) > 1 or not tasks <= {Task.CLASSIFIER, Task.REGRESSOR}:
        raise InvalidInputError(
            "ensemble members must all be classifiers (probabilities are averaged) or all "
            f"regressors (values are averaged); got {', '.join(described)}",
            field="variants",
        )
    task = tasks.pop()
    if task is Task.CLASSIFIER:
        _check_classes(members, loaded)
    return task


def _check_classes(members: Sequence[Member], loaded: Sequence[LoadedModel]) -> None:
    first = loaded[0].classes
    for m, lm in zip(members, loaded, strict=True):
        if lm.classes is None or first is None or set(lm.classes) != set(first):
            raise InvalidInputError(
                f"ensemble members must predict the same classes: '{members[0].name}' has "
                f"{list(first or ())}, '{m.name}' has {list(lm.classes or ())}",
                field="variants",
            )


__all__ = ["EnsembleBook", "NewEnsemble", "wire_ensembles"]

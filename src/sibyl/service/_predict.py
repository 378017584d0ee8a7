"""PredictionService: one prediction request from any transport to an answer."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from sibyl.batching import Priority
from sibyl.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    SibylError,
)
from sibyl.monitoring import UNKNOWN_MODEL, Metrics, Status
from sibyl.runtime.schema import InputSchema
from sibyl.runtime.types import Batch, Prediction, Task
from sibyl.service._manager import ModelManager
from sibyl.service._router import Route, RunningExperiment, choose
from sibyl.settings import Settings

if TYPE_CHECKING:
    from sibyl.service._experiments import ExperimentService

InputKind = Literal["records", "columns", "rows", "frame", "batch"]


@dataclass(frozen=True, slots=True)
class Inputs:
    """Rows as a transport decoded them, before the model's schema is known.

    ``kind`` says the layout: ``records`` (list of objects), ``columns`` (object of lists),
    ``rows`` (list of arrays, in ``names`` order or the signature's), ``frame`` (a pandas
    DataFrame, e.g. from CSV) or ``batch`` (an already built batch). ``field`` names the part of
    the request the rows came from, for error messages.
    """

    kind: InputKind
    data: Any
    names: Sequence[str] | None = None
    field: str = "inputs"

    def to_batch(self, schema: InputSchema) -> Batch:
        """Validate against ``schema`` and build the batch (raises ``InvalidInputError``)."""
        if self.kind == "records":
            return schema.from_records(self.data, self.field)
        if self.kind == "columns":
            return schema.from_columns(self.data, self.field)
        if self.kind == "rows":
            return schema.from_rows(self.data, self.field, self.names)
        if self.kind == "frame":
            return schema.from_frame(self.data, self.field)
        return self.data  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class PredictRequest:
    """A transport-free prediction request."""

    model: str
    inputs: Inputs
    ref: str | None = None
    """Version number or alias to pin; ``None`` → production."""
    priority: Priority = Priority.NORMAL
    timeout_s: float | None = None
    """Deadline relative to now; ``None`` → ``server.default_timeout_ms``."""
    request_id: str = ""
    routing_key: str | None = None
    """Sticky experiment assignment key (a user or session id); ``None`` → random by weight."""
    variant: str | None = None
    """QA override: answer with this variant of the running experiment (unknown → 400)."""


@dataclass(frozen=True, slots=True)
class PredictResult:
    """What answered and what it said."""

    model: str
    version: str
    engine: str
    request_id: str
    prediction: Prediction
    task: Task
    schema: InputSchema
    experiment: str | None = None
    """The running experiment that routed this request, if any."""
    variant: str | None = None
    """The experiment's variant that answered."""


_STATUS = (
    (InvalidInputError, Status.INVALID),
    (NotFoundError, Status.NOT_FOUND),
    (OverloadedError, Status.OVERLOADED),
    (DeadlineExceededError, Status.TIMEOUT),
)


def status_of(exc: BaseException) -> Status:
    """The metrics status of a failure."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return Status.ERROR


class PredictionService:
    """Serves predictions for every transport (HTTP, jobs, streams, the in-process pipeline).

    Contract: ``predict`` is a coroutine on the server's event loop; it raises only
    ``SibylError`` subclasses, and every call is counted in the metrics exactly once.
    """

    def __init__(
        self,
        manager: ModelManager,
        metrics: Metrics,
        settings: Settings,
        experiments: ExperimentService | None = None,
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.experiments = experiments
        self._default_timeout = settings.server.default_timeout_ms / 1000
        self._default_model = settings.server.default_model

    async def predict(self, req: PredictRequest) -> PredictResult:
        """Route (experiments), resolve the version, validate, batch, predict (see the class
        contract). A request without a pinned version on a model with a running experiment is
        answered by the variant its routing key (or the ``variant`` override) picks."""
        exps = self.experiments
        if req.ref is None and exps is not None:
            running = exps.routes.get(req.model)  # the only cost without an experiment
            if running is not None:
                return await self._routed(req, exps, self._route(req, running))
        return await self._predict(req)

    def _route(self, req: PredictRequest, running: RunningExperiment) -> Route:
        try:
            return choose(running, req.routing_key, req.variant)
        except InvalidInputError as exc:  # unknown X-Variant: counted like any bad request
            self.metrics.count_failure(req.model, status_of(exc))
            raise

    async def _routed(
        self, req: PredictRequest, exps: ExperimentService, route: Route
    ) -> PredictResult:
        started = time.perf_counter()
        try:
            result = await self._predict(replace(req, model=route.model, ref=route.ref))
        except SibylError:
            exps.record(route, req.routing_key, req.request_id, route.ref, started, True)
            raise
        exps.record(route, req.routing_key, req.request_id, result.version, started, False)
        return replace(result, experiment=route.experiment, variant=route.variant)

    async def _predict(self, req: PredictRequest) -> PredictResult:
        started = time.perf_counter()
        sv = self.manager.lookup(req.model, req.ref)
        if sv is None:
            try:
                sv = await self.manager.get(req.model, req.ref)
            except SibylError as exc:
                label = req.model if self.manager.known(req.model) else UNKNOWN_MODEL
                self.metrics.count_failure(label, status_of(exc))
                raise
        try:
            sv.admit()
        except OverloadedError as exc:
            sv.metrics.failure(status_of(exc), time.perf_counter() - started)
            raise
        sv.acquire()
        try:
            batch = req.inputs.to_batch(sv.loaded.schema)
            timeout = self._default_timeout if req.timeout_s is None else req.timeout_s
            pred = await sv.batcher.predict(
                batch, priority=req.priority, deadline=time.monotonic() + timeout
            )
        except SibylError as exc:
            sv.metrics.failure(status_of(exc), time.perf_counter() - started)
            raise
        finally:
            sv.release()
        sv.metrics.success(time.perf_counter() - started, len(pred))
        m = sv.loaded
        return PredictResult(
            m.name, m.version, m.engine.engine.value, req.request_id, pred, m.task, m.schema
        )

    def admit(self, model: str, ref: str | None) -> None:
        """Shed early: ``OverloadedError`` when the version is at ``max_concurrency``.

        Transports call this before parsing a body (and count a refusal with
        ``count_rejected``); ``predict`` checks again for everyone else. A version that is not
        loaded yet is admitted (``predict`` loads it).
        """
        sv = self.manager.lookup(model, ref)
        if sv is not None:
            sv.admit()

    def count_rejected(self, model: str | None, exc: BaseException) -> None:
        """Count a request refused before ``predict`` (bad body, shed, no default model)."""
        label = model if model and self.manager.known(model) else UNKNOWN_MODEL
        self.metrics.count_failure(label, status_of(exc))

    def default_model(self) -> str:
        """The model of MLflow's ``/invocations``: the configured one, else the only one."""
        if self._default_model:
            return self._default_model
        names = self.manager.model_names()
        if len(names) == 1:
            return names[0]
        raise NotFoundError(
            f"No default model for /invocations: {len(names)} models are registered "
            f"({', '.join(names) or 'none'}); set SIBYL_SERVER__DEFAULT_MODEL or call "
            "/v1/models/<name>/invocations"
        )

"""PredictionService: one prediction request from any transport to an answer."""

from __future__ import annotations

import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sibyl.batching import Priority
from sibyl.errors import (
    CircuitOpenError,
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    OverloadedError,
    SibylError,
)
from sibyl.monitoring import UNKNOWN_MODEL, Metrics, Status
from sibyl.runtime.schema import InputSchema
from sibyl.runtime.types import Batch, Prediction, Task
from sibyl.service._ensemble_combine import MemberOutcome
from sibyl.service._fallbacks import FallbackAnswer, Fallbacks
from sibyl.service._manager import ModelManager
from sibyl.service._resilience import guarded
from sibyl.service._router import Route, RunningExperiment, choose
from sibyl.service._served import ServedVersion
from sibyl.settings import Settings
from sibyl.store import ExperimentKind

if TYPE_CHECKING:
    from sibyl.monitoring.predlog import PredictionLog
    from sibyl.service._bandits import BanditBook
    from sibyl.service._ensemble_book import EnsembleBook
    from sibyl.service._experiments import ExperimentService
    from sibyl.service._shadow import ShadowService

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

    def pinned(self, model: str, ref: str) -> PredictRequest:
        """The same request for ``model`` at version or alias ``ref`` (what a route asks;
        ~5× cheaper than ``dataclasses.replace`` on the hot path)."""
        return PredictRequest(
            model,
            self.inputs,
            ref,
            self.priority,
            self.timeout_s,
            self.request_id,
            self.routing_key,
            self.variant,
        )


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
    members: tuple[MemberOutcome, ...] | None = None
    """For an ensemble endpoint: how every member fared (answered or failed, and why)."""
    fallback: str | None = None
    """Who answered when the requested version did not: ``"version 2"``, ``"model rules:1"`` or
    ``"default"`` (``None``: the requested version answered)."""
    fallback_reason: str | None = None
    """Why the requested version did not answer: ``error``, ``timeout`` or ``circuit_open``."""


_STATUS = (
    (InvalidInputError, Status.INVALID),
    (NotFoundError, Status.NOT_FOUND),
    (OverloadedError, Status.OVERLOADED),
    (DeadlineExceededError, Status.TIMEOUT),
    (CircuitOpenError, Status.CIRCUIT_OPEN),
)


def status_of(exc: BaseException) -> Status:
    """The metrics status of a failure."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return Status.ERROR


def _fallen_back(req: PredictRequest, primary: ServedVersion, fb: FallbackAnswer) -> PredictResult:
    """The result of a request its fallback chain answered: the answering version's model and
    version (the primary's for the default, whose engine reads ``default``)."""
    m = (fb.version or primary).loaded
    engine = "default" if fb.version is None else m.engine.engine.value
    return PredictResult(
        m.name,
        m.version,
        engine,
        req.request_id,
        fb.prediction,
        m.task,
        m.schema,
        fallback=fb.answered_by,
        fallback_reason=fb.reason.value,
    )


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
        fallbacks: Fallbacks | None = None,
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.experiments = experiments
        self.fallbacks = fallbacks or Fallbacks(manager, metrics, settings)
        """Fallback chains per model (built from ``settings.fallbacks`` when not given)."""
        self._chains = self.fallbacks.chains
        self.bandits: BanditBook | None = None
        """Thompson-sampling routing of running bandit experiments (set by the container)."""
        self.ensembles: EnsembleBook | None = None
        """Running ensembles by endpoint name (set by the container)."""
        self.shadows: ShadowService | None = None
        """Running shadows by model: answered unpinned requests are mirrored (set by the
        container)."""
        self.prediction_log: PredictionLog | None = None
        """Every request's log entry, answered or failed (set by the container)."""
        self._default_timeout = settings.server.default_timeout_ms / 1000
        self._default_model = settings.server.default_model

    async def predict(self, req: PredictRequest) -> PredictResult:
        """Route (experiments), resolve the version, validate, batch, predict (see the class
        contract). A request without a pinned version on a model with a running experiment is
        answered by the variant its routing key (or the ``variant`` override) picks. An ensemble
        endpoint is answered by its members (see :mod:`sibyl.service._ensembles`)."""
        ensembles = self.ensembles
        if ensembles is not None:
            ensemble = ensembles.endpoints.get(req.model)  # the only cost without an ensemble
            if ensemble is not None:
                return await self._ensemble(req, ensemble.predict(req, self._predict))
        started = time.perf_counter()
        exps = self.experiments
        if req.ref is None and exps is not None:
            running = exps.routes.get(req.model)  # the only cost without an experiment
            if running is not None:
                route = self._route(req, running, started)
                return self._mirror(req, await self._routed(req, exps, route, started), started)
        try:
            result = await self._predict(req)
        except SibylError as exc:
            self._log_failure(req, exc, started)
            raise
        plog = self.prediction_log
        if plog is not None:
            plog.answered(req, result, started)
        return self._mirror(req, result, started)

    async def predict_unlogged(self, req: PredictRequest) -> PredictResult:
        """One version answers ``req`` as :meth:`predict` would for a pinned request (fallback
        chain included), without a prediction-log entry (replays of logged requests)."""
        return await self._predict(req)

    async def _ensemble(
        self, req: PredictRequest, answer: Coroutine[Any, Any, PredictResult]
    ) -> PredictResult:
        started = time.perf_counter()
        try:
            result = await answer
        except SibylError as exc:
            self._log_failure(req, exc, started)
            raise
        if self.prediction_log is not None:
            self.prediction_log.answered(req, result, started)
        return result

    def _log_failure(
        self, req: PredictRequest, exc: SibylError, started: float, route: Route | None = None
    ) -> None:
        """Log a failed request (not one naming an unknown model: the log is per model)."""
        plog = self.prediction_log
        if plog is None or (isinstance(exc, NotFoundError) and not self._known(req.model)):
            return
        if route is None:
            plog.failed(req, exc, status_of(exc), started)
        else:
            plog.failed(req, exc, status_of(exc), started, route.experiment_id, route.variant)

    def _known(self, model: str) -> bool:
        ensembles = self.ensembles
        return self.manager.known(model) or bool(ensembles and model in ensembles.endpoints)

    def _mirror(self, req: PredictRequest, result: PredictResult, started: float) -> PredictResult:
        """Hand an answered unpinned request to the running shadow of its model, if any (a dict
        lookup otherwise); the shadow never changes ``result``, never delays it, never raises."""
        shadows = self.shadows
        if shadows is not None and req.ref is None and req.model in shadows.views:
            shadows.mirror(req, result, started)
        return result

    def _route(self, req: PredictRequest, running: RunningExperiment, started: float) -> Route:
        try:
            if running.kind is ExperimentKind.BANDIT and req.variant is None and self.bandits:
                return self.bandits.route(running)  # a Thompson draw; the override still wins
            return choose(running, req.routing_key, req.variant)
        except InvalidInputError as exc:  # unknown X-Variant: counted like any bad request
            self.metrics.count_failure(req.model, status_of(exc))
            self._log_failure(req, exc, started)
            raise

    async def _routed(
        self, req: PredictRequest, exps: ExperimentService, route: Route, arrived: float
    ) -> PredictResult:
        started = time.perf_counter()
        asked = req.pinned(route.model, route.ref)
        try:
            result = await self._predict(asked)
        except SibylError as exc:
            exps.record(route, req.routing_key, req.request_id, route.ref, started, True)
            self._log_failure(asked, exc, arrived, route)
            raise
        fell_back = result.fallback is not None  # the variant's version failed
        exps.record(route, req.routing_key, req.request_id, result.version, started, fell_back)
        object.__setattr__(result, "experiment", route.experiment)  # made for this request only
        object.__setattr__(result, "variant", route.variant)
        if self.prediction_log is not None:
            self.prediction_log.answered(asked, result, arrived, route.experiment_id)
        return result

    async def _predict(self, req: PredictRequest) -> PredictResult:
        """One version answers (through its circuit breaker); when it fails in a way the model's
        fallback chain covers, the chain does. Counted once, under the version asked."""
        started = time.perf_counter()
        sv = self.manager.lookup(req.model, req.ref)
        if sv is None:
            try:
                sv = await self.manager.get(req.model, req.ref)
            except SibylError as exc:
                label = req.model if self.manager.known(req.model) else UNKNOWN_MODEL
                self.metrics.count_failure(label, status_of(exc))
                raise
        timeout = self._default_timeout if req.timeout_s is None else req.timeout_s
        deadline = time.monotonic() + timeout
        chain = self._chains.get(req.model)  # the only cost without a fallback chain
        try:
            pred = await self._call(sv, req, started, chain.limit(deadline) if chain else deadline)
        except SibylError as exc:
            if chain is None or not chain.covers(exc):
                raise
            answer = await self.fallbacks.answer(req, sv, exc, deadline)
            return _fallen_back(req, sv, answer)
        sv.metrics.success(time.perf_counter() - started, len(pred))
        m = sv.loaded
        return PredictResult(
            m.name, m.version, m.engine.engine.value, req.request_id, pred, m.task, m.schema
        )

    @staticmethod
    async def _call(
        sv: ServedVersion, req: PredictRequest, started: float, deadline: float
    ) -> Prediction:
        """Admit, validate and predict with one version; a failure is counted in its metrics."""
        try:
            sv.admit()
        except OverloadedError as exc:
            sv.metrics.failure(status_of(exc), time.perf_counter() - started)
            raise
        sv.acquire()
        try:
            batch = req.inputs.to_batch(sv.loaded.schema)
            return await guarded(sv, batch, req.priority, deadline)
        except SibylError as exc:
            sv.metrics.failure(status_of(exc), time.perf_counter() - started)
            raise
        finally:
            sv.release()

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

"""ShadowService: mirror a share of a model's unpinned traffic to candidate versions.

:class:`~sibyl.service.PredictionService` hands every answered unpinned request to
:meth:`ShadowService.mirror`. The contract on that path:

* the caller's answer is never changed and never waits: ``mirror`` draws a random number and
  schedules a background task (kept in a task set); it never raises — a failure is logged and
  counted as ``error``;
* a model without a running shadow pays one dict lookup;
* each mirrored request goes to every candidate of the shadow, in the LOW priority lane of the
  candidate's own batcher with the shadow's deadline (``timeout_ms``); the candidate's batch is
  built from the request's inputs with the candidate's own schema;
* at most ``max_concurrent`` mirrored requests per experiment are in flight: beyond it the
  mirror is dropped (recorded and counted), never queued against anyone; a candidate that is not
  loaded is loaded in the background (at most once every ``LOAD_RETRY_S``) and its mirrors are
  dropped meanwhile;
* each mirrored request and candidate gives one :class:`~sibyl.store.ShadowRecord` through the
  buffered :class:`ShadowWriter` and one ``ml_shadow_requests_total{model,result}`` count
  (``agree`` when every row agreed, ``disagree``, ``error``, ``dropped``).

The view (model → its running shadow) is rebuilt from ``ExperimentService.on_refresh``. Event
loop only.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter

from sibyl.batching import Priority
from sibyl.errors import NotFoundError, SibylError
from sibyl.registry import ModelRegistry
from sibyl.service._experiments import ExperimentService
from sibyl.service._gate import ShadowGate
from sibyl.service._manager import ModelManager
from sibyl.service._predict import PredictionService, PredictRequest, PredictResult
from sibyl.service._served import ServedVersion
from sibyl.service._shadow_config import (
    ShadowConfig,
    config_of,
    primary_and_candidates,
    validate_shadow,
)
from sibyl.service._shadow_report import shadow_report
from sibyl.service._shadow_stats import agreeing_rows
from sibyl.service._shadow_writer import ShadowWriter
from sibyl.settings import PromotionGateSettings, Settings
from sibyl.store import (
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    ShadowRecord,
    ShadowStatus,
    Store,
)

log = structlog.get_logger("sibyl.shadow")
LOAD_RETRY_S = 10.0
"""Least time between two background loads of one candidate."""
RESULTS = ("agree", "disagree", "error", "dropped")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate variant: what to ask."""

    variant: str
    model: str
    ref: str
    """Version number or alias."""


@dataclass(frozen=True, slots=True)
class ShadowView:
    """What mirroring needs of one running shadow experiment."""

    experiment_id: int
    name: str
    model: str
    config: ShadowConfig
    candidates: tuple[Candidate, ...]

    @classmethod
    def of(cls, exp: Experiment) -> ShadowView:
        """The view of a stored shadow experiment."""
        _, candidates = primary_and_candidates(list(exp.variants))
        return cls(
            exp.id,
            exp.name,
            exp.model,
            config_of(exp),
            tuple(Candidate(v.name, v.model, v.version or v.alias or "") for v in candidates),
        )


class ShadowService:
    """Mirrors traffic to shadow candidates and reports on them (see the module docstring).

    ``gates`` holds the per-model promotion criteria a report is judged against (the defaults of
    :class:`PromotionGateSettings` for models without one); ``draw`` is the random draw (tests
    pass their own).
    """

    def __init__(
        self,
        manager: ModelManager,
        store: Store,
        writer: ShadowWriter,
        *,
        gates: Mapping[str, PromotionGateSettings] | None = None,
        registry: CollectorRegistry | None = None,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self.manager = manager
        self.store = store
        self.writer = writer
        self.gates = dict(gates or {})
        self.views: dict[str, ShadowView] = {}
        """Model → its running shadow; replaced as a whole, never mutated."""
        self._draw = draw
        self._inflight: dict[int, int] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loads: dict[tuple[str, str], float] = {}
        self.requests = Counter(
            "ml_shadow_requests",
            "Requests mirrored to shadow candidates by result: agree (every row agreed), "
            "disagree, error (the candidate failed), dropped (not sent: too many in flight or "
            "the candidate not loaded).",
            ["model", "result"],
            registry=registry,
        )

    # ---- life cycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start the record writer."""
        self.writer.start()

    async def stop(self) -> None:
        """Cancel mirrors in flight, then flush and stop the writer."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.to_thread(self.writer.close)

    async def drain(self) -> None:
        """Wait until no mirror is in flight (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def refresh(self, running: Sequence[Experiment]) -> None:
        """Rebuild the views from the running experiments (an ``on_refresh`` listener) and load
        candidates that are not loaded yet."""
        views: dict[str, ShadowView] = {}
        shadows = [e for e in running if e.kind is ExperimentKind.SHADOW]
        for exp in sorted(shadows, key=lambda e: (e.started_at or e.created_at, e.id)):
            if exp.model in views or exp.status is not ExperimentStatus.RUNNING:
                continue
            try:
                views[exp.model] = ShadowView.of(exp)
            except SibylError as exc:  # a config written around the service: skip, say why
                log.warning("shadow_config_unreadable", experiment=exp.name, error=exc.message)
        self.views = views
        for view in views.values():
            for cand in view.candidates:
                if self.manager.lookup(cand.model, cand.ref) is None:
                    self._load_later(cand)

    # ---- the prediction path ------------------------------------------------------------

    def mirror(self, req: PredictRequest, result: PredictResult, started: float) -> None:
        """Maybe mirror one answered unpinned request (see the module docstring); ``started``
        is the ``perf_counter()`` at which the primary began. Never raises, never waits."""
        view = self.views.get(req.model)
        if view is None or result.fallback is not None:  # a fallback's answer is not the primary's
            return
        try:
            if self._draw() >= view.config.share:
                return
            primary_ms = (time.perf_counter() - started) * 1e3
            for cand in view.candidates:
                self._send(view, cand, req, result, primary_ms)
        except Exception:  # a bug here must never reach the caller
            self.requests.labels(view.model, "error").inc()
            log.exception("shadow_mirror_failed", experiment=view.name)

    def _send(
        self,
        view: ShadowView,
        cand: Candidate,
        req: PredictRequest,
        result: PredictResult,
        primary_ms: float,
    ) -> None:
        eid = view.experiment_id
        sv = self.manager.lookup(cand.model, cand.ref)
        if sv is None or self._inflight.get(eid, 0) >= view.config.max_concurrent:
            if sv is None:
                self._load_later(cand)
            self._finish(view, _dropped(view, cand, sv, req, result, primary_ms))
            return
        if (sv.name, sv.version) == (result.model, result.version):
            return  # the candidate itself answered (e.g. through an A/B test): nothing to mirror
        self._inflight[eid] = self._inflight.get(eid, 0) + 1
        task = asyncio.get_running_loop().create_task(
            self._shadow(view, cand, req, result, primary_ms)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _shadow(
        self,
        view: ShadowView,
        cand: Candidate,
        req: PredictRequest,
        result: PredictResult,
        primary_ms: float,
    ) -> None:
        try:
            record = await self._ask(view, cand, req, result, primary_ms)
        except Exception as exc:  # counted, never raised
            log.debug("shadow_failed", experiment=view.name, error=repr(exc))
            record = _record(view, cand, None, req, result, primary_ms, ShadowStatus.ERROR)
        finally:
            self._inflight[view.experiment_id] -= 1
        self._finish(view, record)

    async def _ask(
        self,
        view: ShadowView,
        cand: Candidate,
        req: PredictRequest,
        result: PredictResult,
        primary_ms: float,
    ) -> ShadowRecord:
        sv = self.manager.lookup(cand.model, cand.ref)  # again: it may be gone since the mirror
        if sv is None:
            return _dropped(view, cand, None, req, result, primary_ms)
        started = time.perf_counter()
        sv.acquire()
        try:
            batch = req.inputs.to_batch(sv.loaded.schema)
            deadline = time.monotonic() + view.config.timeout_ms / 1000
            pred = await sv.batcher.predict(batch, priority=Priority.LOW, deadline=deadline)
            ms = (time.perf_counter() - started) * 1e3
            agreed = agreeing_rows(
                result.prediction, pred, view.config.agreement, view.config.tolerance, result.task
            )
        except Exception as exc:  # raised, timed out, refused the input, answered garbage
            log.debug("shadow_candidate_failed", experiment=view.name, error=repr(exc))
            ms = (time.perf_counter() - started) * 1e3
            return _record(view, cand, sv, req, result, primary_ms, ShadowStatus.ERROR, ms)
        finally:
            sv.release()
        rows = len(result.prediction)
        return _record(
            view, cand, sv, req, result, primary_ms, ShadowStatus.COMPARED, ms, rows, agreed
        )

    def _finish(self, view: ShadowView, record: ShadowRecord) -> None:
        try:
            self.writer.submit(record)
            self.requests.labels(view.model, _result(record)).inc()
        except Exception:  # a bug here must not escape a background task either
            self.requests.labels(view.model, "error").inc()
            log.exception("shadow_record_failed", experiment=view.name)

    def _load_later(self, cand: Candidate) -> None:
        key = (cand.model, cand.ref)
        now = time.monotonic()
        if now - self._loads.get(key, -LOAD_RETRY_S) < LOAD_RETRY_S:
            return
        self._loads[key] = now
        task = asyncio.get_running_loop().create_task(self._load(cand))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self, cand: Candidate) -> None:
        try:
            await self.manager.get(cand.model, cand.ref)
        except SibylError as exc:
            log.warning(
                "shadow_candidate_load_failed", model=cand.model, ref=cand.ref, error=exc.message
            )

    # ---- control plane ------------------------------------------------------------------

    def criteria_for(self, model: str) -> tuple[PromotionGateSettings, str]:
        """The gate criteria a shadow of ``model`` is judged against, and where they come from."""
        gate = self.gates.get(model)
        if gate is not None:
            return gate, f"promotion_gates.{model}"
        return PromotionGateSettings(), "defaults"

    async def report(self, name: str) -> dict[str, Any]:
        """The shadow report of experiment ``name`` (JSON-friendly; see
        :func:`~sibyl.service._shadow_report.shadow_report`). ``NotFoundError`` when there is no
        such experiment or it is not a shadow."""
        exp = await asyncio.to_thread(self.store.get_experiment, name)
        if exp.kind is not ExperimentKind.SHADOW:
            raise NotFoundError(
                f"Experiment '{name}' is a {exp.kind} experiment and has no shadow report; read "
                f"its results at /v1/experiments/{name}/results"
            )
        aggregates = await asyncio.to_thread(self.store.shadow_aggregates, exp.id)
        criteria, source = self.criteria_for(exp.model)
        report = shadow_report(exp, aggregates, criteria, source)
        report["in_flight"] = self._inflight.get(exp.id, 0)
        return report


def _dropped(
    view: ShadowView,
    cand: Candidate,
    sv: ServedVersion | None,
    req: PredictRequest,
    result: PredictResult,
    primary_ms: float,
) -> ShadowRecord:
    return _record(view, cand, sv, req, result, primary_ms, ShadowStatus.DROPPED)


def _record(
    view: ShadowView,
    cand: Candidate,
    sv: ServedVersion | None,
    req: PredictRequest,
    result: PredictResult,
    primary_ms: float,
    status: ShadowStatus,
    shadow_ms: float | None = None,
    rows: int = 0,
    agreed: int = 0,
) -> ShadowRecord:
    version = sv.version if sv is not None else (cand.ref if cand.ref.isdigit() else None)
    return ShadowRecord(
        experiment_id=view.experiment_id,
        variant=cand.variant,
        request_id=req.request_id or result.request_id,
        model=result.model,
        primary_version=result.version,
        candidate_model=cand.model,
        candidate_version=version,
        status=status,
        rows=rows,
        agreeing_rows=agreed,
        primary_latency_ms=primary_ms,
        shadow_latency_ms=shadow_ms,
    )


def _result(record: ShadowRecord) -> str:
    if record.status is ShadowStatus.COMPARED:
        return "agree" if record.agreeing_rows == record.rows else "disagree"
    return record.status.value


def wire_shadows(
    settings: Settings,
    experiments: ExperimentService,
    service: PredictionService,
    manager: ModelManager,
    registry: ModelRegistry,
    metrics: CollectorRegistry,
) -> tuple[ShadowService, ShadowGate | None]:
    """Enable shadow experiments (validator, refresh listener, the mirror on the prediction
    path) and, for the models in ``settings.promotion_gates``, the promotion gate (the
    registry's promotion check and the manager's production gate)."""
    store = experiments.store
    writer = ShadowWriter(
        store,
        flush_interval_s=settings.store.flush_interval_s,
        flush_rows=settings.store.flush_rows,
        dropped=experiments.writer.dropped,
    )
    gates = settings.promotion_gates
    shadows = ShadowService(manager, store, writer, gates=gates, registry=metrics)
    experiments.register_kind(ExperimentKind.SHADOW, validate_shadow)
    experiments.on_refresh(shadows.refresh)
    service.shadows = shadows
    if not gates:
        return shadows, None
    gate = ShadowGate(store, registry, gates, metrics=metrics)
    registry.add_promotion_check(gate.check_promotion)
    manager.gate = gate.allow_swap
    return shadows, gate

"""ExperimentService: A/B/n experiments over the store, and the routing snapshot predictions read.

Transport-free: HTTP routes, the CLI (through HTTP) and tests call the same coroutines. Store
calls block, so they run in worker threads. The snapshot of RUNNING experiments (model →
:class:`RunningExperiment`) is rebuilt from the store every ``refresh_interval_s`` — so replicas
sharing one database agree within that interval — and at once after a change made here.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from sibyl.errors import ConflictError, InvalidInputError, SibylError
from sibyl.service._outcomes import AssignmentRecord, OutcomeWriter
from sibyl.service._results import parse_metrics, results
from sibyl.service._router import Route, RoutingSnapshot, RunningExperiment, build_snapshot
from sibyl.store import (
    ROUTED_KINDS,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    NewFeedback,
    PredictionOutcome,
    Store,
    Variant,
    VariantAggregate,
)

log = structlog.get_logger("sibyl.experiments")


@dataclass(frozen=True, slots=True)
class NewExperiment:
    """What creating an experiment takes (variants: ``Variant``; an empty ``model`` on a variant
    means the experiment's model)."""

    name: str
    model: str
    variants: Sequence[Variant]
    success_metrics: Sequence[str] = ()
    salt: str | None = None
    description: str | None = None
    kind: ExperimentKind = ExperimentKind.AB
    config: Mapping[str, Any] = field(default_factory=dict)
    """Kind-specific settings (canary steps, shadow share, bandit floor, ensemble combine…),
    checked by the validator registered for ``kind`` and stored in the experiment's ``routing``."""


KindValidator = Callable[[NewExperiment], dict[str, Any] | Awaitable[dict[str, Any]]]
"""Checks a new experiment of one kind (``InvalidInputError`` naming the field) and returns the
``routing`` JSON to store; a coroutine function when checking needs I/O (ensemble members)."""

ResultsExtension = Callable[[Experiment, Sequence[VariantAggregate]], dict[str, Any]]
"""Kind-specific keys added to an experiment's results (e.g. a bandit's posteriors)."""

RefreshListener = Callable[[Sequence[Experiment]], None]
"""Called on the event loop with every RUNNING experiment (any kind) after each refresh."""


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """One outcome reported by a client (see ``POST /v1/feedback``)."""

    request_id: str | None = None
    routing_key: str | None = None
    experiment: str | None = None
    model: str | None = None
    success: bool | None = None
    value: float | None = None
    label: str | None = None
    row: int | None = None
    """Row of the request the truth is for (``None``: every row)."""
    event_at: datetime | None = None
    """When the outcome happened: with ``routing_key`` (and no ``request_id``) the feedback is
    about that key's latest prediction at or before this time."""


class ExperimentService:
    """Create, run and read experiments; hold the routing snapshot.

    Thread safety: coroutines on the server's event loop. :attr:`routes` is replaced as a whole
    (never mutated), so readers need no lock. Store failures raise the store's ``SibylError``s;
    a failed periodic refresh keeps the last snapshot and logs a warning.
    """

    def __init__(
        self, store: Store, writer: OutcomeWriter, *, refresh_interval_s: float = 2.0
    ) -> None:
        self.store = store
        self.writer = writer
        self.routes: RoutingSnapshot = {}
        """Model → its running traffic-splitting experiment (kinds in ``ROUTED_KINDS``)."""
        self.running: tuple[Experiment, ...] = ()
        """Every RUNNING experiment of any kind, as of the last refresh."""
        self._interval = refresh_interval_s
        self._task: asyncio.Task[None] | None = None
        self._validators: dict[ExperimentKind, KindValidator] = {}
        self._listeners: list[RefreshListener] = []
        self._extensions: dict[ExperimentKind, ResultsExtension] = {}

    def register_kind(self, kind: ExperimentKind, validate: KindValidator) -> None:
        """Allow creating experiments of ``kind`` (A/B needs no validator)."""
        self._validators[kind] = validate

    def extend_results(self, kind: ExperimentKind, extend: ResultsExtension) -> None:
        """Add ``extend(experiment, aggregates)``'s keys to the results of every ``kind``."""
        self._extensions[kind] = extend

    def on_refresh(self, listener: RefreshListener) -> None:
        """Call ``listener`` with the running experiments after every refresh (shadow, ensemble
        and bandit views are rebuilt this way)."""
        self._listeners.append(listener)

    async def start(self) -> None:
        """Migrate the schema, load the snapshot, start the writer and the refresher."""
        await asyncio.to_thread(self.store.migrate)
        await self.refresh()
        self.writer.start()
        if self._interval > 0:
            self._task = asyncio.create_task(self._refresh_loop(), name="sibyl-experiments")

    async def stop(self) -> None:
        """Stop refreshing, flush the writer, close the store."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.writer.close)
        await asyncio.to_thread(self.store.close)

    async def refresh(self) -> None:
        """Rebuild the routing snapshot from the store's running experiments."""
        running = await asyncio.to_thread(
            self.store.list_experiments, status=ExperimentStatus.RUNNING
        )
        self.routes = build_snapshot(running)
        self.running = tuple(running)
        for listener in self._listeners:
            listener(self.running)

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.refresh()
            except SibylError as exc:  # keep routing on the last snapshot
                log.warning("experiments_refresh_failed", error=exc.message)
            except Exception:  # a bug must not end the refresher silently
                log.exception("experiments_refresh_failed")

    # ---- control plane ------------------------------------------------------------------

    async def create(self, spec: NewExperiment) -> Experiment:
        """Store a new draft experiment. ``InvalidInputError`` naming the field for bad input,
        ``ConflictError`` when the name is taken."""
        _check_name(spec.name, "name")
        _check_name(spec.model, "model")
        parse_metrics(spec.success_metrics)
        variants = [v if v.model else _with_model(v, spec.model) for v in spec.variants]
        if len(variants) < 2:
            raise InvalidInputError(
                f"a {spec.kind} experiment needs at least two variants (a control and a "
                "treatment, or two members)",
                field="variants",
            )
        routing: dict[str, Any] = {}
        if spec.kind is not ExperimentKind.AB:
            validate = self._validators.get(spec.kind)
            if validate is None:
                raise InvalidInputError(
                    f"experiments of kind '{spec.kind}' are not enabled on this server",
                    field="kind",
                )
            checked = validate(spec)
            routing = await checked if inspect.isawaitable(checked) else checked
        if spec.description:
            routing["description"] = spec.description
        return await asyncio.to_thread(
            self.store.create_experiment,
            spec.name,
            spec.model,
            spec.kind,
            variants,
            salt=spec.salt,
            routing=routing or None,
            success_metrics=[{"spec": s} for s in spec.success_metrics],
        )

    async def get(self, name: str) -> Experiment:
        """The experiment called ``name`` (``NotFoundError`` otherwise)."""
        return await asyncio.to_thread(self.store.get_experiment, name)

    async def list(
        self, *, model: str | None = None, status: ExperimentStatus | None = None
    ) -> list[Experiment]:
        """Experiments, oldest first, optionally of one model / in one status."""
        return await asyncio.to_thread(self.store.list_experiments, model=model, status=status)

    async def start_experiment(self, name: str) -> Experiment:
        """Route traffic to the experiment (draft or paused → running). ``ConflictError`` when
        another experiment already runs on the same model."""
        exp = await self.get(name)
        others = await self.list(model=exp.model, status=ExperimentStatus.RUNNING)
        clash = [o.name for o in others if o.id != exp.id and _same_slot(o.kind, exp.kind)]
        if clash:
            raise ConflictError(
                f"Experiment '{clash[0]}' already runs on model '{exp.model}'; pause or stop it "
                f"before starting '{name}'"
            )
        return await self._set(name, ExperimentStatus.RUNNING)

    async def pause(self, name: str) -> Experiment:
        """Stop routing (running → paused); production answers again."""
        return await self._set(name, ExperimentStatus.PAUSED)

    async def stop_experiment(self, name: str) -> Experiment:
        """End the experiment for good (its records stay for the results)."""
        return await self._set(name, ExperimentStatus.STOPPED)

    async def _set(self, name: str, status: ExperimentStatus) -> Experiment:
        exp = await asyncio.to_thread(self.store.set_status, name, status)
        await self.refresh()
        return exp

    async def results(self, name: str) -> dict[str, Any]:
        """Per-variant numbers, comparisons with control, SRM and the decision (JSON-friendly;
        see :mod:`sibyl.service._results`)."""
        exp = await self.get(name)
        aggregates = await asyncio.to_thread(self.store.aggregates, exp.id)
        specs = [str(m.get("spec", "")) for m in exp.success_metrics]
        out = results(exp, aggregates, parse_metrics(specs))
        extend = self._extensions.get(exp.kind)
        return out if extend is None else {**out, **extend(exp, aggregates)}

    # ---- feedback -----------------------------------------------------------------------

    async def feedback(self, items: Sequence[FeedbackItem]) -> int:
        """Store feedback items in one transaction (all or none); returns how many.
        ``InvalidInputError`` naming the field (``items[i].field`` in bulk) for bad input."""
        known: dict[str, Experiment] = {}  # a bulk post usually names one experiment
        rows = [
            await self._new_feedback(item, i, len(items), known) for i, item in enumerate(items)
        ]
        return await asyncio.to_thread(self.store.add_feedback_many, rows)

    async def _new_feedback(
        self, item: FeedbackItem, index: int, total: int, known: dict[str, Experiment]
    ) -> NewFeedback:
        where = f"items[{index}]." if total > 1 else ""
        try:
            if item.experiment and item.experiment not in known:
                known[item.experiment] = await self.get(item.experiment)
            return await self._to_row(item, known.get(item.experiment or ""))
        except InvalidInputError as exc:
            raise InvalidInputError(exc.message, field=f"{where}{exc.field or 'body'}") from None

    async def _to_row(self, item: FeedbackItem, exp: Experiment | None) -> NewFeedback:
        if item.success is not None and item.value is not None:
            raise InvalidInputError(
                "give 'success' or 'value', not both (one numeric outcome per feedback item)",
                field="value",
            )
        model = exp.model if exp else item.model
        if not model:
            raise InvalidInputError(
                "feedback names neither 'model' nor 'experiment'; give one", field="model"
            )
        value = item.value if item.success is None else float(item.success)
        outcome = {"success": item.success} if item.success is not None else None
        exp_id, variant = await self._attribution(exp, item.routing_key, item.request_id)
        row = NewFeedback(
            model=model,
            request_id=item.request_id,
            routing_key=item.routing_key,
            experiment_id=exp_id,
            variant=variant,
            outcome=outcome,
            value=value,
            label=item.label,
            row=item.row,
            event_at=item.event_at,
        )
        row.validate()
        return row

    async def _attribution(
        self, exp: Experiment | None, key: str | None, request_id: str | None
    ) -> tuple[int | None, str | None]:
        """Explicit attribution for a routing key with a stored assignment and no request id;
        otherwise the store attributes through the request id's prediction record."""
        if exp is None or key is None or request_id is not None:
            return None, None
        found = await asyncio.to_thread(self.store.get_assignment, exp.id, key)
        return (exp.id, found.variant) if found else (None, None)

    # ---- the prediction path ------------------------------------------------------------

    def record(
        self,
        route: Route,
        routing_key: str | None,
        request_id: str,
        version: str,
        started: float,
        error: bool,
    ) -> None:
        """Buffer the assignment and the outcome of one routed prediction (never blocks or
        raises; QA overrides are not recorded so they do not bias the results)."""
        if route.overridden:
            return
        if routing_key:
            self.writer.submit(AssignmentRecord(route.experiment_id, routing_key, route.variant))
        latency_ms = (time.perf_counter() - started) * 1e3
        self.writer.submit(
            PredictionOutcome(
                request_id,
                route.model,
                version,
                latency_ms,
                route.experiment_id,
                route.variant,
                error,
            )
        )


def _same_slot(a: ExperimentKind, b: ExperimentKind) -> bool:
    """Two running experiments on one model clash when both split its traffic, or both are of
    the same non-splitting kind (a shadow may run beside an A/B test)."""
    return (a in ROUTED_KINDS and b in ROUTED_KINDS) or a == b


def _check_name(value: str, what: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise InvalidInputError(
            f"'{what}' must be a non-empty string of at most 200 characters, got {value!r}",
            field=what,
        )


def _with_model(v: Variant, model: str) -> Variant:
    return Variant(v.name, model, v.version, v.alias, v.weight, v.is_control)


__all__ = [
    "ExperimentService",
    "FeedbackItem",
    "KindValidator",
    "NewExperiment",
    "RefreshListener",
    "RunningExperiment",
]

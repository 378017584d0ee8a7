"""CanaryController: walks running canaries step by step, then promotes or rolls them back.

Every ``interval_s`` the controller looks at each RUNNING canary experiment in the store:

1. first look — writes the initial state (step 0, begun when the experiment started) together
   with the first step's weights;
2. ``running`` — judges the step (:mod:`sibyl.service._canary_policy`) on the records since the
   step began (at the 100 % step the baseline serves no more, so its numbers are those since the
   canary began) and applies the move:

   * advance — the next step's weights and a new step clock, in one write;
   * rollback — weights baseline 100 / candidate 0 and the reason, in one write; then the
     experiment stops, so production (the baseline) answers everything;
   * promote — phase ``promoting`` (one write); the production alias moves to the candidate in
     the registry and this replica hot-swaps to it; phase ``promoted``; the experiment stops.
     Until it stops the candidate takes 100 % through the experiment, so no request fails.

3. ``promoting`` / ``promoted`` / ``rolled_back`` on a still-running experiment (a replica died
   midway, the registry was down): what is left is done again; every part is idempotent.

**Replicas.** Every write is a compare-and-set on the experiment's ``routing`` JSON
(:meth:`~sibyl.store.Store.update_routing` with ``expected``): replicas sharing a database that
judge the same state race, one write wins, the others get ``ConflictError`` and look again at
the next tick — a step is never taken twice. Moving the alias twice to one version is harmless.

**Failures.** A store or registry failure during a tick is logged (``canary_tick_failed``) and
retried at the next tick; the loop never ends on an error. A paused canary is not judged, but its
step clock keeps running.

**Metrics.** ``ml_canary_step{model,experiment}``: the candidate's share (%) at the current step
(0 after a rollback, 100 once promoted); ``ml_canary_decisions_total{model,action}``: advance,
promote and rollback decisions, each counted once across replicas (by the writer that won).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from sibyl.errors import ConflictError, InvalidInputError, PromotionRefusedError, SibylError
from sibyl.registry import ModelRegistry
from sibyl.service._canary_config import CanaryConfig, roles, validate_canary
from sibyl.service._canary_policy import (
    CanaryState,
    Decision,
    Move,
    Phase,
    StepVerdict,
    apply,
    decide,
    judge_step,
    promoted,
)
from sibyl.service._canary_promoter import Promoter, RegistryPromoter
from sibyl.service._canary_view import check_abortable, describe, require_canary
from sibyl.service._experiments import ExperimentService, NewExperiment
from sibyl.service._manager import ModelManager
from sibyl.settings import Settings
from sibyl.store import (
    ROUTED_KINDS,
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    Variant,
    VariantAggregate,
)

log = structlog.get_logger("sibyl.canary")
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NewCanary:
    """A canary of ``version`` against the model's production version (see ``create``)."""

    model: str
    version: str
    config: Mapping[str, Any] = field(default_factory=dict)
    name: str | None = None
    """Experiment name (default ``<model>-canary-v<version>``, suffixed when taken)."""
    description: str | None = None


class CanaryMetrics:
    """``ml_canary_step`` and ``ml_canary_decisions_total`` (module docstring)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry if registry is not None else CollectorRegistry()
        self.step = Gauge(
            "ml_canary_step",
            "Candidate's traffic share (%) at the canary's current step (0 after a rollback).",
            ["model", "experiment"],
            registry=r,
        )
        self.decisions = Counter(
            "ml_canary_decisions",
            "Canary decisions by action: advance (a step passed), promote, rollback.",
            ["model", "action"],
            registry=r,
        )


class CanaryController:
    """Judges and moves running canaries (module docstring); also creates, shows and aborts them.

    Coroutines on the server's event loop; store and registry calls run in worker threads.
    ``clock`` gives aware UTC datetimes (tests pass a fake one).
    """

    def __init__(
        self,
        experiments: ExperimentService,
        promoter: Promoter,
        *,
        interval_s: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.experiments = experiments
        self.store = experiments.store
        self.promoter = promoter
        self.metrics = CanaryMetrics(registry)
        self._interval = interval_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start judging every ``interval_s`` (0: never, on this replica)."""
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._loop(), name="sibyl-canary")

    async def stop(self) -> None:
        """Stop judging (a tick in progress is cancelled; the next start resumes from the store)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.tick()
            except Exception:  # a bug must not end the controller silently
                log.exception("canary_tick_failed")

    async def tick(self) -> dict[str, str]:
        """Look at every running canary once; returns experiment name → what was done
        (``started``, a :class:`Move`, ``stopped``, ``conflict`` or ``failed``). Never raises a
        ``SibylError``: failures are logged and retried at the next tick."""
        try:
            running = await self._thread(
                self.store.list_experiments, status=ExperimentStatus.RUNNING
            )
        except SibylError as exc:
            log.warning("canary_tick_failed", error=exc.message)
            return {}
        done: dict[str, str] = {}
        for exp in running:
            if exp.kind is ExperimentKind.CANARY:
                done[exp.name] = await self._guarded(exp)
        return done

    async def _guarded(self, exp: Experiment) -> str:
        try:
            return await self._look(exp)
        except ConflictError:
            log.info("canary_changed_elsewhere", experiment=exp.name)
            return "conflict"
        except SibylError as exc:
            log.warning("canary_tick_failed", experiment=exp.name, error=exc.message)
            return "failed"

    async def _look(self, exp: Experiment) -> str:
        cfg = CanaryConfig.from_routing(exp.routing)
        state = CanaryState.from_routing(exp.routing)
        baseline, candidate = roles(exp)
        if state is None:
            state = CanaryState.begin(exp.started_at or self._clock())
            await self._write(exp, state, cfg.weights(0, baseline.name, candidate.name))
            self._gauge(exp, cfg.steps[0])
            return "started"
        if state.phase is Phase.PROMOTING:
            return (await self._finish_promotion(exp, state)).value
        if state.phase is not Phase.RUNNING:
            await self.experiments.stop_experiment(exp.name)
            return "stopped"
        decision = decide(cfg, state, await self._verdict(exp, cfg, state), self._clock())
        if decision.move is Move.WAIT:
            self._gauge(exp, cfg.steps[state.step])
            return Move.WAIT.value
        return (await self._apply(exp, cfg, state, decision)).value

    async def _apply(
        self, exp: Experiment, cfg: CanaryConfig, state: CanaryState, decision: Decision
    ) -> Move:
        new = apply(cfg, state, decision, self._clock())
        baseline, candidate = roles(exp)
        if decision.move is Move.ADVANCE:
            await self._write(exp, new, cfg.weights(new.step, baseline.name, candidate.name))
            self._count(exp, Move.ADVANCE)
            self._gauge(exp, cfg.steps[new.step])
            log.info("canary_advanced", experiment=exp.name, percent=cfg.steps[new.step])
            await self.experiments.refresh()
        elif decision.move is Move.ROLLBACK:
            await self._rolled_back(exp, new, baseline, candidate)
        else:
            return await self._finish_promotion(await self._write(exp, new), new)
        return decision.move

    async def _rolled_back(
        self, exp: Experiment, new: CanaryState, baseline: Variant, candidate: Variant
    ) -> None:
        await self._write(exp, new, {baseline.name: 100.0, candidate.name: 0.0})
        self._count(exp, Move.ROLLBACK)
        self._gauge(exp, 0.0)
        log.warning("canary_rolled_back", experiment=exp.name, reason=new.reason)
        await self.experiments.stop_experiment(exp.name)

    async def _finish_promotion(self, exp: Experiment, state: CanaryState) -> Move:
        baseline, candidate = roles(exp)
        assert candidate.version is not None  # the validator pins both variants
        try:
            await self.promoter.promote(exp.model, candidate.version)
        except PromotionRefusedError as exc:  # e.g. no passing shadow period: it cannot ship
            cfg = CanaryConfig.from_routing(exp.routing)
            refused = Decision(Move.ROLLBACK, f"the promotion was refused: {exc.message}")
            await self._rolled_back(
                exp, apply(cfg, state, refused, self._clock()), baseline, candidate
            )
            return Move.ROLLBACK
        await self._write(exp, promoted(state, self._clock()))
        self._count(exp, Move.PROMOTE)
        self._gauge(exp, 100.0)
        log.info("canary_promoted", experiment=exp.name, version=candidate.version)
        await self.experiments.stop_experiment(exp.name)
        return Move.PROMOTE

    async def _verdict(self, exp: Experiment, cfg: CanaryConfig, state: CanaryState) -> StepVerdict:
        baseline, candidate = roles(exp)
        aggs = await self._thread(
            self.store.aggregates, exp.id, since=state.step_started_at, percentiles=False
        )
        base, cand = _pick(aggs, baseline.name), _pick(aggs, candidate.name)
        if cfg.steps[state.step] >= 100:  # the baseline serves no more: its numbers so far
            whole = await self._thread(
                self.store.aggregates, exp.id, since=state.started_at, percentiles=False
            )
            base = _pick(whole, baseline.name)
        return judge_step(cfg, base, cand)

    async def _write(
        self, exp: Experiment, state: CanaryState, weights: Mapping[str, float] | None = None
    ) -> Experiment:
        """Compare-and-set the state (and weights) against the routing ``exp`` was read with."""
        return await self._thread(
            self.store.update_routing,
            exp.id,
            state.routing(exp.routing),
            expected=exp.routing,
            weights=weights,
        )

    def _gauge(self, exp: Experiment, percent: float) -> None:
        self.metrics.step.labels(exp.model, exp.name).set(percent)

    def _count(self, exp: Experiment, move: Move) -> None:
        self.metrics.decisions.labels(exp.model, move.value).inc()

    @staticmethod
    async def _thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)

    # ---- control plane ------------------------------------------------------------------

    async def create(self, spec: NewCanary) -> dict[str, Any]:
        """Create and start a canary of ``spec.version`` against the production version; the
        candidate is loaded and warmed first. ``InvalidInputError`` naming the field,
        ``NotFoundError`` (model, version or production alias missing), ``ConflictError`` (an
        experiment already splits the model's traffic, or the name is taken)."""
        cfg = CanaryConfig.parse(spec.config)
        version = spec.version.strip()
        if not version.isdigit():
            raise InvalidInputError(
                f"'version' must be a version number, got {spec.version!r}", field="version"
            )
        baseline = await self.promoter.production_version(spec.model)
        if baseline == version:
            raise InvalidInputError(
                f"version {version} of '{spec.model}' is already in production; canary another "
                "version",
                field="version",
            )
        await self._check_free(spec.model)
        await self.promoter.prepare(spec.model, version)
        name = spec.name or await self._free_name(spec.model, version)
        share = cfg.steps[0]
        variants = [
            Variant("baseline", spec.model, baseline, weight=100.0 - share, is_control=True),
            Variant("candidate", spec.model, version, weight=share),
        ]
        new = NewExperiment(
            name,
            spec.model,
            variants,
            description=spec.description,
            kind=ExperimentKind.CANARY,
            config=dict(spec.config),
        )
        await self.experiments.create(new)
        return await self._start(name)

    async def _start(self, name: str) -> dict[str, Any]:
        try:
            exp = await self.experiments.start_experiment(name)
        except SibylError:
            await self.experiments.stop_experiment(name)  # leave no draft behind
            raise
        await self._guarded(exp)  # the initial state, at once
        return await self.status(name)

    async def _check_free(self, model: str) -> None:
        running = await self.experiments.list(model=model, status=ExperimentStatus.RUNNING)
        busy = [e.name for e in running if e.kind in ROUTED_KINDS]
        if busy:
            raise ConflictError(
                f"Experiment '{busy[0]}' already splits the traffic of model '{model}'; stop it "
                "before starting a canary"
            )

    async def _free_name(self, model: str, version: str) -> str:
        taken = {e.name for e in await self.experiments.list(model=model)}
        base = f"{model}-canary-v{version}"
        return next(n for n in _names(base) if n not in taken)

    async def status(self, name: str) -> dict[str, Any]:
        """State, weights, the verdict as of now (while running) and the history."""
        exp = await self.experiments.get(name)
        require_canary(exp)
        cfg = CanaryConfig.from_routing(exp.routing)
        state = CanaryState.from_routing(exp.routing)
        verdict = None
        if exp.status is ExperimentStatus.RUNNING and state and state.phase is Phase.RUNNING:
            verdict = (await self._verdict(exp, cfg, state)).to_json()
        return describe(exp, cfg, state, verdict)

    async def rollback(self, name: str, reason: str = "rolled back by hand") -> dict[str, Any]:
        """Abort a canary: baseline 100 %, experiment stopped, ``reason`` recorded.
        ``ConflictError`` when it is over already or its promotion is under way."""
        for _ in range(5):  # lost a compare-and-set to the controller: read again
            exp = await self.experiments.get(name)
            require_canary(exp)
            state = CanaryState.from_routing(exp.routing) or CanaryState.begin(
                exp.started_at or self._clock()
            )
            check_abortable(exp, state)
            if state.phase is Phase.RUNNING:
                cfg = CanaryConfig.from_routing(exp.routing)
                new = apply(cfg, state, Decision(Move.ROLLBACK, reason), self._clock())
                try:
                    await self._rolled_back(exp, new, *roles(exp))
                except ConflictError:
                    continue
            else:
                await self.experiments.stop_experiment(name)  # rolled back, not stopped yet
            return await self.status(name)
        raise ConflictError(f"Canary '{name}' kept changing while rolling back; try again")


def _pick(aggs: list[VariantAggregate], name: str) -> VariantAggregate:
    return next(a for a in aggs if a.variant == name)


def _names(base: str) -> Iterator[str]:
    yield base
    n = 2
    while True:
        yield f"{base}-{n}"
        n += 1


def wire_canary(
    settings: Settings,
    experiments: ExperimentService,
    registry: ModelRegistry,
    manager: ModelManager,
    metrics: CollectorRegistry,
) -> CanaryController:
    """Allow canary experiments and build their controller (started by the container)."""
    experiments.register_kind(ExperimentKind.CANARY, validate_canary)
    return CanaryController(
        experiments,
        RegistryPromoter(registry, manager),
        interval_s=settings.canary.interval_s,
        registry=metrics,
    )

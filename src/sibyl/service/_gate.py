"""ShadowGate: a version may become production only after a passing shadow period.

A model named in ``settings.promotion_gates`` (with ``require_shadow``) is gated: version V
passes when a shadow experiment of the model that ran (running, paused or stopped) has V as a
candidate whose records meet every criterion (:func:`~sibyl.service._shadow_stats.judge`).
Two hooks, both passed in explicitly by the container:

* :meth:`ShadowGate.check_promotion` — the registry façade's promotion check: sibyl's own
  promotions (``POST /v1/models/{name}/versions/{v}/stage``, ``sibyl models promote``) are
  refused with ``PromotionRefusedError`` (409) naming the failed criteria, before anything moves.
* :meth:`ShadowGate.allow_swap` — the :class:`ModelManager`'s production gate, asked when the
  production alias moved (by anyone: the registry watcher sees plain MLflow clients too)
  *before* the new version is loaded. A refused version is never swapped in: the gate moves
  the alias back to the version that is serving (else the previous one), tags the refused
  version ``sibyl.promotion_gate`` with the reason, logs it and returns ``False``. Never swapping
  is safer than swapping and then back: no request is ever answered by the unvetted version,
  and it is never even loaded.

Not gated: models without a gate; a first production version (there is nothing to shadow it
against or roll back to); re-promoting the production version; a move back to the version that
is serving (the gate's own rollback as the watcher sees it, an operator undoing a move); the
version the gate itself just restored. When the store cannot be read, no passing shadow period
can be shown: the promotion is refused / rolled back (fail closed) and the reason says so. The
rollback happens only while production still points at the refused version (someone may have
moved it on meanwhile). Counts ``ml_promotion_gate_total{model,result}``: ``pass``, ``refuse``
(sibyl's own promotion), ``rollback``, ``rollback_failed``, ``superseded``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass

import structlog
from prometheus_client import CollectorRegistry, Counter

from sibyl.errors import PromotionRefusedError, SibylError
from sibyl.registry import AliasChange, ModelRegistry, Stage
from sibyl.service._shadow_stats import Check, judge
from sibyl.settings import PromotionGateSettings
from sibyl.store import ExperimentKind, ExperimentStatus, Store

log = structlog.get_logger("sibyl.gate")
GATE_TAG = "sibyl.promotion_gate"
"""Version tag the gate writes on a version it moved production away from (the reason)."""
PRODUCTION = Stage.PRODUCTION.value


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """Whether ``version`` of ``model`` has a passing shadow period, and why (not)."""

    passed: bool
    model: str
    version: str
    reasons: tuple[str, ...] = ()
    experiment: str | None = None
    """The shadow experiment that passed, or the closest one that did not."""

    @property
    def message(self) -> str:
        """One sentence for logs, tags and 409 bodies."""
        where = f" in shadow experiment '{self.experiment}'" if self.experiment else ""
        if self.passed:
            return f"model '{self.model}' version {self.version} passed its shadow period{where}"
        fix = (
            f"let the shadow run until it passes (`sibyl shadow report {self.experiment}`)"
            if self.experiment
            else f"start one with `sibyl shadow start {self.model} {self.version} --share 0.2`"
        )
        return (
            f"model '{self.model}' version {self.version} has no passing shadow period "
            f"(promotion_gates.{self.model}){where}: {'; '.join(self.reasons)}; {fix}"
        )


class ShadowGate:
    """The promotion gate over the shadow records (see the module docstring).

    ``verdict`` and ``check_promotion`` block (store reads: call them from a worker thread);
    ``allow_swap`` is a coroutine on the event loop.
    """

    def __init__(
        self,
        store: Store,
        registry: ModelRegistry,
        gates: Mapping[str, PromotionGateSettings],
        *,
        metrics: CollectorRegistry | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.gates = dict(gates)
        self._restored: dict[str, str] = {}
        self.decisions = Counter(
            "ml_promotion_gate",
            "Promotion gate decisions by result: pass, refuse (sibyl's own promotion, 409), "
            "rollback (a production alias moved elsewhere was moved back), rollback_failed, "
            "superseded (the alias had moved on before the rollback).",
            ["model", "result"],
            registry=metrics,
        )

    def criteria(self, model: str) -> PromotionGateSettings | None:
        """The gate of ``model`` when it requires a shadow period, else ``None``."""
        gate = self.gates.get(model)
        return gate if gate is not None and gate.require_shadow else None

    def verdict(self, model: str, version: str) -> GateVerdict:
        """Whether ``version`` has a passing shadow period (blocking; a store failure is a
        failing verdict that says so)."""
        criteria = self.criteria(model)
        if criteria is None:
            return GateVerdict(True, model, version, ("not gated",))
        try:
            return self._verdict(model, version, criteria)
        except SibylError as exc:
            reason = f"the shadow records cannot be read ({exc.message})"
            return GateVerdict(False, model, version, (reason,))

    def _verdict(self, model: str, version: str, criteria: PromotionGateSettings) -> GateVerdict:
        closest: tuple[int, str, list[Check]] | None = None
        for exp in self.store.list_experiments(model=model):
            if exp.kind is not ExperimentKind.SHADOW or exp.status is ExperimentStatus.DRAFT:
                continue
            for agg in self.store.shadow_aggregates(exp.id):
                if (agg.candidate_model, agg.candidate_version) != (model, version):
                    continue
                checks = judge(criteria, agg)
                if all(c.passed for c in checks):
                    return GateVerdict(True, model, version, experiment=exp.name)
                if closest is None or agg.mirrored > closest[0]:
                    closest = (agg.mirrored, exp.name, checks)
        if closest is None:
            reason = f"no shadow experiment of model '{model}' has mirrored to version {version}"
            return GateVerdict(False, model, version, (reason,))
        reasons = tuple(c.message for c in closest[2] if not c.passed)
        return GateVerdict(False, model, version, reasons, closest[1])

    # ---- hook 1: sibyl's own promotions -------------------------------------------------------

    def check_promotion(self, model: str, version: str, current: str | None) -> None:
        """The registry façade's promotion check (blocking): ``PromotionRefusedError`` when
        ``version`` may not replace ``current`` in production."""
        if self.criteria(model) is None or current is None or current == version:
            return
        verdict = self.verdict(model, version)
        if not verdict.passed:
            self.decisions.labels(model, "refuse").inc()
            log.warning("promotion_refused", model=model, version=version, reason=verdict.message)
            raise PromotionRefusedError(f"Promotion to production refused: {verdict.message}")

    # ---- hook 2: alias moves seen by the model manager ----------------------------------------

    async def allow_swap(self, change: AliasChange, serving: str | None) -> bool:
        """The manager's production gate: ``True`` to swap to ``change.new_version``; ``False``
        after moving the alias back (``serving``: the version answering now, if any)."""
        model, version = change.name, change.new_version
        if version is None or self.criteria(model) is None or change.old_version is None:
            return True
        if version == serving or self._restored.get(model) == version:
            self._restored.pop(model, None)
            return True
        verdict = await asyncio.to_thread(self.verdict, model, version)
        if verdict.passed:
            self.decisions.labels(model, "pass").inc()
            log.info(
                "promotion_gate_passed", model=model, version=version, shadow=verdict.experiment
            )
            return True
        target = serving or change.old_version
        await asyncio.to_thread(self._roll_back, model, version, target, verdict)
        return False

    def _roll_back(self, model: str, refused: str, target: str, verdict: GateVerdict) -> None:
        try:
            current = self.registry.resolve(model, PRODUCTION).version
            if current != refused:  # moved on meanwhile: the newer move gets its own verdict
                self.decisions.labels(model, "superseded").inc()
                log.info("promotion_gate_superseded", model=model, refused=refused, now=current)
                return
            self._restored[model] = target
            client = self.registry.client
            client.set_registered_model_alias(model, PRODUCTION, target)
            client.set_model_version_tag(model, refused, GATE_TAG, verdict.message[:4000])
        except Exception as exc:  # the registry is down: keep serving what serves, say so
            self.decisions.labels(model, "rollback_failed").inc()
            log.error(
                "promotion_gate_rollback_failed",
                model=model,
                refused=refused,
                target=target,
                reason=verdict.message,
                error=repr(exc),
            )
            return
        self.decisions.labels(model, "rollback").inc()
        log.warning(
            "promotion_gate_rollback",
            model=model,
            refused=refused,
            restored=target,
            reason=verdict.message,
        )

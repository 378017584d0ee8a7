"""``AlertEngine``: evaluates every enabled rule periodically, keeps one state machine per rule
and label set (``_state``), groups what is due into notifications (``_grouping``) and hands
them to the :class:`Dispatcher`.

:meth:`AlertEngine.evaluate_once` is the whole of one evaluation at a given ``now`` (tests pass
a controllable clock): it reads the rules, asks the source, advances the states, persists what
changed and returns the notifications due — it sends nothing. :meth:`AlertEngine.start` runs it
every ``interval_s`` in a worker thread and submits the notifications, so neither slow sources
nor slow receivers ever block the event loop. Thread-safe: API handlers may list alerts and
edit rules while an evaluation runs (evaluations themselves are serialised).

Rules deleted, disabled, or changed so that an alert's labels no longer match resolve their
firing alerts (announced once, like any resolution) and drop their pending ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

import structlog

from sibyl.errors import ConflictError, InvalidInputError
from sibyl.monitoring.alerts._defaults import default_rules
from sibyl.monitoring.alerts._dispatch import Dispatcher
from sibyl.monitoring.alerts._grouping import GroupingPolicy, Notification, plan
from sibyl.monitoring.alerts._repository import AlertStateStore, RuleRepository
from sibyl.monitoring.alerts._rules import RESERVED_LABELS, Rule
from sibyl.monitoring.alerts._source import MetricCatalog, MetricSource, SeriesSource
from sibyl.monitoring.alerts._state import Alert, AlertInstance, AlertState, Transition

log = structlog.get_logger("sibyl.alerts")

EvaluationHook = Callable[[str, bool], None]
"""``hook(rule, ok)`` after each rule's evaluation; ``ok`` is false when the source raised."""
TransitionHook = Callable[[Alert, Transition], None]
"""``hook(alert, transition)`` on every state change (after the change)."""
Series = list[tuple[dict[str, str], float | None]]
_ORDER = {AlertState.FIRING: 0, AlertState.PENDING: 1, AlertState.RESOLVED: 2}


def utcnow() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


class AlertEngine:
    """Alert rules evaluated against a :class:`MetricSource`.

    ``repository`` holds the rules (and, when it is an :class:`AlertStateStore`, the alert
    states that survive restarts; ``states`` overrides that). ``dispatcher`` receives the
    notifications when the engine runs its own loop. Hooks must be cheap and must not raise
    (exceptions are logged and ignored).
    """

    def __init__(
        self,
        repository: RuleRepository,
        source: MetricSource,
        *,
        states: AlertStateStore | None = None,
        dispatcher: Dispatcher | None = None,
        grouping: GroupingPolicy | None = None,
        interval_s: float = 15.0,
        clock: Callable[[], datetime] = utcnow,
        on_evaluation: EvaluationHook | None = None,
        on_transition: TransitionHook | None = None,
    ) -> None:
        if not interval_s > 0:
            raise InvalidInputError("'interval_s' must be more than 0 seconds", field="interval_s")
        self.repository = repository
        self.source = source
        self.dispatcher = dispatcher
        self.grouping = grouping or GroupingPolicy()
        self.interval_s = interval_s
        self._states = states if states is not None else _state_store(repository)
        self._clock = clock
        self._on_evaluation, self._on_transition = on_evaluation, on_transition
        self._alerts: dict[tuple[str, str], AlertInstance] = {}
        self._forgotten: set[tuple[str, str]] = set()
        self._restored = self._states is None
        self._lock = threading.Lock()  # guards _alerts, held briefly
        self._evaluating = threading.Lock()  # one evaluation at a time
        self._task: asyncio.Task[None] | None = None

    # ---- rules -----------------------------------------------------------------------------

    def create_rule(self, rule: Rule) -> Rule:
        """Add ``rule``: ``ConflictError`` when the name is taken, ``InvalidInputError`` when
        the source knows its metrics and not this one."""
        self._check_metric(rule)
        return self.repository.add_rule(rule)

    def replace_rule(self, rule: Rule) -> Rule:
        """Replace the rule of that name (``NotFoundError`` when there is none)."""
        self._check_metric(rule)
        return self.repository.replace_rule(rule)

    def delete_rule(self, name: str) -> None:
        """Delete a rule; its firing alerts resolve at the next evaluation."""
        self.repository.delete_rule(name)

    def get_rule(self, name: str) -> Rule:
        return self.repository.get_rule(name)

    def list_rules(self) -> list[Rule]:
        return self.repository.list_rules()

    def install_default_rules(self, model: str) -> list[Rule]:
        """Add :func:`default_rules` of ``model`` that do not exist yet (edited or deleted
        defaults are left alone only while they exist: call once per new model)."""
        added = []
        for rule in default_rules(model):
            with contextlib.suppress(ConflictError):
                added.append(self.repository.add_rule(rule))
        return added

    def _check_metric(self, rule: Rule) -> None:
        if isinstance(self.source, MetricCatalog):
            known = self.source.metrics()
            if rule.metric not in known:
                raise InvalidInputError(
                    f"Unknown metric '{rule.metric}'; known: {', '.join(sorted(known))}",
                    field="metric",
                )

    # ---- alerts ----------------------------------------------------------------------------

    def active_alerts(
        self, *, model: str | None = None, states: Iterable[AlertState] | None = None
    ) -> list[Alert]:
        """Pending and firing alerts (or those in ``states``), firing first, then by severity
        (critical first) and rule; ``model`` keeps those labelled ``model=<model>``."""
        wanted = set(states or (AlertState.PENDING, AlertState.FIRING))
        with self._lock:
            alerts = [a.snapshot() for a in self._alerts.values() if a.state in wanted]
        if model is not None:
            alerts = [a for a in alerts if a.labels.get("model") == model]
        severity = {"critical": 0, "warning": 1, "info": 2}
        alerts.sort(key=lambda a: (_ORDER.get(a.state, 3), severity[a.severity], a.rule,
                                   sorted(a.labels.items())))  # fmt: skip
        return alerts

    # ---- evaluation ------------------------------------------------------------------------

    def evaluate_once(self, now: datetime | None = None) -> list[Notification]:
        """Evaluate every enabled rule at ``now`` (default: the clock) and return the
        notifications due; nothing is sent."""
        with self._evaluating:
            now = now or self._clock()
            self._restore()
            rules = {r.name: r for r in self.repository.list_rules() if r.enabled}
            observed = {name: self._observe(rule) for name, rule in rules.items()}
            with self._lock:
                changes: list[tuple[AlertInstance, Transition]] = []
                for name, rule in rules.items():
                    changes += self._apply(rule, observed[name], now)
                changes += self._retire(rules, now)
                notifications = plan(self._alerts.values(), now, self.grouping)
                self._forget()
                snapshots = [(inst.snapshot(), t) for inst, t in changes]
            self._persist()
        for alert, transition in snapshots:
            self._report(alert, transition)
        return notifications

    def _observe(self, rule: Rule) -> Series | None:
        """The rule's series now (``None``: the source failed)."""
        base = {"alertname": rule.name, "severity": rule.severity.value, **rule.labels}
        try:
            if isinstance(self.source, SeriesSource):
                found = self.source.series(rule.metric, rule.labels, rule.window_s)
                series = [({**_extra(labels), **base}, _number(v)) for labels, v in found]
            else:
                value = self.source.value(rule.metric, rule.labels, rule.window_s)
                series = [(base, _number(value))]
        except Exception:
            log.exception("alert_rule_evaluation_failed", rule=rule.name, metric=rule.metric)
            self._hook(self._on_evaluation, rule.name, False)
            return None
        self._hook(self._on_evaluation, rule.name, True)
        return series

    def _apply(
        self, rule: Rule, series: Series | None, now: datetime
    ) -> list[tuple[AlertInstance, Transition]]:
        changes: list[tuple[AlertInstance, Transition]] = []
        seen: set[str] = set()
        for labels, value in series or []:
            inst = AlertInstance(rule.name, dict(labels))
            seen.add(inst.fingerprint)
            key = (rule.name, inst.fingerprint)
            if key not in self._alerts:
                if value is None or not rule.condition.holds(value, rule.threshold):
                    continue
                self._alerts[key] = inst
            changes += _step(self._alerts[key], rule, value, now)
        base = {"alertname": rule.name, "severity": rule.severity.value, **rule.labels}
        for (name, fp), inst in list(self._alerts.items()):
            if name != rule.name or fp in seen:
                continue
            orphan = series is not None and not _matches(inst.labels, base, rule, self.source)
            if orphan:
                changes += _retire_one(inst, now)
            else:  # the source failed, or this series has no data now
                changes += _step(inst, rule, None, now)
        return changes

    def _retire(
        self, rules: Mapping[str, Rule], now: datetime
    ) -> list[tuple[AlertInstance, Transition]]:
        """Alerts of rules that are gone or disabled resolve (firing) or vanish (pending)."""
        changes = []
        for (name, _), inst in self._alerts.items():
            if name not in rules:
                changes += _retire_one(inst, now)
        return changes

    def _forget(self) -> None:
        for key, inst in list(self._alerts.items()):
            if inst.forgettable:
                del self._alerts[key]
                self._forgotten.add(key)

    # ---- persistence -----------------------------------------------------------------------

    def _restore(self) -> None:
        if self._restored or self._states is None:
            return
        try:
            stored = self._states.load_alerts()
        except Exception:
            log.exception("alert_states_restore_failed")
            return
        with self._lock:
            for alert in stored:
                self._alerts.setdefault((alert.rule, alert.fingerprint),
                                        AlertInstance.from_alert(alert))  # fmt: skip
        self._restored = True
        log.info("alert_states_restored", alerts=len(stored))

    def _persist(self) -> None:
        if self._states is None:
            return
        with self._lock:
            dirty = [inst for inst in self._alerts.values() if inst.dirty]
            upserts = [inst.snapshot() for inst in dirty]
            forgotten = sorted(self._forgotten - set(self._alerts))
        if not upserts and not forgotten:
            return
        try:
            self._states.save_alerts(upserts, forgotten)
        except Exception:  # kept dirty: saved with the next evaluation
            log.exception("alert_states_save_failed", alerts=len(upserts))
            return
        with self._lock:  # nothing changed them meanwhile: evaluations are serialised
            for inst in dirty:
                inst.dirty = False
            self._forgotten.difference_update(forgotten)

    # ---- running ---------------------------------------------------------------------------

    async def tick(self, now: datetime | None = None) -> list[Notification]:
        """One evaluation in a worker thread; its notifications go to the dispatcher."""
        notifications = await asyncio.to_thread(self.evaluate_once, now)
        if self.dispatcher is not None and notifications:
            self.dispatcher.submit(notifications)
        return notifications

    async def start(self) -> None:
        """Evaluate now and then every ``interval_s`` until :meth:`stop` (idempotent)."""
        if self._task is not None:
            return
        if self.dispatcher is not None:
            await self.dispatcher.start()
        self._task = asyncio.create_task(self._run(), name="sibyl-alert-engine")

    async def stop(self) -> None:
        """Stop evaluating; deliver what is queued (bounded), close the channels."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.dispatcher is not None:
            await self.dispatcher.close()

    async def _run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.tick()
            except Exception:  # the loop outlives any one evaluation
                log.exception("alert_evaluation_failed")
            await asyncio.sleep(max(0.0, self.interval_s - (time.monotonic() - started)))

    def _report(self, alert: Alert, transition: Transition) -> None:
        log.info(f"alert_{transition.value}", rule=alert.rule, labels=dict(alert.labels),
                 value=alert.value, state=alert.state.value)  # fmt: skip
        self._hook(self._on_transition, alert, transition)

    @staticmethod
    def _hook(hook: Callable[..., None] | None, *args: object) -> None:
        if hook is None:
            return
        try:
            hook(*args)
        except Exception:
            log.exception("alert_hook_failed", hook=getattr(hook, "__name__", repr(hook)))


def _state_store(repository: RuleRepository) -> AlertStateStore | None:
    return repository if isinstance(repository, AlertStateStore) else None


def _extra(labels: Mapping[str, str]) -> dict[str, str]:
    return {str(k): str(v) for k, v in labels.items() if k not in RESERVED_LABELS}


def _number(value: object) -> float | None:
    if value is None:
        return None
    number = float(value)  # type: ignore[arg-type]  # a bad source type fails this rule only
    return None if math.isnan(number) else number


def _matches(
    labels: Mapping[str, str], base: Mapping[str, str], rule: Rule, source: MetricSource
) -> bool:
    """Whether an alert the rule did not see now may still belong to it (same base labels;
    without series, only the one label set the rule has)."""
    if isinstance(source, SeriesSource):
        return all(labels.get(k) == v for k, v in base.items())
    return dict(labels) == dict(base)


def _step(
    inst: AlertInstance, rule: Rule, value: float | None, now: datetime
) -> list[tuple[AlertInstance, Transition]]:
    transition = inst.observe(rule, value, now)
    return [] if transition is None else [(inst, transition)]


def _retire_one(inst: AlertInstance, now: datetime) -> list[tuple[AlertInstance, Transition]]:
    if inst.state is AlertState.FIRING:
        return [(inst, inst.resolve(now))]
    if inst.state is AlertState.PENDING:
        return [(inst, inst.clear())]
    return []

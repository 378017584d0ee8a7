"""One alert — a rule applied to one label set — and its state machine (Prometheus semantics)::

    inactive ──holds──▶ pending ──held for `for`──▶ firing ──stopped holding for
        ▲                  │                          │     `keep_firing_for`──▶ resolved
        └──stops holding───┘                          └──holds again: stays firing (no news)

* It fires at the first evaluation where ``now - active_at >= for`` (``active_at`` = the first
  evaluation at which the condition held); with ``for = 0`` the same evaluation fires.
* Once firing, evaluations where the condition does not hold start ``keep_firing_since``; it
  resolves at the first such evaluation where ``now - keep_firing_since >= keep_firing_for``.
  Holding again in between clears ``keep_firing_since`` and it simply keeps firing.
* **No data is no evidence.** A firing alert stays firing (it is flagged ``no_data``): a
  model without traffic has not recovered, and resolving it would send a false all-clear (and a
  new alert when traffic resumes). A pending alert goes back to inactive: the ``for`` clock
  counts uninterrupted evidence only. An inactive alert stays inactive.
* A resolved alert is kept until its resolved notification has been handed to the channels
  (once), then forgotten; if the condition holds again first, it starts over as pending (and
  should it still be pending at the next notification, receivers hear it resolved).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from sibyl.monitoring.alerts._rules import Rule, Severity


class AlertState(StrEnum):
    """Where one alert is in its life cycle (inactive alerts are forgotten at once)."""

    INACTIVE = "inactive"
    """The condition does not hold (or a pending alert lost its evidence)."""
    PENDING = "pending"
    """The condition holds, not yet for ``for``."""
    FIRING = "firing"
    """The condition held for ``for`` (or is within ``keep_firing_for`` of holding)."""
    RESOLVED = "resolved"
    """It fired and has stopped; kept until the resolved notification is handed over."""


class Transition(StrEnum):
    """What one observation changed."""

    PENDING = "pending"
    FIRED = "fired"
    RESOLVED = "resolved"
    CLEARED = "cleared"
    """A pending alert went back to inactive (the condition stopped holding, or no data)."""


def fingerprint(labels: Mapping[str, str]) -> str:
    """16 hex digits identifying a label set (stable across processes and restarts)."""
    canonical = json.dumps(sorted(labels.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Alert:
    """A snapshot of one alert: what ``GET /v1/alerts`` lists, what channels send, and the
    row persisted in ``alert_states``.

    ``labels`` hold ``alertname`` (the rule), ``severity`` and the series' labels;
    ``active_at`` is when the condition started holding, ``fired_at`` when it fired
    (Alertmanager's ``startsAt``), ``resolved_at`` when it resolved (``endsAt``).
    ``notified_at``/``notified_state`` record the last notification it was part of.
    """

    rule: str
    fingerprint: str
    state: AlertState
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    value: float | None = None
    active_at: datetime | None = None
    fired_at: datetime | None = None
    keep_firing_since: datetime | None = None
    resolved_at: datetime | None = None
    last_evaluated_at: datetime | None = None
    no_data: bool = False
    notified_at: datetime | None = None
    notified_state: AlertState | None = None

    @property
    def severity(self) -> Severity:
        """The ``severity`` label (``warning`` when absent)."""
        try:
            return Severity(self.labels.get("severity", "warning"))
        except ValueError:
            return Severity.WARNING

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (ISO-8601 times, ``None`` for unset ones and NaN values)."""
        out: dict[str, Any] = {
            "rule": self.rule, "fingerprint": self.fingerprint, "state": self.state.value,
            "severity": self.severity.value, "labels": dict(self.labels),
            "annotations": dict(self.annotations), "no_data": self.no_data,
            "value": None if self.value is None or math.isnan(self.value) else self.value,
            "notified_state": self.notified_state.value if self.notified_state else None,
        }  # fmt: skip
        for name in _TIMES:
            moment = getattr(self, name)
            out[name] = None if moment is None else moment.isoformat()
        return out


_TIMES = ("active_at", "fired_at", "keep_firing_since", "resolved_at", "last_evaluated_at",
          "notified_at")  # fmt: skip


@dataclass(slots=True)
class AlertInstance:
    """The engine's mutable record of one alert (see the module docstring for the rules)."""

    rule: str
    labels: dict[str, str]
    state: AlertState = AlertState.INACTIVE
    fingerprint: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    value: float | None = None
    active_at: datetime | None = None
    fired_at: datetime | None = None
    keep_firing_since: datetime | None = None
    resolved_at: datetime | None = None
    last_evaluated_at: datetime | None = None
    no_data: bool = False
    notified_at: datetime | None = None
    notified_state: AlertState | None = None
    dirty: bool = True
    """Changed since it was last persisted (values alone do not count)."""

    def __post_init__(self) -> None:
        self.fingerprint = self.fingerprint or fingerprint(self.labels)

    def observe(self, rule: Rule, value: float | None, now: datetime) -> Transition | None:
        """Advance by one evaluation at ``now`` that saw ``value`` (``None``: no data)."""
        self.last_evaluated_at = now
        self.no_data = value is None or math.isnan(value)
        if value is None or math.isnan(value):
            return self.clear() if self.state is AlertState.PENDING else None
        self.value = value
        self.annotations = rule.render(value, self.labels)
        if rule.condition.holds(value, rule.threshold):
            return self._holds(rule, now)
        return self._stopped(rule, now)

    def _holds(self, rule: Rule, now: datetime) -> Transition | None:
        if self.keep_firing_since is not None:
            self.keep_firing_since, self.dirty = None, True
        began = self.state in (AlertState.INACTIVE, AlertState.RESOLVED)
        if began:  # resolved_at stays until the resolution is announced or it fires again
            self.state, self.active_at, self.fired_at = AlertState.PENDING, now, None
            self.dirty = True
        if self.state is AlertState.PENDING:
            assert self.active_at is not None
            if (now - self.active_at).total_seconds() >= rule.for_s:
                self.state, self.fired_at, self.resolved_at = AlertState.FIRING, now, None
                self.dirty = True
                return Transition.FIRED
        return Transition.PENDING if began else None

    def _stopped(self, rule: Rule, now: datetime) -> Transition | None:
        if self.state is AlertState.PENDING:
            return self.clear()
        if self.state is not AlertState.FIRING:
            return None
        if rule.keep_firing_for_s > 0:
            if self.keep_firing_since is None:
                self.keep_firing_since, self.dirty = now, True
            if (now - self.keep_firing_since).total_seconds() < rule.keep_firing_for_s:
                return None
        return self.resolve(now)

    def resolve(self, now: datetime) -> Transition:
        """Resolve at ``now`` (also used when the rule is deleted, disabled or changed)."""
        self.state, self.resolved_at, self.keep_firing_since = AlertState.RESOLVED, now, None
        self.dirty = True
        return Transition.RESOLVED

    def clear(self) -> Transition:
        """A pending alert goes back to inactive."""
        # receivers may still believe it fires (it resolved and went pending again before the
        # resolution was announced): then it is resolved, and announced as such
        announced = self.notified_state is AlertState.FIRING
        self.state = AlertState.RESOLVED if announced else AlertState.INACTIVE
        self.dirty = True
        return Transition.CLEARED

    @property
    def unannounced_resolution(self) -> bool:
        """Receivers were told it fires, and it no longer does."""
        return self.state is not AlertState.FIRING and self.notified_state is AlertState.FIRING

    @property
    def forgettable(self) -> bool:
        """Inactive, or resolved and nobody needs to hear about it (any more)."""
        if self.state is AlertState.INACTIVE:
            return True
        return self.state is AlertState.RESOLVED and self.notified_state is not AlertState.FIRING

    def snapshot(self) -> Alert:
        """An immutable copy."""
        return Alert(
            self.rule, self.fingerprint, self.state, MappingProxyType(dict(self.labels)),
            MappingProxyType(dict(self.annotations)), self.value, self.active_at,
            self.fired_at, self.keep_firing_since, self.resolved_at, self.last_evaluated_at,
            self.no_data, self.notified_at, self.notified_state,
        )  # fmt: skip

    @classmethod
    def from_alert(cls, alert: Alert) -> AlertInstance:
        """The mutable record of a persisted snapshot."""
        return cls(
            alert.rule, dict(alert.labels), alert.state, alert.fingerprint,
            dict(alert.annotations), alert.value, alert.active_at, alert.fired_at,
            alert.keep_firing_since, alert.resolved_at, alert.last_evaluated_at,
            alert.no_data, alert.notified_at, alert.notified_state, dirty=False,
        )  # fmt: skip

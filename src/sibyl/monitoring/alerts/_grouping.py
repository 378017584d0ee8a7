"""Grouping and notification timing — Alertmanager's aggregation groups, simplified.

Firing alerts (and resolved ones receivers were told about) are grouped by the values of the
``group_by`` labels (default ``alertname`` and ``model``: one group per rule and model, so a
drift rule over 20 features sends one message). At each evaluation a group is notified when:

* it was never notified and its oldest firing alert fired ``group_wait`` ago (alerts firing in
  the meantime join that first message);
* it changed since its last notification (an alert started firing, or one receivers believe
  firing resolved) and ``group_interval`` passed since that notification;
* nothing changed, something still fires, and ``repeat_interval`` passed (a reminder).

A notification carries every firing alert of the group and each resolution not yet announced
(each resolution is announced once; then the alert is forgotten). Group state is derived from
the alerts' ``notified_at``/``notified_state``, which are persisted, so a restart neither
repeats nor forgets a notification. Times are evaluation times: a group is notified at the
first evaluation at or after its due time. Simplified: one route and one receiver (every
channel gets every notification), no inhibition or silences; a notification counts as made
when it is handed to the channels (a failed delivery is counted, not re-sent until the next
change or reminder).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from types import MappingProxyType

from sibyl.errors import InvalidInputError
from sibyl.monitoring.alerts._state import Alert, AlertInstance, AlertState


@dataclass(frozen=True, slots=True)
class GroupingPolicy:
    """How alerts are grouped and how often a group is notified (seconds)."""

    group_by: tuple[str, ...] = ("alertname", "model")
    group_wait_s: float = 30.0
    group_interval_s: float = 300.0
    repeat_interval_s: float = 4 * 3600.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_by", tuple(self.group_by))
        for name in ("group_wait_s", "group_interval_s", "repeat_interval_s"):
            if not getattr(self, name) >= 0:
                raise InvalidInputError(f"'{name}' must be 0 or more seconds", field=name)


@dataclass(frozen=True, slots=True)
class Notification:
    """What one group tells the channels at one moment."""

    group_key: str
    """``{}:{alertname="churn:latency_p95", model="churn"}`` (Alertmanager's format)."""
    group_labels: Mapping[str, str]
    alerts: tuple[Alert, ...]
    """Firing alerts first, then resolutions, each sorted by rule and labels."""
    created_at: datetime

    @property
    def firing(self) -> list[Alert]:
        return [a for a in self.alerts if a.state is AlertState.FIRING]

    @property
    def resolved(self) -> list[Alert]:
        return [a for a in self.alerts if a.state is AlertState.RESOLVED]

    @property
    def status(self) -> str:
        """``firing`` while any alert of the group fires, else ``resolved``."""
        return "firing" if self.firing else "resolved"

    def title(self) -> str:
        """``[FIRING:2] alertname=churn:drift, model=churn`` (``[RESOLVED]`` when all are)."""
        count = f":{len(self.firing)}" if self.firing else ""
        labels = ", ".join(f"{k}={v}" for k, v in self.group_labels.items())
        return f"[{self.status.upper()}{count}] {labels or 'all alerts'}"


def plan(
    instances: Iterable[AlertInstance], now: datetime, policy: GroupingPolicy
) -> list[Notification]:
    """The notifications due at ``now``; the alerts they carry are marked notified."""
    groups: dict[tuple[tuple[str, str], ...], list[AlertInstance]] = {}
    for inst in instances:
        if inst.state is AlertState.FIRING or inst.unannounced_resolution:
            labels = tuple((k, inst.labels[k]) for k in policy.group_by if k in inst.labels)
            groups.setdefault(labels, []).append(inst)
    out = []
    for labels, members in sorted(groups.items()):
        if _due(members, now, policy):
            out.append(_notification(dict(labels), members, now))
            _mark(members, now)
    return out


def _due(members: list[AlertInstance], now: datetime, policy: GroupingPolicy) -> bool:
    firing = [m for m in members if m.state is AlertState.FIRING]
    told = [m.notified_at for m in members if m.notified_at is not None]
    if not told:
        starts = [m.fired_at or now for m in firing]
        return bool(starts) and _elapsed(min(starts), now) >= policy.group_wait_s
    since = _elapsed(max(told), now)
    changed = any(m.notified_state is not AlertState.FIRING for m in firing) or any(
        m.unannounced_resolution for m in members
    )
    if changed:
        return since >= policy.group_interval_s
    return bool(firing) and since >= policy.repeat_interval_s


def _elapsed(since: datetime, now: datetime) -> float:
    return (now - since).total_seconds()


def _notification(
    labels: dict[str, str], members: list[AlertInstance], now: datetime
) -> Notification:
    alerts = [
        _as_sent(m) for m in members if m.state is AlertState.FIRING or m.unannounced_resolution
    ]
    alerts.sort(key=lambda a: (a.state is not AlertState.FIRING, a.rule, sorted(a.labels.items())))
    inner = ", ".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return Notification("{}:{" + inner + "}", MappingProxyType(labels), tuple(alerts), now)


def _as_sent(member: AlertInstance) -> Alert:
    alert = member.snapshot()
    if member.state is AlertState.FIRING:
        return alert
    return replace(alert, state=AlertState.RESOLVED)  # pending again: resolved for receivers


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _mark(members: list[AlertInstance], now: datetime) -> None:
    for member in members:
        member.notified_at = now
        firing = member.state is AlertState.FIRING
        member.notified_state = AlertState.FIRING if firing else AlertState.RESOLVED
        member.dirty = True

"""Alert test support: a controllable clock (explicit ``now``), a settable metric feed on the
real ``MetricFunctions`` source, and an engine over the in-memory repository."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta

from sibyl.monitoring.alerts import (
    AlertEngine,
    AlertState,
    GroupingPolicy,
    InMemoryRuleRepository,
    MetricFunction,
    MetricFunctions,
    Notification,
    Rule,
    RuleRepository,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NO_WAIT = GroupingPolicy(group_wait_s=0, group_interval_s=0, repeat_interval_s=86400)
"""Notify at the evaluation where something changes; remind once a day."""


def at(seconds: float) -> datetime:
    """``seconds`` after ``T0``."""
    return T0 + timedelta(seconds=seconds)


class Feed:
    """Metric values by (metric, model), settable between evaluations; ``None`` = no data.
    ``metrics`` are known (no data yet) from the start."""

    def __init__(self, *metrics: str) -> None:
        self.values: dict[tuple[str, str], float | None] = {}
        self.source = MetricFunctions()
        self.calls: list[tuple[str, dict[str, str], float]] = []
        for metric in metrics or ("latency",):
            self.set(metric, None)

    def set(self, metric: str, value: float | None, model: str = "churn") -> None:
        self.values[(metric, model)] = value
        if metric not in self.source.metrics():
            self.source.register(metric, self._reader(metric))

    def _reader(self, metric: str) -> MetricFunction:
        def read(labels: Mapping[str, str], window_s: float) -> float | None:
            self.calls.append((metric, dict(labels), window_s))
            return self.values.get((metric, labels.get("model", "")))

        return read


def rule(name: str = "churn:latency", *, metric: str = "latency", threshold: float = 100.0,
         model: str = "churn", **kwargs: object) -> Rule:
    """A ``metric > threshold`` rule on ``model`` (keyword arguments override)."""
    return Rule(name, metric, kwargs.pop("condition", ">"), threshold,  # type: ignore[arg-type]
                labels={"model": model}, **kwargs)  # type: ignore[arg-type]


def engine(feed: Feed, *rules: Rule, repository: RuleRepository | None = None,
           grouping: GroupingPolicy = NO_WAIT, **kwargs: object) -> AlertEngine:
    """An engine over ``feed`` with ``rules`` added to ``repository`` (in memory by default)."""
    repo = repository if repository is not None else InMemoryRuleRepository()
    e = AlertEngine(repo, feed.source, grouping=grouping, **kwargs)  # type: ignore[arg-type]
    for r in rules:
        e.create_rule(r)
    return e


def state_of(e: AlertEngine, rule_name: str) -> AlertState | None:
    """The state of the rule's only alert (``None``: inactive)."""
    alerts = [a for a in e.active_alerts(states=list(AlertState)) if a.rule == rule_name]
    assert len(alerts) <= 1, alerts
    return alerts[0].state if alerts else None


def run(e: AlertEngine, times: Iterable[float]) -> dict[float, list[Notification]]:
    """Evaluate at each time; the notifications of each evaluation that had some."""
    out = {}
    for t in times:
        notes = e.evaluate_once(at(t))
        if notes:
            out[t] = notes
    return out

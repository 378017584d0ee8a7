"""Alerting: rules over model metrics, evaluated periodically, notified through channels.

::

    source = MetricFunctions({"latency_p95_ms": p95_of, "success_rate": success_of})
    repository = get_rule_repository(store.engine)          # or None: in memory
    engine = build_alert_engine(settings.alerts, repository, source,
                                on_delivery=count_delivery)
    engine.install_default_rules("churn")
    engine.create_rule(Rule.from_dict({"name": "churn:slow", "metric": "latency_p95_ms",
                                       "condition": ">", "threshold": 250, "for": "2m",
                                       "labels": {"model": "churn"}}))
    await engine.start()            # evaluates every evaluation_interval_s
    engine.active_alerts()          # pending and firing alerts
    await engine.stop()

Parts: :class:`Rule` (validated, with safe message templates) · :class:`MetricSource` (where
numbers come from) · :class:`AlertEngine` (state machine per rule and label set: inactive →
pending → firing → resolved, Prometheus ``for``/``keep_firing_for`` semantics) · grouping with
group wait/interval and repeat interval (Alertmanager semantics, simplified) ·
:class:`Dispatcher` (asynchronous delivery with timeouts, retries and counts) · channels: log,
Alertmanager-v4 webhook, Slack, e-mail · :class:`RuleRepository` in memory or SQL
(``alert_rules``/``alert_states`` in sibyl's store). See docs/alerts.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sibyl.monitoring.alerts._build import build_alert_engine, build_channels
    from sibyl.monitoring.alerts._channels import (
        Channel,
        DeliveryError,
        EmailChannel,
        LogChannel,
        SlackChannel,
        WebhookChannel,
    )
    from sibyl.monitoring.alerts._defaults import (
        ACCURACY_DROP,
        DEFAULT_METRICS,
        DRIFT_SCORE_MAX,
        LATENCY_P95_MS,
        SUCCESS_RATE,
        default_rules,
    )
    from sibyl.monitoring.alerts._dispatch import (
        DeliveryHook,
        DeliveryOutcome,
        Dispatcher,
        RetryPolicy,
    )
    from sibyl.monitoring.alerts._durations import format_duration, parse_duration
    from sibyl.monitoring.alerts._engine import AlertEngine, EvaluationHook, TransitionHook
    from sibyl.monitoring.alerts._grouping import GroupingPolicy, Notification
    from sibyl.monitoring.alerts._payloads import alertmanager_payload, email_message, slack_payload
    from sibyl.monitoring.alerts._repository import (
        AlertStateStore,
        InMemoryRuleRepository,
        RuleRepository,
        get_rule_repository,
    )
    from sibyl.monitoring.alerts._rules import Condition, Rule, Severity
    from sibyl.monitoring.alerts._settings import (
        AlertChannelSettings,
        AlertDeliverySettings,
        AlertGroupingSettings,
        AlertSettings,
        EmailChannelSettings,
        SlackChannelSettings,
        WebhookChannelSettings,
    )
    from sibyl.monitoring.alerts._source import (
        MetricCatalog,
        MetricFunction,
        MetricFunctions,
        MetricSource,
        SeriesSource,
    )
    from sibyl.monitoring.alerts._sql import SQLRuleRepository
    from sibyl.monitoring.alerts._state import Alert, AlertState, Transition

_MODULES = {
    "ACCURACY_DROP": "_defaults",
    "Alert": "_state",
    "AlertChannelSettings": "_settings",
    "AlertDeliverySettings": "_settings",
    "AlertEngine": "_engine",
    "AlertGroupingSettings": "_settings",
    "AlertSettings": "_settings",
    "AlertState": "_state",
    "AlertStateStore": "_repository",
    "Channel": "_channels",
    "Condition": "_rules",
    "DEFAULT_METRICS": "_defaults",
    "DRIFT_SCORE_MAX": "_defaults",
    "DeliveryError": "_channels",
    "DeliveryHook": "_dispatch",
    "DeliveryOutcome": "_dispatch",
    "Dispatcher": "_dispatch",
    "EmailChannel": "_channels",
    "EmailChannelSettings": "_settings",
    "EvaluationHook": "_engine",
    "GroupingPolicy": "_grouping",
    "InMemoryRuleRepository": "_repository",
    "LATENCY_P95_MS": "_defaults",
    "LogChannel": "_channels",
    "MetricCatalog": "_source",
    "MetricFunction": "_source",
    "MetricFunctions": "_source",
    "MetricSource": "_source",
    "Notification": "_grouping",
    "RetryPolicy": "_dispatch",
    "Rule": "_rules",
    "RuleRepository": "_repository",
    "SQLRuleRepository": "_sql",
    "SUCCESS_RATE": "_defaults",
    "SeriesSource": "_source",
    "Severity": "_rules",
    "SlackChannel": "_channels",
    "SlackChannelSettings": "_settings",
    "Transition": "_state",
    "TransitionHook": "_engine",
    "WebhookChannel": "_channels",
    "WebhookChannelSettings": "_settings",
    "alertmanager_payload": "_payloads",
    "build_alert_engine": "_build",
    "build_channels": "_build",
    "default_rules": "_defaults",
    "email_message": "_payloads",
    "format_duration": "_durations",
    "get_rule_repository": "_repository",
    "parse_duration": "_durations",
    "slack_payload": "_payloads",
}
"""Public name → the private module defining it, imported on first use: ``sibyl.settings``
imports ``AlertSettings`` and must not pull in httpx and SQLAlchemy with it."""


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'sibyl.monitoring.alerts' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"sibyl.monitoring.alerts.{module}"), name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


__all__ = [
    "ACCURACY_DROP",
    "DEFAULT_METRICS",
    "DRIFT_SCORE_MAX",
    "LATENCY_P95_MS",
    "SUCCESS_RATE",
    "Alert",
    "AlertChannelSettings",
    "AlertDeliverySettings",
    "AlertEngine",
    "AlertGroupingSettings",
    "AlertSettings",
    "AlertState",
    "AlertStateStore",
    "Channel",
    "Condition",
    "DeliveryError",
    "DeliveryHook",
    "DeliveryOutcome",
    "Dispatcher",
    "EmailChannel",
    "EmailChannelSettings",
    "EvaluationHook",
    "GroupingPolicy",
    "InMemoryRuleRepository",
    "LogChannel",
    "MetricCatalog",
    "MetricFunction",
    "MetricFunctions",
    "MetricSource",
    "Notification",
    "RetryPolicy",
    "Rule",
    "RuleRepository",
    "SQLRuleRepository",
    "SeriesSource",
    "Severity",
    "SlackChannel",
    "SlackChannelSettings",
    "Transition",
    "TransitionHook",
    "WebhookChannel",
    "WebhookChannelSettings",
    "alertmanager_payload",
    "build_alert_engine",
    "build_channels",
    "default_rules",
    "email_message",
    "format_duration",
    "get_rule_repository",
    "parse_duration",
    "slack_payload",
]

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
    build_alert_engine,
    build_channels,
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

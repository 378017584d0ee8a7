"""Builders from :class:`~sibyl.monitoring.alerts.AlertSettings` to channels, a dispatcher and
an engine (split from ``_settings`` so that the settings models import nothing heavy)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sibyl.monitoring.alerts._channels import (
    Channel,
    EmailChannel,
    LogChannel,
    SlackChannel,
    WebhookChannel,
)
from sibyl.monitoring.alerts._dispatch import DeliveryHook, Dispatcher, RetryPolicy
from sibyl.monitoring.alerts._engine import AlertEngine, EvaluationHook, TransitionHook, utcnow
from sibyl.monitoring.alerts._grouping import GroupingPolicy
from sibyl.monitoring.alerts._repository import RuleRepository
from sibyl.monitoring.alerts._settings import AlertSettings
from sibyl.monitoring.alerts._source import MetricSource


def build_channels(settings: AlertSettings) -> list[Channel]:
    """The channels ``settings.channels`` describe, named uniquely."""
    c, url, timeout = settings.channels, settings.external_url, settings.delivery.timeout_s
    channels: list[Channel] = [LogChannel()] if c.log else []
    for i, w in enumerate(c.webhooks, 1):
        channels.append(WebhookChannel(
            w.url, name=w.name or f"webhook-{i}", receiver=settings.receiver, external_url=url,
            max_alerts=w.max_alerts, timeout_s=timeout, headers=w.headers,
        ))  # fmt: skip
    for i, s in enumerate(c.slack, 1):
        channels.append(SlackChannel(
            s.url, name=s.name or f"slack-{i}", channel=s.channel, username=s.username,
            icon_emoji=s.icon_emoji, external_url=url, timeout_s=timeout,
        ))  # fmt: skip
    for i, e in enumerate(c.email, 1):
        channels.append(EmailChannel(
            e.host, e.port, sender=e.sender, recipients=e.recipients, name=e.name or f"email-{i}",
            security=e.security, username=e.username,
            password=e.password.get_secret_value() if e.password else None,
            ca_file=e.ca_file, timeout_s=timeout, subject_prefix=e.subject_prefix,
            external_url=url,
        ))  # fmt: skip
    return channels


def build_alert_engine(
    settings: AlertSettings,
    repository: RuleRepository,
    source: MetricSource,
    *,
    on_delivery: DeliveryHook | None = None,
    on_evaluation: EvaluationHook | None = None,
    on_transition: TransitionHook | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> AlertEngine:
    """An engine over ``repository`` and ``source`` with the channels, grouping and delivery
    policy of ``settings`` (not started: call ``await engine.start()``)."""
    d, g = settings.delivery, settings.grouping
    policy = RetryPolicy(d.timeout_s, d.attempts, d.backoff_s, d.backoff_max_s, d.queue_size)
    dispatcher = Dispatcher(build_channels(settings), policy, on_delivery=on_delivery)
    grouping = GroupingPolicy(tuple(g.group_by), g.group_wait_s, g.group_interval_s,
                              g.repeat_interval_s)  # fmt: skip
    return AlertEngine(
        repository, source, dispatcher=dispatcher, grouping=grouping,
        interval_s=settings.evaluation_interval_s, clock=clock,
        on_evaluation=on_evaluation, on_transition=on_transition,
    )  # fmt: skip

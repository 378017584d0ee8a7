"""Settings of alerting (the ``alerts`` section of sibyl's settings tree); ``_build`` turns them
into channels, a dispatcher and an engine. Pydantic models only: ``sibyl.settings`` imports this
module, so it must stay cheap (no httpx, no SQLAlchemy). Durations accept ``"30s"``, ``"5m"``,
``"4h"`` or seconds. In the environment, lists are JSON::

    SIBYL_ALERTS__CHANNELS__WEBHOOKS='[{"url": "http://alertmanager-bridge:9000/hook"}]'
    SIBYL_ALERTS__CHANNELS__EMAIL='[{"host": "smtp.example.com", "port": 587,
        "security": "starttls", "username": "sibyl", "password": "…",
        "sender": "sibyl@example.com", "recipients": ["oncall@example.com"]}]'
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr

from sibyl.errors import InvalidInputError
from sibyl.monitoring.alerts._durations import parse_duration


def _seconds(value: object) -> object:
    try:
        return parse_duration(value, field="duration")
    except InvalidInputError as error:
        raise ValueError(error.message) from None


Duration = Annotated[float, BeforeValidator(_seconds)]
"""Seconds; also accepts ``"30s"``, ``"5m"``, ``"1h30m"``."""


class WebhookChannelSettings(BaseModel):
    """A generic webhook receiving Alertmanager v4 payloads."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    url: str
    """Where notifications are POSTed as JSON."""
    name: str | None = None
    """Channel name in logs and delivery counts (default ``webhook-<n>``)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra HTTP headers, e.g. ``{"Authorization": "Bearer …"}``."""
    max_alerts: int = Field(default=0, ge=0)
    """Most alerts in one payload (0: all); the rest are counted in ``truncatedAlerts``."""


class SlackChannelSettings(BaseModel):
    """A Slack-compatible incoming webhook (Slack, Mattermost, Rocket.Chat)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    url: str
    """The incoming-webhook URL (it is a secret: it is never logged)."""
    name: str | None = None
    """Channel name in logs and delivery counts (default ``slack-<n>``)."""
    channel: str | None = None
    """Override of the webhook's channel (``#ml-alerts``) where the service allows it."""
    username: str | None = None
    """Override of the posting user name."""
    icon_emoji: str | None = None
    """Override of the posting icon, e.g. ``:rotating_light:``."""


class EmailChannelSettings(BaseModel):
    """E-mail over SMTP."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    host: str
    """SMTP server host."""
    port: int = Field(default=25, ge=1, le=65535)
    """SMTP server port (25 plain, 587 STARTTLS, 465 implicit TLS by convention)."""
    security: Literal["none", "starttls", "ssl"] = "none"
    """``starttls``: upgrade the connection; ``ssl``: TLS from the start; ``none``: plain."""
    username: str | None = None
    """Login user (no login when unset)."""
    password: SecretStr | None = None
    """Login password."""
    sender: str
    """The ``From`` address."""
    recipients: list[str] = Field(min_length=1)
    """The ``To`` addresses."""
    ca_file: str | None = None
    """PEM file of CAs trusted for the server certificate (default: the system CAs)."""
    subject_prefix: str = "[sibyl]"
    """Prepended to every subject."""
    name: str | None = None
    """Channel name in logs and delivery counts (default ``email-<n>``)."""


class AlertChannelSettings(BaseModel):
    """Where notifications go; every channel receives every notification."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    log: bool = True
    """Log every notification (structlog event ``alert_notification``)."""
    webhooks: list[WebhookChannelSettings] = Field(default_factory=list)
    """Generic webhooks (Alertmanager v4 payload)."""
    slack: list[SlackChannelSettings] = Field(default_factory=list)
    """Slack-compatible incoming webhooks."""
    email: list[EmailChannelSettings] = Field(default_factory=list)
    """SMTP e-mail channels."""


class AlertGroupingSettings(BaseModel):
    """How alerts are grouped into notifications (Alertmanager semantics, simplified)."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    group_by: list[str] = Field(default_factory=lambda: ["alertname", "model"])
    """Labels whose values form a group (``alertname`` is the rule name); ``[]``: one group."""
    group_wait_s: Duration = 30.0
    """Wait before a new group's first notification, to gather alerts firing together."""
    group_interval_s: Duration = 300.0
    """Wait after a notification before announcing changes in the group."""
    repeat_interval_s: Duration = 4 * 3600.0
    """Remind of a group that still fires, unchanged, this often."""


class AlertDeliverySettings(BaseModel):
    """Timeouts and retries of every channel."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    timeout_s: Duration = 10.0
    """Longest one delivery attempt may take."""
    attempts: int = Field(default=4, ge=1)
    """Attempts per notification and channel (1: no retry)."""
    backoff_s: Duration = 1.0
    """Wait after the first failed attempt; doubles after each further one."""
    backoff_max_s: Duration = 60.0
    """Longest wait between attempts."""
    queue_size: int = Field(default=256, ge=1)
    """Notifications waiting per channel; beyond it new ones are dropped (and counted)."""


class AlertSettings(BaseModel):
    """Alert rules, their evaluation and where notifications go."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    enabled: bool = True
    """Evaluate alert rules in this process (with N replicas, enable it on one of them)."""
    evaluation_interval_s: Duration = 15.0
    """How often every rule is evaluated."""
    default_rules: bool = True
    """Give every served model the default rules (success rate, p95 latency, drift, accuracy
    drop) unless rules of those names exist."""
    receiver: str = "sibyl"
    """The ``receiver`` named in webhook payloads."""
    external_url: str | None = None
    """This server's public URL, for links to rules in notifications (``generatorURL``)."""
    channels: AlertChannelSettings = Field(default_factory=AlertChannelSettings)
    """Notification channels."""
    grouping: AlertGroupingSettings = Field(default_factory=AlertGroupingSettings)
    """Grouping, group wait/interval and repeat interval."""
    delivery: AlertDeliverySettings = Field(default_factory=AlertDeliverySettings)
    """Timeouts, retries and queue bounds of deliveries."""

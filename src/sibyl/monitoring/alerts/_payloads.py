"""What each channel sends, as pure functions of a :class:`Notification`.

* :func:`alertmanager_payload` — Alertmanager's webhook body, version 4 (what Alertmanager
  receivers, PagerDuty/Opsgenie bridges and most incident tools accept);
* :func:`slack_payload` — a Slack incoming-webhook body: ``text`` (the fallback and the
  notification line) plus one attachment per alert, coloured by severity (green when resolved),
  each holding mrkdwn ``blocks``;
* :func:`email_message` — a plain-text e-mail, the title as subject.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any
from urllib.parse import quote

from sibyl.monitoring.alerts._grouping import Notification
from sibyl.monitoring.alerts._rules import Severity
from sibyl.monitoring.alerts._state import Alert, AlertState

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Alertmanager's ``endsAt`` of an alert that has not ended."""
SLACK_COLOURS = {
    Severity.CRITICAL: "#d00000",
    Severity.WARNING: "#f2a900",
    Severity.INFO: "#439fe0",
}
SLACK_RESOLVED = "#2eb67d"


def rfc3339(moment: datetime | None) -> str:
    """``2026-12-10T09:00:00.123456Z`` (UTC), or Alertmanager's zero time for ``None``."""
    if moment is None:
        return ZERO_TIME
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def generator_url(alert: Alert, external_url: str | None) -> str:
    """Where the alert's rule can be seen (``<external_url>/v1/alerts/rules/<rule>``)."""
    if not external_url:
        return ""
    return f"{external_url.rstrip('/')}/v1/alerts/rules/{quote(alert.rule, safe=':')}"


def alertmanager_payload(
    notification: Notification,
    *,
    receiver: str,
    external_url: str | None = None,
    max_alerts: int = 0,
) -> dict[str, Any]:
    """The Alertmanager v4 webhook body; ``max_alerts > 0`` keeps that many alerts and reports
    the rest in ``truncatedAlerts``."""
    alerts = list(notification.alerts)
    kept = alerts[:max_alerts] if max_alerts > 0 else alerts
    return {
        "version": "4",
        "groupKey": notification.group_key,
        "truncatedAlerts": len(alerts) - len(kept),
        "status": notification.status,
        "receiver": receiver,
        "groupLabels": dict(notification.group_labels),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url or "",
        "alerts": [_alertmanager_alert(a, external_url) for a in kept],
    }


def _alertmanager_alert(alert: Alert, external_url: str | None) -> dict[str, Any]:
    resolved = alert.state is AlertState.RESOLVED
    return {
        "status": "resolved" if resolved else "firing",
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "startsAt": rfc3339(alert.fired_at or alert.active_at),
        "endsAt": rfc3339(alert.resolved_at) if resolved else ZERO_TIME,
        "generatorURL": generator_url(alert, external_url),
        "fingerprint": alert.fingerprint,
    }


def _common(maps: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in maps[1:])}


def slack_payload(
    notification: Notification,
    *,
    channel: str | None = None,
    username: str | None = None,
    icon_emoji: str | None = None,
    external_url: str | None = None,
) -> dict[str, Any]:
    """A Slack incoming-webhook body (``channel``/``username``/``icon_emoji`` when given)."""
    payload: dict[str, Any] = {
        "text": notification.title(),
        "attachments": [_slack_attachment(a, external_url) for a in notification.alerts],
    }
    extras = {"channel": channel, "username": username, "icon_emoji": icon_emoji}
    payload.update({key: value for key, value in extras.items() if value})
    return payload


def _slack_attachment(alert: Alert, external_url: str | None) -> dict[str, Any]:
    resolved = alert.state is AlertState.RESOLVED
    colour = SLACK_RESOLVED if resolved else SLACK_COLOURS[alert.severity]
    state = "RESOLVED" if resolved else f"FIRING · {alert.severity.value}"
    summary = alert.annotations.get("summary", alert.rule)
    fields = [
        {"type": "mrkdwn", "text": f"*{key}*\n{value}"}
        for key, value in sorted(alert.labels.items())
        if key not in ("alertname", "severity")
    ]
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*{state}* `{alert.rule}`\n{summary}"},
        },
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields[:10]})  # Slack's limit per section
    link = generator_url(alert, external_url)
    since = rfc3339(alert.resolved_at if resolved else alert.fired_at)
    context = f"{'resolved' if resolved else 'since'} {since}" + (
        f" · <{link}|rule>" if link else ""
    )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"color": colour, "fallback": f"{state} {alert.rule}: {summary}", "blocks": blocks}


def email_message(
    notification: Notification,
    *,
    sender: str,
    recipients: Sequence[str],
    subject_prefix: str = "",
    external_url: str | None = None,
) -> EmailMessage:
    """A plain-text e-mail: subject ``<prefix> <title>``, one paragraph per alert."""
    message = EmailMessage()
    message["Subject"] = f"{subject_prefix} {notification.title()}".strip()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message.set_content("\n\n".join(_email_paragraph(a, external_url) for a in notification.alerts))
    return message


def _email_paragraph(alert: Alert, external_url: str | None) -> str:
    resolved = alert.state is AlertState.RESOLVED
    lines = [
        f"{'RESOLVED' if resolved else 'FIRING'} [{alert.severity.value}] {alert.rule}",
        alert.annotations.get("summary", ""),
        "labels: " + ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items())),
        f"since: {rfc3339(alert.fired_at or alert.active_at)}",
    ]
    if resolved:
        lines.append(f"resolved: {rfc3339(alert.resolved_at)}")
    lines += [f"{k}: {v}" for k, v in sorted(alert.annotations.items()) if k != "summary"]
    link = generator_url(alert, external_url)
    if link:
        lines.append(f"rule: {link}")
    return "\n".join(line for line in lines if line)

"""Channel payloads as pure functions: the Alertmanager v4 shape, Slack colours and blocks,
the e-mail message."""

from __future__ import annotations

from sibyl.monitoring.alerts import (
    GroupingPolicy,
    Notification,
    alertmanager_payload,
    email_message,
    slack_payload,
)
from tests.unit.monitoring.alerts.support import Feed, at, engine, rule

V4_KEYS = {"version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
           "commonLabels", "commonAnnotations", "externalURL", "alerts"}  # fmt: skip
ALERT_KEYS = {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
              "fingerprint"}  # fmt: skip


def mixed() -> Notification:
    """One group (model=churn) with a critical firing alert and a resolved warning one."""
    feed = Feed("latency", "errors")
    e = engine(feed, rule(severity="critical"),
               rule("churn:errors", metric="errors", threshold=0.1, message="errors {value}"),
               grouping=GroupingPolicy(("model",), 0, 0, 3600))  # fmt: skip
    feed.set("latency", 150)
    feed.set("errors", 0.5)
    e.evaluate_once(at(0))
    feed.set("errors", 0.0)
    [note] = e.evaluate_once(at(90.5))
    return note


def test_alertmanager_v4_payload_shape() -> None:
    body = alertmanager_payload(mixed(), receiver="ml-team", external_url="http://sibyl:8000/")
    assert set(body) == V4_KEYS
    assert body["version"] == "4" and body["status"] == "firing" and body["receiver"] == "ml-team"
    assert body["groupKey"] == '{}:{model="churn"}' and body["groupLabels"] == {"model": "churn"}
    assert body["commonLabels"] == {"model": "churn"}  # alertname, severity differ
    assert body["externalURL"] == "http://sibyl:8000/" and body["truncatedAlerts"] == 0
    firing, resolved = body["alerts"]
    assert all(set(a) == ALERT_KEYS for a in body["alerts"])
    assert firing["status"] == "firing" and firing["endsAt"] == "0001-01-01T00:00:00Z"
    assert firing["startsAt"] == "2026-01-01T00:00:00Z"
    assert firing["labels"] == {"alertname": "churn:latency", "severity": "critical",
                                "model": "churn"}  # fmt: skip
    assert firing["generatorURL"] == "http://sibyl:8000/v1/alerts/rules/churn:latency"
    assert len(firing["fingerprint"]) == 16
    assert resolved["status"] == "resolved" and resolved["endsAt"] == "2026-01-01T00:01:30.500000Z"
    assert resolved["annotations"] == {"summary": "errors 0.0"}


def test_alertmanager_payload_truncates_to_max_alerts() -> None:
    body = alertmanager_payload(mixed(), receiver="r", max_alerts=1)
    assert body["truncatedAlerts"] == 1 and len(body["alerts"]) == 1
    assert body["status"] == "firing" and body["externalURL"] == ""
    assert body["alerts"][0]["generatorURL"] == ""


def test_slack_payload_colours_by_severity_and_resolution() -> None:
    body = slack_payload(mixed(), channel="#ml", username="sibyl")
    assert body["text"] == "[FIRING:1] model=churn"
    assert body["channel"] == "#ml" and body["username"] == "sibyl" and "icon_emoji" not in body
    critical, resolved = body["attachments"]
    assert critical["color"] == "#d00000" and resolved["color"] == "#2eb67d"
    assert critical["blocks"][0]["type"] == "section"
    assert "*FIRING · critical* `churn:latency`" in critical["blocks"][0]["text"]["text"]
    assert critical["blocks"][1]["fields"] == [{"type": "mrkdwn", "text": "*model*\nchurn"}]
    assert resolved["fallback"].startswith("RESOLVED churn:errors")


def test_slack_warning_and_info_colours() -> None:
    feed = Feed()
    feed.set("latency", 150)
    e = engine(feed, rule("w", severity="warning"), rule("i", severity="info"),
               grouping=GroupingPolicy((), 0, 0, 3600))
    [note] = e.evaluate_once(at(0))
    colours = {a["fallback"].split()[3]: a["color"] for a in slack_payload(note)["attachments"]}
    assert colours == {"w:": "#f2a900", "i:": "#439fe0"}


def test_email_message() -> None:
    message = email_message(mixed(), sender="sibyl@example.com",
                            recipients=["a@example.com", "b@example.com"],
                            subject_prefix="[sibyl]", external_url="http://sibyl")  # fmt: skip
    assert message["Subject"] == "[sibyl] [FIRING:1] model=churn"
    assert message["To"] == "a@example.com, b@example.com"
    body = message.get_content()
    assert "FIRING [critical] churn:latency" in body and "RESOLVED [warning] churn:errors" in body
    assert "resolved: 2026-01-01T00:01:30.500000Z" in body
    assert "rule: http://sibyl/v1/alerts/rules/churn:latency" in body

"""Alert settings: defaults, durations as strings, channels built from them, docstrings."""

from __future__ import annotations

import pydantic
import pytest

from sibyl.monitoring.alerts import (
    AlertSettings,
    EmailChannel,
    InMemoryRuleRepository,
    LogChannel,
    MetricFunctions,
    SlackChannel,
    WebhookChannel,
    build_alert_engine,
    build_channels,
)


def test_defaults() -> None:
    s = AlertSettings()
    assert s.enabled and s.default_rules and s.evaluation_interval_s == 15.0
    assert s.grouping.group_by == ["alertname", "model"]
    assert (s.grouping.group_wait_s, s.grouping.group_interval_s,
            s.grouping.repeat_interval_s) == (30.0, 300.0, 14400.0)  # fmt: skip
    assert [type(c) for c in build_channels(s)] == [LogChannel]


def test_durations_accept_units() -> None:
    s = AlertSettings.model_validate({
        "evaluation_interval_s": "30s",
        "grouping": {"group_wait_s": "1m", "repeat_interval_s": "1d"},
        "delivery": {"timeout_s": "2.5", "backoff_max_s": "2m"},
    })  # fmt: skip
    assert s.evaluation_interval_s == 30 and s.grouping.group_wait_s == 60
    assert s.grouping.repeat_interval_s == 86400 and s.delivery.backoff_max_s == 120
    with pytest.raises(pydantic.ValidationError, match="duration"):
        AlertSettings.model_validate({"grouping": {"group_wait_s": "soon"}})


def test_channels_are_built_and_named() -> None:
    s = AlertSettings.model_validate({"channels": {
        "log": False,
        "webhooks": [{"url": "http://a/hook"}, {"url": "http://b/hook", "name": "pager"}],
        "slack": [{"url": "https://hooks.slack.com/services/T/B/secret"}],
        "email": [{"host": "smtp", "sender": "s@x", "recipients": ["r@x"],
                   "password": "hunter2", "security": "starttls", "port": 587}],
    }})  # fmt: skip
    channels = build_channels(s)
    assert [c.name for c in channels] == ["webhook-1", "pager", "slack-1", "email-1"]
    assert [type(c) for c in channels] == [WebhookChannel, WebhookChannel, SlackChannel,
                                           EmailChannel]  # fmt: skip
    assert "hunter2" not in repr(s)


@pytest.mark.parametrize("bad", [
    {"channels": {"email": [{"host": "smtp", "sender": "s@x", "recipients": []}]}},
    {"channels": {"email": [{"host": "smtp", "sender": "s@x", "recipients": ["r"],
                             "security": "tls"}]}},
    {"channels": {"webhooks": [{"url": "http://a", "colour": "red"}]}},
    {"delivery": {"attempts": 0}},
])  # fmt: skip
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(pydantic.ValidationError):
        AlertSettings.model_validate(bad)


def test_every_setting_has_a_docstring() -> None:
    def walk(model: type[pydantic.BaseModel]) -> None:
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name}"
            annotation = info.annotation
            for inner in (*getattr(annotation, "__args__", ()), annotation):
                if isinstance(inner, type) and issubclass(inner, pydantic.BaseModel):
                    walk(inner)

    walk(AlertSettings)


def test_build_alert_engine_wires_the_settings() -> None:
    s = AlertSettings.model_validate({"evaluation_interval_s": 5,
                                      "grouping": {"group_by": ["model"]}})  # fmt: skip
    engine = build_alert_engine(s, InMemoryRuleRepository(), MetricFunctions())
    assert engine.interval_s == 5 and engine.grouping.group_by == ("model",)
    assert engine.dispatcher is not None and engine.dispatcher.policy.attempts == 4

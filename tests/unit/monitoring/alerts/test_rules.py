"""Rules: validation naming the field, durations, safe templates, JSON round trip, defaults."""

from __future__ import annotations

from typing import Any

import pytest

from sibyl.errors import InvalidInputError
from sibyl.monitoring.alerts import (
    DEFAULT_METRICS,
    Condition,
    Rule,
    Severity,
    default_rules,
    format_duration,
    parse_duration,
)

BASE = {"name": "churn:latency", "metric": "latency_p95_ms", "condition": ">",
        "threshold": 100, "labels": {"model": "churn"}}  # fmt: skip


def make(**changes: Any) -> Rule:
    return Rule.from_dict({**BASE, **changes})


def refused(**changes: Any) -> InvalidInputError:
    with pytest.raises(InvalidInputError) as info:
        make(**changes)
    return info.value


@pytest.mark.parametrize(("text", "seconds"), [
    ("30s", 30), ("5m", 300), ("1h30m", 5400), ("250ms", 0.25), ("1d", 86400), ("2w", 1209600),
    ("1.5h", 5400), (" 5M ", 300), ("300", 300), (300, 300), (2.5, 2.5), ("0", 0),
])  # fmt: skip
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, field="for") == seconds


@pytest.mark.parametrize("bad", ["5 minutes", "m5", "-5m", -1, True, None, "367d", "nan", [1]])
def test_bad_durations_name_the_field(bad: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        parse_duration(bad, field="keep_firing_for")
    assert info.value.field == "keep_firing_for"


def test_durations_format_back() -> None:
    assert [format_duration(s) for s in (0, 0.25, 30, 300, 5400, 90061)] == [
        "0s", "250ms", "30s", "5m", "1h30m", "1d1h1m1s"]  # fmt: skip


def test_from_dict_parses_and_to_dict_round_trips() -> None:
    rule = make(window="10m", **{"for": "2m", "keep_firing_for": 90}, severity="CRITICAL",
                condition="lt", annotations={"runbook": "https://wiki/{model}"})
    assert (rule.window_s, rule.for_s, rule.keep_firing_for_s) == (600, 120, 90)
    assert rule.condition is Condition.LT and rule.severity is Severity.CRITICAL
    data = rule.to_dict()
    assert data["for"] == 120 and data["condition"] == "<" and data["severity"] == "critical"
    assert Rule.from_dict(data) == rule
    assert rule.evolve(threshold=5).threshold == 5


@pytest.mark.parametrize(("changes", "field"), [
    ({"name": ""}, "name"),
    ({"name": "has space"}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"metric": "latency-p95"}, "metric"),
    ({"condition": "~"}, "condition"),
    ({"threshold": "high"}, "threshold"),
    ({"threshold": float("inf")}, "threshold"),
    ({"threshold": True}, "threshold"),
    ({"window": 0}, "window"),
    ({"for": "soon"}, "for"),
    ({"keep_firing_for": -1}, "keep_firing_for"),
    ({"severity": "page"}, "severity"),
    ({"labels": {"alertname": "x"}}, "labels.alertname"),
    ({"labels": {"severity": "x"}}, "labels.severity"),
    ({"labels": {"value": "x"}}, "labels.value"),
    ({"labels": {"bad-key": "x"}}, "labels"),
    ({"labels": {"__meta": "x"}}, "labels"),
    ({"labels": {"model": ""}}, "labels.model"),
    ({"labels": {"model": 3}}, "labels.model"),
    ({"labels": ["model"]}, "labels"),
    ({"annotations": {"summary": "x"}}, "annotations.summary"),
    ({"annotations": {"runbook": "{nope}"}}, "annotations.runbook"),
    ({"enabled": "yes"}, "enabled"),
    ({"colour": "red"}, "colour"),
])  # fmt: skip
def test_invalid_rules_name_the_field(changes: dict[str, Any], field: str) -> None:
    assert refused(**changes).field == field


def test_missing_required_fields_are_named() -> None:
    with pytest.raises(InvalidInputError, match="'threshold' is required") as info:
        Rule.from_dict({"name": "a", "metric": "m", "condition": ">"})
    assert info.value.field == "threshold"
    with pytest.raises(InvalidInputError) as info:
        Rule.from_dict(["not", "an", "object"])  # type: ignore[arg-type]
    assert info.value.field == "rule"


@pytest.mark.parametrize(("template", "why"), [
    ("{value.__class__.__mro__}", "only plain names"),
    ("{labels[0]}", "only plain names"),
    ("{}", "only plain names"),
    ("{0}", "only plain names"),
    ("{secret}", "unknown field '{secret}'"),
    ("{model:.3f}", "cannot be rendered"),
    ("{value:{threshold}}", "unsupported format spec"),
    ("{value:>100000000}", "width or precision over 64"),
    ("{value:.999f}", "width or precision over 64"),
    ("{value!x}", "unknown conversion"),
    ("{value", "not a valid template"),
    ("value}", "not a valid template"),
    ("x" * 2001, "longer than 2000"),
])  # fmt: skip
def test_unsafe_or_invalid_templates_are_refused_at_creation(template: str, why: str) -> None:
    error = refused(message=template)
    assert error.field == "message" and why in error.message, error.message


def test_templates_render_the_fields_and_labels() -> None:
    rule = make(message="{name} {metric} {value:.3f} {condition} {threshold} {severity} "
                        "{window} [{labels}] {model} {{literal}} {value!r}",
                annotations={"runbook": "https://wiki/{model}"})  # fmt: skip
    out = rule.render(123.45678, {"alertname": "churn:latency", "severity": "warning",
                                  "model": "churn", "feature": "age"})  # fmt: skip
    assert out == {
        "summary": "churn:latency latency_p95_ms 123.457 > 100.0 warning 5m "
                   "[feature=age, model=churn] churn {literal} 123.45678",
        "runbook": "https://wiki/churn",
    }  # fmt: skip


def test_rules_are_immutable_and_their_labels_too() -> None:
    rule = make()
    with pytest.raises(AttributeError):
        rule.threshold = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        rule.labels["model"] = "other"  # type: ignore[index]


def test_durations_given_to_the_constructor_must_be_seconds() -> None:
    with pytest.raises(InvalidInputError, match="from_dict") as info:
        Rule("a", "m", Condition.GT, 1.0, for_s="5m")  # type: ignore[arg-type]
    assert info.value.field == "for"


def test_default_rules_per_model() -> None:
    rules = {r.metric: r for r in default_rules("churn")}
    assert set(rules) == set(DEFAULT_METRICS) == {
        "success_rate", "latency_p95_ms", "drift_score_max", "accuracy_drop"}  # fmt: skip
    s, lat, drift, acc = (rules[m] for m in ("success_rate", "latency_p95_ms",
                                             "drift_score_max", "accuracy_drop"))  # fmt: skip
    assert (s.condition, s.threshold, s.severity) == (Condition.LT, 0.95, Severity.CRITICAL)
    assert (lat.condition, lat.threshold) == (Condition.GT, 100.0)
    assert (drift.condition, drift.threshold) == (Condition.GT, 0.15)
    assert (acc.condition, acc.threshold) == (Condition.GT, 0.05)
    assert all(r.labels == {"model": "churn"} and r.name.startswith("churn:") for r in rules.values())
    assert s.render(0.9, {"model": "churn"})["summary"] == (
        "Success rate of churn is 90.0% over 5m (below 95%)")  # fmt: skip
    assert lat.render(153.26, {"model": "churn"})["summary"] == (
        "p95 latency of churn is 153.3 ms over 5m (above 100 ms)")  # fmt: skip

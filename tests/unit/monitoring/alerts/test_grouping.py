"""Grouping and notification timing: group_wait, group_interval, repeat_interval, one
resolution each, label-based groups, series sources (one rule, many alerts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sibyl.monitoring.alerts import AlertEngine, AlertState, GroupingPolicy, InMemoryRuleRepository
from tests.unit.monitoring.alerts.support import Feed, at, engine, rule, run

POLICY = GroupingPolicy(group_wait_s=30, group_interval_s=60, repeat_interval_s=300)


def test_group_wait_then_repeat_interval_reminders() -> None:
    feed = Feed()
    feed.set("latency", 150)
    e = engine(feed, rule(), grouping=POLICY)
    notes = run(e, range(0, 700, 10))
    assert list(notes) == [30, 330, 630]  # first after group_wait, then every repeat_interval
    assert all(n[0].status == "firing" and len(n[0].alerts) == 1 for n in notes.values())
    assert notes[330][0].alerts[0].fired_at == at(0)


def test_alerts_firing_during_group_wait_join_the_first_notification() -> None:
    feed = Feed("latency", "errors")
    e = engine(feed, rule(), rule("churn:errors", metric="errors", threshold=0.1),
               grouping=GroupingPolicy(("model",), 30, 60, 300))
    feed.set("latency", 150)
    e.evaluate_once(at(0))
    feed.set("errors", 0.5)
    assert e.evaluate_once(at(20)) == []
    [note] = e.evaluate_once(at(30))
    assert note.group_labels == {"model": "churn"}
    assert sorted(a.rule for a in note.alerts) == ["churn:errors", "churn:latency"]
    assert note.group_key == '{}:{model="churn"}'


def test_default_grouping_is_per_rule_and_model() -> None:
    feed = Feed()
    feed.set("latency", 150, model="churn")
    feed.set("latency", 150, model="dkt")
    e = engine(feed, rule("churn:latency"), rule("dkt:latency", model="dkt"))
    notes = e.evaluate_once(at(0))
    assert [n.group_key for n in notes] == [
        '{}:{alertname="churn:latency", model="churn"}',
        '{}:{alertname="dkt:latency", model="dkt"}',
    ]


def test_changes_wait_for_group_interval_after_the_last_notification() -> None:
    feed = Feed("latency", "errors")
    e = engine(feed, rule(), rule("churn:errors", metric="errors", threshold=0.1),
               grouping=GroupingPolicy(("model",), 0, 60, 3600))
    feed.set("latency", 150)
    assert len(e.evaluate_once(at(0))) == 1
    feed.set("errors", 0.5)  # a new alert in the same group at 10
    assert run(e, [10, 20, 50]) == {}
    [note] = e.evaluate_once(at(60))
    assert [len(note.firing), len(note.resolved)] == [2, 0]
    feed.set("latency", 50)  # resolves at 70
    assert run(e, [70, 100]) == {}
    [note] = e.evaluate_once(at(120))
    assert [a.rule for a in note.firing] == ["churn:errors"]
    assert [a.rule for a in note.resolved] == ["churn:latency"]
    assert note.status == "firing"
    assert run(e, range(130, 1000, 10)) == {}  # nothing new: the resolution is not repeated
    feed.set("errors", 0.0)
    [note] = e.evaluate_once(at(1000))
    assert note.status == "resolved" and [a.rule for a in note.alerts] == ["churn:errors"]
    assert e.active_alerts(states=list(AlertState)) == []


def test_an_alert_resolving_before_group_wait_is_never_announced() -> None:
    feed = Feed()
    e = engine(feed, rule(), grouping=POLICY)
    feed.set("latency", 150)
    e.evaluate_once(at(0))
    feed.set("latency", 50)
    assert run(e, range(10, 400, 10)) == {}
    assert e.active_alerts(states=list(AlertState)) == []


def test_grouping_by_no_labels_makes_one_group() -> None:
    feed = Feed()
    feed.set("latency", 150, model="churn")
    feed.set("latency", 150, model="dkt")
    e = engine(feed, rule("churn:latency"), rule("dkt:latency", model="dkt"),
               grouping=GroupingPolicy((), 0, 0, 3600))
    [note] = e.evaluate_once(at(0))
    assert note.group_key == "{}:{}" and len(note.alerts) == 2
    assert note.title() == "[FIRING:2] all alerts"


class FeatureDrift:
    """A series source: drift per feature of a model (settable)."""

    def __init__(self) -> None:
        self.scores: dict[str, float | None] = {}

    def value(self, metric: str, labels: Mapping[str, str], window_s: float) -> float | None:
        raise AssertionError("a series source is asked for series")

    def series(self, metric: str, labels: Mapping[str, str], window_s: float
               ) -> Iterable[tuple[Mapping[str, str], float | None]]:
        return [({**labels, "feature": f}, s) for f, s in self.scores.items()]


def test_a_series_source_gives_one_alert_per_label_set_in_one_group() -> None:
    drift = FeatureDrift()
    e = AlertEngine(InMemoryRuleRepository(), drift, grouping=GroupingPolicy(group_wait_s=0))
    e.create_rule(rule("churn:drift", metric="drift_score", threshold=0.15,
                       message="{labels}"))
    drift.scores = {"age": 0.3, "tenure": 0.2, "plan": 0.01}
    [note] = e.evaluate_once(at(0))
    assert sorted(a.labels["feature"] for a in note.alerts) == ["age", "tenure"]
    assert note.alerts[0].annotations["summary"] == "feature=age, model=churn"
    assert len({a.fingerprint for a in note.alerts}) == 2
    drift.scores = {"age": 0.3, "plan": 0.01}  # tenure: no data → stays firing
    e.evaluate_once(at(10))
    assert sorted(a.labels["feature"] for a in e.active_alerts()) == ["age", "tenure"]
    drift.scores = {"age": 0.01, "tenure": 0.01, "plan": 0.01}
    e.evaluate_once(at(20))
    assert e.active_alerts() == []


def test_state_restored_from_the_repository_neither_repeats_nor_forgets() -> None:
    feed = Feed()
    feed.set("latency", 150)
    repo = InMemoryRuleRepository()
    first = engine(feed, rule(), repository=repo, grouping=POLICY)
    assert list(run(first, [0, 10, 20, 30])) == [30]
    second = AlertEngine(repo, feed.source, grouping=POLICY)  # a restart
    assert run(second, [40, 100, 320]) == {}  # not due: repeat_interval counts from 30
    assert list(run(second, [330])) == [330]
    [alert] = second.active_alerts()
    assert alert.fired_at == at(0) and alert.notified_at == at(330)
    feed.set("latency", 50)
    assert run(second, [340, 380]) == {}
    third = AlertEngine(repo, feed.source, grouping=POLICY)  # restart with news pending
    [[note]] = run(third, [390]).values()
    assert note.status == "resolved"
    assert repo.load_alerts() == []

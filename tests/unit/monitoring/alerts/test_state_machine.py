"""The alert state machine with a controllable clock: ``for``, ``keep_firing_for``, flapping,
no data, rule changes — each asserted at every evaluation."""

from __future__ import annotations

import pytest

from sibyl.errors import InvalidInputError
from sibyl.monitoring.alerts import AlertState, GroupingPolicy, Transition
from tests.unit.monitoring.alerts.support import Feed, at, engine, rule, run, state_of

PENDING, FIRING, RESOLVED = AlertState.PENDING, AlertState.FIRING, AlertState.RESOLVED


@pytest.mark.parametrize(("for_s", "tick", "fires_at"), [
    (60.0, 10.0, 60.0),   # ticks land on `for` exactly
    (30.0, 7.0, 35.0),    # first tick at or after 30 s of holding
    (0.0, 10.0, 0.0),     # no `for`: the first evaluation that holds fires
])  # fmt: skip
def test_fires_exactly_when_the_condition_has_held_for_for(
    for_s: float, tick: float, fires_at: float
) -> None:
    feed = Feed()
    feed.set("latency", 150.0)
    e = engine(feed, rule(for_s=for_s))
    t = 0.0
    while t < fires_at:
        e.evaluate_once(at(t))
        assert state_of(e, "churn:latency") is PENDING, t  # not one tick earlier
        t += tick
    assert t == fires_at
    notes = e.evaluate_once(at(t))
    assert state_of(e, "churn:latency") is FIRING
    [alert] = e.active_alerts()
    assert alert.active_at == at(0) and alert.fired_at == at(fires_at)
    assert [n.status for n in notes] == ["firing"]


def test_a_condition_that_stops_holding_while_pending_restarts_the_for_clock() -> None:
    feed = Feed()
    e = engine(feed, rule(for_s=30.0))
    for t, value, expected in [(0, 150, PENDING), (10, 150, PENDING), (20, 50, None),
                               (30, 150, PENDING), (50, 150, PENDING), (60, 150, FIRING)]:
        feed.set("latency", value)
        e.evaluate_once(at(t))
        assert state_of(e, "churn:latency") is expected, t
    assert e.active_alerts()[0].active_at == at(30)


def test_resolves_when_keep_firing_for_has_passed_since_the_condition_stopped() -> None:
    feed = Feed()
    feed.set("latency", 150.0)
    e = engine(feed, rule(keep_firing_for_s=30.0))
    assert run(e, [0])[0][0].status == "firing"
    feed.set("latency", 50.0)
    for t in (10, 20, 30):  # stopped at 10: keeps firing until 10 + 30
        assert e.evaluate_once(at(t)) == []
        assert state_of(e, "churn:latency") is FIRING
        assert e.active_alerts()[0].keep_firing_since == at(10)
    [note] = e.evaluate_once(at(40))
    assert note.status == "resolved"
    [alert] = note.alerts
    assert alert.state is RESOLVED and alert.resolved_at == at(40) and alert.fired_at == at(0)
    assert state_of(e, "churn:latency") is None  # announced once, then forgotten
    assert run(e, [50, 60, 70]) == {}


def test_without_keep_firing_for_the_first_evaluation_that_does_not_hold_resolves() -> None:
    feed = Feed()
    feed.set("latency", 150.0)
    e = engine(feed, rule())
    e.evaluate_once(at(0))
    feed.set("latency", 100.0)  # not > 100
    [note] = e.evaluate_once(at(10))
    assert note.status == "resolved" and note.alerts[0].resolved_at == at(10)


def test_flapping_inside_keep_firing_for_stays_firing_without_new_notifications() -> None:
    feed = Feed()
    e = engine(feed, rule(keep_firing_for_s=30.0))
    values = {0: 150, 10: 50, 20: 150, 30: 50, 40: 150, 50: 50, 60: 50, 70: 50}
    notes = {}
    for t, value in values.items():
        feed.set("latency", value)
        notes[t] = e.evaluate_once(at(t))
        assert state_of(e, "churn:latency") is FIRING, t
    assert [t for t, n in notes.items() if n] == [0]  # one firing notification, no noise
    assert e.active_alerts()[0].keep_firing_since == at(50)  # reset each time it held again
    feed.set("latency", 50)
    [note] = e.evaluate_once(at(80))  # 50 + 30
    assert note.status == "resolved"


def test_flapping_without_keep_firing_for_notifies_each_change() -> None:
    feed = Feed()
    e = engine(feed, rule())
    statuses = []
    for t, value in enumerate([150, 50, 150, 50]):
        feed.set("latency", value)
        statuses += [n.status for n in e.evaluate_once(at(10 * t))]
    assert statuses == ["firing", "resolved", "firing", "resolved"]


def test_no_data_keeps_a_firing_alert_and_drops_a_pending_one() -> None:
    feed = Feed()
    e = engine(feed, rule("churn:latency", for_s=0.0), rule("churn:slow", for_s=60.0))
    feed.set("latency", 150.0)
    e.evaluate_once(at(0))
    assert state_of(e, "churn:latency") is FIRING and state_of(e, "churn:slow") is PENDING
    feed.set("latency", None)  # no traffic
    assert e.evaluate_once(at(10)) == []  # no false all-clear
    assert state_of(e, "churn:latency") is FIRING and state_of(e, "churn:slow") is None
    assert e.active_alerts()[0].no_data
    feed.set("latency", float("nan"))  # NaN is no data too
    e.evaluate_once(at(20))
    assert state_of(e, "churn:latency") is FIRING
    feed.set("latency", 50.0)  # evidence of recovery
    [note] = e.evaluate_once(at(30))
    assert note.status == "resolved" and not note.alerts[0].no_data


def test_a_resolution_not_yet_announced_is_announced_if_it_goes_pending_again() -> None:
    feed = Feed()
    grouping = GroupingPolicy(group_wait_s=0, group_interval_s=60, repeat_interval_s=3600)
    e = engine(feed, rule(for_s=60.0), grouping=grouping)
    feed.set("latency", 150)
    run(e, [0, 30])
    assert [n.status for n in e.evaluate_once(at(60))] == ["firing"]
    feed.set("latency", 50)
    assert e.evaluate_once(at(70)) == []  # resolved, but group_interval holds the news
    feed.set("latency", 150)
    assert e.evaluate_once(at(80)) == []  # pending again, from 80
    [note] = e.evaluate_once(at(120))  # 60 + 60: still pending, so receivers hear "resolved"
    assert note.status == "resolved" and note.alerts[0].resolved_at == at(70)
    assert state_of(e, "churn:latency") is PENDING
    assert e.evaluate_once(at(140)) == []  # fires (80 + 60), news held by group_interval
    assert state_of(e, "churn:latency") is FIRING
    [note] = e.evaluate_once(at(180))
    assert note.status == "firing" and note.alerts[0].fired_at == at(140)
    assert note.alerts[0].resolved_at is None


def test_deleting_a_rule_resolves_its_firing_alert_once() -> None:
    feed = Feed()
    feed.set("latency", 150)
    e = engine(feed, rule())
    e.evaluate_once(at(0))
    e.delete_rule("churn:latency")
    [note] = e.evaluate_once(at(10))
    assert note.status == "resolved" and note.alerts[0].resolved_at == at(10)
    assert e.active_alerts(states=list(AlertState)) == []
    assert e.evaluate_once(at(20)) == []


def test_disabling_a_rule_resolves_and_stops_asking_the_source() -> None:
    feed = Feed()
    feed.set("latency", 150)
    e = engine(feed, rule())
    e.evaluate_once(at(0))
    e.replace_rule(rule(enabled=False))
    calls = len(feed.calls)
    assert [n.status for n in e.evaluate_once(at(10))] == ["resolved"]
    assert len(feed.calls) == calls


def test_changing_a_rules_labels_resolves_the_old_alert_and_starts_a_new_one() -> None:
    feed = Feed()
    feed.set("latency", 150)
    e = engine(feed, rule(severity="warning"))
    e.evaluate_once(at(0))
    e.replace_rule(rule(severity="critical"))
    [note] = e.evaluate_once(at(10))  # same group: one message with both
    assert [(a.state, a.labels["severity"]) for a in note.alerts] == [
        (FIRING, "critical"), (RESOLVED, "warning")]  # fmt: skip
    assert [a.labels["severity"] for a in e.active_alerts()] == ["critical"]


def test_a_changed_threshold_applies_to_the_existing_alert() -> None:
    feed = Feed()
    feed.set("latency", 150)
    e = engine(feed, rule())
    e.evaluate_once(at(0))
    e.replace_rule(rule(threshold=200.0))
    [note] = e.evaluate_once(at(10))
    assert note.status == "resolved"


def test_a_failing_source_is_counted_and_leaves_other_rules_and_firing_alerts_alone() -> None:
    feed = Feed()
    feed.set("latency", 150)
    failing = {"on": False}

    def errors(labels: object, window_s: float) -> float:
        if failing["on"]:
            raise RuntimeError("database down")
        return 0.5

    feed.source.register("error_rate", errors)
    seen: list[tuple[str, bool]] = []
    e = engine(feed, rule(), rule("churn:errors", metric="error_rate", threshold=0.1),
               on_evaluation=lambda name, ok: seen.append((name, ok)))
    e.evaluate_once(at(0))
    assert {a.rule for a in e.active_alerts()} == {"churn:latency", "churn:errors"}
    failing["on"] = True
    seen.clear()
    assert e.evaluate_once(at(10)) == []
    assert sorted(seen) == [("churn:errors", False), ("churn:latency", True)]
    assert state_of(e, "churn:errors") is FIRING


def test_transitions_are_reported_to_the_hook() -> None:
    feed = Feed()
    events: list[tuple[str, Transition]] = []
    e = engine(feed, rule(for_s=10.0),
               on_transition=lambda alert, t: events.append((alert.state.value, t)))
    for t, value in [(0, 150), (10, 150), (20, 50), (30, 150), (40, 50)]:
        feed.set("latency", value)
        e.evaluate_once(at(t))
    assert events == [("pending", Transition.PENDING), ("firing", Transition.FIRED),
                      ("resolved", Transition.RESOLVED), ("pending", Transition.PENDING),
                      ("inactive", Transition.CLEARED)]  # fmt: skip


def test_rules_of_unknown_metrics_are_refused_when_the_source_names_its_metrics() -> None:
    feed = Feed()
    feed.set("latency", 1.0)
    e = engine(feed)
    with pytest.raises(InvalidInputError, match="Unknown metric 'latncy'") as info:
        e.create_rule(rule(metric="latncy"))
    assert info.value.field == "metric"


def test_the_rule_window_and_labels_reach_the_source() -> None:
    feed = Feed()
    feed.set("latency", 1.0)
    e = engine(feed, rule(window_s=600.0))
    e.evaluate_once(at(0))
    assert feed.calls == [("latency", {"model": "churn"}, 600.0)]


def test_conditions() -> None:
    feed = Feed()
    cases = {">": (2, 1), ">=": (1, 0), "<": (0, 1), "<=": (1, 2), "==": (1, 2), "!=": (2, 1)}
    for op, (holds, does_not) in cases.items():
        e = engine(feed, rule(f"r{len(op)}{ord(op[0])}", condition=op, threshold=1.0))
        feed.set("latency", holds)
        e.evaluate_once(at(0))
        assert len(e.active_alerts()) == 1, op
        feed.set("latency", does_not)
        e.evaluate_once(at(10))
        assert e.active_alerts() == [], op


def test_default_rules_are_installed_once_and_edits_survive() -> None:
    from sibyl.monitoring.alerts import DEFAULT_METRICS

    feed = Feed(*DEFAULT_METRICS)
    e = engine(feed)
    assert len(e.install_default_rules("churn")) == 4
    e.replace_rule(e.get_rule("churn:latency_p95").evolve(threshold=250.0))
    assert e.install_default_rules("churn") == []
    assert e.get_rule("churn:latency_p95").threshold == 250.0
    feed.set("success_rate", 0.5)
    feed.set("latency_p95_ms", 300.0)
    feed.set("drift_score_max", 0.01)
    feed.set("accuracy_drop", None)
    e.evaluate_once(at(0))
    e.evaluate_once(at(120))
    assert [(a.rule, a.state) for a in e.active_alerts()] == [
        ("churn:success_rate", FIRING), ("churn:latency_p95", PENDING)]  # fmt: skip


def test_active_alerts_sorted_and_filtered_by_model() -> None:
    feed = Feed()
    for model in ("churn", "dkt"):
        feed.set("latency", 150, model=model)
    e = engine(feed, rule("churn:info", severity="info"), rule("churn:crit", severity="critical"),
               rule("dkt:slow", model="dkt", for_s=60.0))
    e.evaluate_once(at(0))
    assert [a.rule for a in e.active_alerts()] == ["churn:crit", "churn:info", "dkt:slow"]
    assert [a.rule for a in e.active_alerts(model="dkt")] == ["dkt:slow"]
    assert [a.rule for a in e.active_alerts(states=[PENDING])] == ["dkt:slow"]
    data = e.active_alerts(model="churn")[0].to_dict()
    assert data["state"] == "firing" and data["severity"] == "critical"
    assert data["fired_at"] == "2026-01-01T00:00:00+00:00" and data["value"] == 150.0

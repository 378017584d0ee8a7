"""The store's ground-truth and prediction-log statistics contract (``_quality.py``,
``_logstats.py``) on SQLite and the REAL PostgreSQL on 127.0.0.1:5432: feedback attribution
(request id, request id + row, routing key + event time, feedback before its log row), the
join by prediction time, request statistics and the hourly trend."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sibyl.errors import InvalidInputError
from sibyl.store import LabelledPredictions, NewFeedback, SQLStore
from tests.quality_support import log_row, write_log

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def model() -> str:
    """A model name no other test uses (tests share one database per backend)."""
    return f"m-{uuid.uuid4().hex[:8]}"


def rid() -> str:
    return f"r-{uuid.uuid4().hex[:12]}"


def window(
    store: SQLStore,
    name: str,
    *,
    since: datetime = T0 - timedelta(days=1),
    until: datetime = T0 + timedelta(days=1),
    version: str | None = None,
    limit: int = 200_000,
) -> LabelledPredictions:
    return store.labelled_predictions(name, since=since, until=until, version=version, limit=limit)


# ---- attribution ----------------------------------------------------------------------------


def test_feedback_by_request_id_is_attributed_when_stored(store: SQLStore) -> None:
    name, r = model(), rid()
    (pid,) = write_log(store, log_row(r, T0, [1, 0, 1], model=name))
    stored = store.add_feedback(NewFeedback(name, request_id=r, label="1", row=2))
    assert stored.prediction_id == pid and stored.row == 2
    data = window(store, name)
    assert [(t.prediction_id, t.row, t.label) for t in data.truths] == [(pid, 2, "1")]
    assert data.outputs[pid] == {"predictions": [1, 0, 1]}
    assert data.predicted_rows == {"1": 3}


def test_a_row_past_the_logged_request_is_refused_all_or_none(store: SQLStore) -> None:
    name, r = model(), rid()
    write_log(store, log_row(r, T0, [1, 0], model=name))
    items = [
        NewFeedback(name, request_id=r, label="1", row=1),
        NewFeedback(name, request_id=r, label="0", row=2),
    ]
    with pytest.raises(InvalidInputError) as err:
        store.add_feedback_many(items)
    assert err.value.field == "items[1].row" and "2 row(s)" in err.value.message
    assert store.list_feedback(request_id=r) == []  # nothing kept
    with pytest.raises(InvalidInputError) as one:
        store.add_feedback(NewFeedback(name, request_id=r, label="0", row=5))
    assert one.value.field == "row"


def test_feedback_before_its_log_row_joins_at_query_time_then_gets_attributed(
    store: SQLStore,
) -> None:
    name, r = model(), rid()
    early = store.add_feedback(NewFeedback(name, request_id=r, label="yes"))
    assert early.prediction_id is None
    assert window(store, name).truths == []
    (pid,) = write_log(store, log_row(r, T0, ["yes"], model=name))  # the writer flushes later
    data = window(store, name)
    assert [(t.feedback_id, t.prediction_id) for t in data.truths] == [(early.id, pid)]
    assert store.attribute_feedback(since=early.received_at) >= 1
    assert store.list_feedback(request_id=r)[0].prediction_id == pid
    assert store.attribute_feedback(since=early.received_at) == 0  # idempotent
    assert [t.prediction_id for t in window(store, name).truths] == [pid]  # once, not twice


def test_routing_key_and_event_time_pick_the_latest_prediction_before_it(
    store: SQLStore,
) -> None:
    name = model()
    key = f"user-{uuid.uuid4().hex[:6]}"
    ids = write_log(
        store,
        log_row(rid(), T0, [0], model=name, routing_key=key),
        log_row(rid(), T0 + timedelta(minutes=10), [1], model=name, routing_key=key),
        log_row(rid(), T0 + timedelta(minutes=20), [1], model=name, routing_key=key,
                status="error"),
        log_row(rid(), T0 + timedelta(minutes=30), [0], model=name, routing_key=key),
    )  # fmt: skip
    at = T0 + timedelta(minutes=25)  # after the second (ok) and the failed third prediction
    stored = store.add_feedback(NewFeedback(name, routing_key=key, event_at=at, label="1"))
    assert stored.prediction_id == ids[1] and stored.event_at == at
    before_any = T0 - timedelta(minutes=1)
    none = store.add_feedback(NewFeedback(name, routing_key=key, event_at=before_any, label="0"))
    assert none.prediction_id is None
    assert [t.prediction_id for t in window(store, name).truths] == [ids[1]]


def test_routing_key_feedback_before_the_log_row_joins_at_query_time(store: SQLStore) -> None:
    name, key = model(), f"user-{uuid.uuid4().hex[:6]}"
    fb = store.add_feedback(
        NewFeedback(name, routing_key=key, event_at=T0 + timedelta(minutes=5), label="a")
    )
    assert fb.prediction_id is None
    (pid,) = write_log(store, log_row(rid(), T0, ["a"], model=name, routing_key=key))
    assert [t.prediction_id for t in window(store, name).truths] == [pid]
    assert store.attribute_feedback() >= 1
    stored = [f for f in store.list_feedback(limit=100_000) if f.id == fb.id]
    assert stored[0].prediction_id == pid


# ---- the join ---------------------------------------------------------------------------------


def test_the_join_is_by_prediction_time_and_version(store: SQLStore) -> None:
    name = model()
    old, new, other = rid(), rid(), rid()
    write_log(
        store,
        log_row(old, T0 - timedelta(hours=5), [1], model=name),
        log_row(new, T0, [0], model=name),
        log_row(other, T0, [1.5], model=name, version="2"),
        log_row(rid(), T0, [1, 1], model=name),  # predicted, never labelled
    )
    late = T0 + timedelta(days=3)  # labels arrive long after: the prediction time decides
    store.add_feedback_many([
        NewFeedback(name, request_id=old, label="1", received_at=late),
        NewFeedback(name, request_id=new, label="1", received_at=late),
        NewFeedback(name, request_id=other, value=2.0, received_at=late),
    ])  # fmt: skip
    last_hour = window(store, name, since=T0 - timedelta(hours=1), until=T0 + timedelta(hours=1))
    assert sorted(t.label or str(t.value) for t in last_hour.truths) == ["1", "2.0"]
    assert last_hour.predicted_rows == {"1": 3, "2": 1}
    only_v1 = window(store, name, version="1")
    assert sorted(t.ts for t in only_v1.truths) == [T0 - timedelta(hours=5), T0]


def test_success_outcomes_are_not_ground_truth_and_limit_truncates(store: SQLStore) -> None:
    name, r = model(), rid()
    write_log(store, log_row(r, T0, [3.5], model=name))
    store.add_feedback(NewFeedback(name, request_id=r, value=1.0, outcome={"success": True}))
    store.add_feedback(NewFeedback(name, request_id=r, value=3.0))
    store.add_feedback(NewFeedback(name, request_id=r, value=4.0))
    data = window(store, name)
    assert sorted(t.value for t in data.truths if t.value is not None) == [3.0, 4.0]
    assert len(data.truths) == 2  # the success outcome is not ground truth
    assert not data.truncated
    top = window(store, name, limit=1)
    assert top.truncated and [t.value for t in top.truths] == [4.0]  # the newest


# ---- request statistics -----------------------------------------------------------------------


def test_request_stats_count_statuses_and_compute_p95(store: SQLStore) -> None:
    name = model()
    rng = np.random.default_rng(7)
    latencies = rng.gamma(2.0, 10.0, size=300)
    rows = [log_row(rid(), T0 + timedelta(seconds=i), [0, 1], model=name, latency_ms=float(x))
            for i, x in enumerate(latencies)]  # fmt: skip
    rows += [log_row(rid(), T0, [0], model=name, status="error", latency_ms=50.0)
             for _ in range(6)]  # fmt: skip
    rows += [log_row(rid(), T0, [0], model=name, status="invalid", latency_ms=0.1)
             for _ in range(4)]  # fmt: skip
    write_log(store, *rows)
    stats = store.request_stats(name, since=T0, until=T0 + timedelta(hours=1))
    assert stats.requests == 310 and stats.by_status == {"ok": 300, "error": 6, "invalid": 4}
    assert stats.served == 306 and stats.errors == 6 and stats.rows == 600
    assert stats.success_rate == pytest.approx(300 / 306)
    served = np.concatenate([latencies, np.full(6, 50.0)])
    assert stats.latency_mean_ms == pytest.approx(served.mean())
    assert stats.latency_p95_ms == pytest.approx(np.percentile(served, 95))
    assert stats.p95_method in ("percentile_cont", "exact") and stats.p95_rows == 306
    sampled = store.request_stats(name, since=T0, until=T0 + timedelta(hours=1), sample=100)
    if store.engine.dialect.name == "sqlite":
        assert sampled.p95_method == "sample" and sampled.p95_rows == 100
        assert sampled.latency_p95_ms is not None and 20 < sampled.latency_p95_ms < 100
    else:
        assert sampled.latency_p95_ms == pytest.approx(stats.latency_p95_ms)
    empty = store.request_stats(name, since=T0 - timedelta(days=2), until=T0 - timedelta(days=1))
    assert empty.requests == 0 and empty.success_rate is None and empty.latency_p95_ms is None


def test_hourly_stats_bucket_by_utc_hour_with_empty_hours(store: SQLStore) -> None:
    name = model()
    write_log(
        store,
        log_row(rid(), T0 + timedelta(minutes=1), [0], model=name, latency_ms=10.0),
        log_row(rid(), T0 + timedelta(minutes=59), [0], model=name, latency_ms=30.0),
        log_row(rid(), T0 + timedelta(hours=2, minutes=5), [0], model=name, status="timeout"),
        log_row(rid(), T0 + timedelta(hours=2, minutes=6), [0], model=name, status="invalid"),
    )
    hours = store.hourly_stats(name, since=T0, until=T0 + timedelta(hours=2, minutes=30))
    assert [h.start for h in hours] == [T0 + timedelta(hours=i) for i in range(3)]
    assert [(h.requests, h.errors) for h in hours] == [(2, 0), (0, 0), (2, 1)]
    assert hours[0].latency_p95_ms == pytest.approx(np.percentile([10.0, 30.0], 95))
    assert hours[1].latency_p95_ms is None


def test_a_recent_routing_key_outcome_waits_for_younger_predictions(store: SQLStore) -> None:
    name, key = model(), f"user-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    write_log(store, log_row(rid(), now - timedelta(seconds=60), [0], model=name, routing_key=key))
    fb = store.add_feedback(NewFeedback(name, routing_key=key, event_at=now, label="1"))
    assert fb.prediction_id is None  # a younger prediction may still be in the writer's buffer
    (younger,) = write_log(
        store, log_row(rid(), now - timedelta(seconds=10), [1], model=name, routing_key=key)
    )
    data = store.labelled_predictions(name, since=now - timedelta(hours=1),
                                      until=now + timedelta(minutes=1))  # fmt: skip
    assert [t.prediction_id for t in data.truths] == [younger]  # the latest one wins
    store.attribute_feedback(since=now - timedelta(hours=1))
    stored = [f for f in store.list_feedback(limit=100_000) if f.id == fb.id]
    assert stored[0].prediction_id is None  # not stored before it settles

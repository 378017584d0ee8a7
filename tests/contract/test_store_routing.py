"""The ``Store`` contract for what canaries need, on SQLite and the REAL PostgreSQL: routing
JSON replaced by compare-and-set together with weights, and the latency variance of aggregates."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from sibyl.errors import ConflictError, InvalidInputError, NotFoundError
from sibyl.store import PredictionOutcome, SQLStore
from tests.contract.store_support import (
    ab_experiment,
)


def test_update_routing_replaces_the_json_and_the_weights_at_once(store: SQLStore) -> None:
    exp = ab_experiment(store, routing={"canary": {"steps": [10, 100]}})
    routing = {"canary": {"steps": [10, 100]}, "canary_state": {"step": 1, "at": "t"}}
    updated = store.update_routing(
        exp.name, routing, expected=exp.routing, weights={"control": 0, "candidate": 100}
    )
    assert updated.routing == routing == store.get_experiment(exp.id).routing
    assert {v.name: v.weight for v in store.get_experiment(exp.id).variants} == {
        "control": 0.0,
        "candidate": 100.0,
    }
    assert updated.updated_at >= exp.updated_at
    # without ``expected`` it is a plain write; tuples read back as lists
    again = store.update_routing(exp.id, {"steps": (1, 2)})
    assert again.routing == {"steps": [1, 2]}


def test_a_stale_expected_routing_is_a_conflict_and_changes_nothing(store: SQLStore) -> None:
    exp = ab_experiment(store, routing={"v": 1})
    store.update_routing(exp.id, {"v": 2}, expected={"v": 1})
    with pytest.raises(ConflictError, match="read it again"):
        store.update_routing(exp.id, {"v": 3}, expected={"v": 1}, weights={"control": 0})
    after = store.get_experiment(exp.id)
    assert after.routing == {"v": 2}
    assert {v.name: v.weight for v in after.variants} == {"control": 0.5, "candidate": 0.5}


def test_concurrent_compare_and_set_lets_exactly_one_writer_win(store: SQLStore) -> None:
    """Eight writers (think replicas) all read state 0 and try to move it to their own state 1."""
    exp = ab_experiment(store, routing={"step": 0})
    barrier = threading.Barrier(8)
    wins: list[int] = []
    conflicts: list[int] = []

    def writer(i: int) -> None:
        barrier.wait()
        try:
            store.update_routing(exp.id, {"step": 1, "by": i}, expected={"step": 0})
            wins.append(i)
        except ConflictError:
            conflicts.append(i)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(conflicts) == 7
    assert store.get_experiment(exp.id).routing == {"step": 1, "by": wins[0]}


def test_update_routing_errors(store: SQLStore) -> None:
    exp = ab_experiment(store)
    with pytest.raises(NotFoundError):
        store.update_routing("no-such-experiment", {})
    with pytest.raises(NotFoundError, match="no variant 'nope'"):
        store.update_routing(exp.id, {"a": 1}, weights={"nope": 1.0})
    with pytest.raises(InvalidInputError) as bad_weight:
        store.update_routing(exp.id, {"a": 1}, weights={"control": -1.0})
    assert bad_weight.value.field == "variants"
    with pytest.raises(InvalidInputError) as not_json:
        store.update_routing(exp.id, {"a": float("nan")})
    assert not_json.value.field == "routing"
    assert store.get_experiment(exp.id).routing == {}  # nothing was written


def test_aggregates_carry_the_latency_variance(store: SQLStore) -> None:
    exp = ab_experiment(store)
    rng = np.random.default_rng(3)
    lat = {"control": 1e4 + rng.normal(0, 2.0, 400), "candidate": np.array([7.5])}
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    store.record_predictions(
        PredictionOutcome(f"{exp.name}-{v}-{i}", "churn", "7", float(x), exp.id, v,
                          ts=t0 + timedelta(seconds=i))
        for v, xs in lat.items() for i, x in enumerate(xs)
    )  # fmt: skip
    control, candidate = store.aggregates(exp.id)
    # a large mean and a small spread: a naive sum-of-squares formula would lose the variance
    assert control.latency_var_ms2 == pytest.approx(np.var(lat["control"], ddof=1), rel=1e-9)
    assert candidate.latency_var_ms2 == 0.0  # one record
    empty = store.aggregates(ab_experiment(store).id)
    assert [a.latency_var_ms2 for a in empty] == [None, None]
    # without percentiles the database computes the same counts and moments
    fast = store.aggregates(exp.id, percentiles=False)
    for slow_one, fast_one in zip((control, candidate), fast, strict=True):
        assert (fast_one.n, fast_one.errors) == (slow_one.n, slow_one.errors)
        assert fast_one.latency_mean_ms == pytest.approx(slow_one.latency_mean_ms, rel=1e-12)
        assert fast_one.latency_var_ms2 == pytest.approx(slow_one.latency_var_ms2, rel=1e-6)
        assert fast_one.latency_p95_ms is None
    assert [a.n for a in store.aggregates(exp.id, percentiles=False, since=t0 + timedelta(
        seconds=200))] == [200, 0]

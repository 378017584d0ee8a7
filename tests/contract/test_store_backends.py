"""The ``Store`` contract on every backend: SQLite (a file under tmp_path) and the REAL
PostgreSQL on 127.0.0.1:5432 (a fresh database per run, dropped at the end)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from sibyl.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from sibyl.store import (
    ExperimentKind,
    ExperimentStatus,
    NewFeedback,
    PredictionOutcome,
    ShadowRecord,
    ShadowStatus,
    SQLStore,
    Variant,
    get_store,
    head_revision,
)
from sibyl.store._schema import metadata
from tests.contract.store_support import (
    Backend,
    ab_experiment,
    migrate_concurrently,
    new_name,
    postgres_backend,
)
from tests.helpers import free_port

# ---- migrations --------------------------------------------------------------------------


def test_migrate_twice_reaches_head_and_matches_the_models(backend: Backend) -> None:
    with backend.empty() as url:
        s = SQLStore(url)
        try:
            assert s.schema_revision() is None
            s.migrate()
            s.migrate()  # idempotent
            assert s.schema_revision() == head_revision() is not None
            with s.engine.connect() as conn:
                context = MigrationContext.configure(conn, opts={"compare_type": True})
                assert compare_metadata(context, metadata) == []
                assert conn.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1
        finally:
            s.close()


def test_two_processes_migrating_at_once_both_succeed(backend: Backend) -> None:
    with backend.empty() as url:
        results = migrate_concurrently(url, processes=2)
        for result in results:
            assert result.returncode == 0, result.stderr[-2000:]
            assert result.stdout.strip() == head_revision()
        s = SQLStore(url)
        try:
            ab_experiment(s)  # the schema works
            assert s.schema_revision() == head_revision()
        finally:
            s.close()


def test_an_unmigrated_database_says_to_migrate(backend: Backend) -> None:
    with backend.empty() as url:
        s = SQLStore(url)
        try:
            with pytest.raises(BackendUnavailableError, match=r"migrate\(\)"):
                s.list_experiments()
        finally:
            s.close()


# ---- experiments -------------------------------------------------------------------------


def test_create_get_and_list_experiments(store: SQLStore) -> None:
    routing = {"override_header": "X-Sibyl-Variant", "sticky": True}
    metrics = [{"name": "success_rate", "op": ">=", "threshold": 0.95, "weight": 1.0}]
    created = ab_experiment(store, salt="s-1", routing=routing, success_metrics=metrics)
    assert created.status is ExperimentStatus.DRAFT and created.kind is ExperimentKind.AB
    assert [v.name for v in created.variants] == ["control", "candidate"]
    by_id, by_name = store.get_experiment(created.id), store.get_experiment(created.name)
    assert by_id == by_name == created
    assert by_id.routing == routing and by_id.success_metrics == metrics and by_id.salt == "s-1"
    assert by_id.control == Variant(
        "control", "churn", alias="production", weight=0.5, is_control=True
    )
    assert by_id.created_at.tzinfo is not None and by_id.started_at is None
    other = store.create_experiment(
        new_name(), "dkt", ExperimentKind.CANARY, [Variant("base", "dkt", version="1")]
    )
    assert len(other.salt) >= 16 and other.salt != created.salt
    names = [e.name for e in store.list_experiments(model="dkt")]
    assert other.name in names and created.name not in names


def test_status_life_cycle(store: SQLStore) -> None:
    exp = ab_experiment(store)
    running = store.set_status(exp.name, ExperimentStatus.RUNNING)
    assert running.status is ExperimentStatus.RUNNING and running.started_at is not None
    assert exp.name in [e.name for e in store.list_experiments(status=ExperimentStatus.RUNNING)]
    assert store.set_status(exp.id, ExperimentStatus.RUNNING) == running  # no-op
    paused = store.set_status(exp.id, ExperimentStatus.PAUSED)
    resumed = store.set_status(exp.id, ExperimentStatus.RUNNING)
    assert paused.status is ExperimentStatus.PAUSED
    assert resumed.started_at == running.started_at  # the first start is kept
    stopped = store.set_status(exp.id, ExperimentStatus.STOPPED)
    assert stopped.stopped_at is not None and stopped.stopped_at >= stopped.started_at  # type: ignore[operator]
    with pytest.raises(ConflictError, match="stopped"):
        store.set_status(exp.id, ExperimentStatus.RUNNING)
    with pytest.raises(ConflictError):
        store.set_status(ab_experiment(store).id, ExperimentStatus.PAUSED)  # draft → paused


def test_set_weights(store: SQLStore) -> None:
    exp = ab_experiment(store)
    moved = store.set_weights(exp.name, {"candidate": 0.9, "control": 0.1})
    assert {v.name: v.weight for v in moved.variants} == {"control": 0.1, "candidate": 0.9}
    assert store.get_experiment(exp.id) == moved and moved.updated_at >= exp.updated_at
    with pytest.raises(NotFoundError, match="'nope'"):
        store.set_weights(exp.id, {"nope": 1.0})
    with pytest.raises(InvalidInputError):
        store.set_weights(exp.id, {"candidate": -1.0})
    assert store.get_experiment(exp.id) == moved


def test_errors_on_experiments(store: SQLStore) -> None:
    exp = ab_experiment(store)
    with pytest.raises(ConflictError, match=f"'{exp.name}' already exists"):
        ab_experiment(store, name=exp.name)
    with pytest.raises(NotFoundError, match="no-such-experiment"):
        store.get_experiment("no-such-experiment")
    with pytest.raises(NotFoundError):
        store.get_experiment(10**9)
    with pytest.raises(NotFoundError):
        store.set_status(10**9, ExperimentStatus.RUNNING)
    bad = [
        [],
        [Variant("a", "m", version="1"), Variant("a", "m", version="2")],
        [Variant("a", "m", version="1", alias="production")],
        [
            Variant("a", "m", version="1", is_control=True),
            Variant("b", "m", version="2", is_control=True),
        ],
    ]
    for variants in bad:
        with pytest.raises(InvalidInputError):
            store.create_experiment(new_name(), "m", ExperimentKind.AB, variants)
    assert store.list_experiments(model="m") == []


# ---- assignments -------------------------------------------------------------------------


def test_assignment_is_recorded_once(store: SQLStore) -> None:
    exp = ab_experiment(store)
    assert store.get_assignment(exp.id, "user-1") is None
    first = store.record_assignment(exp.id, "user-1", "candidate")
    again = store.record_assignment(exp.id, "user-1", "control")
    assert again == first and first.variant == "candidate"
    assert store.get_assignment(exp.id, "user-1") == first
    with pytest.raises(NotFoundError, match="no variant 'ghost'"):
        store.record_assignment(exp.id, "user-2", "ghost")
    with pytest.raises(NotFoundError):
        store.record_assignment(10**9, "user-2", "control")


def test_bulk_assignments_keep_the_first_writer(store: SQLStore) -> None:
    exp = ab_experiment(store)
    store.record_assignment(exp.id, "user-1", "candidate")
    items = [(exp.id, f"user-{i}", "control") for i in range(1, 300)]
    assert store.record_assignments([*items, (exp.id, "user-2", "candidate")]) == 300
    assert store.get_assignment(exp.id, "user-1").variant == "candidate"  # type: ignore[union-attr]
    assert store.get_assignment(exp.id, "user-2").variant == "control"  # type: ignore[union-attr]
    assert store.get_assignment(exp.id, "user-299").variant == "control"  # type: ignore[union-attr]
    assert store.record_assignments([]) == 0
    with pytest.raises(NotFoundError, match="experiment or variant"):
        store.record_assignments([(exp.id, "user-900", "control"), (exp.id, "user-901", "ghost")])
    assert store.get_assignment(exp.id, "user-900") is None  # all or nothing


def test_concurrent_writers_agree_on_one_assignment_per_key(store: SQLStore) -> None:
    exp = ab_experiment(store)
    keys = [f"k{i}" for i in range(40)]
    results: dict[int, dict[str, str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def writer(worker: int) -> None:
        mine = "candidate" if worker % 2 else "control"
        try:
            barrier.wait()
            results[worker] = {k: store.record_assignment(exp.id, k, mine).variant for k in keys}
        except BaseException as exc:  # reported below, with the worker's traceback
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    stored = {k: store.get_assignment(exp.id, k).variant for k in keys}  # type: ignore[union-attr]
    assert all(seen == stored for seen in results.values())
    agg = {a.variant: a.assigned for a in store.aggregates(exp.id)}
    assert sum(agg.values()) == len(keys)


# ---- feedback and prediction records -----------------------------------------------------


def test_feedback_single_and_bulk(store: SQLStore) -> None:
    exp = ab_experiment(store)
    rid = uuid.uuid4().hex
    one = store.add_feedback(
        NewFeedback(
            "churn", "7", request_id=rid, outcome={"converted": True}, value=1.0, label="yes"
        )
    )
    assert one.id > 0 and one.received_at.tzinfo is not None
    assert store.list_feedback(request_id=rid) == [one]
    batch = [
        NewFeedback(
            "churn",
            routing_key=f"u{i}",
            experiment_id=exp.id,
            variant="candidate",
            value=float(i % 2),
        )
        for i in range(300)
    ]
    assert store.add_feedback_many(batch) == 300
    assert store.add_feedback_many([]) == 0
    stored = store.list_feedback(experiment_id=exp.id, limit=1000)
    assert len(stored) == 300 and sum(f.value or 0 for f in stored) == 150


def test_bulk_writes_are_all_or_nothing(store: SQLStore) -> None:
    exp = ab_experiment(store)
    good = NewFeedback("churn", request_id="r", experiment_id=exp.id, variant="control", value=1)
    with pytest.raises(InvalidInputError):
        store.add_feedback_many([good, NewFeedback("churn", value=1.0)])  # unattributable
    with pytest.raises(NotFoundError, match=str(10**9)):
        store.add_feedback_many(
            [good, NewFeedback("churn", request_id="r", experiment_id=10**9, variant="x", value=1)]
        )
    with pytest.raises(NotFoundError):
        store.record_predictions(
            [
                PredictionOutcome("r1", "churn", "7", 1.0, exp.id, "control"),
                PredictionOutcome("r2", "churn", "7", 1.0, 10**9, "control"),
            ]
        )
    assert store.list_feedback(experiment_id=exp.id) == []
    assert all(a.n == 0 for a in store.aggregates(exp.id))
    with pytest.raises(InvalidInputError):
        store.add_feedback(NewFeedback("churn", request_id="r"))  # nothing to report


def test_too_long_values_are_refused_on_every_backend(store: SQLStore) -> None:
    exp = ab_experiment(store)
    with pytest.raises(InvalidInputError, match=r"feedback\.label"):
        store.add_feedback(NewFeedback("churn", request_id="r", label="x" * 201))
    with pytest.raises(InvalidInputError, match="routing_key"):
        store.record_assignment(exp.id, "k" * 257, "control")
    with pytest.raises(InvalidInputError, match=r"experiments\.name"):
        ab_experiment(store, name="n" * 201)
    with pytest.raises(InvalidInputError, match=r"predictions\.request_id"):
        store.record_predictions([PredictionOutcome("r" * 129, "churn", "7", 1.0)])
    assert store.list_feedback(request_id="r") == []


def test_aggregates_per_variant(store: SQLStore) -> None:
    exp = ab_experiment(store)
    rng = np.random.default_rng(7)
    lat = {"control": rng.gamma(2.0, 10.0, 500), "candidate": rng.gamma(2.0, 6.0, 300)}
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        PredictionOutcome(
            f"{exp.name}-{v}-{i}",
            "churn",
            "7",
            float(x),
            exp.id,
            v,
            error=(i % 10 == 0),
            ts=t0 + timedelta(seconds=i),
        )
        for v, xs in lat.items()
        for i, x in enumerate(xs)
    ]
    rows.append(PredictionOutcome("outside", "churn", "7", 1e6))  # in no experiment
    assert store.record_predictions(rows) == 801
    store.record_assignment(exp.id, "alice", "candidate")
    store.add_feedback_many(
        [
            # explicit attribution
            NewFeedback(
                "churn", routing_key="x", experiment_id=exp.id, variant="control", value=1.0
            ),
            # through the prediction record of the request id
            NewFeedback("churn", request_id=f"{exp.name}-candidate-3", value=0.0, label="churned"),
            NewFeedback("churn", request_id=f"{exp.name}-candidate-4", value=3.0, label="churned"),
            # through the assignment of the routing key (no prediction record for its request)
            NewFeedback("churn", request_id="unseen", routing_key="alice", label="stayed"),
            # not this experiment: another model, a request served outside it, an unknown key
            NewFeedback("other-model", routing_key="alice", value=5.0),
            NewFeedback("churn", request_id="outside", routing_key="alice", value=5.0),
            NewFeedback("churn", routing_key="bob", value=5.0),
        ]
    )
    control, candidate = store.aggregates(exp.name)
    assert (control.variant, control.is_control, control.weight) == ("control", True, 0.5)
    for agg, xs in ((control, lat["control"]), (candidate, lat["candidate"])):
        assert agg.n == len(xs) and agg.errors == len(range(0, len(xs), 10))
        assert agg.latency_mean_ms == pytest.approx(xs.mean())
        p50, p95, p99 = np.percentile(xs, [50, 95, 99])
        assert (agg.latency_p50_ms, agg.latency_p95_ms, agg.latency_p99_ms) == pytest.approx(
            (p50, p95, p99)
        )
    assert (control.feedback_n, control.value_n, control.value_sum) == (1, 1, 1.0)
    assert (candidate.assigned, candidate.feedback_n, candidate.value_n) == (1, 3, 2)
    assert (candidate.value_sum, candidate.value_sumsq) == (3.0, 9.0)
    assert candidate.labels == {"churned": 2, "stayed": 1}
    assert candidate.value_mean == 1.5 and control.error_rate == pytest.approx(0.1)
    late = store.aggregates(exp.id, since=t0 + timedelta(seconds=400))
    assert [a.n for a in late] == [100, 0]
    assert late[1].latency_p50_ms is None and late[1].error_rate is None


def test_aggregates_of_an_experiment_without_records(store: SQLStore) -> None:
    empty = store.aggregates(ab_experiment(store).id)
    assert [(a.variant, a.n, a.assigned, a.feedback_n, a.labels) for a in empty] == [
        ("control", 0, 0, 0, {}),
        ("candidate", 0, 0, 0, {}),
    ]


# ---- shadow records ----------------------------------------------------------------------


def shadow_experiment(store: SQLStore) -> int:
    """A shadow of model ``churn``: primary (production) and candidates ``fast`` (v7) and
    ``slow`` (v8)."""
    exp = store.create_experiment(
        new_name("shadow"),
        "churn",
        ExperimentKind.SHADOW,
        [
            Variant("primary", "churn", alias="production", is_control=True),
            Variant("fast", "churn", version="7"),
            Variant("slow", "churn", version="8"),
        ],
        routing={"share": 0.5},
    )
    return exp.id


def shadow_record(eid: int, variant: str, i: int, **kw: object) -> ShadowRecord:
    fields: dict[str, object] = {
        "experiment_id": eid, "variant": variant, "request_id": f"r{i}", "model": "churn",
        "primary_version": "6", "candidate_model": "churn",
        "candidate_version": "7" if variant == "fast" else "8",
        "status": ShadowStatus.COMPARED, "rows": 3, "agreeing_rows": 3,
        "primary_latency_ms": 10.0, "shadow_latency_ms": 12.0,
    }  # fmt: skip
    return ShadowRecord(**{**fields, **kw})  # type: ignore[arg-type]


def test_shadow_records_aggregate_per_candidate_version(store: SQLStore) -> None:
    eid = shadow_experiment(store)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rng = np.random.default_rng(3)
    primary, shadow = rng.gamma(2.0, 5.0, 200), rng.gamma(2.0, 8.0, 200)
    rows = [
        shadow_record(eid, "fast", i, rows=1 + i % 3, agreeing_rows=(1 + i % 3) * (i % 4 != 0),
                      primary_latency_ms=float(primary[i]), shadow_latency_ms=float(shadow[i]),
                      ts=t0 + timedelta(seconds=i))
        for i in range(200)
    ]  # fmt: skip
    rows += [shadow_record(eid, "fast", 1000 + i, status=ShadowStatus.ERROR, rows=0,
                           agreeing_rows=0, ts=t0) for i in range(5)]  # fmt: skip
    rows += [shadow_record(eid, "fast", 2000 + i, status=ShadowStatus.DROPPED, rows=0,
                           agreeing_rows=0, shadow_latency_ms=None, ts=t0) for i in range(7)]  # fmt: skip
    rows += [shadow_record(eid, "slow", 3000, candidate_version=None, rows=0, agreeing_rows=0,
                           status=ShadowStatus.DROPPED, shadow_latency_ms=None, ts=t0)]  # fmt: skip
    rows += [shadow_record(eid, "slow", 4000, rows=2, agreeing_rows=1, ts=t0)]
    assert store.record_shadow_results(rows) == len(rows) == 214
    fast, slow, slow_unresolved = store.shadow_aggregates(eid)
    n = [1 + i % 3 for i in range(200)]
    a = [ni * (i % 4 != 0) for i, ni in enumerate(n)]
    assert (fast.variant, fast.candidate_model, fast.candidate_version) == ("fast", "churn", "7")
    assert (fast.compared, fast.errors, fast.dropped, fast.mirrored) == (200, 5, 7, 205)
    assert (fast.rows, fast.agreeing_rows, fast.unanimous) == (sum(n), sum(a), 150)
    assert fast.rows_sq == sum(x * x for x in n) and fast.agreeing_sq == sum(x * x for x in a)
    assert fast.cross == sum(x * y for x, y in zip(n, a, strict=True))
    lat = fast.latency
    assert (lat.primary_p50, lat.primary_p95) == pytest.approx(np.percentile(primary, [50, 95]))
    assert (lat.candidate_p50, lat.candidate_p95) == pytest.approx(np.percentile(shadow, [50, 95]))
    assert (lat.difference_p50, lat.difference_p95) == pytest.approx(
        np.percentile(shadow - primary, [50, 95])
    )
    assert (fast.first_at, fast.last_at) == (t0, t0 + timedelta(seconds=199))
    assert (slow.candidate_version, slow.compared, slow.rows, slow.agreeing_rows) == ("8", 1, 2, 1)
    assert (slow_unresolved.candidate_version, slow_unresolved.dropped) == (None, 1)
    assert slow_unresolved.latency.primary_p50 is None
    late = store.shadow_aggregates(eid, since=t0 + timedelta(seconds=150))
    assert [(x.variant, x.compared, x.errors) for x in late] == [("fast", 50, 0)]


def test_shadow_records_are_checked_and_stored_all_or_none(store: SQLStore) -> None:
    eid = shadow_experiment(store)
    assert store.shadow_aggregates(eid) == []
    with pytest.raises(InvalidInputError) as info:
        store.record_shadow_results([shadow_record(eid, "fast", 0, agreeing_rows=4)])
    assert info.value.field == "agreeing_rows"
    with pytest.raises(InvalidInputError):
        store.record_shadow_results([shadow_record(eid, "fast", 0, shadow_latency_ms=-1.0)])
    with pytest.raises(NotFoundError):
        store.record_shadow_results(
            [shadow_record(eid, "fast", 0), shadow_record(eid, "unknown-variant", 1)]
        )
    with pytest.raises(NotFoundError):
        store.record_shadow_results([shadow_record(10**9, "fast", 0)])
    with pytest.raises(InvalidInputError, match=r"shadow_results\.request_id"):
        store.record_shadow_results([shadow_record(eid, "fast", 0, request_id="r" * 129)])
    assert store.shadow_aggregates(eid) == []  # nothing of the failed batches was stored
    with pytest.raises(NotFoundError):
        store.shadow_aggregates("no-such-experiment")
    assert store.record_shadow_results([]) == 0


def test_every_experiment_kind_can_be_stored(store: SQLStore) -> None:
    for kind in ExperimentKind:
        exp = store.create_experiment(
            new_name(kind.value), "churn", kind,
            [Variant("a", "churn", version="1", is_control=True), Variant("b", "churn", version="2")],
        )  # fmt: skip
        assert store.get_experiment(exp.id).kind is kind


# ---- a database that is down, a connection that dies -------------------------------------


def test_a_postgres_that_is_down_says_what_to_check() -> None:
    port = free_port()  # nothing listens there
    s = get_store(f"postgresql://postgres:pw@127.0.0.1:{port}/sibyl")
    for call in (s.migrate, s.list_experiments, lambda: s.get_experiment("x")):
        with pytest.raises(BackendUnavailableError) as caught:
            call()
        message = caught.value.message
        assert f"127.0.0.1:{port}" in message and "PostgreSQL is running" in message
        assert "pw" not in message


def test_an_unusable_sqlite_path_says_what_to_check(tmp_path: Path) -> None:
    s = get_store(f"sqlite:///{tmp_path / 'missing-dir' / 'sibyl.db'}")
    with pytest.raises(BackendUnavailableError, match="directory exists and is writable"):
        s.migrate()


@pytest.mark.postgres
def test_postgres_connections_killed_under_the_pool_are_replaced() -> None:
    import psycopg

    from tests.contract.registry_support import PG_ADMIN_DSN

    with postgres_backend().empty() as url:
        s = SQLStore(url)
        s.migrate()
        exp = ab_experiment(s)
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (s.engine.url.database,),
            ).fetchone()
        assert killed is not None and killed[0] >= 1  # the pool held a connection
        assert s.get_experiment(exp.id) == exp  # pre-ping replaced it
        s.close()

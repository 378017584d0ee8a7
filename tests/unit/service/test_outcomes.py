"""The buffered experiment-record writer: writes in batches, never raises, counts what it drops."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry

from sibyl.service import AssignmentRecord, OutcomeWriter
from sibyl.store import ExperimentKind, PredictionOutcome, Variant, get_store


def _dropped(registry: CollectorRegistry, kind: str) -> float:
    value = registry.get_sample_value("ml_experiment_records_dropped_total", {"kind": kind})
    return value or 0.0


def test_records_reach_the_store_and_assignments_are_written_once(tmp_path: Path) -> None:
    store = get_store(f"sqlite:///{tmp_path / 'ok.db'}")
    store.migrate()
    exp = store.create_experiment(
        "e",
        "m",
        ExperimentKind.AB,
        [Variant("a", "m", alias="production", is_control=True), Variant("b", "m", version="2")],
    )
    writer = OutcomeWriter(store, flush_interval_s=60, flush_rows=1000)
    writer.start()
    for i in range(3):
        writer.submit(AssignmentRecord(exp.id, "user-1", "b"))
        writer.submit(PredictionOutcome(f"r{i}", "m", "2", 1.5, exp.id, "b"))
    writer.close()  # flushes what is buffered
    assert writer.written == 4  # 3 outcomes + 1 assignment (the repeats are skipped)
    agg = {a.variant: a for a in store.aggregates(exp.id)}
    assert (agg["b"].n, agg["b"].assigned, agg["a"].n) == (3, 1, 0)
    assert store.get_assignment(exp.id, "user-1").variant == "b"  # type: ignore[union-attr]


def test_a_store_that_fails_drops_and_counts_without_raising(tmp_path: Path) -> None:
    store = get_store(f"sqlite:///{tmp_path / 'never-migrated.db'}")  # no schema: every write fails
    registry = CollectorRegistry()
    writer = OutcomeWriter(store, flush_interval_s=60, registry=registry)
    writer.submit(PredictionOutcome("r1", "m", "1", 2.0, 1, "a"))
    writer.submit(PredictionOutcome("r2", "m", "1", 2.0, 1, "a"))
    writer.submit(AssignmentRecord(1, "user-1", "a"))
    assert writer.flush() == 0
    assert _dropped(registry, "outcome") == 2 and _dropped(registry, "assignment") == 1


def test_a_full_buffer_drops_new_records(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    writer = OutcomeWriter(
        get_store(f"sqlite:///{tmp_path / 'x.db'}"), max_pending=2, registry=registry
    )
    for i in range(5):
        writer.submit(PredictionOutcome(f"r{i}", "m", "1", 1.0))
    assert _dropped(registry, "outcome") == 3

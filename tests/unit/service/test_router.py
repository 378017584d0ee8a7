"""Experiment routing is a pure function of (snapshot, model, pin, routing key, override)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from sibyl.errors import InvalidInputError
from sibyl.service import build_snapshot, route
from sibyl.store import Experiment, ExperimentKind, ExperimentStatus, Variant

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def experiment(
    status: ExperimentStatus = ExperimentStatus.RUNNING,
    *,
    name: str = "churn-ab",
    model: str = "churn",
    weights: tuple[float, float] = (0.5, 0.5),
    exp_id: int = 1,
    started: datetime | None = NOW,
) -> Experiment:
    variants = (
        Variant("control", model, alias="production", weight=weights[0], is_control=True),
        Variant("candidate", "churn-v2", version="7", weight=weights[1]),
    )
    return Experiment(
        exp_id, name, model, ExperimentKind.AB, status, "salt-1", {}, [], variants, NOW, NOW,
        started_at=started,
    )  # fmt: skip


SNAPSHOT = build_snapshot([experiment()])


def test_a_routing_key_always_gets_the_same_variant() -> None:
    assert len({route(SNAPSHOT, "churn", None, "user-0") for _ in range(5)}) == 1
    for i in range(200):
        first = route(SNAPSHOT, "churn", None, f"user-{i}")
        assert first is not None
        assert route(build_snapshot([experiment()]), "churn", None, f"user-{i}") == first


def test_keys_split_by_weight_and_variants_answer_with_their_model_and_ref() -> None:
    snap = build_snapshot([experiment(weights=(0.8, 0.2))])
    counts = Counter()
    for i in range(5000):
        r = route(snap, "churn", None, f"k{i}")
        assert r is not None and r.experiment == "churn-ab" and r.experiment_id == 1
        counts[r.variant] += 1
        if r.variant == "control":
            assert (r.model, r.ref) == ("churn", "production")
        else:
            assert (r.model, r.ref) == ("churn-v2", "7")
    assert abs(counts["control"] / 5000 - 0.8) < 0.03


def test_override_wins_and_is_marked_even_against_the_key() -> None:
    natural = route(SNAPSHOT, "churn", None, "user-1")
    assert natural is not None and not natural.overridden
    other = "candidate" if natural.variant == "control" else "control"
    forced = route(SNAPSHOT, "churn", None, "user-1", other)
    assert forced is not None and forced.variant == other and forced.overridden


def test_unknown_override_is_a_400_listing_the_variants() -> None:
    with pytest.raises(InvalidInputError) as info:
        route(SNAPSHOT, "churn", None, "user-1", "nope")
    assert info.value.field == "X-Variant"
    assert "'control'" in info.value.message and "'candidate'" in info.value.message


def test_no_key_draws_at_random_by_weight() -> None:
    rng = random.Random(7)
    counts = Counter(route(SNAPSHOT, "churn", None, None, rng=rng).variant for _ in range(2000))  # type: ignore[union-attr]
    assert set(counts) == {"control", "candidate"}
    assert abs(counts["control"] / 2000 - 0.5) < 0.05


def test_pinned_version_or_alias_bypasses_the_experiment() -> None:
    assert route(SNAPSHOT, "churn", "3", "user-1") is None
    assert route(SNAPSHOT, "churn", "staging", "user-1", "candidate") is None


def test_other_models_are_not_routed() -> None:
    assert route(SNAPSHOT, "fraud", None, "user-1") is None


@pytest.mark.parametrize(
    "status", [ExperimentStatus.PAUSED, ExperimentStatus.DRAFT, ExperimentStatus.STOPPED]
)
def test_experiments_not_running_do_not_route(status: ExperimentStatus) -> None:
    snap = build_snapshot([experiment(status)])
    assert snap == {}
    assert route(snap, "churn", None, "user-1") is None


def test_earliest_started_running_experiment_owns_the_model() -> None:
    early = experiment(name="early", exp_id=2, started=NOW)
    late = experiment(name="late", exp_id=1, started=NOW.replace(year=2027))
    assert build_snapshot([late, early])["churn"].name == "early"


def test_a_changed_salt_reshuffles_keys() -> None:
    resalted = build_snapshot([replace(experiment(), salt="salt-2")])
    moved = sum(
        route(SNAPSHOT, "churn", None, f"u{i}") != route(resalted, "churn", None, f"u{i}")  # type: ignore[operator]
        for i in range(400)
    )
    assert 100 < moved < 300

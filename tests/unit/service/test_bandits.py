"""Bandit routing: posteriors rebuilt from the store's aggregates (so replicas sharing a database
agree), the floor share of every arm, Thompson sampling concentrating on the better arm, and the
prediction path routing a bandit (override wins, outcomes recorded, results report the arms)."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from sibyl.errors import InvalidInputError
from sibyl.monitoring import Metrics
from sibyl.routing import ArmStats
from sibyl.service import (
    ExperimentService,
    ModelManager,
    NewExperiment,
    OutcomeWriter,
    PredictionService,
    RunningExperiment,
)
from sibyl.service._bandits import BanditBook, BanditConfig, posterior, wire_bandits
from sibyl.store import (
    ExperimentKind,
    ExperimentStatus,
    NewFeedback,
    PredictionOutcome,
    Store,
    Variant,
    VariantAggregate,
    get_store,
)
from tests.contract.store_support import postgres_backend, sqlite_backend
from tests.toys import EchoPredictor
from tests.unit.service.conftest import Env, request, run, toy
from tests.unit.service.test_router import experiment

ARMS = [
    Variant("a", "churn", version="1", is_control=True),
    Variant("b", "churn", version="2"),
]


def agg(name: str, value_n: int, value_sum: float) -> VariantAggregate:
    return VariantAggregate(
        name, False, 1.0, feedback_n=value_n, value_n=value_n, value_sum=value_sum
    )


def new_store(tmp: Path, name: str = "bandits.db") -> Store:
    store = get_store(f"sqlite:///{tmp / name}")
    store.migrate()
    return store


# ---- config and posteriors ----------------------------------------------------------------


def test_config_defaults_and_every_bad_setting_names_its_field() -> None:
    assert BanditConfig.parse({}, 2) == BanditConfig(0.05, "success", (1.0, 1.0))
    ok = BanditConfig.parse({"floor": 0.25, "reward": "value", "prior": {"alpha": 2, "beta": 3}}, 4)
    assert ok.to_json() == {"floor": 0.25, "reward": "value", "prior": [2.0, 3.0]}
    bad = [
        ({"floor": 0.6}, "config.floor"),  # > 1/2
        ({"floor": -0.1}, "config.floor"),
        ({"floor": "x"}, "config.floor"),
        ({"reward": "revenue"}, "config.reward"),
        ({"prior": [1, 0]}, "config.prior"),
        ({"prior": 3}, "config.prior"),
        ({"share": 0.1}, "config.share"),
    ]
    for raw, field in bad:
        with pytest.raises(InvalidInputError) as info:
            BanditConfig.parse(raw, 2)
        assert info.value.field == field, raw


def test_posterior_counts_rewards_per_arm_from_the_aggregates() -> None:
    config = BanditConfig(0.1, "success", (2.0, 3.0))
    bandit = posterior(["a", "b", "c"], config, [agg("a", 10, 7.0), agg("b", 4, 1.5)])
    assert bandit.arms == (ArmStats("a", 7, 3), ArmStats("b", 1.5, 2.5), ArmStats("c", 0, 0))
    assert (bandit.floor, bandit.prior_alpha, bandit.prior_beta) == (0.1, 2.0, 3.0)
    # values outside [0, 1] are clamped per arm rather than corrupting the posterior
    clamped = posterior(["a"], config, [agg("a", 2, 5.0)])
    assert clamped.arms == (ArmStats("a", 2, 0),)


# ---- routing: floor and concentration -----------------------------------------------------


def running(exp_id: int = 1, floor: float = 0.1) -> RunningExperiment:
    exp = replace(
        experiment(),
        id=exp_id,
        kind=ExperimentKind.BANDIT,
        variants=tuple(ARMS),
        routing={"floor": floor},
    )
    return RunningExperiment.of(exp)


def test_the_floor_keeps_a_share_for_an_arm_the_data_condemns(tmp_path: Path) -> None:
    book = BanditBook(new_store(tmp_path), rng=random.Random(7))
    exp = running(floor=0.1)
    book.bandits = {
        exp.id: posterior(
            ["a", "b"], BanditConfig(0.1), [agg("a", 1000, 0.0), agg("b", 1000, 1000.0)]
        )
    }
    n = 40_000
    routes = Counter(book.route(exp).variant for _ in range(n))
    # with probability 2 · floor an arm is drawn uniformly: a gets the floor, b the rest
    assert abs(routes["a"] / n - 0.1) < 0.006, routes
    route = book.route(exp)
    assert (route.experiment, route.model) == ("churn-ab", "churn")
    assert route.ref == ("1" if route.variant == "a" else "2")


def test_thompson_sampling_shifts_traffic_to_the_better_arm() -> None:
    rng = random.Random(3)
    truth = {"a": 0.3, "b": 0.7}
    counts = {name: [0, 0] for name in truth}  # rewards, trials
    config = BanditConfig(0.05)
    shares = []
    for _ in range(8):  # 8 refreshes of 250 requests each
        bandit = posterior(
            list(truth), config, [agg(k, n, float(s)) for k, (s, n) in counts.items()]
        )
        chosen = Counter(bandit.choose(rng) for _ in range(250))
        for arm, pulls in chosen.items():
            wins = sum(rng.random() < truth[arm] for _ in range(pulls))
            counts[arm][0] += wins
            counts[arm][1] += pulls
        shares.append(chosen["b"] / 250)
    assert shares[0] < 0.8  # it starts undecided
    assert min(shares[-3:]) > 0.85, shares  # and ends on b (at most 1 - floor = 0.95 expected)


# ---- the book over a real store -----------------------------------------------------------


def seed_feedback(store: Store, exp_id: int, arm: str, successes: int, failures: int) -> None:
    outcomes, feedback = [], []
    for i in range(successes + failures):
        rid = f"{arm}-{i}"
        outcomes.append(PredictionOutcome(rid, "churn", "1", 1.0, exp_id, arm))
        feedback.append(
            NewFeedback(
                "churn",
                request_id=rid,
                outcome={"success": i < successes},
                value=float(i < successes),
            )
        )
    store.record_predictions(outcomes)
    store.add_feedback_many(feedback)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_replicas_sharing_a_store_build_the_same_posteriors(kind: str, tmp_path: Path) -> None:
    backend = sqlite_backend(tmp_path) if kind == "sqlite" else postgres_backend()
    with backend.empty() as url:
        replicas = [get_store(url), get_store(url)]  # two servers sharing one database
        try:
            check_replicas(*replicas)
        finally:
            for store in replicas:
                store.close()


def check_replicas(store: Store, other: Store) -> None:
    store.migrate()
    exp = store.create_experiment(
        "bandit", "churn", ExperimentKind.BANDIT, ARMS, routing={"floor": 0.05, "prior": [1, 1]}
    )
    exp = store.set_status("bandit", ExperimentStatus.RUNNING)
    seed_feedback(store, exp.id, "a", 3, 7)
    seed_feedback(store, exp.id, "b", 8, 2)

    async def go() -> None:
        books = [BanditBook(store), BanditBook(other)]
        for book in books:
            book.on_refresh([exp])
            # the prior answers at once; the store's counts arrive with the update
            assert book.bandits[exp.id].arms == (ArmStats("a"), ArmStats("b"))
            await book.wait_updated()
        first, second = (b.bandits[exp.id] for b in books)
        assert first == second
        assert first.arms == (ArmStats("a", 3, 7), ArmStats("b", 8, 2))
        books[0].on_refresh([])  # stopped: forgotten at once
        assert books[0].bandits == {}
        for book in books:
            await book.close()

    run(go)


# ---- the prediction path ------------------------------------------------------------------


def bandit_service(env: Env) -> tuple[PredictionService, ExperimentService, BanditBook]:
    settings = env.settings()
    manager = ModelManager(env.registry, settings, Metrics())
    manager.add_loaded(toy("churn", "1", EchoPredictor()))
    manager.add_loaded(toy("churn", "2", EchoPredictor()), production=False)
    store = new_store(env.tmp)
    exps = ExperimentService(store, OutcomeWriter(store, flush_interval_s=60), refresh_interval_s=0)
    service = PredictionService(manager, manager.metrics, settings, exps)
    return service, exps, wire_bandits(exps, service)


def test_a_bandit_routes_unpinned_traffic_and_reports_its_arms(env: Env) -> None:
    async def go() -> None:
        service, exps, book = bandit_service(env)
        await exps.start()
        with pytest.raises(InvalidInputError) as info:
            await exps.create(
                NewExperiment(
                    "bad", "churn", ARMS, kind=ExperimentKind.BANDIT, config={"floor": 0.9}
                )
            )
        assert info.value.field == "config.floor"
        exp = await exps.create(
            NewExperiment(
                "bandit", "churn", ARMS, kind=ExperimentKind.BANDIT, config={"floor": 0.2}
            )
        )
        assert exp.routing == {"floor": 0.2, "reward": "success", "prior": [1.0, 1.0]}
        await exps.start_experiment("bandit")
        await book.wait_updated()
        seed_feedback(exps.store, exp.id, "a", 0, 200)
        seed_feedback(exps.store, exp.id, "b", 200, 0)
        await exps.refresh()
        await book.wait_updated()

        got = Counter()
        for _ in range(400):
            result = await service.predict(request("churn", 1.0))
            assert result.experiment == "bandit"
            assert result.version == ("1" if result.variant == "a" else "2")
            got[result.variant] += 1
        assert 0.1 <= got["a"] / 400 < 0.35, got  # the floor (0.2) holds, b takes the rest
        forced = await service.predict(request("churn", 1.0, variant="a"))
        assert (forced.variant, forced.version) == ("a", "1")  # the QA override still wins
        pinned = await service.predict(request("churn", 1.0, ref="2"))
        assert pinned.experiment is None

        exps.writer.flush()
        out = await exps.results("bandit")
        arms = {a["name"]: a for a in out["bandit"]["arms"]}
        assert (arms["a"]["successes"], arms["a"]["failures"]) == (0, 200)
        assert arms["b"]["posterior_mean"] == pytest.approx(201 / 202)
        assert arms["b"]["p_best"] == 1.0 and arms["a"]["p_best"] == 0.0
        assert arms["a"]["traffic_share"] == pytest.approx(0.2)
        assert arms["b"]["traffic_share"] == pytest.approx(0.8)
        served = {v["name"]: v["n"] for v in out["variants"]}
        assert served["a"] + served["b"] == 800  # 400 seeded outcomes + 400 routed predictions
        await book.close()
        await exps.stop()
        await service.manager.stop()

    run(go)

"""CanaryController over a real SQLite store, with a fake clock and a recording promoter:
a healthy candidate walks 10 → 50 → 100 % and is promoted, a failing or slow one is rolled back
in the first step, the state survives a restart, replicas never take a step twice, a registry
failure is retried, a canary can be aborted by hand."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from sibyl.errors import (
    BackendUnavailableError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PromotionRefusedError,
)
from sibyl.service import (
    CanaryController,
    ExperimentService,
    NewCanary,
    NewExperiment,
    OutcomeWriter,
)
from sibyl.service._canary_config import validate_canary
from sibyl.store import (
    Experiment,
    ExperimentKind,
    ExperimentStatus,
    PredictionOutcome,
    SQLStore,
    Variant,
)
from tests.unit.service.conftest import run

CONFIG = {"steps": [10, 50, 100], "dwell": "60s", "max_wait": "10m", "min_requests": 100,
          "error_rate_margin": 0.02, "latency_margin": 0.2}  # fmt: skip
TICK_S = 20
PER_TICK = 1500  # requests a tick, split by the current weights


class Clock:
    """A fake clock the store and the controller share."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Promoter:
    """Stands for the registry: who is in production; fails ``failures`` promotions first."""

    production: dict[str, str] = field(default_factory=lambda: {"churn": "1"})
    promoted: list[tuple[str, str]] = field(default_factory=list)
    failures: int = 0
    refuse: str | None = None

    async def production_version(self, model: str) -> str:
        if model not in self.production:
            raise NotFoundError(f"Model '{model}' has no production version")
        return self.production[model]

    async def prepare(self, model: str, version: str) -> None:
        if version not in {"1", "2", "3"}:
            raise NotFoundError(f"Model '{model}' has no version {version}")

    async def promote(self, model: str, version: str) -> None:
        if self.refuse:
            raise PromotionRefusedError(self.refuse)
        if self.failures:
            self.failures -= 1
            raise BackendUnavailableError("MLflow registry is unreachable")
        self.promoted.append((model, version))
        self.production[model] = version


@dataclass
class Rig:
    clock: Clock
    store: SQLStore
    promoter: Promoter
    tmp: Path

    def controller(self, store: SQLStore | None = None) -> CanaryController:
        """A controller (a replica) of its own: own service, own metrics."""
        store = store or self.store
        exps = ExperimentService(store, OutcomeWriter(store, flush_interval_s=60),
                                 refresh_interval_s=0)  # fmt: skip
        exps.register_kind(ExperimentKind.CANARY, validate_canary)
        return CanaryController(exps, self.promoter, interval_s=0, clock=self.clock,
                                registry=CollectorRegistry())  # fmt: skip

    def traffic(self, name: str, rng: np.random.Generator, *, errors: float = 0.01,
                latency: float = 50.0) -> None:  # fmt: skip
        """One tick's requests, split by the current weights; the candidate's error rate and
        mean latency as given, the baseline's 1 % and 50 ms."""
        exp = self.store.get_experiment(name)
        rows = []
        for v in exp.variants:
            k = int(PER_TICK * v.weight / 100)
            err, mean = (0.01, 50.0) if v.is_control else (errors, latency)
            lat, failed = rng.normal(mean, 10.0, k), rng.random(k) < err
            rows += [PredictionOutcome(uuid.uuid4().hex, "churn", v.version or "", float(x),
                                       exp.id, v.name, bool(e), ts=self.clock())
                     for x, e in zip(lat, failed, strict=True)]  # fmt: skip
        self.store.record_predictions(rows)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = Clock()
    store = SQLStore(f"sqlite:///{tmp_path / 'sibyl.db'}", clock=clock)
    store.migrate()
    yield Rig(clock, store, Promoter(), tmp_path)
    store.close()


def start(ctl: CanaryController, version: str = "2", **config: Any) -> str:
    name = f"churn-canary-{uuid.uuid4().hex[:6]}"
    state = run(lambda: ctl.create(NewCanary("churn", version, {**CONFIG, **config}, name)))
    assert (state["phase"], state["step"], state["weights"]) == (
        "running",
        0,
        {"baseline": 90.0, "candidate": 10.0},
    )
    return name


def drive(rig: Rig, ctl: CanaryController, name: str, ticks: int, **traffic: Any) -> list[str]:
    """Traffic, then a tick, ``ticks`` times or until the canary is over; what each tick did."""
    rng = np.random.default_rng(11)
    done = []
    for _ in range(ticks):
        rig.traffic(name, rng, **traffic)
        rig.clock.advance(TICK_S)
        done.append(run(ctl.tick)[name])
        if rig.store.get_experiment(name).status is ExperimentStatus.STOPPED:
            break
    return done


def metric(ctl: CanaryController, name: str, **labels: str) -> float | None:
    return ctl.metrics.registry.get_sample_value(name, labels)


def test_a_healthy_candidate_walks_every_step_and_is_promoted(rig: Rig) -> None:
    ctl = rig.controller()
    name = start(ctl)
    done = drive(rig, ctl, name, ticks=30)
    assert done.count("advance") == 2 and done[-1] == "promote"
    assert rig.promoter.promoted == [("churn", "2")]
    exp = rig.store.get_experiment(name)
    assert exp.status is ExperimentStatus.STOPPED
    assert {v.name: v.weight for v in exp.variants} == {"baseline": 0.0, "candidate": 100.0}
    status = run(lambda: ctl.status(name))
    assert status["phase"] == "promoted" and status["verdict"] is None
    history = status["history"]
    assert [(h["percent"], h["action"]) for h in history] == [
        (10.0, "advance"),
        (50.0, "advance"),
        (100.0, "promote"),
    ]
    started = datetime.fromisoformat(status["started_at"])
    at = [started] + [datetime.fromisoformat(h["at"]) for h in history]
    assert all((b - a).total_seconds() >= 60 for a, b in itertools.pairwise(at))  # dwell
    for h in history:  # every decision keeps the numbers it rested on
        checks = {c["name"]: c for c in h["verdict"]["checks"]}
        assert checks["error_rate"]["action"] == checks["latency_ms"]["action"] == "promote"
        assert checks["latency_ms"]["interval"][1] < checks["latency_ms"]["margin"]
    assert metric(ctl, "ml_canary_step", model="churn", experiment=name) == 100.0
    assert metric(ctl, "ml_canary_decisions_total", model="churn", action="advance") == 2
    assert metric(ctl, "ml_canary_decisions_total", model="churn", action="promote") == 1


@pytest.mark.parametrize(
    ("traffic", "check"),
    [({"errors": 0.5}, "error_rate"), ({"latency": 70.0}, "latency_ms")],
    ids=["failing", "slow"],
)
def test_a_bad_candidate_is_rolled_back_in_the_first_step(
    rig: Rig, traffic: dict[str, float], check: str
) -> None:
    ctl = rig.controller()
    name = start(ctl)
    done = drive(rig, ctl, name, ticks=10, **traffic)
    assert done == ["rollback"]  # at the first look: long before the 60 s dwell is over
    status = run(lambda: ctl.status(name))
    assert (status["phase"], status["status"], status["step"]) == ("rolled_back", "stopped", 0)
    assert status["weights"] == {"baseline": 100.0, "candidate": 0.0}
    assert status["reason"].startswith(f"{check} is worse than the baseline")
    [decision] = status["history"]
    assert decision["action"] == "rollback" and decision["percent"] == 10.0
    assert rig.promoter.promoted == [] and rig.promoter.production["churn"] == "1"
    assert metric(ctl, "ml_canary_step", model="churn", experiment=name) == 0.0
    assert metric(ctl, "ml_canary_decisions_total", model="churn", action="rollback") == 1


def test_the_state_survives_a_restart_of_the_controller(rig: Rig) -> None:
    first = rig.controller()
    name = start(first)
    rng = np.random.default_rng(5)
    while run(lambda: first.status(name))["step"] == 0:  # walk into the second step
        rig.traffic(name, rng)
        rig.clock.advance(TICK_S)
        assert run(first.tick)[name] in ("wait", "advance")
    before = run(lambda: first.status(name))
    restarted = rig.controller()  # a new process: nothing in memory
    after = run(lambda: restarted.status(name))
    assert (after["step"], after["history"], after["step_started_at"]) == (
        1,
        before["history"],
        before["step_started_at"],
    )
    assert after["weights"] == {"baseline": 50.0, "candidate": 50.0}
    rest = drive(rig, restarted, name, ticks=30)
    assert rest.count("advance") == 1 and rest[-1] == "promote"
    final = run(lambda: restarted.status(name))
    assert [h["action"] for h in final["history"]] == ["advance", "advance", "promote"]


class StaleListing(SQLStore):
    """A replica that listed the running experiments just before another replica wrote."""

    stale: list[Experiment] | None = None

    def list_experiments(self, **kwargs: Any) -> list[Experiment]:
        if self.stale is None:
            self.stale = super().list_experiments(**kwargs)
        return self.stale


def test_two_replicas_never_take_a_step_twice(rig: Rig) -> None:
    a = rig.controller()
    name = start(a)
    rng = np.random.default_rng(3)
    for _ in range(3):  # the first step has passed its dwell with good numbers
        rig.traffic(name, rng)
        rig.clock.advance(TICK_S)
    other = StaleListing(str(rig.store.engine.url), clock=rig.clock)
    b = rig.controller(other)
    other.list_experiments(status=ExperimentStatus.RUNNING)  # B reads …
    assert run(a.tick) == {name: "advance"}  # … A moves on …
    assert run(b.tick) == {name: "conflict"}  # … B's write, from the old state, is refused
    status = run(lambda: a.status(name))
    assert status["step"] == 1 and [h["action"] for h in status["history"]] == ["advance"]
    assert metric(b, "ml_canary_decisions_total", model="churn", action="advance") is None
    other.close()


def test_a_failed_promotion_is_retried_at_the_next_tick(rig: Rig) -> None:
    ctl = rig.controller()
    name = start(ctl)
    rig.promoter.failures = 1
    done = drive(rig, ctl, name, ticks=30)
    assert done.count("failed") == 1 and done[-1] == "promote"
    assert done.index("failed") == len(done) - 2  # the very next tick finished the promotion
    assert rig.promoter.promoted == [("churn", "2")]
    status = run(lambda: ctl.status(name))
    assert status["phase"] == "promoted" and status["status"] == "stopped"
    assert [h["action"] for h in status["history"]] == ["advance", "advance", "promote"]


def test_a_refused_promotion_rolls_the_canary_back(rig: Rig) -> None:
    ctl = rig.controller()
    name = start(ctl)
    rig.promoter.refuse = "no passing shadow period for version 2"
    done = drive(rig, ctl, name, ticks=30)
    assert done.count("advance") == 2 and done[-1] == "rollback"
    status = run(lambda: ctl.status(name))
    assert (status["phase"], status["status"]) == ("rolled_back", "stopped")
    assert status["reason"] == "the promotion was refused: no passing shadow period for version 2"
    assert status["weights"] == {"baseline": 100.0, "candidate": 0.0}
    assert [h["action"] for h in status["history"]] == ["advance", "advance", "promote", "rollback"]
    assert rig.promoter.production["churn"] == "1"


def test_without_a_verdict_the_step_times_out_to_a_rollback(rig: Rig) -> None:
    ctl = rig.controller()
    name = start(ctl, dwell="60s", max_wait="60s")
    for _ in range(5):  # no traffic at all
        rig.clock.advance(TICK_S)
        assert run(ctl.tick)[name] == "wait"
    rig.clock.advance(TICK_S)  # 120 s: dwell + max_wait
    assert run(ctl.tick)[name] == "rollback"
    status = run(lambda: ctl.status(name))
    assert status["phase"] == "rolled_back" and "on_timeout is rollback" in status["reason"]


def test_a_canary_aborted_by_hand(rig: Rig) -> None:
    ctl = rig.controller()
    name = start(ctl)
    status = run(lambda: ctl.rollback(name, "pager went off"))
    assert (status["phase"], status["status"], status["reason"]) == (
        "rolled_back",
        "stopped",
        "pager went off",
    )
    assert status["weights"] == {"baseline": 100.0, "candidate": 0.0}
    assert status["history"][0]["verdict"] is None
    with pytest.raises(ConflictError, match="over already"):
        run(lambda: ctl.rollback(name))
    assert run(ctl.tick) == {}  # nothing runs any more


def test_creating_a_canary_checks_its_input(rig: Rig) -> None:
    ctl = rig.controller()
    with pytest.raises(InvalidInputError) as same:
        run(lambda: ctl.create(NewCanary("churn", "1", CONFIG)))
    assert same.value.field == "version"
    with pytest.raises(InvalidInputError) as bad:
        run(lambda: ctl.create(NewCanary("churn", "2", {"steps": [10, 60]})))
    assert bad.value.field == "steps"
    with pytest.raises(NotFoundError):
        run(lambda: ctl.create(NewCanary("churn", "9", CONFIG)))
    with pytest.raises(NotFoundError):
        run(lambda: ctl.create(NewCanary("no-model", "2", CONFIG)))
    first = run(lambda: ctl.create(NewCanary("churn", "2", CONFIG)))
    assert first["name"] == "churn-canary-v2"
    with pytest.raises(ConflictError, match="already splits"):
        run(lambda: ctl.create(NewCanary("churn", "3", CONFIG)))
    run(lambda: ctl.rollback(first["name"]))
    again = run(lambda: ctl.create(NewCanary("churn", "2", CONFIG)))
    assert again["name"] == "churn-canary-v2-2"
    ab = NewExperiment("churn-ab", "churn", [
        Variant("control", "churn", alias="production", is_control=True),
        Variant("b", "churn", "2"),
    ])  # fmt: skip
    run(lambda: ctl.experiments.create(ab))
    with pytest.raises(NotFoundError, match="not a canary"):
        run(lambda: ctl.status("churn-ab"))

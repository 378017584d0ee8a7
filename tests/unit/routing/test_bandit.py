"""Thompson sampling: learns the better arm from feedback, keeps each arm's floor share."""

from __future__ import annotations

import json
import random
from collections import Counter

import numpy as np
import pytest

from sibyl.errors import InvalidInputError
from sibyl.routing import ArmStats, ThompsonBandit


@pytest.mark.parametrize("seed", range(5))
def test_the_better_arm_gets_the_majority_after_enough_feedback(seed: int) -> None:
    rng = random.Random(seed)
    truth = {"a": 0.1, "b": 0.2}
    bandit = ThompsonBandit.create(["a", "b"], floor=0.05)
    late: Counter[str] = Counter()
    for i in range(3000):
        arm = bandit.choose(rng)
        ok = rng.random() < truth[arm]
        bandit = bandit.with_feedback(arm, successes=int(ok), failures=int(not ok))
        if i >= 2000:
            late[arm] += 1
    assert late["b"] > 800  # ~95 % expected; a coin would give 500
    assert late["a"] >= 20  # the floor keeps exploring (≥ 5 % expected)
    assert bandit.probabilities(20_000, np.random.default_rng(seed))["b"] > 0.95


@pytest.mark.parametrize(("floor", "low", "high"), [(0.1, 0.09, 0.11), (0.0, 0.0, 0.0)])
def test_floor_share_is_respected_even_when_one_arm_is_clearly_best(
    floor: float, low: float, high: float
) -> None:
    bandit = ThompsonBandit(
        (ArmStats("a", successes=0, failures=1000), ArmStats("b", successes=1000, failures=0)),
        floor=floor,
    )
    rng = random.Random(1)
    share_a = sum(bandit.choose(rng) == "a" for _ in range(40_000)) / 40_000
    assert low <= share_a <= high


def test_floor_applies_to_every_arm_of_three() -> None:
    bandit = ThompsonBandit.create(["a", "b", "c"], floor=0.2)
    bandit = bandit.with_feedback("c", successes=5000).with_feedback("a", failures=5000)
    bandit = bandit.with_feedback("b", failures=5000)
    rng = random.Random(2)
    counts = Counter(bandit.choose(rng) for _ in range(40_000))
    assert all(counts[arm] / 40_000 >= 0.19 for arm in "ab")
    assert counts["c"] / 40_000 == pytest.approx(0.6, abs=0.015)


def test_probabilities_estimate_the_chance_of_being_best() -> None:
    even = ThompsonBandit.create(["a", "b"])
    p = even.probabilities(40_000, np.random.default_rng(0))
    assert sum(p.values()) == pytest.approx(1.0)
    assert p["a"] == pytest.approx(0.5, abs=0.02)
    skewed = even.with_feedback("a", successes=30, failures=70).with_feedback(
        "b", successes=40, failures=60
    )
    # P(B > A) for Beta(41, 61) vs Beta(31, 71), by numerical integration on a fine grid
    x = np.linspace(0, 1, 20_001)
    from math import lgamma

    def pdf(a: float, b: float) -> np.ndarray:
        with np.errstate(divide="ignore"):
            logp = (a - 1) * np.log(x) + (b - 1) * np.log1p(-x)
        return np.exp(logp - (lgamma(a) + lgamma(b) - lgamma(a + b)))

    cdf_a = np.cumsum(pdf(31, 71)) * (x[1] - x[0])
    exact = float(np.sum(pdf(41, 61) * cdf_a) * (x[1] - x[0]))
    estimate = skewed.probabilities(40_000, np.random.default_rng(1))["b"]
    assert estimate == pytest.approx(exact, abs=0.01)
    assert 0.85 < exact < 0.95


def test_traffic_shares_match_what_choose_does() -> None:
    bandit = (
        ThompsonBandit.create(["a", "b"], floor=0.1)
        .with_feedback("b", successes=12, failures=20)
        .with_feedback("a", successes=10, failures=20)
    )
    expected = bandit.traffic_shares(40_000, np.random.default_rng(3))
    rng = random.Random(3)
    counts = Counter(bandit.choose(rng) for _ in range(40_000))
    for arm, share in expected.items():
        assert counts[arm] / 40_000 == pytest.approx(share, abs=0.015)


def test_state_is_an_immutable_value_that_round_trips_through_json() -> None:
    start = ThompsonBandit.create(["control", "v2"], floor=0.05, prior=(2.0, 3.0))
    later = start.with_feedback("v2", successes=3, failures=1)
    assert start.arms[1] == ArmStats("v2") and later.arms[1] == ArmStats("v2", 3, 1)
    restored = ThompsonBandit.from_dict(json.loads(json.dumps(later.to_dict())))
    assert restored == later
    assert restored.choose(random.Random(5)) == later.choose(random.Random(5))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ThompsonBandit.create([]), "no arms"),
        (lambda: ThompsonBandit.create(["a", "a"]), "repeat"),
        (lambda: ThompsonBandit.create(["a", "b", "c"], floor=0.4), "floor"),
        (lambda: ThompsonBandit.create(["a"], prior=(0.0, 1.0)), "priors"),
        (lambda: ThompsonBandit.create(["a"]).with_feedback("zz", successes=1), "no arm 'zz'"),
        (lambda: ThompsonBandit.create(["a"]).with_feedback("a", failures=-1), ">= 0"),
    ],
)
def test_invalid_bandits_and_feedback_are_refused(make: object, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        make()  # type: ignore[operator]

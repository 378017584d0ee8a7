"""Thompson sampling over variants (Beta-Bernoulli), with a floor share of traffic per arm.

Each arm's success probability has a ``Beta(prior_alpha + successes, prior_beta + failures)``
posterior, fed by feedback. To route a request: with probability ``floor · k`` (``k`` arms) pick
an arm uniformly, otherwise draw one sample from every posterior and take the largest. So each arm
gets at least ``floor`` of the traffic, whatever the data says, and the rest goes to each arm in
proportion to its posterior chance of being the best.

:class:`ThompsonBandit` is an immutable value: feedback returns a new one, and ``to_dict`` /
``from_dict`` round-trip it through the store. Whoever holds the current state serializes
updates (one assignment to a reference under a lock, or a row update in the store).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sibyl.errors import InvalidInputError

_RANDOM = random.Random()


@dataclass(frozen=True, slots=True)
class ArmStats:
    """Feedback counted for one arm (fractional counts come from rewards in [0, 1]: a reward
    ``r`` adds ``r`` successes and ``1 - r`` failures)."""

    name: str
    successes: float = 0
    failures: float = 0


@dataclass(frozen=True, slots=True)
class ThompsonBandit:
    """Posterior state of a Beta-Bernoulli bandit; build it with :meth:`create`."""

    arms: tuple[ArmStats, ...]
    floor: float = 0.0
    """Least share of traffic each arm gets (``floor · len(arms) <= 1``)."""
    prior_alpha: float = 1.0
    """Prior successes of every arm (1 and 1: uniform prior)."""
    prior_beta: float = 1.0
    """Prior failures of every arm."""

    def __post_init__(self) -> None:
        names = [a.name for a in self.arms]
        problems = [
            (not names, "it has no arms"),
            (len(set(names)) != len(names), f"arm names repeat: {names}"),
            (not all(_valid_count(a.successes, a.failures) for a in self.arms), "bad counts"),
            (not 0 <= self.floor * len(names) <= 1, f"floor {self.floor} × {len(names)} arms > 1"),
            (not (self.prior_alpha > 0 and self.prior_beta > 0), "priors must be > 0"),
        ]
        for failed, problem in problems:
            if failed:
                raise InvalidInputError(f"Invalid bandit: {problem}", field="arms")

    @classmethod
    def create(
        cls, names: Sequence[str], *, floor: float = 0.0, prior: tuple[float, float] = (1.0, 1.0)
    ) -> ThompsonBandit:
        """A bandit over ``names`` with no feedback yet."""
        return cls(tuple(ArmStats(n) for n in names), floor, prior[0], prior[1])

    @property
    def names(self) -> tuple[str, ...]:
        """Arm names in order."""
        return tuple(a.name for a in self.arms)

    def with_feedback(
        self, arm: str, *, successes: float = 0, failures: float = 0
    ) -> ThompsonBandit:
        """A new state with ``successes`` and ``failures`` added to ``arm``."""
        if not _valid_count(successes, failures):
            raise InvalidInputError("feedback counts must be finite and >= 0", field="feedback")
        index = self._index(arm)
        old = self.arms[index]
        new = ArmStats(arm, old.successes + successes, old.failures + failures)
        return replace(self, arms=(*self.arms[:index], new, *self.arms[index + 1 :]))

    def choose(self, rng: random.Random | None = None) -> str:
        """The arm for one request (uniform with probability ``floor · k``, else Thompson)."""
        r = rng or _RANDOM
        k = len(self.arms)
        if self.floor and r.random() < self.floor * k:
            return self.arms[r.randrange(k)].name
        best, best_draw = self.arms[0].name, -math.inf
        for a in self.arms:
            draw = r.betavariate(self.prior_alpha + a.successes, self.prior_beta + a.failures)
            if draw > best_draw:
                best, best_draw = a.name, draw
        return best

    def probabilities(
        self, n_draws: int = 10_000, rng: np.random.Generator | None = None
    ) -> dict[str, float]:
        """Each arm's posterior probability of being the best, from ``n_draws`` joint samples."""
        if n_draws < 1:
            raise InvalidInputError("n_draws must be >= 1", field="n_draws")
        g = rng or np.random.default_rng()
        alpha = np.array([self.prior_alpha + a.successes for a in self.arms], dtype=np.float64)
        beta = np.array([self.prior_beta + a.failures for a in self.arms], dtype=np.float64)
        draws = g.beta(alpha[:, None], beta[:, None], size=(len(self.arms), n_draws))
        wins = np.bincount(draws.argmax(axis=0), minlength=len(self.arms))
        return {a.name: float(w) / n_draws for a, w in zip(self.arms, wins, strict=True)}

    def traffic_shares(
        self, n_draws: int = 10_000, rng: np.random.Generator | None = None
    ) -> dict[str, float]:
        """Expected share of requests :meth:`choose` sends to each arm (floor included)."""
        uniform = self.floor * len(self.arms)
        best = self.probabilities(n_draws, rng)
        return {n: self.floor + (1 - uniform) * p for n, p in best.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields; :meth:`from_dict` inverts it."""
        return {
            "arms": [
                {"name": a.name, "successes": a.successes, "failures": a.failures}
                for a in self.arms
            ],
            "floor": self.floor,
            "prior_alpha": self.prior_alpha,
            "prior_beta": self.prior_beta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ThompsonBandit:
        """The bandit :meth:`to_dict` described."""
        arms = tuple(
            ArmStats(str(a["name"]), _count(a["successes"]), _count(a["failures"]))
            for a in data["arms"]
        )
        return cls(
            arms, float(data["floor"]), float(data["prior_alpha"]), float(data["prior_beta"])
        )

    def _index(self, arm: str) -> int:
        for i, a in enumerate(self.arms):
            if a.name == arm:
                return i
        known = ", ".join(repr(n) for n in self.names)
        raise InvalidInputError(f"Bandit has no arm {arm!r}; arms are {known}", field="arm")


def _count(value: Any) -> float:
    """A stored count as it was written: ``int`` when whole (the usual case), else ``float``."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _valid_count(*counts: float) -> bool:
    return all(0 <= c < math.inf for c in counts)

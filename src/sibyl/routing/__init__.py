"""Routing between model versions: the pure decisions and the wrappers that act on them.

* Sticky assignment — :func:`assign` / :class:`TrafficSplit`: a salted hash of the routing key
  picks a variant by weight; no state, so every replica agrees.
* Circuit breakers — :class:`CircuitBreaker` per version (:class:`CircuitBreakers` keeps one per
  key): closed → open → half-open → closed on error rate or latency over a sliding window.
* Fallback — :class:`FallbackPredictor`: a predictor over a chain (previous version → simpler
  model → :class:`DefaultValue`) that reports who answered.
* Bandits — :class:`ThompsonBandit`: Beta-Bernoulli Thompson sampling with a floor share per arm.
"""

from sibyl.routing._assignment import (
    POINT_SPACE,
    TrafficSplit,
    VariantRange,
    WeightedVariant,
    assign,
    key_point,
)
from sibyl.routing._bandit import ArmStats, ThompsonBandit
from sibyl.routing._breaker import (
    BreakerSettings,
    BreakerSnapshot,
    BreakerState,
    CircuitBreaker,
    CircuitBreakers,
)
from sibyl.routing._fallback import (
    DefaultValue,
    FailedAttempt,
    FailureKind,
    FallbackPredictor,
    FallbackResult,
)

__all__ = [
    "POINT_SPACE",
    "ArmStats",
    "BreakerSettings",
    "BreakerSnapshot",
    "BreakerState",
    "CircuitBreaker",
    "CircuitBreakers",
    "DefaultValue",
    "FailedAttempt",
    "FailureKind",
    "FallbackPredictor",
    "FallbackResult",
    "ThompsonBandit",
    "TrafficSplit",
    "VariantRange",
    "WeightedVariant",
    "assign",
    "key_point",
]

"""Use case 5: churn scored from a stream of events.

``simulate`` generates ChurnSim-style subscribers with exact churn labels and probabilities;
``window_features`` computes recent-activity features in batch and ``OnlineFeatures`` maintains
the same features event by event (equal to the batch values exactly).
"""

from sibyl.zoo.churn.features import (
    DEFAULT_WINDOWS,
    MONTH_DAYS,
    OnlineFeatures,
    feature_names,
    window_features,
)
from sibyl.zoo.churn.simulate import (
    EVENT_MEANS,
    EVENT_TYPES,
    UTILITY_WEIGHTS,
    ChurnSimConfig,
    ChurnSimulation,
    churn_probability,
    simulate,
    utility,
)

__all__ = [
    "DEFAULT_WINDOWS",
    "EVENT_MEANS",
    "EVENT_TYPES",
    "MONTH_DAYS",
    "UTILITY_WEIGHTS",
    "ChurnSimConfig",
    "ChurnSimulation",
    "OnlineFeatures",
    "churn_probability",
    "feature_names",
    "simulate",
    "utility",
    "window_features",
]

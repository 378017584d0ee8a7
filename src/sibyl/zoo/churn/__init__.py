"""Use case 5: churn scored from a stream of events.

``simulate`` generates ChurnSim-style subscribers with exact churn labels and probabilities;
``window_features`` computes recent-activity features in batch and ``OnlineFeatures`` maintains
the same features event by event (equal to the batch values exactly). ``register_all`` trains
and registers ``churn`` (gradient boosting on those features, scored against the oracles of
``oracle``) and ``churn-telco`` (the IBM Telco real-data check, ``telco``).
"""

from sibyl.zoo.churn.features import (
    DEFAULT_WINDOWS,
    MONTH_DAYS,
    OnlineFeatures,
    feature_names,
    window_features,
)
from sibyl.zoo.churn.oracle import expected_probability
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
from sibyl.zoo.churn.telco import MODEL_NAME as TELCO_MODEL_NAME
from sibyl.zoo.churn.telco import load_telco
from sibyl.zoo.churn.train import (
    FULL,
    MODEL_NAME,
    SMALL,
    ChurnConfig,
    register,
    register_all,
    training_frame,
)

__all__ = [
    "DEFAULT_WINDOWS",
    "EVENT_MEANS",
    "EVENT_TYPES",
    "FULL",
    "MODEL_NAME",
    "MONTH_DAYS",
    "SMALL",
    "TELCO_MODEL_NAME",
    "UTILITY_WEIGHTS",
    "ChurnConfig",
    "ChurnSimConfig",
    "ChurnSimulation",
    "OnlineFeatures",
    "churn_probability",
    "expected_probability",
    "feature_names",
    "load_telco",
    "register",
    "register_all",
    "simulate",
    "training_frame",
    "utility",
    "window_features",
]

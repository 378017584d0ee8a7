"""Calendar event classifier (use case 2): a seeded generator of labelled calendar events."""

from sibyl.zoo.calendar.data import (
    CLASS_PROFILES,
    CLASSES,
    LABEL_NOISE,
    LOCATION_TYPES,
    ClassProfile,
    generate_events,
    time_features,
)
from sibyl.zoo.calendar.train import MODEL_NAME, TrainResult, register, register_all

__all__ = [
    "CLASSES",
    "CLASS_PROFILES",
    "LABEL_NOISE",
    "LOCATION_TYPES",
    "MODEL_NAME",
    "ClassProfile",
    "TrainResult",
    "generate_events",
    "register",
    "register_all",
    "time_features",
]

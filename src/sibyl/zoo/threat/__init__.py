"""Security-threat text classifier (use case 4): a seeded generator of labelled alert lines."""

from sibyl.zoo.threat._templates import CLASSES
from sibyl.zoo.threat.data import LABEL_NOISE, generate_events
from sibyl.zoo.threat.train import MODEL_NAME, TrainResult, register

__all__ = ["CLASSES", "LABEL_NOISE", "MODEL_NAME", "TrainResult", "generate_events", "register"]

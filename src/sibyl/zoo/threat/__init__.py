"""Security-threat text classifier (use case 4): a seeded generator of labelled alert lines."""

from sibyl.zoo.threat._templates import CLASSES
from sibyl.zoo.threat.data import LABEL_NOISE, generate_events

__all__ = ["CLASSES", "LABEL_NOISE", "generate_events"]

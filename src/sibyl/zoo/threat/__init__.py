"""Security-threat text classifier (use case 4): a seeded generator of labelled alert lines and
a real-text check of the same pipeline family on the SpamAssassin corpus (cached by
``scripts/fetch-datasets.sh``)."""

from sibyl.zoo.threat._templates import CLASSES
from sibyl.zoo.threat.data import LABEL_NOISE, generate_events
from sibyl.zoo.threat.spam import (
    SPAM_ASSASSIN_VERSION,
    corpus_available,
    load_spam_assassin,
    train_spam,
)
from sibyl.zoo.threat.train import MODEL_NAME, TrainResult, register, register_all

__all__ = [
    "CLASSES",
    "LABEL_NOISE",
    "MODEL_NAME",
    "SPAM_ASSASSIN_VERSION",
    "TrainResult",
    "corpus_available",
    "generate_events",
    "load_spam_assassin",
    "register",
    "register_all",
    "train_spam",
]

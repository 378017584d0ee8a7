"""Training and registering the security-threat text classifier (use case 4).

One scikit-learn Pipeline on the raw ``text`` column: word 1–2-gram TF-IDF, then a multinomial
logistic regression. The served model takes ``{"text": "..."}`` records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sibyl.zoo._training import TrainResult as TrainResult
from sibyl.zoo._training import fit_classifier
from sibyl.zoo.threat._templates import CLASSES
from sibyl.zoo.threat.data import generate_events

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

MODEL_NAME = "threat-text-classifier"
FEATURES: tuple[str, ...] = ("text",)
TEST_SIZE = 0.25
C = 4.0


def build_pipeline(seed: int = 0) -> Pipeline:
    """The untrained pipeline (a one-column ``text`` frame → category)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    features = ColumnTransformer(
        [("text", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2), "text")]
    )
    classifier = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    return Pipeline([("features", features), ("classifier", classifier)])


def train(n: int = 6000, seed: int = 0) -> TrainResult:
    """Generate ``n`` alert lines, fit on a stratified 75 % and score the rest.

    Metrics: held-out ``macro_f1`` and ``accuracy``.
    """
    events = generate_events(n, seed)
    x = events[list(FEATURES)].astype({"text": str})
    y = events["category"].astype(str)
    return fit_classifier(
        build_pipeline(seed), x, y, classes=CLASSES, test_size=TEST_SIZE, seed=seed
    )


def register(tracking_uri: str, artifact_location: str, n: int = 6000, seed: int = 0) -> str:
    """Train (``train(n, seed)``) and register as ``MODEL_NAME``; the new version."""
    from sibyl.zoo._registering import log_and_register

    result = train(n, seed)
    return log_and_register(
        result.model,
        MODEL_NAME,
        result.x_train,
        result.metrics,
        {"n": n, "seed": seed, "C": C, "test_size": TEST_SIZE, "ngram_range": "1-2"},
        "Security alert text → threat category: word 1-2-gram TF-IDF + logistic regression",
        tracking_uri,
        artifact_location,
    )

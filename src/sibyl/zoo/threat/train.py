"""Training and registering the security-threat text classifier (use case 4).

One scikit-learn Pipeline on the raw ``text`` column: word 1–2-gram TF-IDF, then a multinomial
logistic regression. The served model takes ``{"text": "..."}`` records.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sibyl.zoo.threat._templates import CLASSES
from sibyl.zoo.threat.data import generate_events

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

MODEL_NAME = "threat-text-classifier"
FEATURES: tuple[str, ...] = ("text",)
TEST_SIZE = 0.25
C = 4.0


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A fitted model, its held-out metrics, the held-out split and the training inputs."""

    model: Pipeline
    metrics: dict[str, float]
    x_test: pd.DataFrame
    y_test: pd.Series[Any]
    x_train: pd.DataFrame
    """The inputs it was fitted on (profiled into ``reference_profile.json`` on registering)."""


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
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    events = generate_events(n, seed)
    x = events[list(FEATURES)].astype({"text": str})
    y = events["category"].astype(str)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=seed, stratify=y
    )
    model = build_pipeline(seed).fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {
        "macro_f1": float(f1_score(y_test, predicted, average="macro", labels=list(CLASSES))),
        "accuracy": float(accuracy_score(y_test, predicted)),
        "n_train": float(len(x_train)),
        "n_test": float(len(x_test)),
    }
    return TrainResult(model, metrics, x_test, y_test, x_train)


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

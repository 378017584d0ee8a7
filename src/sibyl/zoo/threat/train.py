"""Training and registering the security-threat text classifier (use case 4).

One scikit-learn Pipeline on the raw ``text`` column: word 1–2-gram TF-IDF, then a multinomial
logistic regression. The served model takes ``{"text": "..."}`` records. :func:`register_all`
also runs the same pipeline family on the real SpamAssassin corpus when it is cached
(:mod:`sibyl.zoo.threat.spam`) and logs its scores as ``spamassassin_*`` metrics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sibyl.zoo._registering import Progress, Registered, no_progress
from sibyl.zoo._training import TrainResult as TrainResult
from sibyl.zoo._training import fit_classifier
from sibyl.zoo.threat._templates import CLASSES
from sibyl.zoo.threat.data import generate_events

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

    from sklearn.pipeline import Pipeline

MODEL_NAME = "threat-text-classifier"
FEATURES: tuple[str, ...] = ("text",)
TEST_SIZE = 0.25
C = 4.0
DEMO_N = 3000
"""Generated alert lines of ``register_all(full=False)``."""
FULL_N = 20_000
"""Generated alert lines of ``register_all(full=True)``."""


def build_pipeline(
    seed: int = 0,
    *,
    ngram_max: int = 2,
    c: float = C,
    class_weight: str | None = None,
) -> Pipeline:
    """The untrained pipeline (a one-column ``text`` frame → category): word
    1–``ngram_max``-gram TF-IDF and a logistic regression of inverse regularisation ``c``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    tfidf = TfidfVectorizer(ngram_range=(1, ngram_max), sublinear_tf=True, min_df=2)
    features = ColumnTransformer([("text", tfidf, "text")])
    classifier = LogisticRegression(
        C=c, max_iter=2000, class_weight=class_weight, random_state=seed
    )
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


def log_result(
    result: TrainResult,
    params: Mapping[str, Any],
    tracking_uri: str,
    artifact_location: str,
) -> str:
    """Register a :func:`train` result (its metrics as they are) as ``MODEL_NAME``."""
    from sibyl.zoo._registering import log_and_register

    return log_and_register(
        result.model,
        MODEL_NAME,
        result.x_train,
        result.metrics,
        {"C": C, "test_size": TEST_SIZE, "ngram_range": "1-2", **params},
        "Security alert text → threat category: word 1-2-gram TF-IDF + logistic regression",
        tracking_uri,
        artifact_location,
    )


def register(tracking_uri: str, artifact_location: str, n: int = 6000, seed: int = 0) -> str:
    """Train (``train(n, seed)``) and register as ``MODEL_NAME``; the new version."""
    return log_result(train(n, seed), {"n": n, "seed": seed}, tracking_uri, artifact_location)


def register_all(
    tracking_uri: str,
    artifact_location: str,
    *,
    full: bool = False,
    seed: int = 0,
    progress: Progress = no_progress,
    datasets_dir: Path | None = None,
) -> list[Registered]:
    """Train on ``FULL_N`` (``full``) or ``DEMO_N`` generated lines and register
    ``MODEL_NAME``; served natively (text input).

    When the SpamAssassin corpus is in ``datasets_dir`` (default ``.sibyl/datasets``, filled by
    ``scripts/fetch-datasets.sh``) the real-text check runs too and its held-out scores are
    added as ``spamassassin_f1`` (spam class), ``spamassassin_macro_f1`` and
    ``spamassassin_accuracy``; without the corpus they are left out and the progress callback
    says how to fetch it.
    """
    from sibyl.zoo.threat import spam

    n = FULL_N if full else DEMO_N
    progress(f"training {MODEL_NAME} on {n} generated alert lines")
    result = train(n, seed)
    params: dict[str, Any] = {"n": n, "seed": seed, "spamassassin": "not cached"}
    if spam.corpus_available(datasets_dir):
        progress("checking the pipeline on the SpamAssassin corpus")
        checked = spam.train_spam(datasets_dir, seed=seed)
        result.metrics.update(spam.check_metrics(checked))
        params["spamassassin"] = spam.SPAM_ASSASSIN_VERSION
    else:
        progress(f"SpamAssassin check skipped (corpus not cached): {spam.FETCH_HINT}")
    progress(f"registering {MODEL_NAME}")
    version = log_result(result, params, tracking_uri, artifact_location)
    return [Registered(MODEL_NAME, version, dict(result.metrics), engine_hint="onnxruntime")]

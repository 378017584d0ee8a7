"""Training and registering the calendar-event classifier (use case 2).

One scikit-learn Pipeline takes the raw event columns (``FEATURES``) so the served model accepts
events as callers send them: TF-IDF over title + description, the numeric ``time_features``
(scaled) and a one-hot of the start hour's 2-hour slot (the classes differ by start hour in a
way a linear model cannot read from the hour alone), then a multinomial logistic regression.
The three Python functions carry ONNX graph builders (:mod:`sibyl.zoo.calendar._onnx`), so the
served model runs on ONNX Runtime when it verifies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from sibyl.runtime import onnx_function
from sibyl.zoo._registering import Progress, Registered, no_progress
from sibyl.zoo._training import TrainResult as TrainResult
from sibyl.zoo._training import fit_classifier
from sibyl.zoo.calendar._onnx import HOUR_SLOTS, event_text_graph, hour_slots_graph
from sibyl.zoo.calendar.data import CLASSES, generate_events, time_features

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

MODEL_NAME = "calendar-event-classifier"
FEATURES: tuple[str, ...] = (
    "title",
    "description",
    "start",
    "end",
    "attendees",
    "recurrence",
    "location_type",
)
"""The raw columns the model takes (every column of ``generate_events`` but the label)."""
TEST_SIZE = 0.25
C = 4.0
DEMO_N = 3000
"""Generated events of ``register_all(full=False)``."""
FULL_N = 20_000
"""Generated events of ``register_all(full=True)``."""


@onnx_function(event_text_graph, width=1, output="str")
def event_text(frame: pd.DataFrame) -> pd.Series[Any]:
    """Title and description joined, one string per row (the TF-IDF input)."""
    return frame["title"].astype(str) + " " + frame["description"].astype(str)


@onnx_function(hour_slots_graph, width=HOUR_SLOTS)
def hour_slots(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """One-hot of the start hour in 12 two-hour slots (float64, shape ``(n, 12)``)."""
    import pandas as pd

    hours = pd.to_datetime(frame["start"]).dt.hour.to_numpy(dtype=np.int64)
    return np.eye(12, dtype=np.float64)[hours // 2]


def serving_frame(events: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns as sibyl builds them: plain str / datetime / int / bool."""
    frame = events[list(FEATURES)].copy()
    frame["location_type"] = frame["location_type"].astype(str)
    return frame


def build_pipeline(seed: int = 0) -> Pipeline:
    """The untrained pipeline (raw event columns → category)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    features = ColumnTransformer(
        [
            (
                "text",
                make_pipeline(
                    FunctionTransformer(event_text),
                    TfidfVectorizer(ngram_range=(1, 1), sublinear_tf=True, min_df=2),
                ),
                ["title", "description"],
            ),
            (
                "time",
                make_pipeline(FunctionTransformer(time_features), StandardScaler()),
                ["start", "end", "attendees", "recurrence", "location_type"],
            ),
            ("slot", FunctionTransformer(hour_slots), ["start"]),
        ]
    )
    classifier = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    return Pipeline([("features", features), ("classifier", classifier)])


def train(n: int = 6000, seed: int = 0) -> TrainResult:
    """Generate ``n`` events, fit on a stratified 75 % and score the rest.

    Metrics: held-out ``accuracy`` and ``macro_f1`` (USE-CASES bar: accuracy 0.90–0.96).
    """
    events = generate_events(n, seed)
    x = serving_frame(events)
    y = events["category"].astype(str)
    return fit_classifier(
        build_pipeline(seed), x, y, classes=CLASSES, test_size=TEST_SIZE, seed=seed
    )


def log_result(
    result: TrainResult, n: int, seed: int, tracking_uri: str, artifact_location: str
) -> str:
    """Register a :func:`train` result (generated from ``n`` events) as ``MODEL_NAME``."""
    from sibyl.zoo._registering import log_and_register

    return log_and_register(
        result.model,
        MODEL_NAME,
        result.x_train,
        result.metrics,
        {"n": n, "seed": seed, "C": C, "test_size": TEST_SIZE},
        "Calendar event → category: TF-IDF(title+description) + time features + "
        "start-hour slots, logistic regression",
        tracking_uri,
        artifact_location,
    )


def register(tracking_uri: str, artifact_location: str, n: int = 6000, seed: int = 0) -> str:
    """Train (``train(n, seed)``) and register as ``MODEL_NAME``; the new version."""
    return log_result(train(n, seed), n, seed, tracking_uri, artifact_location)


def register_all(
    tracking_uri: str,
    artifact_location: str,
    *,
    full: bool = False,
    seed: int = 0,
    progress: Progress = no_progress,
) -> list[Registered]:
    """Train on ``FULL_N`` (``full``) or ``DEMO_N`` generated events and register
    ``MODEL_NAME`` (text and datetime input, served through ONNX Runtime when it verifies: its
    functions carry ONNX builders). Metrics: held-out ``accuracy``,
    ``macro_f1``, ``n_train``, ``n_test``."""
    n = FULL_N if full else DEMO_N
    progress(f"training {MODEL_NAME} on {n} generated events")
    result = train(n, seed)
    progress(f"registering {MODEL_NAME}")
    version = log_result(result, n, seed, tracking_uri, artifact_location)
    return [Registered(MODEL_NAME, version, dict(result.metrics), engine_hint="onnxruntime")]

"""Demo models for ``sibyl demo`` / ``make run``: a classifier and a regressor, registered and
promoted in the MLflow registry.

* ``demo-classifier`` — HistGradientBoostingClassifier on 20 numeric features generated with
  ``make_classification`` (the benchmark's model family). Version 1 (50 iterations) goes to
  production, version 2 (100 iterations) to staging, so the tour can promote it live.
* ``demo-regressor`` — gradient boosting on scikit-learn's bundled diabetes dataset (442
  patients, 10 features), in production.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

CLASSIFIER = "demo-classifier"
REGRESSOR = "demo-regressor"
DEMO_STEPS = 3
"""Models ``register_demo`` trains (its progress callback is called once before each)."""


@dataclass(frozen=True, slots=True)
class DemoModel:
    """What was registered."""

    name: str
    version: str
    stage: str
    metrics: dict[str, float]


def classification_data(n: int = 6000, seed: int = 0) -> tuple[Any, np.ndarray[Any, Any]]:
    """20 numeric features f0..f19 (DataFrame) and binary labels."""
    import pandas as pd
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=20, n_informative=10, random_state=seed)
    return pd.DataFrame(x, columns=[f"f{i}" for i in range(20)]), y


def _fit_classifier(iterations: int, seed: int) -> tuple[Any, dict[str, float], Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    x, y = classification_data(seed=seed)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed)
    model = HistGradientBoostingClassifier(max_iter=iterations, random_state=seed).fit(xtr, ytr)
    metrics = {
        "accuracy": float(accuracy_score(yte, model.predict(xte))),
        "roc_auc": float(roc_auc_score(yte, model.predict_proba(xte)[:, 1])),
    }
    return model, metrics, xte


def _fit_regressor(seed: int) -> tuple[Any, dict[str, float], Any]:
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.metrics import mean_squared_error, r2_score
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True, as_frame=True)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.25, random_state=seed)
    # shallow, slow-learning trees: R² ≈ 0.31 on this split (0.25 with the defaults)
    model = HistGradientBoostingRegressor(
        max_iter=200, learning_rate=0.03, max_depth=2, min_samples_leaf=20, random_state=seed
    ).fit(xtr, ytr)
    pred = model.predict(xte)
    metrics = {
        "rmse": float(np.sqrt(mean_squared_error(yte, pred))),
        "r2": float(r2_score(yte, pred)),
    }
    return model, metrics, xte


def register_demo(
    tracking_uri: str, artifact_location: str, progress: Callable[[str], None] = lambda _: None
) -> list[DemoModel]:
    """Train and register the demo models and set their stages; returns what was registered."""
    from sibyl.registry import ModelRegistry, Stage
    from sibyl.zoo._registering import log_and_register

    registry = ModelRegistry(tracking_uri)
    where = (tracking_uri, artifact_location)
    out = []
    for iterations, stage in ((50, Stage.PRODUCTION), (100, Stage.STAGING)):
        progress(f"training {CLASSIFIER} ({iterations} iterations)")
        model, metrics, xte = _fit_classifier(iterations, seed=0)
        version = log_and_register(
            model,
            CLASSIFIER,
            xte,
            metrics,
            {"max_iter": iterations},
            f"HistGradientBoosting, {iterations} iterations, 20 features",
            *where,
        )
        registry.set_semver(CLASSIFIER, version, f"1.{iterations // 50 - 1}.0")
        registry.set_stage(CLASSIFIER, version, stage)
        out.append(DemoModel(CLASSIFIER, version, stage.value, metrics))
    progress(f"training {REGRESSOR}")
    model, metrics, xte = _fit_regressor(seed=0)
    version = log_and_register(
        model,
        REGRESSOR,
        xte,
        metrics,
        {"max_iter": 200, "learning_rate": 0.03, "max_depth": 2, "min_samples_leaf": 20},
        "HistGradientBoosting regressor on the diabetes dataset",
        *where,
    )
    registry.set_semver(REGRESSOR, version, "1.0.0")
    registry.set_stage(REGRESSOR, version, Stage.PRODUCTION)
    out.append(DemoModel(REGRESSOR, version, "production", metrics))
    return out


def demo_registered(tracking_uri: str) -> bool:
    """Whether the demo models already have production versions."""
    from sibyl.registry import ModelRegistry

    aliases = ModelRegistry(tracking_uri).aliases()
    return all("production" in aliases.get(n, {}) for n in (CLASSIFIER, REGRESSOR))

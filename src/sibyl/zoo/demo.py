"""Demo models for ``sibyl demo`` / ``make run``: a classifier and a regressor plus the five zoo
use cases (small configurations), registered and staged in the MLflow registry.

* ``demo-classifier`` — HistGradientBoostingClassifier on 20 numeric features generated with
  ``make_classification`` (the benchmark's model family). Version 1 (50 iterations) goes to
  production, version 2 (100 iterations) to staging, so the tour can promote it live.
* ``demo-regressor`` — gradient boosting on scikit-learn's bundled diabetes dataset (442
  patients, 10 features), in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sibyl.zoo._registering import Progress, Registered, no_progress
from sibyl.zoo.catalog import USE_CASES, get_use_case

CLASSIFIER = "demo-classifier"
REGRESSOR = "demo-regressor"
BASIC_STEPS = 3
"""Models ``register_basics`` trains (its progress callback is called once before each)."""


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


def register_basics(
    tracking_uri: str, artifact_location: str, progress: Progress = no_progress
) -> list[Registered]:
    """Train and register the demo classifier (v1 production, v2 staging) and regressor."""
    from sibyl.zoo._registering import log_and_register

    where = (tracking_uri, artifact_location)
    out = []
    for iterations, stage in ((50, "production"), (100, "staging")):
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
        out.append(Registered(CLASSIFIER, version, metrics, stage, "onnxruntime"))
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
    out.append(Registered(REGRESSOR, version, metrics, "production", "onnxruntime"))
    return out


@dataclass(frozen=True, slots=True)
class DemoOutcome:
    """What ``register_demo`` registered, and the use cases that failed (name → error)."""

    registered: list[Registered]
    failed: dict[str, str]


def register_demo(
    tracking_uri: str,
    artifact_location: str,
    step: Progress = no_progress,
    note: Progress = no_progress,
    *,
    use_cases: Sequence[str] = tuple(USE_CASES),
    datasets_dir: Path | None = None,
) -> DemoOutcome:
    """Train and register the demo models and the zoo's ``use_cases`` (small configurations),
    then give every version its stage. ``step`` is called once before each of the
    ``demo_steps(use_cases)`` steps, ``note`` with finer messages inside a step. A use case that
    fails is reported in ``failed`` and the others go on. ``datasets_dir`` is the cache of real
    datasets (``make datasets``) the use cases check on when present."""
    from sibyl.registry import ModelRegistry

    registry = ModelRegistry(tracking_uri)
    registered = register_basics(tracking_uri, artifact_location, step)
    failed: dict[str, str] = {}
    for name in use_cases:
        case = get_use_case(name)
        step(f"training {case.name}: {', '.join(case.models)}")
        try:
            registered += case.register_all(
                tracking_uri, artifact_location, progress=note, datasets_dir=datasets_dir
            )
        except Exception as exc:  # one broken use case must not stop the demo
            failed[name] = f"{type(exc).__name__}: {exc}"
    for model in registered:  # every retraining is a minor release
        registry.set_stage(model.name, model.version, model.stage)
        registry.set_semver(model.name, model.version, f"1.{int(model.version) - 1}.0")
    return DemoOutcome(registered, failed)


def demo_steps(use_cases: Sequence[str] = tuple(USE_CASES)) -> int:
    """Steps ``register_demo`` reports through its ``step`` callback."""
    return BASIC_STEPS + len(use_cases)


def demo_models(use_cases: Sequence[str] = tuple(USE_CASES)) -> list[str]:
    """Every model the demo puts in production."""
    return [CLASSIFIER, REGRESSOR, *(m for n in use_cases for m in get_use_case(n).models)]


def demo_registered(tracking_uri: str, use_cases: Sequence[str] = tuple(USE_CASES)) -> bool:
    """Whether every demo model already has a production version."""
    from sibyl.registry import ModelRegistry

    aliases = ModelRegistry(tracking_uri).aliases()
    return all("production" in aliases.get(n, {}) for n in demo_models(use_cases))

"""What the zoo's trainers share: a stratified split, a fit and the held-out scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True, slots=True)
class TrainResult:
    """A fitted model, its held-out metrics, the held-out split and the training inputs."""

    model: Pipeline
    metrics: dict[str, float]
    x_test: pd.DataFrame
    y_test: pd.Series[Any]
    x_train: pd.DataFrame
    """The inputs it was fitted on (the version's drift reference profile on registering)."""


def fit_classifier(
    pipeline: Pipeline,
    x: pd.DataFrame,
    y: pd.Series[Any],
    *,
    classes: Sequence[str],
    test_size: float,
    seed: int,
) -> TrainResult:
    """Fit on a stratified ``1 - test_size`` split; metrics: held-out ``accuracy``,
    ``macro_f1`` (over ``classes``), ``n_train`` and ``n_test``."""
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, random_state=seed, stratify=y
    )
    model = pipeline.fit(x_train, y_train)
    predicted = model.predict(x_test)
    metrics = {
        "accuracy": float(accuracy_score(y_test, predicted)),
        "macro_f1": float(f1_score(y_test, predicted, average="macro", labels=list(classes))),
        "n_train": float(len(x_train)),
        "n_test": float(len(x_test)),
    }
    return TrainResult(model, metrics, x_test, y_test, x_train)

